"""The GenerationProvider contract: every adapter passes the same suite. A *driver* per adapter
plays the vendor's side (the model finishing, failing, the webhook it sends) so the same
assertions hold for synchronous, webhook and polling providers. Each driver names the task type
its adapter is asked for (Tencent Cloud Infinite does basic_clean only)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import pytest
from PIL import Image

from atelier_ports.clock import SystemClock
from atelier_ports.errors import InvalidNotification, ProviderRejected
from atelier_tasks.adapters.local_generation import LocalGenerationProvider
from atelier_tasks.adapters.replicate_generation import ReplicateGenerationProvider
from atelier_tasks.adapters.safe_fetch import SafeOutputFetcher
from atelier_tasks.adapters.tencent_ci_generation import TencentCiGenerationProvider
from atelier_tasks.application.ports.generation import (
    GenerationProvider,
    GenerationRequest,
    GenerationResult,
    GenerationState,
    ProviderStyle,
)
from tests.support import cos_server
from tests.support.cos_server import FakeCos
from tests.support.replicate_server import API_TOKEN, WEBHOOK_SECRET, FakeReplicate


class Driver(Protocol):
    @property
    def provider(self) -> GenerationProvider: ...  # the adapter under test, typed as its port

    @property
    def task_type(self) -> str: ...  # what the contract asks it to do

    def finish(self, submitted: GenerationResult) -> GenerationResult:
        """Let the vendor finish the job successfully; the terminal result as we learn it."""
        ...

    def fail(self, submitted: GenerationResult) -> GenerationResult:
        """Let the vendor fail the job (synchronous providers: submit with the sandbox trigger)."""
        ...

    def notification(self, submitted: GenerationResult) -> tuple[dict[str, str], bytes] | None:
        """A genuine signed notification for the job, or None for providers that send none."""
        ...


@dataclass
class LocalDriver:
    provider: LocalGenerationProvider
    task_type: str = "text_to_image"

    def finish(self, submitted: GenerationResult) -> GenerationResult:
        return submitted

    def fail(self, submitted: GenerationResult) -> GenerationResult:
        return self.provider.submit(request(sandbox_outcome="fail"))

    def notification(self, submitted: GenerationResult) -> tuple[dict[str, str], bytes] | None:
        return None


@dataclass
class ReplicateDriver:
    provider: ReplicateGenerationProvider
    server: FakeReplicate
    task_type: str = "text_to_image"

    def finish(self, submitted: GenerationResult) -> GenerationResult:
        assert submitted.provider_job_id
        self.server.complete(submitted.provider_job_id)  # webhook URL unreachable: ignored
        headers, body = self.server.notification(submitted.provider_job_id)
        return self.provider.parse_notification(headers, body).result

    def fail(self, submitted: GenerationResult) -> GenerationResult:
        assert submitted.provider_job_id
        self.server.fail(submitted.provider_job_id)
        return self.provider.poll(submitted.provider_job_id)

    def notification(self, submitted: GenerationResult) -> tuple[dict[str, str], bytes] | None:
        assert submitted.provider_job_id
        return self.server.notification(submitted.provider_job_id)


@dataclass
class TencentCiDriver:
    provider: TencentCiGenerationProvider
    task_type: str = "basic_clean"

    def finish(self, submitted: GenerationResult) -> GenerationResult:
        return submitted

    def fail(self, submitted: GenerationResult) -> GenerationResult:
        """Cloud Infinite refuses an input that is not an image."""
        return self.provider.submit(request("basic_clean", photo=b"not an image at all"))

    def notification(self, submitted: GenerationResult) -> tuple[dict[str, str], bytes] | None:
        return None


@pytest.fixture(params=["local", "replicate", "tencent_ci"])
def driver(request: pytest.FixtureRequest) -> Iterator[Driver]:
    if request.param == "local":
        yield LocalDriver(LocalGenerationProvider())
        return
    if request.param == "tencent_ci":
        with FakeCos() as cos:
            yield TencentCiDriver(
                TencentCiGenerationProvider(
                    bucket=cos.bucket,
                    region=cos.region,
                    secret_id=cos_server.SECRET_ID,
                    secret_key=cos_server.SECRET_KEY,
                    endpoint=cos.url,
                    side=64,
                )
            )
        return
    server = FakeReplicate()
    try:
        yield ReplicateDriver(
            ReplicateGenerationProvider(
                api_token=API_TOKEN,
                webhook_secret=WEBHOOK_SECRET,
                webhook_url="http://127.0.0.1:9/webhooks/replicate",  # nothing listens there
                models={"text_to_image": "black-forest-labs/flux-schnell"},
                fetcher=SafeOutputFetcher(["replicate.delivery"], trusted_origins=[server.url]),
                clock=SystemClock(),
                base_url=server.url,
            ),
            server,
        )
    finally:
        server.close()


def request(
    task_type: str = "text_to_image", photo: bytes | None = None, **params: object
) -> GenerationRequest:
    if task_type == "basic_clean":  # an input photo, no prompt
        if photo is None:
            out = io.BytesIO()
            Image.new("RGB", (48, 32), (200, 30, 30)).save(out, "PNG")
            photo = out.getvalue()
        return GenerationRequest(
            task_id="task_contract_1",
            user_id="user_1",
            task_type=task_type,
            params=params,
            input_keys=("user_1/uploads/up_1/photo.png",),
            inputs=(photo,),
        )
    values: dict[str, object] = {"prompt": "a lighthouse", "width": 64, "height": 64, "seed": 3}
    return GenerationRequest(
        task_id="task_contract_1",
        user_id="user_1",
        task_type=task_type,
        params={**values, **params},
    )


def test_a_text_to_image_job_ends_with_image_bytes_in_hand(driver: Driver) -> None:
    submitted = driver.provider.submit(request(driver.task_type))
    assert submitted.provider_job_id
    if driver.provider.style is ProviderStyle.SYNCHRONOUS:
        assert submitted.state is GenerationState.SUCCEEDED
    else:
        assert submitted.state is GenerationState.RUNNING
    result = driver.finish(submitted)
    assert result.state is GenerationState.SUCCEEDED
    assert result.provider_job_id == submitted.provider_job_id
    assert result.outputs
    for output in result.outputs:
        # Results are ours: bytes to store, never a vendor URL to hand out.
        assert output.data and output.content_type.startswith("image/")
        Image.open(io.BytesIO(output.data)).verify()


def test_a_failed_job_is_a_failed_result_with_a_reason(driver: Driver) -> None:
    submitted = driver.provider.submit(request(driver.task_type))
    result = driver.fail(submitted)
    assert result.state is GenerationState.FAILED
    assert result.error and not result.outputs and not result.transient


def test_a_running_job_polls_as_running_until_it_finishes(driver: Driver) -> None:
    submitted = driver.provider.submit(request(driver.task_type))
    if driver.provider.style is ProviderStyle.SYNCHRONOUS:
        with pytest.raises(ProviderRejected):
            driver.provider.poll(submitted.provider_job_id or "")
        return
    assert submitted.provider_job_id
    assert driver.provider.poll(submitted.provider_job_id).state is GenerationState.RUNNING
    finished = driver.finish(submitted)
    polled = driver.provider.poll(submitted.provider_job_id)
    assert (polled.state, len(polled.outputs)) == (finished.state, len(finished.outputs))


def test_cancel_is_best_effort_and_a_cancelled_job_fails(driver: Driver) -> None:
    submitted = driver.provider.submit(request(driver.task_type))
    driver.provider.cancel(submitted.provider_job_id or "unknown")
    driver.provider.cancel("no-such-job")  # never raises for unknown jobs
    if driver.provider.style is not ProviderStyle.SYNCHRONOUS:
        assert submitted.provider_job_id
        assert driver.provider.poll(submitted.provider_job_id).state is GenerationState.FAILED


def test_an_unknown_task_type_is_rejected(driver: Driver) -> None:
    with pytest.raises(ProviderRejected):
        driver.provider.submit(request("paint_by_numbers"))


def test_the_sandbox_trigger_never_produces_a_result(driver: Driver) -> None:
    """Only the local provider honours ``sandbox_outcome=fail``; the others refuse it."""
    try:
        result = driver.provider.submit(request(driver.task_type, sandbox_outcome="fail"))
    except ProviderRejected:
        assert driver.provider.name != "local"
        return
    assert driver.provider.name == "local"
    assert result.state is GenerationState.FAILED


def test_forged_or_tampered_notifications_are_refused(driver: Driver) -> None:
    submitted = driver.provider.submit(request(driver.task_type))
    genuine = driver.notification(submitted)
    if genuine is None:
        with pytest.raises(InvalidNotification):
            driver.provider.parse_notification({}, b"{}")
        return
    headers, body = genuine
    assert driver.provider.parse_notification(headers, body).provider_job_id == (
        submitted.provider_job_id
    )
    tampered = body.replace(b'"starting"', b'"succeeded"')
    assert tampered != body
    forged = {**headers, "webhook-signature": "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}
    for bad_headers, bad_body in ((headers, tampered), ({}, body), (forged, body)):
        with pytest.raises(InvalidNotification):
            driver.provider.parse_notification(bad_headers, bad_body)
