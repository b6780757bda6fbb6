"""Billing configuration, from the environment only (see .env.example)."""

from __future__ import annotations

from pathlib import Path

from atelier_common.settings import ServiceSettings
from pydantic import Field, SecretStr

DEFAULT_CATALOG = Path(__file__).with_name("catalog.default.json")
# The cn market sells in CNY only, with its own plans (the ¥99 monthly membership: 100
# generations over 30 days); CATALOG_FILE replaces either.
MARKET_CATALOGS = {"cn": Path(__file__).with_name("catalog.cn.json")}
MARKET_CHANNELS = {"local": ("local",), "global": ("stripe",), "cn": ("wechatpay",)}
# The payment channels this build has adapters for (bootstrap.build_payment_provider), and the
# settings each one cannot start without.
BUILT_CHANNELS = ("local", "stripe", "wechatpay")
CHANNEL_REQUIRES = {
    "stripe": ("STRIPE_API_KEY", "STRIPE_WEBHOOK_SECRET"),
    "wechatpay": (
        "WECHATPAY_MCHID",
        "WECHATPAY_APPID",
        "WECHATPAY_APIV3_KEY",
        "WECHATPAY_MERCHANT_SERIAL_NO",
        "WECHATPAY_MERCHANT_PRIVATE_KEY_FILE",
        "WECHATPAY_PUBLIC_KEY_ID",
        "WECHATPAY_PUBLIC_KEY_FILE",
    ),
}


