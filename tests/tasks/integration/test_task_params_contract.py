"""Issue 9 #6: task parameters exactly as HTTP_API.md says — every listed value accepted, its
neighbours refused naming the field, the documented defaults; the local generator makes twelve
real variants for every scene and category."""

from __future__ import annotations

import io
import itertools
import json
import math
from datetime import timedelta
from typing import Any

import grpc
import pytest
from atelier_common.grpc_client import translate
from PIL import Image

from atelier.tasks.v1 import tasks_pb2 as pb
from atelier_tasks.adapters.local_generation import LocalGenerationProvider
from atelier_tasks.application.config import TasksConfig
from atelier_tasks.application.create_task import CreateTaskCommand
from atelier_tasks.application.ports.generation import GenerationRequest, GenerationState
from atelier_tasks.domain.errors import InvalidParams
from atelier_tasks.domain.model import TaskType
from atelier_tasks.domain.pose12 import CATEGORIES, SCENES, pose12_prompts
from atelier_tasks.domain.task_types import validate_params
from tests.tasks.grpc_stack import GrpcStack
from tests.tasks.harness import Harness

# Word for word from HTTP_API.md ("these must work").
CONTRACT_SCENES = ("street", "studio", "indoor")
CONTRACT_CATEGORIES = ("shoes", "dress", "hoodie", "coat")
T2I = TaskType.TEXT_TO_IMAGE
POSE = TaskType.MODEL_POSE12
PHOTO = ["u1/uploads/a/photo.png"]


def valid(task_type: TaskType, params: dict[str, Any], keys: list[str] | None = None) -> Any:
    return validate_params(task_type, params, keys or [], "u1").params


def refused(
    task_type: TaskType, params: dict[str, Any], keys: list[str] | None = None, **kw: Any
) -> str | None:
    with pytest.raises(InvalidParams) as err:
        validate_params(task_type, params, keys or [], "u1", **kw)
    return err.value.field


# --- model_pose12 ------------------------------------------------------------------------------


def test_pose12_scenes_and_categories_are_the_contracts() -> None:
    assert set(CONTRACT_SCENES) <= set(SCENES)
    assert set(CONTRACT_CATEGORIES) <= set(CATEGORIES)


@pytest.mark.parametrize(
    ("scene", "category"), list(itertools.product(CONTRACT_SCENES, CONTRACT_CATEGORIES))
)
def test_every_scene_and_category_is_accepted_with_its_own_prompts(
    scene: str, category: str
) -> None:
    params = valid(POSE, {"scene": scene, "category": category}, PHOTO)
    assert params == {"scene": scene, "category": category}
    prompts = pose12_prompts(params)
    assert len(set(prompts)) == 12
    assert all(SCENES[scene] in p and CATEGORIES[category] in p for p in prompts)
    assert "prompt" not in params  # server-side only


def test_pose12_defaults() -> None:
    assert valid(POSE, {}, PHOTO) == {"scene": "studio"}
    prompts = pose12_prompts(valid(POSE, {}, PHOTO))
    assert len(set(prompts)) == 12 and all("garment from the reference image" in p for p in prompts)
    assert valid(POSE, {"category": "coat"}, PHOTO) == {"scene": "studio", "category": "coat"}


@pytest.mark.parametrize(
    "scene", ["beach", "cafe", "park", "Studio", "STREET", " indoor", "indoors", "", 3, ["studio"]]
)
def test_pose12_neighbouring_scenes_are_refused(scene: object) -> None:
    assert refused(POSE, {"scene": scene, "category": "coat"}, PHOTO) == "scene"


@pytest.mark.parametrize(
    "category",
    ["tops", "bottoms", "dresses", "outerwear", "shoe", "Dress", "hoodies", "coat ", "", 1],
)
def test_pose12_neighbouring_categories_are_refused(category: object) -> None:
    assert refused(POSE, {"scene": "street", "category": category}, PHOTO) == "category"


def test_pose12_needs_exactly_one_garment_photo() -> None:
    assert refused(POSE, {"scene": "street"}, []) == "input_keys"
    assert refused(POSE, {"scene": "street"}, PHOTO * 2) == "input_keys"


