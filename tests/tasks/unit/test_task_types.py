"""Issue 10: task types described once (the registry), and the worker on the Clock port."""

from __future__ import annotations

from datetime import timedelta

import pytest

from atelier_tasks.application.config import TasksConfig
from atelier_tasks.application.create_task import CreateTaskCommand
from atelier_tasks.domain.model import TaskType
from atelier_tasks.domain.pose12 import pose12_prompts
from atelier_tasks.domain.task_types import (
    TASK_TYPES,
    default_costs,
    validate_params,
)
from atelier_tasks.settings import MARKET_ROUTES, TasksSettings
from tests.tasks.harness import Harness


def test_every_task_type_has_one_registry_entry() -> None:
    assert set(TASK_TYPES) == set(TaskType)
    for task_type, spec in TASK_TYPES.items():
        assert spec.type is task_type
        assert set(spec.providers) == {"local", "global", "cn"}


def test_registry_defaults_are_what_settings_and_config_use() -> None:
    assert MARKET_ROUTES["cn"]["basic_clean"] == "tencent_ci"  # settings read the registry
    settings = TasksSettings()
    assert default_costs() == {t: settings.costs()[t.value] for t in TaskType}
    assert dict(TasksConfig().costs) == default_costs()


def test_pose12_prompt_comes_from_the_registry_into_the_generation_request() -> None:
    h = Harness()
    h.billing.fund("u1", 10)
    h.storage.put("u1/uploads/shirt.png", b"\x89PNG garment", "image/png")
    params = {"scene": "street", "category": "coat"}
    view = h.use_cases.create_task(
        CreateTaskCommand("u1", TaskType.MODEL_POSE12, params, ["u1/uploads/shirt.png"])
    )
    h.worker.run_once()
    [request] = h.provider.requests
    assert request.task_id == view.task.id
    assert request.prompt == "\n".join(pose12_prompts(params))
    assert TASK_TYPES[TaskType.MODEL_POSE12].prompt(params) == request.prompt


@pytest.mark.parametrize("task_type", [TaskType.TEXT_TO_IMAGE, TaskType.BASIC_CLEAN])
def test_types_without_a_template_send_no_prompt(task_type: TaskType) -> None:
    assert TASK_TYPES[task_type].prompt({"prompt": "a cat"}) is None


def test_registry_parser_is_what_validation_runs() -> None:
    out = validate_params(TaskType.BASIC_CLEAN, {}, ["u1/uploads/a.png"], "u1")
    assert out.params == {"size": 1024}


def test_provider_call_time_is_measured_on_the_clock_port() -> None:
    h = Harness(config=TasksConfig(retry_backoff=timedelta(seconds=2)))
    h.billing.fund("u1", 10)
    h.provider.takes = (h.clock, 7.5)  # the fake clock moves while the provider works
    h.create()
    h.worker.run_once()
    assert h.metrics.calls == [("local", "submit", "succeeded", 7.5)]


def test_every_task_type_has_its_proto_value_by_name() -> None:
    """The servicer maps task types by name (TASK_TYPE_<TYPE>), so a new type needs no line
    there — but it does need its proto enum value."""
    from atelier.tasks.v1 import tasks_pb2 as pb
    from atelier_tasks.entrypoints.grpc_api import _TYPES

    for task_type in TaskType:
        assert pb.TaskType.Name(_TYPES[task_type]) == f"TASK_TYPE_{task_type.value.upper()}"
    assert len(set(_TYPES.values())) == len(TaskType)


def test_cn_costs_one_per_type_and_routes_to_the_tencent_adapters() -> None:
    # Moderation's own keys: test_moderation_settings.py.
    cn = TasksSettings(MARKET="cn", MODERATION_PROVIDER="local")
    assert cn.costs() == {"text_to_image": 1, "basic_clean": 1, "model_pose12": 1}
    assert cn.routes() == {
        "text_to_image": "local",  # routed by configuration; local by default
        "basic_clean": "tencent_ci",
        "model_pose12": "runninghub",
    }
    assert cn.storage_backend() == "cos"
    assert not cn.unbuilt_parts()
    assert cn.missing_settings() == [
        "RUNNINGHUB_API_KEY",
        "RUNNINGHUB_WEBAPP_ID_MODEL_POSE12",
        "RUNNINGHUB_NODE_IMAGE",
        "RUNNINGHUB_NODE_PROMPT",
        "COS_SECRET_ID",
        "COS_SECRET_KEY",
        "COS_REGION",
        "COS_BUCKET",
    ]
    elsewhere = TasksSettings(
        MARKET="cn",
        MODERATION_PROVIDER="local",
        TASKS_STORAGE="local",
        TASKS_PROVIDER_BASIC_CLEAN="local",
        TASKS_PROVIDER_MODEL_POSE12="local",
    )
    assert elsewhere.storage_backend() == "local" and not elsewhere.missing_settings()
    assert TasksSettings(MARKET="global").costs()["model_pose12"] == 4
    assert TasksSettings(MARKET="cn", TASKS_COST_MODEL_POSE12=3).costs()["model_pose12"] == 3
    explicit = TasksSettings(MARKET="local", TASKS_PROVIDER_MODEL_POSE12="runninghub")
    assert explicit.routes()["model_pose12"] == "runninghub" and not explicit.unbuilt_parts()
    local = TasksSettings(MARKET="cn", TASKS_PROVIDER_MODEL_POSE12="local")
    assert "RUNNINGHUB_API_KEY" not in local.missing_settings()


def test_runninghub_settings_are_checked_for_shape_never_echoed() -> None:
    bad = TasksSettings(
        MARKET="cn",
        MODERATION_PROVIDER="local",
        TASKS_PROVIDER_TEXT_TO_IMAGE="runninghub",
        RUNNINGHUB_API_KEY="rh-secret",
        RUNNINGHUB_WEBAPP_ID_MODEL_POSE12="1.87e18",
        RUNNINGHUB_NODE_IMAGE="12",
        RUNNINGHUB_NODE_PROMPT="6:text",
        RUNNINGHUB_OUTPUT_HOSTS=" ",
        RUNNINGHUB_POLL_MIN_SECONDS=5,
        RUNNINGHUB_POLL_MAX_SECONDS=1,
        TASKS_STORAGE="local",
        TASKS_PROVIDER_BASIC_CLEAN="local",
    )
    assert bad.missing_settings() == [
        "RUNNINGHUB_WEBAPP_ID_MODEL_POSE12 (digits)",
        "RUNNINGHUB_WEBAPP_ID_TEXT_TO_IMAGE",
        "RUNNINGHUB_NODE_IMAGE (nodeId:fieldName)",
        "RUNNINGHUB_OUTPUT_HOSTS",
        "RUNNINGHUB_POLL_MAX_SECONDS (at least RUNNINGHUB_POLL_MIN_SECONDS)",
    ]
    assert "rh-secret" not in str(bad.missing_settings())
