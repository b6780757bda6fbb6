"""The one composition root: settings → adapters → use cases → :class:`GatewayContainer`, which
``entrypoints.http.app.create_app`` serves.

Nothing is built at import time; tests call :func:`build_container` with a few parts overridden
(typed keyword arguments: a misspelt override is a type error) and get the real wiring for the
rest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from atelier_common.db import make_engine
from sqlalchemy import Engine

from atelier_gateway.adapters.grpc_billing import GrpcBillingAccounts, GrpcBillingGateway
from atelier_gateway.adapters.grpc_tasks import GrpcTasksGateway
from atelier_gateway.adapters.image_source import SignedUrlImages
from atelier_gateway.adapters.jwt_tokens import JwtAccessTokenIssuer, UrlSafeSecretSource
from atelier_gateway.adapters.local_files import LocalFileStore
from atelier_gateway.adapters.passwords import Argon2PasswordHasher
from atelier_gateway.adapters.phone_numbers import LibPhoneNumbers
from atelier_gateway.adapters.rate_limit import TokenBucketRateLimiter
from atelier_gateway.adapters.sms import ConsoleSms, SecretsOneTimeCodes, TencentSms
from atelier_gateway.adapters.sqlalchemy_uow import SqlGatewayUnitOfWorkFactory
from atelier_gateway.application.accounts import BillingAccountSetUp, LogIn, SignUp
from atelier_gateway.application.idempotency import IdempotencyKeys
from atelier_gateway.application.phone_login import LogInWithCode, SendLogInCode
from atelier_gateway.application.ports import (
    BillingAccounts,
    BillingGateway,
    ImageSource,
    OneTimeCodes,
    PasswordHasher,
    Sms,
    TasksGateway,
)
from atelier_gateway.application.profiles import (
    GetProfile,
    PromoteAdmin,
    SearchUsers,
    UpdateProfile,
)
from atelier_gateway.application.sessions import (
    Authenticate,
    LogOut,
    RefreshSession,
    SessionIssuer,
)
from atelier_gateway.application.task_reads import FollowTaskChanges, ReadTask, TaskReadModel
from atelier_gateway.domain.sms import SmsRules
from atelier_gateway.settings import GatewaySettings
from atelier_ports.clock import Clock, SystemClock
from atelier_ports.ids import IdGenerator, RandomIdGenerator


@dataclass
class GatewayContainer:
    """The wired gateway: its use cases, the ports of billing and tasks, and the adapters the
    HTTP layer uses directly (files, rate limits)."""

    settings: GatewaySettings
    engine: Engine
    clock: Clock
    sign_up: SignUp
    log_in: LogIn
    send_login_code: SendLogInCode
    log_in_with_code: LogInWithCode
    refresh_session: RefreshSession
    log_out: LogOut
    authenticate: Authenticate
    get_profile: GetProfile
    update_profile: UpdateProfile
    promote_admin: PromoteAdmin
    search_users: SearchUsers
    idempotency: IdempotencyKeys
    billing: BillingGateway
    tasks: TasksGateway
    files: LocalFileStore
    rate_limit: TokenBucketRateLimiter
    auth_rate_limit: TokenBucketRateLimiter
    images: ImageSource
    task_reads: TaskReadModel
    read_task: ReadTask
    follow_task_changes: FollowTaskChanges
    closers: list[Callable[[], None]] = field(default_factory=list)

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
    sms: Sms | None = None,
    one_time_codes: OneTimeCodes | None = None,
) -> GatewayContainer:
    settings = settings or GatewaySettings()
    engine = engine or make_engine(settings.database_url())
    clock = clock or SystemClock()
    ids = ids or RandomIdGenerator()
    timeout = settings.gateway_rpc_timeout_seconds
    closers: list[Callable[[], None]] = []
    if billing_accounts is None:
        grpc_accounts = GrpcBillingAccounts(
            settings.billing_address, settings.internal_token.get_secret_value(), timeout
        )
        closers.append(grpc_accounts.close)
        billing_accounts = grpc_accounts
    uow = SqlGatewayUnitOfWorkFactory(engine)
    hasher = password_hasher or Argon2PasswordHasher()
    tokens = JwtAccessTokenIssuer(settings.jwt_secret(), settings.gateway_access_token_seconds)
    secrets = UrlSafeSecretSource()
    sessions = SessionIssuer(
        uow=uow,
        tokens=tokens,
        secrets=secrets,
        clock=clock,
        ids=ids,
        refresh_lifetime=timedelta(days=settings.gateway_refresh_token_days),
    )
    billing_set_up = BillingAccountSetUp(uow=uow, billing=billing_accounts)
    phones = LibPhoneNumbers(default_region="CN")
    sms_rules = SmsRules(address_limit_per_hour=settings.sms_address_limit_per_hour)
    # Codes are stored as HMACs under a key of their own, derived from the gateway's secret.
    code_key = hashlib.sha256(b"atelier-sms-code\0" + settings.jwt_secret().encode()).digest()
    files = LocalFileStore(
        settings.storage_dir(), settings.storage_signing_secret.get_secret_value().encode()
    )
    tasks = tasks_gateway or GrpcTasksGateway(
        settings.tasks_address, settings.internal_token.get_secret_value(), timeout
    )
    task_reads = TaskReadModel(clock=clock, size=settings.gateway_task_cache_size)
    return GatewayContainer(
        settings=settings,
        engine=engine,
        clock=clock,
        sign_up=SignUp(
            uow=uow,
            hasher=hasher,
            billing_set_up=billing_set_up,
            sessions=sessions,
            clock=clock,
            ids=ids,
        ),
        log_in=LogIn(
            uow=uow,
            hasher=hasher,
            secrets=secrets,
            billing_set_up=billing_set_up,
            sessions=sessions,
        ),
        send_login_code=SendLogInCode(
            uow=uow,
            sms=sms or build_sms(settings),
            phones=phones,
            codes=one_time_codes or SecretsOneTimeCodes(),
            clock=clock,
            rules=sms_rules,
            code_key=code_key,
        ),
        log_in_with_code=LogInWithCode(
            uow=uow,
            phones=phones,
            billing_set_up=billing_set_up,
            sessions=sessions,
            clock=clock,
            ids=ids,
            rules=sms_rules,
            code_key=code_key,
        ),
        refresh_session=RefreshSession(uow=uow, sessions=sessions, clock=clock),
        log_out=LogOut(uow=uow, clock=clock),
        authenticate=Authenticate(tokens=tokens, clock=clock),
        get_profile=GetProfile(uow=uow),
        update_profile=UpdateProfile(uow=uow, billing=billing_accounts),
        promote_admin=PromoteAdmin(uow=uow, phones=phones),
        search_users=SearchUsers(uow=uow),
        idempotency=IdempotencyKeys(uow, clock),
        billing=billing_gateway
        or GrpcBillingGateway(
            settings.billing_address, settings.internal_token.get_secret_value(), timeout
        ),
        tasks=tasks,
        files=files,
        rate_limit=TokenBucketRateLimiter(
            settings.gateway_rate_limit_per_minute, settings.gateway_rate_limit_burst, clock
        ),
        auth_rate_limit=TokenBucketRateLimiter(
            settings.gateway_auth_rate_limit_per_minute,
            settings.gateway_auth_rate_limit_burst,
            clock,
        ),
        images=SignedUrlImages(files, clock),
        task_reads=task_reads,
        read_task=ReadTask(tasks=tasks, model=task_reads),
        follow_task_changes=FollowTaskChanges(tasks=tasks, model=task_reads),
        closers=closers,
    )


def build_sms(settings: GatewaySettings) -> Sms:
    """The ``Sms`` adapter ``SMS_PROVIDER`` names (or the market's default)."""
    if settings.sms_provider_name() == "tencent":
        secret_key = settings.tencent_sms_secret_key
        return TencentSms(
            secret_id=settings.tencent_sms_secret_id or "",
            secret_key=secret_key.get_secret_value() if secret_key else "",
            sdk_app_id=settings.tencent_sms_sdk_app_id or "",
            sign_name=settings.tencent_sms_sign_name or "",
            template_id=settings.tencent_sms_template_id or "",
            region=settings.tencent_sms_region,
            endpoint=settings.tencent_sms_endpoint,
        )
    return ConsoleSms()