# --- text_to_image ----------------------------------------------------------------------------


def test_text_to_image_defaults() -> None:
    assert valid(T2I, {"prompt": "a fox"}) == {
        "prompt": "a fox",
        "negative_prompt": "",
        "width": 1024,
        "height": 1024,
        "seed": 0,
    }


@pytest.mark.parametrize("side", [256, 264, 512, 1000, 1024, 2040, 2048, 512.0])
@pytest.mark.parametrize("field", ["width", "height"])
def test_text_to_image_sides_in_range_and_multiples_of_8(field: str, side: object) -> None:
    assert valid(T2I, {"prompt": "x", field: side})[field] == side


@pytest.mark.parametrize(
    "side",
    [248, 255, 257, 260, 2044, 2049, 2056, 64, 0, -8, 100.5, "512", True, math.inf, math.nan],
)
@pytest.mark.parametrize("field", ["width", "height"])
def test_text_to_image_other_sides_are_refused(field: str, side: object) -> None:
    assert refused(T2I, {"prompt": "x", field: side}) == field


@pytest.mark.parametrize("prompt", ["x", "a" * 2000, "  padded  "])
def test_prompts_of_1_to_2000_chars_are_accepted(prompt: str) -> None:
    assert valid(T2I, {"prompt": prompt})["prompt"] == prompt.strip()


@pytest.mark.parametrize("prompt", [None, "", "   ", "a" * 2001, 5, ["a"]])
def test_other_prompts_are_refused(prompt: object) -> None:
    params = {} if prompt is None else {"prompt": prompt}
    assert refused(T2I, params) == "prompt"


def test_negative_prompt_and_seed() -> None:
    assert valid(T2I, {"prompt": "x", "negative_prompt": "blur"})["negative_prompt"] == "blur"
    assert valid(T2I, {"prompt": "x", "negative_prompt": "n" * 2000})["negative_prompt"]
    assert refused(T2I, {"prompt": "x", "negative_prompt": "n" * 2001}) == "negative_prompt"
    assert refused(T2I, {"prompt": "x", "negative_prompt": 7}) == "negative_prompt"
    for seed in (0, 1, 2**32 - 1):
        assert valid(T2I, {"prompt": "x", "seed": seed})["seed"] == seed
    for bad in (-1, 2**32, 1.5, "1"):
        assert refused(T2I, {"prompt": "x", "seed": bad}) == "seed"


def test_text_to_image_takes_its_init_image_only_as_input_upload_id() -> None:
    assert validate_params(T2I, {"prompt": "x"}, PHOTO, "u1").input_keys == tuple(PHOTO)
    assert refused(T2I, {"prompt": "x"}, PHOTO * 2) == "input_keys"
    assert refused(T2I, {"prompt": "x", "init_image_key": PHOTO[0]}) == "init_image_key"


def test_basic_clean_has_no_required_params() -> None:
    assert valid(TaskType.BASIC_CLEAN, {}, PHOTO) == {"size": 1024}
    assert refused(TaskType.BASIC_CLEAN, {}, []) == "input_keys"


# --- sandbox_outcome: local market only ---------------------------------------------------------


def test_sandbox_outcome_fail_in_the_local_market() -> None:
    assert valid(T2I, {"prompt": "x", "sandbox_outcome": "fail"})["sandbox_outcome"] == "fail"
    for value in ("FAIL", "failed", "succeed", "", 1):
        assert refused(T2I, {"prompt": "x", "sandbox_outcome": value}) == "sandbox_outcome"


def test_sandbox_outcome_is_refused_where_the_provider_is_not_local() -> None:
    params = {"prompt": "x", "sandbox_outcome": "fail"}
    assert refused(T2I, params, sandbox=False) == "sandbox_outcome"
    routes = dict.fromkeys(TaskType, "replicate")
    h = Harness(config=TasksConfig(routes=routes, retry_backoff=timedelta(seconds=2)))
    h.billing.fund("u1", 10)
    with pytest.raises(InvalidParams) as err:
        h.use_cases.create_task(CreateTaskCommand("u1", T2I, params))
    assert err.value.field == "sandbox_outcome"
    assert h.billing.calls == []  # refused before anything was held


