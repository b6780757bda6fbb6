"""Gateway configuration, from the environment only (pydantic-settings)."""

from __future__ import annotations

import secrets
from pathlib import Path

from atelier_common.limits import UPLOAD_MAX_BYTES
from atelier_common.settings import ServiceSettings
from pydantic import AliasChoices, Field, SecretStr

SMS_PROVIDERS = ("console", "tencent")
MARKET_SMS_PROVIDER = {"local": "console", "global": "console", "cn": "tencent"}


class GatewaySettings(ServiceSettings):
    DATABASE_FILE = "gateway.db"

    # GATEWAY_LOG_LEVEL first, then the LOG_LEVEL the three services share.
    log_level: str = Field(
        default="INFO", validation_alias=AliasChoices("GATEWAY_LOG_LEVEL", "LOG_LEVEL")
    )
    gateway_host: str = Field(default="127.0.0.1", validation_alias="GATEWAY_HOST")
    gateway_port: int = Field(default=8080, validation_alias="GATEWAY_PORT")
    # Processes of `serve` sharing the port (SO_REUSEPORT); 0 (the default) = one per CPU core.
    processes_setting: int = Field(default=0, validation_alias="GATEWAY_PROCESSES", ge=0)
    gateway_public_url: str = Field(
        default="http://127.0.0.1:8080", validation_alias="GATEWAY_PUBLIC_URL"
    )
    gateway_database_url: str | None = Field(default=None, validation_alias="GATEWAY_DATABASE_URL")
    gateway_jwt_secret: str | None = Field(default=None, validation_alias="GATEWAY_JWT_SECRET")
    gateway_access_token_seconds: int = Field(
        default=900, validation_alias="GATEWAY_ACCESS_TOKEN_SECONDS"
    )
    gateway_refresh_token_days: int = Field(
        default=30, validation_alias="GATEWAY_REFRESH_TOKEN_DAYS"
    )
    gateway_max_body_bytes: int = Field(
        default=1_048_576, validation_alias="GATEWAY_MAX_BODY_BYTES"
    )
    # One limit for the whole product: the tasks service signs upload policies with the same
    # setting and default (atelier_common.limits).
    upload_max_bytes: int = Field(
        default=UPLOAD_MAX_BYTES, validation_alias="UPLOAD_MAX_BYTES", gt=0
    )
    gateway_rpc_timeout_seconds: float = Field(
        default=5.0, validation_alias="GATEWAY_RPC_TIMEOUT_SECONDS"
    )
    # Task views kept per process for GET /v1/tasks/{id}, fresh by the tasks change feed
    # (docs/ARCHITECTURE.md, "Task reads"); 0 turns the cache and its feed off.
    gateway_task_cache_size: int = Field(
        default=10_000, validation_alias="GATEWAY_TASK_CACHE_SIZE", ge=0
    )
    local_storage_dir: Path | None = Field(default=None, validation_alias="LOCAL_STORAGE_DIR")
    storage_signing_secret: SecretStr = Field(
        default=SecretStr("dev-storage-signing-secret"), validation_alias="STORAGE_SIGNING_SECRET"
    )
    # Requests per minute per client (0 disables); auth endpoints have their own, lower limit.
    gateway_rate_limit_per_minute: int = Field(
        default=600, validation_alias="GATEWAY_RATE_LIMIT_PER_MINUTE", ge=0
    )
    gateway_rate_limit_burst: int = Field(
        default=120, validation_alias="GATEWAY_RATE_LIMIT_BURST", ge=1
    )
    gateway_auth_rate_limit_per_minute: int = Field(
        default=30, validation_alias="GATEWAY_AUTH_RATE_LIMIT_PER_MINUTE", ge=0
    )
    gateway_auth_rate_limit_burst: int = Field(
        default=20, validation_alias="GATEWAY_AUTH_RATE_LIMIT_BURST", ge=1
    )
    # Behind a load balancer: take the client address from the last X-Forwarded-For hop it added.
    gateway_trust_forwarded_for: bool = Field(
        default=False, validation_alias="GATEWAY_TRUST_FORWARDED_FOR"
    )
    # Browser origins allowed to call the API (CORS), comma-separated; empty = same origin only.
    gateway_cors_origins: str = Field(default="", validation_alias="GATEWAY_CORS_ORIGINS")
    billing_address: str = Field(default="127.0.0.1:50051", validation_alias="BILLING_ADDRESS")
    tasks_address: str = Field(default="127.0.0.1:50052", validation_alias="TASKS_ADDRESS")

    # --- phone + SMS log-in (F2) ---
    # console | tencent; empty = the market's default (cn: tencent; local, global: console).
    sms_provider: str | None = Field(
        default=None, validation_alias="SMS_PROVIDER", pattern=f"^({'|'.join(SMS_PROVIDERS)})?$"
    )
    tencent_sms_secret_id: str | None = Field(
        default=None, validation_alias="TENCENT_SMS_SECRET_ID"
    )
    tencent_sms_secret_key: SecretStr | None = Field(
        default=None, validation_alias="TENCENT_SMS_SECRET_KEY"
    )
    tencent_sms_sdk_app_id: str | None = Field(
        default=None, validation_alias="TENCENT_SMS_SDK_APP_ID"
    )
    tencent_sms_sign_name: str | None = Field(
        default=None, validation_alias="TENCENT_SMS_SIGN_NAME"
    )
    tencent_sms_template_id: str | None = Field(
        default=None, validation_alias="TENCENT_SMS_TEMPLATE_ID"
    )
    tencent_sms_region: str = Field(default="ap-guangzhou", validation_alias="TENCENT_SMS_REGION")
    # A host (HTTPS), or an http(s) URL such as http://127.0.0.1:PORT for a local test server.
    tencent_sms_endpoint: str = Field(
        default="sms.tencentcloudapi.com",
        validation_alias="TENCENT_SMS_ENDPOINT",
        pattern=r"^(https?://)?[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$",
    )
    # Log-in codes one client address may ask for per hour (0 = no per-address limit); each
    # phone also gets at most one a minute and ten a day.
    sms_address_limit_per_hour: int = Field(
        default=20, validation_alias="SMS_ADDRESS_LIMIT_PER_HOUR", ge=0
    )

    def sms_provider_name(self) -> str:
        return self.sms_provider or MARKET_SMS_PROVIDER.get(self.market, "console")

    # --- start-up checks (atelier_common.startup) ---
    # Every market is built as far as the gateway is concerned: billing has WeChat Pay, and tasks
    # runs the cn generators and storage not built yet on local stand-ins (it says so at start).

    def missing_settings(self) -> list[str]:
        missing: list[str] = []
        # Its own signing key must be long enough.
        if self.gateway_jwt_secret and len(self.gateway_jwt_secret.encode()) < 32:
            missing.append("GATEWAY_JWT_SECRET (32 bytes or more; empty = generated)")
        if self.sms_provider_name() == "tencent":
            secret_key = self.tencent_sms_secret_key
            required = {
                "TENCENT_SMS_SECRET_ID": self.tencent_sms_secret_id,
                "TENCENT_SMS_SECRET_KEY": secret_key.get_secret_value() if secret_key else None,
                "TENCENT_SMS_SDK_APP_ID": self.tencent_sms_sdk_app_id,
                "TENCENT_SMS_SIGN_NAME": self.tencent_sms_sign_name,
                "TENCENT_SMS_TEMPLATE_ID": self.tencent_sms_template_id,
            }
            missing.extend(name for name, value in required.items() if not value)
        return missing

    def database_url(self) -> str:
        return self.gateway_database_url or self.embedded_database_url()

    def storage_dir(self) -> Path:
        """Where the tasks service's local storage keeps objects (shared data directory)."""
        return self.local_storage_dir or self.data_dir / "objects"

    def jwt_secret(self) -> str:
        """The configured secret, or one generated once and kept in the data directory."""
        if self.gateway_jwt_secret:
            return self.gateway_jwt_secret
        path = self.data_dir / "gateway_jwt_secret"
        if path.exists():
            return path.read_text().strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_urlsafe(48)
        path.write_text(secret)
        path.chmod(0o600)
        return secret