class BillingSettings(ServiceSettings):
    DATABASE_FILE = "billing.db"

    database_url: str | None = Field(None, validation_alias="BILLING_DATABASE_URL")
    grpc_host: str = Field("127.0.0.1", validation_alias="BILLING_GRPC_HOST")
    grpc_port: int = Field(50051, validation_alias="BILLING_GRPC_PORT")
    grpc_workers: int = Field(32, validation_alias="BILLING_GRPC_WORKERS")
    # Processes of `serve` sharing the port (SO_REUSEPORT); 0 = one per CPU core.
    processes_setting: int = Field(1, validation_alias="BILLING_PROCESSES", ge=0)
    # Comma-separated channels; empty means the market's default set.
    payment_channels: str = Field("", validation_alias="PAYMENT_CHANNELS")
    # Empty = the market's packaged catalog (catalog.cn.json for cn, else catalog.default.json).
    catalog_file: Path | None = Field(None, validation_alias="CATALOG_FILE")
    signup_bonus: int = Field(10, validation_alias="SIGNUP_BONUS_CREDITS", ge=0)
    signup_bonus_validity_days: int = Field(
        0, validation_alias="SIGNUP_BONUS_VALIDITY_DAYS", ge=0
    )  # 0 = never expires
    grace_period_days: int = Field(7, validation_alias="GRACE_PERIOD_DAYS", ge=1)
    order_ttl_minutes: int = Field(30, validation_alias="ORDER_TTL_MINUTES", ge=1)
    # The periodic sweep asks providers about orders pending longer than this (F12).
    reconcile_after_seconds: int = Field(180, validation_alias="BILLING_RECONCILE_AFTER_SECONDS")
    expiry_interval_seconds: float = Field(60.0, validation_alias="BILLING_EXPIRY_INTERVAL_SECONDS")
    gateway_public_url: str = Field("http://127.0.0.1:8080", validation_alias="GATEWAY_PUBLIC_URL")
    local_payment_secret: SecretStr = Field(
        SecretStr("dev-local-payment-secret"), validation_alias="LOCAL_PAYMENT_WEBHOOK_SECRET"
    )
    # Where the sandbox sends its notifications; empty = {GATEWAY_PUBLIC_URL}/webhooks/local.
    # Set it when the gateway is reached under another name inside the network (containers).
    local_payment_webhook_url: str = Field("", validation_alias="LOCAL_PAYMENT_WEBHOOK_URL")
    local_payment_currency: str = Field("USD", validation_alias="LOCAL_PAYMENT_CURRENCY")
    stripe_api_key: SecretStr = Field(SecretStr(""), validation_alias="STRIPE_API_KEY")
    stripe_webhook_secret: SecretStr = Field(
        SecretStr(""), validation_alias="STRIPE_WEBHOOK_SECRET"
    )
    # Only for tests and stripe-mock style servers; empty means Stripe's real API.
    stripe_api_base: str = Field("", validation_alias="STRIPE_API_BASE")
    stripe_currency: str = Field("USD", validation_alias="STRIPE_CURRENCY")
    # {order_id} is replaced; the default returns the browser to the gateway's order page.
    stripe_success_url: str = Field("", validation_alias="STRIPE_SUCCESS_URL")
    stripe_cancel_url: str = Field("", validation_alias="STRIPE_CANCEL_URL")
    # WeChat Pay API v3, public-key mode (the keys are PEM files; nothing is downloaded at start).
    wechatpay_mchid: str = Field("", validation_alias="WECHATPAY_MCHID")
    wechatpay_appid: str = Field("", validation_alias="WECHATPAY_APPID")
    wechatpay_apiv3_key: SecretStr = Field(SecretStr(""), validation_alias="WECHATPAY_APIV3_KEY")
    wechatpay_merchant_serial_no: str = Field("", validation_alias="WECHATPAY_MERCHANT_SERIAL_NO")
    wechatpay_merchant_private_key_file: str = Field(
        "", validation_alias="WECHATPAY_MERCHANT_PRIVATE_KEY_FILE"
    )
    wechatpay_public_key_id: str = Field("", validation_alias="WECHATPAY_PUBLIC_KEY_ID")
    wechatpay_public_key_file: str = Field("", validation_alias="WECHATPAY_PUBLIC_KEY_FILE")
    # Empty = {GATEWAY_PUBLIC_URL}/webhooks/wechatpay.
    wechatpay_notify_url: str = Field("", validation_alias="WECHATPAY_NOTIFY_URL")
    # WeChat's gateway; tests point it at a local server.
    wechatpay_api_base: str = Field(
        "https://api.mch.weixin.qq.com", validation_alias="WECHATPAY_API_BASE"
    )

    def resolved_database_url(self) -> str:
        return self.database_url or self.embedded_database_url()

    def catalog_path(self) -> Path:
        return self.catalog_file or MARKET_CATALOGS.get(self.market, DEFAULT_CATALOG)

    def wechatpay_notify(self) -> str:
        """WECHATPAY_NOTIFY_URL, else the gateway's public webhook endpoint."""
        return (
            self.wechatpay_notify_url or f"{self.gateway_public_url.rstrip('/')}/webhooks/wechatpay"
        )

    def channels(self) -> list[str]:
        if self.payment_channels.strip():
            return [c.strip() for c in self.payment_channels.split(",") if c.strip()]
        return list(MARKET_CHANNELS[self.market])

    # --- start-up checks (atelier_common.startup) ---
    def unbuilt_parts(self) -> list[str]:
        return [f"payment channel {c}" for c in self.channels() if c not in BUILT_CHANNELS]

    def missing_settings(self) -> list[str]:
        values = {
            "STRIPE_API_KEY": self.stripe_api_key.get_secret_value(),
            "STRIPE_WEBHOOK_SECRET": self.stripe_webhook_secret.get_secret_value(),
            "WECHATPAY_MCHID": self.wechatpay_mchid,
            "WECHATPAY_APPID": self.wechatpay_appid,
            "WECHATPAY_APIV3_KEY": self.wechatpay_apiv3_key.get_secret_value(),
            "WECHATPAY_MERCHANT_SERIAL_NO": self.wechatpay_merchant_serial_no,
            "WECHATPAY_MERCHANT_PRIVATE_KEY_FILE": self.wechatpay_merchant_private_key_file,
            "WECHATPAY_PUBLIC_KEY_ID": self.wechatpay_public_key_id,
            "WECHATPAY_PUBLIC_KEY_FILE": self.wechatpay_public_key_file,
        }
        needed = [
            name
            for c in self.channels()
            if c in BUILT_CHANNELS
            for name in CHANNEL_REQUIRES.get(c, ())
        ]
        missing: list[str] = []
        for name in dict.fromkeys(needed):
            value = values[name].strip()
            if not value:
                missing.append(name)
            elif name.endswith("_FILE") and not Path(value).is_file():
                missing.append(f"{name} (no such file)")
            elif name == "WECHATPAY_APIV3_KEY" and len(value.encode()) != 32:
                missing.append(f"{name} (32 characters)")
        return missing
