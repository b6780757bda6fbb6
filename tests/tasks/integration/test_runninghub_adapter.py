"""The RunningHub adapter against the local RunningHub server (tests/support/runninghub_server.py):
upload → ai-app/run → status → outputs, the envelope's codes, output hosts, the webhook hint."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from PIL import Image

from atelier_ports.errors import InvalidNotification, ProviderRejected, ProviderUnavailable
from atelier_tasks.adapters.runninghub_generation import (
    RunningHubBusy,
    RunningHubGenerationProvider,
)
from atelier_tasks.adapters.safe_fetch import SafeOutputFetcher
from atelier_tasks.application.ports.generation import (
    GenerationRequest,
    GenerationResult,
    GenerationState,
)
from atelier_tasks.domain.pose12 import pose12_prompt
from tests.support.runninghub_server import (
    API_KEY,
    NODE_IMAGE,
    NODE_PROMPT,
    NODE_SEED,
    WEBAPP_POSE12,
    WEBAPP_TEXT,
    FakeRunningHub,
    png,
)


@pytest.fixture
def server() -> Iterator[FakeRunningHub]:
    rh = FakeRunningHub()
    try:
        yield rh
    finally:
        rh.close()


def adapter(
    server: FakeRunningHub, *, api_key: str = API_KEY, trusted: bool = True
) -> RunningHubGenerationProvider:
    return RunningHubGenerationProvider(
        api_key=api_key,
        apps={"model_pose12": WEBAPP_POSE12, "text_to_image": WEBAPP_TEXT},
        image_node=NODE_IMAGE,
        prompt_node=NODE_PROMPT,
        seed_node=NODE_SEED,
        fetcher=SafeOutputFetcher(
            ["rh-images.xiaoyaoyou.com"], trusted_origins=[server.url] if trusted else []
        ),
        base_url=server.url,
        seed=lambda: 424242,
    )


PARAMS = {"scene": "street", "category": "coat"}


def pose12() -> GenerationRequest:
    return GenerationRequest(
        task_id="task_rh_1",
        user_id="user_1",
        task_type="model_pose12",
        params=PARAMS,
        input_keys=("user_1/uploads/garment.png",),
        inputs=(png((10, 20, 30), 64),),
        prompt=pose12_prompt(PARAMS),
    )


def run_to_end(provider: RunningHubGenerationProvider, job: str) -> list[GenerationResult]:
    results = [provider.poll(job)]
    while results[-1].state is GenerationState.RUNNING:
        assert len(results) < 10
        results.append(provider.poll(job))
    return results


def test_model_pose12_uploads_runs_polls_and_downloads_twelve_images(
    server: FakeRunningHub,
) -> None:
    provider = adapter(server)
    submitted = provider.submit(pose12())
    job = submitted.provider_job_id
    assert submitted.state is GenerationState.RUNNING
    assert job is not None and job.isdigit() and len(job) == 19
    run = next(p for path, p in server.requests if path.endswith("/ai-app/run"))
    assert run["webappId"] == WEBAPP_POSE12  # a string: a float would lose the last digits
    nodes = server.node_values(job)
    assert nodes[NODE_IMAGE] in server.uploads  # the uploaded file name
    assert server.uploads[nodes[NODE_IMAGE]] == pose12().inputs[0]
    assert nodes[NODE_PROMPT] == pose12_prompt(PARAMS)  # built server-side
    assert "coat" in nodes[NODE_PROMPT] and "city street" in nodes[NODE_PROMPT]
    assert nodes[NODE_SEED] == "424242"

    results = run_to_end(provider, job)
    assert [r.state for r in results] == [
        GenerationState.RUNNING,  # QUEUED
        GenerationState.RUNNING,  # RUNNING
        GenerationState.SUCCEEDED,
    ]
    done = results[-1]
    assert done.provider_job_id == job and len(done.outputs) == 12
    assert len({o.data for o in done.outputs}) == 12
    for output in done.outputs:
        assert output.content_type == "image/png"
        Image.open(io.BytesIO(output.data)).verify()
    assert server.status_counts[job] == 3
    assert server.calls[job] == 4  # three status calls and one outputs call


def test_fewer_outputs_are_all_handed_over_for_the_application_to_judge(
    server: FakeRunningHub,
) -> None:
    server.outputs_next = 5
    provider = adapter(server)
    job = provider.submit(pose12()).provider_job_id
    assert job
    server.finish_now(job)
    done = provider.poll(job)
    assert (done.state, len(done.outputs)) == (GenerationState.SUCCEEDED, 5)


def test_a_failed_task_carries_the_vendors_reason(server: FakeRunningHub) -> None:
    provider = adapter(server)
    job = provider.submit(pose12()).provider_job_id
    assert job
    server.fail(job, "CUDA out of memory")
    results = run_to_end(provider, job)
    failed = results[-1]
    assert failed.state is GenerationState.FAILED and not failed.transient
    assert failed.error == (
        "RunningHub task failed: RuntimeError: CUDA out of memory (node KSampler)"
    )


def test_back_pressure_codes_are_transient(server: FakeRunningHub) -> None:
    provider = adapter(server)
    for code in (415, 421, 814):
        server.codes_next = [0, code]  # the upload passes, the run is refused
        with pytest.raises(RunningHubBusy) as busy:
            provider.submit(pose12())
        assert busy.value.code == code
    job = provider.submit(pose12()).provider_job_id
    assert job
    for code in (804, 813):
        server.codes_next = [code]
        with pytest.raises(ProviderUnavailable):
            provider.poll(job)


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        (412, "RUNNINGHUB_API_BASE"),
        (416, "top it up"),
        (433, "RUNNINGHUB_NODE_"),
        (801, "paid membership"),
        (803, "RUNNINGHUB_NODE_IMAGE"),
        (812, "insufficient funds"),
    ],
)
def test_admin_codes_fail_with_a_reason_an_admin_can_act_on(
    server: FakeRunningHub, code: int, hint: str
) -> None:
    server.codes_next = [0, code]
    with pytest.raises(ProviderRejected) as refused:
        adapter(server).submit(pose12())
    assert not isinstance(refused.value, ProviderUnavailable)
    assert str(code) in str(refused.value) and hint in str(refused.value)


def test_a_wrong_api_key_is_802_and_never_transient(server: FakeRunningHub) -> None:
    with pytest.raises(ProviderRejected, match=r"802.*RUNNINGHUB_API_KEY") as refused:
        adapter(server, api_key="rh-wrong").submit(pose12())
    assert API_KEY not in str(refused.value) and "rh-wrong" not in str(refused.value)


def test_an_app_that_does_not_exist_names_the_setting(server: FakeRunningHub) -> None:
    del server.apps[WEBAPP_POSE12]
    with pytest.raises(ProviderRejected, match=r"901.*RUNNINGHUB_WEBAPP_ID_"):
        adapter(server).submit(pose12())


def test_a_node_the_app_lacks_is_803(server: FakeRunningHub) -> None:
    server.apps[WEBAPP_POSE12] = {NODE_IMAGE, NODE_SEED}  # the app has no prompt node
    with pytest.raises(ProviderRejected, match="803"):
        adapter(server).submit(pose12())


def test_outputs_from_a_host_off_the_allow_list_fail_the_task(server: FakeRunningHub) -> None:
    provider = adapter(server, trusted=False)
    job = provider.submit(pose12()).provider_job_id
    assert job
    server.finish_now(job)
    result = provider.poll(job)
    assert result.state is GenerationState.FAILED
    assert result.error and "refused" in result.error


def test_an_unreachable_server_is_transient() -> None:
    provider = RunningHubGenerationProvider(
        api_key=API_KEY,
        apps={"model_pose12": WEBAPP_POSE12},
        image_node=NODE_IMAGE,
        prompt_node=NODE_PROMPT,
        fetcher=SafeOutputFetcher([]),
        base_url="http://127.0.0.1:9",
    )
    with pytest.raises(ProviderUnavailable):
        provider.submit(pose12())
    with pytest.raises(ProviderUnavailable):
        provider.poll("1910246754753896451")


def test_the_webhook_is_only_a_hint_naming_the_task(server: FakeRunningHub) -> None:
    provider = adapter(server)
    job = provider.submit(pose12()).provider_job_id
    assert job
    server.finish_now(job)
    note = provider.parse_notification({}, server.webhook_body(job))
    assert note.poll_now and note.provider_job_id == job
    assert note.result.state is GenerationState.RUNNING  # its eventData is never believed
    assert server.calls[job] == 0  # parsing asks nothing
    for bad in (
        b"",
        b"[]",
        b'{"event":"TASK_END"}',
        b'{"event":"X","taskId":"1"}',
        b'{"event":"TASK_END","taskId":"../etc"}',
    ):
        with pytest.raises(InvalidNotification):
            provider.parse_notification({}, bad)


def test_misconfiguration_is_refused_at_construction(server: FakeRunningHub) -> None:
    fetcher = SafeOutputFetcher([])
    with pytest.raises(ValueError, match="nodeId:fieldName"):
        RunningHubGenerationProvider(api_key=API_KEY, apps={}, prompt_node="text", fetcher=fetcher)
    with pytest.raises(ValueError, match="digits"):
        RunningHubGenerationProvider(
            api_key=API_KEY, apps={"model_pose12": "1.8e18"}, prompt_node="6:text", fetcher=fetcher
        )
    with pytest.raises(ValueError, match="RUNNINGHUB_API_KEY"):
        RunningHubGenerationProvider(api_key="", apps={}, prompt_node="6:text", fetcher=fetcher)
