"""The one composition root of the tasks service: settings in, a wired ``TasksContainer`` out.

Adapters are chosen here and nowhere else (``MARKET`` picks the default set, each port can be
overridden by its own setting); tests pass typed keyword overrides to swap a few parts and keep
the rest of the real wiring.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from atelier_common.db import make_engine
from atelier_common.processes import shares_port
from sqlalchemy import Engine

from atelier_ports.clock import Clock, SystemClock
from atelier_ports.ids import IdGenerator, RandomIdGenerator
from atelier_tasks.adapters.aws_moderation import AwsModeration
from atelier_tasks.adapters.billing_grpc import GrpcBillingClient
from atelier_tasks.adapters.cos_storage import CosObjectStorage
from atelier_tasks.adapters.db.repository import SqlTasksUnitOfWorkFactory
from atelier_tasks.adapters.events import InProcessEventHub
from atelier_tasks.adapters.local_generation import LocalGenerationProvider
from atelier_tasks.adapters.local_storage import LocalObjectStorage
from atelier_tasks.adapters.pg_notify import PostgresNotificationListener
from atelier_tasks.adapters.pillow_images import PillowImageTools
from atelier_tasks.adapters.prometheus_metrics import PrometheusTaskMetrics
from atelier_tasks.adapters.replicate_generation import ReplicateGenerationProvider
from atelier_tasks.adapters.runninghub_generation import RunningHubGenerationProvider
from atelier_tasks.adapters.s3_storage import S3ObjectStorage
from atelier_tasks.adapters.safe_fetch import SafeOutputFetcher
from atelier_tasks.adapters.tencent_ci_generation import TencentCiGenerationProvider
from atelier_tasks.adapters.tencent_moderation import TencentModeration
from atelier_tasks.application.config import TasksConfig
from atelier_tasks.application.ports import BillingClient
from atelier_tasks.application.ports.generation import GenerationProvider
from atelier_tasks.application.ports.moderation import Moderation
from atelier_tasks.application.ports.storage import ObjectStorage
from atelier_tasks.application.saga import TaskSaga
from atelier_tasks.application.use_cases import TaskUseCases, build_use_cases
from atelier_tasks.application.worker import TaskWorker
from atelier_tasks.domain.model import TaskType
from atelier_tasks.settings import TasksSettings


@dataclass
class TasksContainer:
    settings: TasksSettings
    engine: Engine
    use_cases: TaskUseCases
    saga: TaskSaga
    uow: SqlTasksUnitOfWorkFactory
    billing: BillingClient
    providers: Mapping[str, GenerationProvider]
    hub: InProcessEventHub
    storage: ObjectStorage
    clock: Clock
    config: TasksConfig
    metrics: PrometheusTaskMetrics
    moderation: Moderation | None = None  # None: MODERATION_ENABLED=false
    listener: PostgresNotificationListener | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)

    def new_worker(self, owner: str | None = None) -> TaskWorker:
        owner = owner or self.settings.worker_id or f"{socket.gethostname()}:{os.getpid()}"
        return TaskWorker(
            saga=self.saga,
            uow=self.uow,
            clock=self.clock,
            config=self.config,
            owner=owner,
            batch=self.settings.worker_batch,
        )

    def close(self) -> None:
        if self.listener is not None:
            self.listener.stop()
        for closer in self.closers:
            closer()
        self.engine.dispose()


# The names before issue 10, for callers outside this service's files until they are renamed.


# Watchers woken by LISTEN/NOTIFY (PostgreSQL) re-read on their own only this often: 500 open
# streams polling every second would cost 500 reads a second for nothing.
WATCH_POLL_NOTIFIED_SECONDS = 30.0


def tasks_config(settings: TasksSettings, *, notified: bool = False) -> TasksConfig:
    """``notified``: every change wakes the watchers (the LISTEN/NOTIFY feed runs)."""
    routes, costs = settings.routes(), settings.costs()
    poll_bounds = {
        "runninghub": (
            timedelta(seconds=settings.runninghub_poll_min_seconds),
            timedelta(seconds=settings.runninghub_poll_max_seconds),
        )
    }
    return TasksConfig(
        poll_bounds=poll_bounds,
        costs={t: costs[t.value] for t in TaskType},
        routes={t: routes[t.value] for t in TaskType},
        timeout=timedelta(seconds=settings.timeout_seconds),
        daily_limit=settings.daily_limit,
        max_attempts=settings.max_attempts,
        retry_backoff=timedelta(seconds=settings.retry_backoff_seconds),
        lease=timedelta(seconds=settings.lease_seconds),
        hold_grace=timedelta(seconds=settings.hold_grace_seconds),
        create_budget=timedelta(seconds=settings.create_budget_seconds),
        url_ttl_seconds=settings.url_ttl_seconds,
        upload_max_bytes=settings.upload_max_bytes,
        watch_poll_seconds=WATCH_POLL_NOTIFIED_SECONDS if notified else 1.0,
        # Without NOTIFY only this process's own changes reach its hub: one process alone
        # (a separate ``atelier-tasks worker`` on SQLite is not heard either; see the README).
        change_feed=notified or not shares_port(),
    )


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


# Long enough for a queued prediction to start and read its input.
INPUT_URL_TTL_SECONDS = 3600


def build_replicate(
    settings: TasksSettings, clock: Clock, storage: ObjectStorage | None = None
) -> ReplicateGenerationProvider:
    fetcher = SafeOutputFetcher(
        _csv(settings.replicate_output_hosts),
        max_bytes=settings.replicate_output_max_bytes,
        timeout_seconds=settings.replicate_timeout_seconds,
        trusted_origins=_csv(settings.replicate_output_trusted_origins),
    )
    webhook_url = (
        settings.replicate_webhook_url
        or f"{settings.gateway_public_url.rstrip('/')}/webhooks/replicate"
    )
    return ReplicateGenerationProvider(
        api_token=settings.replicate_api_token.get_secret_value(),
        webhook_secret=settings.replicate_webhook_secret.get_secret_value(),
        webhook_url=webhook_url,
        models=settings.replicate_models(),
        fetcher=fetcher,
        clock=clock,
        base_url=settings.replicate_api_base or None,
        tolerance_seconds=settings.replicate_webhook_tolerance_seconds,
        timeout_seconds=settings.replicate_timeout_seconds,
        input_url=(lambda key: storage.signed_url(key, INPUT_URL_TTL_SECONDS)) if storage else None,
    )


def build_runninghub(settings: TasksSettings) -> RunningHubGenerationProvider:
    fetcher = SafeOutputFetcher(
        _csv(settings.runninghub_output_hosts),
        max_bytes=settings.runninghub_output_max_bytes,
        timeout_seconds=settings.runninghub_timeout_seconds,
        trusted_origins=_csv(settings.runninghub_output_trusted_origins),
    )
    webhook_url: str | None = (
        settings.runninghub_webhook_url
        or f"{settings.gateway_public_url.rstrip('/')}/webhooks/runninghub"
    )
    if webhook_url == "off":
        webhook_url = None
    return RunningHubGenerationProvider(
        api_key=settings.runninghub_api_key.get_secret_value(),
        apps=settings.runninghub_apps(),
        image_node=settings.runninghub_node_image,
        prompt_node=settings.runninghub_node_prompt,
        seed_node=settings.runninghub_node_seed,
        fetcher=fetcher,
        base_url=settings.runninghub_api_base,
        webhook_url=webhook_url,
        timeout_seconds=settings.runninghub_timeout_seconds,
    )


def build_providers(
    settings: TasksSettings, clock: Clock | None = None, storage: ObjectStorage | None = None
) -> dict[str, GenerationProvider]:
    providers: dict[str, GenerationProvider] = {
        "local": LocalGenerationProvider(
            delay_ms=settings.local_generator_delay_ms,
            fail_rate=settings.local_generator_fail_rate,
        )
    }
    if "replicate" in settings.routes().values():
        providers["replicate"] = build_replicate(settings, clock or SystemClock(), storage)
    if "tencent_ci" in settings.routes().values():
        providers["tencent_ci"] = build_tencent_ci(settings)
    if "runninghub" in settings.routes().values():
        providers["runninghub"] = build_runninghub(settings)
    missing = sorted(set(settings.routes().values()) - set(providers))
    if missing:
        raise RuntimeError(
            f"generation providers not available in this build: {', '.join(missing)} "
            "(set MARKET=local or TASKS_PROVIDER_<TYPE>=local)"
        )
    return providers


# --- cn market: Tencent COS (storage, STS upload keys) and Cloud Infinite (basic_clean) ---


def build_cos_storage(settings: TasksSettings, clock: Clock) -> CosObjectStorage:
    return CosObjectStorage(
        bucket=settings.cos_bucket,
        region=settings.cos_region,
        secret_id=settings.cos_secret_id,
        secret_key=settings.cos_secret_key.get_secret_value(),
        clock=clock,
        endpoint=settings.cos_endpoint,
        sts_endpoint=settings.cos_sts_endpoint,
    )


def build_tencent_ci(settings: TasksSettings) -> TencentCiGenerationProvider:
    return TencentCiGenerationProvider(
        bucket=settings.cos_bucket,
        region=settings.cos_region,
        secret_id=settings.cos_secret_id,
        secret_key=settings.cos_secret_key.get_secret_value(),
        endpoint=settings.cos_endpoint,
    )


def build_storage(settings: TasksSettings, clock: Clock) -> ObjectStorage:
    backend = settings.storage_backend()
    if backend == "s3":
        return S3ObjectStorage(
            bucket=settings.s3_bucket,
            clock=clock,
            region=settings.s3_region,
            endpoint_url=settings.s3_endpoint_url or None,
            access_key_id=settings.s3_access_key_id or None,
            secret_access_key=settings.s3_secret_access_key.get_secret_value() or None,
            addressing_style=settings.s3_addressing_style,
        )
    if backend == "cos":
        return build_cos_storage(settings, clock)
    if backend != "local":
        raise RuntimeError(f"object storage {backend!r} is not available in this build")
    base = settings.gateway_public_url.rstrip("/")
    return LocalObjectStorage(
        settings.data_dir / "objects",
        settings.storage_signing_secret.get_secret_value().encode(),
        clock,
        base_url=f"{base}/files",
        upload_url=f"{base}/uploads",
    )


# --- content moderation (issue 14) ---


def build_moderation(settings: TasksSettings) -> Moderation | None:
    """The Moderation adapter chosen by MODERATION_PROVIDER (else the market's: local → local,
    cn → tencent, global → aws); None when MODERATION_ENABLED=false. The start-up checks
    (``unbuilt_parts``, ``missing_settings``) refuse an unknown one or missing keys first."""
    backend = settings.moderation_backend()
    threshold = settings.moderation_threshold
    if backend is None:
        return None
    if backend == "local":
        # Imported only when chosen: the NSFW detector's runtime (onnxruntime, OpenCV) is heavy
        # to load for a process that does not use it.
        from atelier_tasks.adapters.local_moderation import LocalModeration

        return LocalModeration(
            threshold=threshold,
            blocked_terms_file=settings.moderation_blocked_terms_file.strip() or None,
        )
    if backend == "tencent":
        return TencentModeration(
            secret_id=settings.tencent_moderation_secret_id.strip(),
            secret_key=settings.tencent_moderation_secret_key.get_secret_value().strip(),
            region=settings.tencent_moderation_region.strip(),
            threshold=threshold,
            biz_type=settings.tencent_moderation_biz_type.strip() or None,
            endpoint=settings.tencent_moderation_endpoint.strip() or None,
        )
    if backend == "aws":
        return AwsModeration(
            region=settings.aws_moderation_region.strip(),
            threshold=threshold,
            access_key_id=settings.aws_moderation_access_key_id.strip() or None,
            secret_access_key=(
                settings.aws_moderation_secret_access_key.get_secret_value().strip() or None
            ),
            endpoint_url=settings.aws_moderation_endpoint_url.strip() or None,
        )
    raise RuntimeError(f"content moderation {backend!r} is not available in this build")


def build_container(
    settings: TasksSettings | None = None,
    *,
    clock: Clock | None = None,
    ids: IdGenerator | None = None,
    billing: BillingClient | None = None,
    providers: Mapping[str, GenerationProvider] | None = None,
    storage: ObjectStorage | None = None,
    config: TasksConfig | None = None,
    moderation: Moderation | None = None,
) -> TasksContainer:
    """Wire everything; each keyword replaces one part of the real wiring (tests). Moderation
    is switched off by the settings (MODERATION_ENABLED=false), not by an override."""
    settings = settings or TasksSettings()
    clock = clock or SystemClock()
    ids = ids or RandomIdGenerator()
    # One connection per call the server runs at once, plus the worker's.
    engine = make_engine(settings.resolved_database_url(), pool_size=settings.grpc_workers + 2)
    notified = engine.dialect.name == "postgresql"  # the LISTEN/NOTIFY feed below
    config = config or tasks_config(settings, notified=notified)
    hub = InProcessEventHub()
    closers: list[Callable[[], None]] = []
    if billing is None:
        grpc_billing = GrpcBillingClient(
            settings.billing_address,
            settings.internal_token.get_secret_value(),
            timeout=settings.billing_timeout_seconds,
        )
        closers.append(grpc_billing.close)
        billing = grpc_billing
    storage = storage or build_storage(settings, clock)
    providers = providers or build_providers(settings, clock, storage)
    runninghub = providers.get("runninghub")
    if isinstance(runninghub, RunningHubGenerationProvider):
        closers.append(runninghub.close)
    uow = SqlTasksUnitOfWorkFactory(engine)
    metrics = PrometheusTaskMetrics()
    if settings.moderation_backend() is not None:
        moderation = moderation or build_moderation(settings)
    else:
        moderation = None
    saga = TaskSaga(
        uow=uow,
        billing=billing,
        providers=providers,
        storage=storage,
        images=PillowImageTools(),
        hub=hub,
        clock=clock,
        config=config,
        metrics=metrics,
        moderation=moderation,
        ids=ids,
    )
    use_cases = build_use_cases(
        saga=saga,
        uow=uow,
        providers=providers,
        storage=storage,
        hub=hub,
        clock=clock,
        ids=ids,
        config=config,
    )
    listener = None
    if notified:
        url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        listener = PostgresNotificationListener(url, hub)
        listener.start()
    return TasksContainer(
        settings=settings,
        engine=engine,
        use_cases=use_cases,
        saga=saga,
        uow=uow,
        billing=billing,
        providers=providers,
        hub=hub,
        storage=storage,
        clock=clock,
        config=config,
        metrics=metrics,
        moderation=moderation,
        listener=listener,
        closers=closers,
    )