# --- over the wire -----------------------------------------------------------------------------


def test_bad_sides_over_grpc_name_the_field(grpc_stack: GrpcStack) -> None:
    stack = grpc_stack
    stack.set_up("alice")
    for field, value in (("width", 257), ("height", 4096), ("width", 64)):
        params = json.dumps({"prompt": "x", field: value}).encode()
        with pytest.raises(grpc.RpcError) as err:
            stack.stub.CreateTask(
                pb.CreateTaskRequest(type=pb.TASK_TYPE_TEXT_TO_IMAGE, params_json=params),
                metadata=stack.md("alice"),
            )
        error = translate("tasks", err.value)
        assert (error.status, error.reason) == ("INVALID_ARGUMENT", "INVALID_PARAMS")
        assert error.metadata == {"field": field}
    task = stack.create("alice", width=2048, height=256)
    assert json.loads(task.params_json)["width"] == 2048
    assert json.loads(task.params_json)["height"] == 256
    assert stack.balance("alice") == (9, 1)


@pytest.mark.parametrize(
    "raw",
    [
        b"[1, 2]",  # not an object
        b'"prompt"',
        b'{"prompt": "x"',  # malformed
        b'{"prompt": "x", "seed": NaN}',  # not JSON
        b'{"prompt": "caf\xe9"}',  # not UTF-8
        b'{"prompt": "\\ud800"}',  # a lone surrogate, escaped
    ],
)
def test_params_that_are_no_json_object_are_invalid_params(
    grpc_stack: GrpcStack, raw: bytes
) -> None:
    stack = grpc_stack
    stack.set_up("alice")
    with pytest.raises(grpc.RpcError) as err:
        stack.stub.CreateTask(
            pb.CreateTaskRequest(type=pb.TASK_TYPE_TEXT_TO_IMAGE, params_json=raw),
            metadata=stack.md("alice"),
        )
    error = translate("tasks", err.value)
    assert (error.status, error.reason, error.metadata) == (
        "INVALID_ARGUMENT",
        "INVALID_PARAMS",
        {"field": "params"},
    )
    assert stack.balance("alice") == (10, 0)  # nothing held


def test_integers_stay_integers_over_the_wire(grpc_stack: GrpcStack) -> None:
    """An integral number written 1024.0 is the integer 1024; the task gives integers back."""
    stack = grpc_stack
    stack.set_up("alice")
    raw = b'{"prompt": "a \\ud83d\\ude00 chair", "width": 512.0, "height": 768, "seed": 7}'
    reply = stack.stub.CreateTask(
        pb.CreateTaskRequest(type=pb.TASK_TYPE_TEXT_TO_IMAGE, params_json=raw),
        metadata=stack.md("alice"),
    )
    params = json.loads(reply.task.params_json)
    assert params["prompt"] == "a \U0001f600 chair"
    assert (params["width"], params["height"], params["seed"]) == (512, 768, 7)
    assert all(type(params[k]) is int for k in ("width", "height", "seed"))


# --- the local generator ------------------------------------------------------------------------


def garment_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (80, 100), (30, 60, 200)).save(buf, format="PNG")
    return buf.getvalue()


def pose12(scene: str, category: str | None) -> list[bytes]:
    params = {"scene": scene} | ({"category": category} if category else {})
    result = LocalGenerationProvider().submit(
        GenerationRequest("task_x", "u1", "model_pose12", params, inputs=(garment_png(),))
    )
    assert result.state is GenerationState.SUCCEEDED, result.error
    return [o.data for o in result.outputs if o.data is not None]


def test_the_local_generator_makes_twelve_real_variants_for_every_scene_and_category() -> None:
    firsts: dict[tuple[str, str], bytes] = {}
    for scene, category in itertools.product(CONTRACT_SCENES, CONTRACT_CATEGORIES):
        images = pose12(scene, category)
        assert len(images) == 12 and len(set(images)) == 12, (scene, category)
        for data in images:
            with Image.open(io.BytesIO(data)) as img:
                img.verify()
        firsts[(scene, category)] = images[0]
    assert len(set(firsts.values())) == len(firsts)  # each combination looks different
    assert len(set(pose12("studio", None))) == 12  # no category: still twelve variants
