"""The one composition root: settings → adapters → use cases → the aiohttp application.

Nothing is built at import time; tests call :func:`build_container` / :func:`build_app` with a
few parts overridden and get the real wiring for the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from atelier_common.db import make_engine
from sqlalchemy import Engine

from atelier_gateway.adapters.grpc_billing import GrpcBillingAccounts, GrpcBillingGateway
from atelier_gateway.adapters.grpc_tasks import GrpcTasksGateway
from atelier_gateway.adapters.jwt_tokens import JwtAccessTokenIssuer, UrlSafeSecretSource
from atelier_gateway.adapters.local_files import LocalFileStore
from atelier_gateway.adapters.passwords import Argon2PasswordHasher
from atelier_gateway.adapters.rate_limit import TokenBucketRateLimiter
from atelier_gateway.adapters.sqlalchemy_uow import SqlGatewayUnitOfWorkFactory
from atelier_gateway.application.auth import AuthService
from atelier_gateway.application.idempotency import IdempotencyService
from atelier_gateway.application.ports import (
    BillingAccounts,
    BillingGateway,
    PasswordHasher,
    TasksGateway,
)
from atelier_gateway.settings import GatewaySettings
from atelier_ports.clock import Clock, SystemClock
from atelier_ports.ids import IdGenerator, RandomIdGenerator


@dataclass
class Container:
    settings: GatewaySettings
    engine: Engine
    auth: AuthService
    idempotency: IdempotencyService
    billing: BillingGateway
    tasks: TasksGateway
    clock: Clock
    files: LocalFileStore
    rate_limit: TokenBucketRateLimiter
    auth_rate_limit: TokenBucketRateLimiter
    closers: list[Any] = field(default_factory=list)

    def close(self) -> None:
        for closer in self.closers:
            closer()
        self.engine.dispose()


def build_container(
    settings: GatewaySettings | None = None,
    *,
    clock: Clock | None = None,
    ids: IdGenerator | None = None,
    password_hasher: PasswordHasher | None = None,
    billing_accounts: BillingAccounts | None = None,
    billing_gateway: BillingGateway | None = None,
    tasks_gateway: TasksGateway | None = None,
    engine: Engine | None = None,
) -> Container:
    settings = settings or GatewaySettings()
    engine = engine or make_engine(settings.database_url())
    clock = clock or SystemClock()
    ids = ids or RandomIdGenerator()
    closers: list[Any] = []
    if billing_accounts is None:
        grpc_accounts = GrpcBillingAccounts(
            settings.billing_address,
            settings.atelier_internal_token,
            settings.gateway_rpc_timeout_seconds,
        )
        closers.append(grpc_accounts.close)
        billing_accounts = grpc_accounts
    uow = SqlGatewayUnitOfWorkFactory(engine)
    auth = AuthService(
        uow=uow,
        hasher=password_hasher or Argon2PasswordHasher(),
        tokens=JwtAccessTokenIssuer(settings.jwt_secret(), settings.gateway_access_token_seconds),
        secrets=UrlSafeSecretSource(),
        billing=billing_accounts,
        clock=clock,
        ids=ids,
        refresh_lifetime=timedelta(days=settings.gateway_refresh_token_days),
    )
    timeout = settings.gateway_rpc_timeout_seconds
    return Container(
        settings=settings,
        engine=engine,
        auth=auth,
        idempotency=IdempotencyService(uow, clock),
        billing=billing_gateway
        or GrpcBillingGateway(settings.billing_address, settings.atelier_internal_token, timeout),
        tasks=tasks_gateway
        or GrpcTasksGateway(settings.tasks_address, settings.atelier_internal_token, timeout),
        clock=clock,
        files=LocalFileStore(
            settings.storage_dir(), settings.storage_signing_secret.get_secret_value().encode()
        ),
        rate_limit=TokenBucketRateLimiter(
            settings.gateway_rate_limit_per_minute, settings.gateway_rate_limit_burst, clock
        ),
        auth_rate_limit=TokenBucketRateLimiter(
            settings.gateway_auth_rate_limit_per_minute,
            settings.gateway_auth_rate_limit_burst,
            clock,
        ),
        closers=closers,
    )
