"""Tasks configuration, from the environment only."""

from __future__ import annotations

from atelier_common.limits import UPLOAD_MAX_BYTES
from atelier_common.settings import ServiceSettings
from pydantic import Field, SecretStr

from atelier_tasks.domain.task_types import market_costs, market_routes

# Provider per task type and market (F16), from the task-type registry; each can be overridden
# by TASKS_PROVIDER_<TYPE>.
MARKET_ROUTES: dict[str, dict[str, str]] = market_routes()
MARKET_STORAGE = {"local": "local", "global": "s3", "cn": "cos"}
# What this build has adapters for (bootstrap.build_providers / build_storage). The cn market's
# defaults that are not built yet run on the local generators and storage (``stand_ins``), and
# the service says so in one log line at start. An explicit TASKS_PROVIDER_<TYPE> or
# TASKS_STORAGE naming an unbuilt adapter still refuses to start.
BUILT_PROVIDERS = ("local", "replicate", "tencent_ci")
BUILT_STORAGE = ("local", "s3", "cos")
# What Tencent COS (storage) and Cloud Infinite (basic_clean) both need.
COS_SETTINGS = ("COS_SECRET_ID", "COS_SECRET_KEY", "COS_REGION", "COS_BUCKET")
# Credits per task type by market, from the registry; each can be overridden by
# TASKS_COST_<TYPE>.
MARKET_COSTS: dict[str, dict[str, int]] = market_costs()


