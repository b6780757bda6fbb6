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
# What this build has adapters for (bootstrap.build_providers / build_storage): every market's
# defaults; a TASKS_PROVIDER_<TYPE> or TASKS_STORAGE naming anything else refuses to start.
BUILT_PROVIDERS = ("local", "replicate", "runninghub", "tencent_ci")
BUILT_STORAGE = ("local", "s3", "cos")
# What Tencent COS (storage) and Cloud Infinite (basic_clean) both need.
COS_SETTINGS = ("COS_SECRET_ID", "COS_SECRET_KEY", "COS_REGION", "COS_BUCKET")
# Credits per task type by market, from the registry; each can be overridden by
# TASKS_COST_<TYPE>.
MARKET_COSTS: dict[str, dict[str, int]] = market_costs()
# Content moderation (issue 14): the provider by market (MODERATION_PROVIDER overrides) and the
# adapters this build has (bootstrap.build_moderation); any other name stops the start.
MARKET_MODERATION = {"local": "local", "global": "aws", "cn": "tencent"}
BUILT_MODERATION = ("local", "tencent", "aws")
TENCENT_MODERATION_SETTINGS = (
    "TENCENT_MODERATION_SECRET_ID",
    "TENCENT_MODERATION_SECRET_KEY",
    "TENCENT_MODERATION_REGION",
)


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

    # --- content moderation (issue 14): prompts, input photos and results ---
    moderation_enabled: bool = Field(True, validation_alias="MODERATION_ENABLED")
    # A label at or above this confidence (0..1) refuses the content.
    moderation_threshold: float = Field(0.8, validation_alias="MODERATION_THRESHOLD", gt=0, le=1)
    # local | tencent | aws; empty = the market's (MARKET_MODERATION).
    moderation_provider: str = Field("", validation_alias="MODERATION_PROVIDER")
    # One term per line, added to the local adapter's packaged lists.
    moderation_blocked_terms_file: str = Field("", validation_alias="MODERATION_BLOCKED_TERMS_FILE")
    tencent_moderation_secret_id: str = Field("", validation_alias="TENCENT_MODERATION_SECRET_ID")
    tencent_moderation_secret_key: SecretStr = Field(
        SecretStr(""), validation_alias="TENCENT_MODERATION_SECRET_KEY"
    )
    tencent_moderation_region: str = Field(
        "ap-guangzhou", validation_alias="TENCENT_MODERATION_REGION"
    )
    tencent_moderation_biz_type: str = Field("", validation_alias="TENCENT_MODERATION_BIZ_TYPE")
    # Tests only: one base URL serving both TMS and IMS.
    tencent_moderation_endpoint: str = Field("", validation_alias="TENCENT_MODERATION_ENDPOINT")
    aws_moderation_region: str = Field("us-east-1", validation_alias="AWS_MODERATION_REGION")
    # Empty: boto3's credential chain (environment, profile, instance role).
    aws_moderation_access_key_id: str = Field("", validation_alias="AWS_MODERATION_ACCESS_KEY_ID")
    aws_moderation_secret_access_key: SecretStr = Field(
        SecretStr(""), validation_alias="AWS_MODERATION_SECRET_ACCESS_KEY"
    )
    # Tests only: a local server speaking Rekognition and Comprehend.
    aws_moderation_endpoint_url: str = Field("", validation_alias="AWS_MODERATION_ENDPOINT_URL")

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

    # --- cn market: RunningHub (generation, issue 12) ---
    runninghub_api_key: SecretStr = Field(SecretStr(""), validation_alias="RUNNINGHUB_API_KEY")
    runninghub_api_base: str = Field(
        "https://www.runninghub.cn", validation_alias="RUNNINGHUB_API_BASE"
    )
    # The AI app (webappId, digits) per task type routed to RunningHub.
    runninghub_webapp_id_model_pose12: str = Field(
        "", validation_alias="RUNNINGHUB_WEBAPP_ID_MODEL_POSE12"
    )
    runninghub_webapp_id_text_to_image: str = Field(
        "", validation_alias="RUNNINGHUB_WEBAPP_ID_TEXT_TO_IMAGE"
    )
    runninghub_webapp_id_basic_clean: str = Field(
        "", validation_alias="RUNNINGHUB_WEBAPP_ID_BASIC_CLEAN"
    )
    # nodeId:fieldName of the app's inputs (the seed: only where the app has one).
    runninghub_node_image: str = Field("", validation_alias="RUNNINGHUB_NODE_IMAGE")
    runninghub_node_prompt: str = Field("", validation_alias="RUNNINGHUB_NODE_PROMPT")
    runninghub_node_seed: str = Field("", validation_alias="RUNNINGHUB_NODE_SEED")
    runninghub_output_hosts: str = Field(
        "rh-images.xiaoyaoyou.com", validation_alias="RUNNINGHUB_OUTPUT_HOSTS"
    )
    # Exact origins (scheme://host:port) exempt from the private-address check: tests only.
    runninghub_output_trusted_origins: str = Field(
        "", validation_alias="RUNNINGHUB_OUTPUT_TRUSTED_ORIGINS"
    )
    runninghub_output_max_bytes: int = Field(
        25 * 1024 * 1024, validation_alias="RUNNINGHUB_OUTPUT_MAX_BYTES", gt=0
    )
    runninghub_poll_min_seconds: float = Field(
        3.0, validation_alias="RUNNINGHUB_POLL_MIN_SECONDS", gt=0
    )
    runninghub_poll_max_seconds: float = Field(
        30.0, validation_alias="RUNNINGHUB_POLL_MAX_SECONDS", gt=0
    )
    runninghub_timeout_seconds: float = Field(
        30.0, validation_alias="RUNNINGHUB_TIMEOUT_SECONDS", gt=0
    )
    # Default: $GATEWAY_PUBLIC_URL/webhooks/runninghub; "off" sends no webhookUrl.
    runninghub_webhook_url: str = Field("", validation_alias="RUNNINGHUB_WEBHOOK_URL")

    def runninghub_apps(self) -> dict[str, str]:
        """task type → webappId, for the types routed to RunningHub."""
        return {
            task_type: str(getattr(self, f"runninghub_webapp_id_{task_type}")).strip()
            for task_type in self._types_by_provider().get("runninghub", [])
        }

    def _runninghub_missing(self) -> list[str]:
        types = self._types_by_provider().get("runninghub", [])
        if not types:
            return []
        missing: list[str] = []
        if not self.runninghub_api_key.get_secret_value().strip():
            missing.append("RUNNINGHUB_API_KEY")
        for task_type in sorted(types):
            app = str(getattr(self, f"runninghub_webapp_id_{task_type}")).strip()
            name = f"RUNNINGHUB_WEBAPP_ID_{task_type.upper()}"
            if not app:
                missing.append(name)
            elif not app.isdigit():
                missing.append(f"{name} (digits)")
        nodes = [("RUNNINGHUB_NODE_PROMPT", self.runninghub_node_prompt)]
        if set(types) - {"text_to_image"}:
            nodes.insert(0, ("RUNNINGHUB_NODE_IMAGE", self.runninghub_node_image))
        if self.runninghub_node_seed.strip():
            nodes.append(("RUNNINGHUB_NODE_SEED", self.runninghub_node_seed))
        for name, value in nodes:
            node, sep, field_name = value.strip().partition(":")
            if not value.strip():
                missing.append(name)
            elif not (sep and node and field_name):
                missing.append(f"{name} (nodeId:fieldName)")
        if not self.runninghub_output_hosts.strip():
            missing.append("RUNNINGHUB_OUTPUT_HOSTS")
        if self.runninghub_poll_max_seconds < self.runninghub_poll_min_seconds:
            missing.append("RUNNINGHUB_POLL_MAX_SECONDS (at least RUNNINGHUB_POLL_MIN_SECONDS)")
        return missing

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
        for task_type in routes:
            override = getattr(self, f"provider_{task_type}")
            if override:
                routes[task_type] = override
        return routes

    def replicate_models(self) -> dict[str, str]:
        return {
            "text_to_image": self.replicate_model_text_to_image,
            "basic_clean": self.replicate_model_basic_clean,
            "model_pose12": self.replicate_model_model_pose12,
        }

    def storage_backend(self) -> str:
        return self.storage or MARKET_STORAGE[self.market]

    def moderation_backend(self) -> str | None:
        """The moderation provider, or None when moderation is off."""
        if not self.moderation_enabled:
            return None
        return self.moderation_provider.strip() or MARKET_MODERATION[self.market]

    # --- start-up checks (atelier_common.startup) ---
    def unbuilt_parts(self) -> list[str]:
        parts = [
            f"generation provider {provider} (for {', '.join(sorted(types))})"
            for provider, types in self._types_by_provider().items()
            if provider not in BUILT_PROVIDERS
        ]
        if self.storage_backend() not in BUILT_STORAGE:
            parts.append(f"object storage {self.storage_backend()}")
        moderation = self.moderation_backend()
        if moderation is not None and moderation not in BUILT_MODERATION:
            parts.append(
                f"content moderation {moderation} (MODERATION_PROVIDER: local, tencent, aws)"
            )
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
        missing.extend(self._runninghub_missing())
        missing.extend(self._missing_cos_settings())
        missing.extend(self._missing_moderation_settings())
        return missing

    def _missing_moderation_settings(self) -> list[str]:
        backend = self.moderation_backend()
        if backend == "tencent":
            values = {
                "TENCENT_MODERATION_SECRET_ID": self.tencent_moderation_secret_id,
                "TENCENT_MODERATION_SECRET_KEY": (
                    self.tencent_moderation_secret_key.get_secret_value()
                ),
                "TENCENT_MODERATION_REGION": self.tencent_moderation_region,
            }
            return [name for name in TENCENT_MODERATION_SETTINGS if not values[name].strip()]
        if backend == "aws":
            missing = [] if self.aws_moderation_region.strip() else ["AWS_MODERATION_REGION"]
            key_id = self.aws_moderation_access_key_id.strip()
            secret = self.aws_moderation_secret_access_key.get_secret_value().strip()
            if bool(key_id) != bool(secret):  # both, or neither (boto3's credential chain)
                missing.append(
                    "AWS_MODERATION_SECRET_ACCESS_KEY" if key_id else "AWS_MODERATION_ACCESS_KEY_ID"
                )
            return missing
        return []  # local needs nothing

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
