"""The composition root of billing: the only place that chooses adapters (from settings)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from atelier_common.db import make_engine
from sqlalchemy import Engine

from atelier_billing.adapters.payments.http_sender import UrllibNotificationSender
from atelier_billing.adapters.payments.local import LocalPaymentProvider
from atelier_billing.adapters.payments.stripe_provider import StripePaymentProvider
from atelier_billing.adapters.payments.wechatpay import WeChatPayProvider
from atelier_billing.adapters.persistence.repository import SqlUnitOfWorkFactory
from atelier_billing.application.config import BillingConfig
from atelier_billing.application.ports import NotificationSender, PaymentProvider
from atelier_billing.application.use_cases import BillingUseCases, build_use_cases
from atelier_billing.domain.catalog import parse_catalog
from atelier_billing.settings import BillingSettings
from atelier_ports.clock import Clock, SystemClock
from atelier_ports.ids import IdGenerator, RandomIdGenerator


@dataclass
class BillingContainer:
    """The wired billing service: its settings, database engine, clock and use cases."""

    settings: BillingSettings
    engine: Engine
    clock: Clock
    config: BillingConfig
    use_cases: BillingUseCases

    def close(self) -> None:
        self.engine.dispose()


def _read_pem(path: str, setting: str) -> str:
    """A key file named by a setting; a missing one is a ValueError naming the setting only."""
    if not path.strip():
        raise ValueError(f"{setting} is not set")
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise ValueError(f"{setting} names no readable file") from exc


def build_payment_provider(name: str, settings: BillingSettings, clock: Clock) -> PaymentProvider:
    if name == "local":
        return LocalPaymentProvider(
            secret=settings.local_payment_secret.get_secret_value(),
            checkout_base_url=settings.gateway_public_url,
            webhook_url=settings.local_payment_webhook_url
            or f"{settings.gateway_public_url.rstrip('/')}/webhooks/local",
            records_dir=settings.data_dir / "local-payments",
            clock=clock,
            currency=settings.local_payment_currency,
        )
    if name == "stripe":
        order_page = f"{settings.gateway_public_url.rstrip('/')}/orders/{{order_id}}"
        return StripePaymentProvider(
            api_key=settings.stripe_api_key.get_secret_value(),
            webhook_secret=settings.stripe_webhook_secret.get_secret_value(),
            success_url=settings.stripe_success_url or f"{order_page}?checkout=success",
            cancel_url=settings.stripe_cancel_url or f"{order_page}?checkout=cancel",
            clock=clock,
            currency=settings.stripe_currency,
            api_base=settings.stripe_api_base or None,
        )
    if name == "wechatpay":
        return WeChatPayProvider(
            mchid=settings.wechatpay_mchid,
            appid=settings.wechatpay_appid,
            apiv3_key=settings.wechatpay_apiv3_key.get_secret_value(),
            merchant_serial_no=settings.wechatpay_merchant_serial_no,
            merchant_private_key=_read_pem(
                settings.wechatpay_merchant_private_key_file,
                "WECHATPAY_MERCHANT_PRIVATE_KEY_FILE",
            ),
            public_key_id=settings.wechatpay_public_key_id,
            public_key=_read_pem(settings.wechatpay_public_key_file, "WECHATPAY_PUBLIC_KEY_FILE"),
            notify_url=settings.wechatpay_notify(),
            clock=clock,
            api_base=settings.wechatpay_api_base,
        )
    raise ValueError(f"payment channel {name!r} is not available in this build")


def build_container(
    settings: BillingSettings | None = None,
    *,
    clock: Clock | None = None,
    ids: IdGenerator | None = None,
    providers: Mapping[str, PaymentProvider] | None = None,
    sender: NotificationSender | None = None,
) -> BillingContainer:
    """Wire billing from settings; tests pass overrides for a few parts (clock, providers …)."""
    settings = settings or BillingSettings()
    clock = clock or SystemClock()
    # One connection per call the server runs at once, plus the expiry loop's.
    engine = make_engine(settings.resolved_database_url(), pool_size=settings.grpc_workers + 2)
    catalog = parse_catalog(json.loads(settings.catalog_path().read_text()))
    config = BillingConfig(
        market=settings.market,
        catalog=catalog,
        signup_bonus=settings.signup_bonus,
        signup_bonus_validity=(
            timedelta(days=settings.signup_bonus_validity_days)
            if settings.signup_bonus_validity_days
            else None
        ),
        grace_period=timedelta(days=settings.grace_period_days),
        order_ttl=timedelta(minutes=settings.order_ttl_minutes),
    )
    if providers is None:
        providers = {
            name: build_payment_provider(name, settings, clock) for name in settings.channels()
        }
    use_cases = build_use_cases(
        uow=SqlUnitOfWorkFactory(engine),
        clock=clock,
        ids=ids or RandomIdGenerator(),
        config=config,
        providers=providers,
        sender=sender or UrllibNotificationSender(),
    )
    return BillingContainer(
        settings=settings, engine=engine, clock=clock, config=config, use_cases=use_cases
    )