class TasksSettings(ServiceSettings):
    DATABASE_FILE = "tasks.db"

    database_url: str | None = Field(None, validation_alias="TASKS_DATABASE_URL")
    grpc_host: str = Field("127.0.0.1", validation_alias="TASKS_GRPC_HOST")
    grpc_port: int = Field(50052, validation_alias="TASKS_GRPC_PORT")
    grpc_workers: int = Field(32, validation_alias="TASKS_GRPC_WORKERS")
    # Processes of `serve` sharing the port (SO_REUSEPORT), each with its worker; 0 = one per
    # CPU core.
    processes_setting: int = Field(1, validation_alias="TASKS_PROCESSES", ge=0)
    billing_address: str = Field("127.0.0.1:50051", validation_alias="BILLING_ADDRESS")
    billing_timeout_seconds: float = Field(5.0, validation_alias="BILLING_TIMEOUT_SECONDS", gt=0)

    # Unset = the market's cost (MARKET_COSTS).
    cost_text_to_image: int | None = Field(None, validation_alias="TASKS_COST_TEXT_TO_IMAGE", ge=0)
    cost_basic_clean: int | None = Field(None, validation_alias="TASKS_COST_BASIC_CLEAN", ge=0)
    cost_model_pose12: int | None = Field(None, validation_alias="TASKS_COST_MODEL_POSE12", ge=0)
    provider_text_to_image: str = Field("", validation_alias="TASKS_PROVIDER_TEXT_TO_IMAGE")
    provider_basic_clean: str = Field("", validation_alias="TASKS_PROVIDER_BASIC_CLEAN")
    provider_model_pose12: str = Field("", validation_alias="TASKS_PROVIDER_MODEL_POSE12")
    timeout_seconds: float = Field(600.0, validation_alias="TASKS_TIMEOUT_SECONDS", gt=0)
    daily_limit: int = Field(200, validation_alias="TASKS_DAILY_LIMIT", ge=0)
    max_attempts: int = Field(3, validation_alias="TASKS_MAX_ATTEMPTS", ge=1)
    retry_backoff_seconds: float = Field(2.0, validation_alias="TASKS_RETRY_BACKOFF_SECONDS", ge=0)
    lease_seconds: float = Field(300.0, validation_alias="TASKS_LEASE_SECONDS", gt=0)
    hold_grace_seconds: float = Field(30.0, validation_alias="TASKS_HOLD_GRACE_SECONDS", ge=0)
    create_budget_seconds: float = Field(10.0, validation_alias="TASKS_CREATE_BUDGET_SECONDS", gt=0)

    worker_enabled: bool = Field(True, validation_alias="TASKS_WORKER_ENABLED")
    worker_batch: int = Field(10, validation_alias="TASKS_WORKER_BATCH", ge=1)
    worker_idle_seconds: float = Field(0.5, validation_alias="TASKS_WORKER_IDLE_SECONDS", gt=0)
    worker_id: str = Field("", validation_alias="TASKS_WORKER_ID")

    local_generator_delay_ms: int = Field(0, validation_alias="LOCAL_GENERATOR_DELAY_MS", ge=0)
    local_generator_fail_rate: float = Field(
        0.0, validation_alias="LOCAL_GENERATOR_FAIL_RATE", ge=0, le=1
    )
    storage: str = Field("", validation_alias="TASKS_STORAGE")  # default: by market
    storage_signing_secret: SecretStr = Field(
        SecretStr("dev-storage-signing-secret"), validation_alias="STORAGE_SIGNING_SECRET"
    )
    gateway_public_url: str = Field("http://127.0.0.1:8080", validation_alias="GATEWAY_PUBLIC_URL")
    url_ttl_seconds: int = Field(900, validation_alias="STORAGE_URL_TTL_SECONDS", gt=0)
    # One limit for the whole product: the gateway reads the same setting (atelier_common.limits).
    upload_max_bytes: int = Field(UPLOAD_MAX_BYTES, validation_alias="UPLOAD_MAX_BYTES", gt=0)
    metrics_port: int = Field(0, validation_alias="TASKS_METRICS_PORT", ge=0)  # 0: off

    # --- global market: Replicate (generation) ---
    replicate_api_token: SecretStr = Field(SecretStr(""), validation_alias="REPLICATE_API_TOKEN")
    replicate_webhook_secret: SecretStr = Field(
        SecretStr(""), validation_alias="REPLICATE_WEBHOOK_SECRET"
    )
    replicate_api_base: str = Field("", validation_alias="REPLICATE_API_BASE")  # tests only
    replicate_webhook_url: str = Field("", validation_alias="REPLICATE_WEBHOOK_URL")
    replicate_webhook_tolerance_seconds: int = Field(
        300, validation_alias="REPLICATE_WEBHOOK_TOLERANCE_SECONDS", gt=0
    )
    replicate_timeout_seconds: float = Field(
        30.0, validation_alias="REPLICATE_TIMEOUT_SECONDS", gt=0
    )
    replicate_model_text_to_image: str = Field(
        "black-forest-labs/flux-schnell", validation_alias="REPLICATE_MODEL_TEXT_TO_IMAGE"
    )
    replicate_model_basic_clean: str = Field("", validation_alias="REPLICATE_MODEL_BASIC_CLEAN")
    replicate_model_model_pose12: str = Field("", validation_alias="REPLICATE_MODEL_MODEL_POSE12")
    replicate_output_hosts: str = Field(
        "replicate.delivery,*.replicate.delivery", validation_alias="REPLICATE_OUTPUT_HOSTS"
    )
    replicate_output_max_bytes: int = Field(
        25 * 1024 * 1024, validation_alias="REPLICATE_OUTPUT_MAX_BYTES", gt=0
    )
    # Exact origins (scheme://host:port) exempt from the private-address check: tests only.
    replicate_output_trusted_origins: str = Field(
        "", validation_alias="REPLICATE_OUTPUT_TRUSTED_ORIGINS"
    )

    # --- global market: S3 (object storage) ---
    s3_bucket: str = Field("", validation_alias="S3_BUCKET")
    s3_region: str = Field("us-east-1", validation_alias="S3_REGION")
    s3_endpoint_url: str = Field("", validation_alias="S3_ENDPOINT_URL")
    s3_access_key_id: str = Field("", validation_alias="S3_ACCESS_KEY_ID")
    s3_secret_access_key: SecretStr = Field(SecretStr(""), validation_alias="S3_SECRET_ACCESS_KEY")
    s3_addressing_style: str = Field(
        "auto", validation_alias="S3_ADDRESSING_STYLE", pattern="^(auto|path|virtual)$"
    )

    # --- cn market: Tencent COS (object storage) and Cloud Infinite (basic_clean) ---
    cos_secret_id: str = Field("", validation_alias="COS_SECRET_ID")
    cos_secret_key: SecretStr = Field(SecretStr(""), validation_alias="COS_SECRET_KEY")
    cos_region: str = Field("", validation_alias="COS_REGION")  # e.g. ap-shanghai
    cos_bucket: str = Field("", validation_alias="COS_BUCKET")  # <name>-<APPID>
    # The bucket's domain as a URL; empty: https://<bucket>.cos.<region>.myqcloud.com.
    cos_endpoint: str = Field("", validation_alias="COS_ENDPOINT")
    cos_sts_endpoint: str = Field("", validation_alias="COS_STS_ENDPOINT")  # tests only

    def resolved_database_url(self) -> str:
        return self.database_url or self.embedded_database_url()

    def costs(self) -> dict[str, int]:
        """Credits per task type: TASKS_COST_<TYPE>, else the market's."""
        costs = dict(MARKET_COSTS[self.market])
        for task_type in costs:
            override = getattr(self, f"cost_{task_type}", None)
            if override is not None:
                costs[task_type] = int(override)
        return costs

    def routes(self) -> dict[str, str]:
        routes = dict(MARKET_ROUTES[self.market])
        for task_type, provider in routes.items():
            override = getattr(self, f"provider_{task_type}")
            if override:
                routes[task_type] = override
            elif self.market == "cn" and provider not in BUILT_PROVIDERS:
                routes[task_type] = "local"  # until issue 12 lands (stand_ins)
        return routes

    def stand_ins(self) -> list[str]:
        """The cn market's adapters not built yet, and run locally instead: each as
        ``"<adapter> (<what for>)"``; empty when nothing stands in."""
        if self.market != "cn":
            return []
        parts = [
            f"{provider} ({task_type})"
            for task_type, provider in MARKET_ROUTES["cn"].items()
            if provider not in BUILT_PROVIDERS and not getattr(self, f"provider_{task_type}")
        ]
        if not self.storage and MARKET_STORAGE["cn"] not in BUILT_STORAGE:
            parts.append(f"{MARKET_STORAGE['cn']} (storage)")
        return parts

    def replicate_models(self) -> dict[str, str]:
        return {
            "text_to_image": self.replicate_model_text_to_image,
            "basic_clean": self.replicate_model_basic_clean,
            "model_pose12": self.replicate_model_model_pose12,
        }

    def storage_backend(self) -> str:
        if self.storage:
            return self.storage
        backend = MARKET_STORAGE[self.market]
        if self.market == "cn" and backend not in BUILT_STORAGE:
            return "local"  # until issue 12 lands (stand_ins)
        return backend

    # --- start-up checks (atelier_common.startup) ---
    def unbuilt_parts(self) -> list[str]:
        parts = [
            f"generation provider {provider} (for {', '.join(sorted(types))})"
            for provider, types in self._types_by_provider().items()
            if provider not in BUILT_PROVIDERS
        ]
        if self.storage_backend() not in BUILT_STORAGE:
            parts.append(f"object storage {self.storage_backend()}")
        return parts

    def missing_settings(self) -> list[str]:
        missing: list[str] = []
        if "replicate" in self._types_by_provider():
            if not self.replicate_api_token.get_secret_value().strip():
                missing.append("REPLICATE_API_TOKEN")
            secret = self.replicate_webhook_secret.get_secret_value().strip()
            if not secret:
                missing.append("REPLICATE_WEBHOOK_SECRET")
            elif not secret.startswith("whsec_"):
                missing.append("REPLICATE_WEBHOOK_SECRET (a whsec_… value)")
        if self.storage_backend() == "s3" and not self.s3_bucket.strip():
            missing.append("S3_BUCKET")
        missing.extend(self._missing_cos_settings())
        return missing

    def _missing_cos_settings(self) -> list[str]:
        if "tencent_ci" not in self._types_by_provider() and self.storage_backend() != "cos":
            return []
        values = {
            "COS_SECRET_ID": self.cos_secret_id,
            "COS_SECRET_KEY": self.cos_secret_key.get_secret_value(),
            "COS_REGION": self.cos_region,
            "COS_BUCKET": self.cos_bucket,
        }
        missing = [name for name in COS_SETTINGS if not values[name].strip()]
        bucket = self.cos_bucket.strip()
        if bucket and not (bucket.rsplit("-", 1)[-1].isdigit() and "-" in bucket):
            missing.append("COS_BUCKET (a <name>-<APPID> value)")
        return missing

    def _types_by_provider(self) -> dict[str, list[str]]:
        by_provider: dict[str, list[str]] = {}
        for task_type, provider in self.routes().items():
            by_provider.setdefault(provider, []).append(task_type)
        return by_provider
