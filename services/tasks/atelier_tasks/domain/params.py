"""Parameters of each task type: validation, normalisation and server-side prompt templates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from atelier_tasks.domain.errors import InvalidParams, UnknownTaskType
from atelier_tasks.domain.model import TaskType

MAX_PROMPT_CHARS = 2000
MIN_SIDE, MAX_SIDE = 64, 2048
MIN_CLEAN_SIZE, MAX_CLEAN_SIZE = 256, 2048
MAX_SEED = 2**32 - 1
SCENES = ("studio", "street", "beach", "cafe", "park")
CATEGORIES = ("tops", "bottoms", "dresses", "outerwear")
POSES = (
    "standing front",
    "standing three-quarter left",
    "standing three-quarter right",
    "walking towards camera",
    "side profile left",
    "side profile right",
    "hands on hips",
    "arms crossed",
    "sitting",
    "looking over shoulder",
    "leaning",
    "back view",
)
# The documented sandbox trigger of the local provider (like Stripe's test cards).
SANDBOX_KEY = "sandbox_outcome"
SANDBOX_OUTCOMES = ("fail", "succeed")

# Server-side only: never returned to clients.
_POSE12_TEMPLATE = (
    "full-body fashion photo of a model wearing the {category} from the reference image, "
    "{pose}, {scene} setting, natural light, sharp focus, true-to-garment colours and texture"
)


@dataclass(frozen=True, slots=True)
class ValidatedParams:
    params: dict[str, Any]
    input_keys: tuple[str, ...]


def parse_task_type(value: str) -> TaskType:
    try:
        return TaskType(value)
    except ValueError:
        raise UnknownTaskType(f"unknown task type {value!r}", field="type") from None


def validate_params(
    task_type: TaskType,
    params: Mapping[str, Any],
    input_keys: Sequence[str],
    user_id: str,
) -> ValidatedParams:
    """Check and normalise what a client sent; raises InvalidParams naming the field."""
    keys = tuple(input_keys)
    for key in keys:
        _check_own_key(key, user_id, "input_keys")
    raw = dict(params)
    out: dict[str, Any] = {}
    sandbox = raw.pop(SANDBOX_KEY, None)
    if sandbox is not None:
        if sandbox not in SANDBOX_OUTCOMES:
            raise InvalidParams(
                f"{SANDBOX_KEY} must be one of {SANDBOX_OUTCOMES}", field=SANDBOX_KEY
            )
        out[SANDBOX_KEY] = sandbox
    if task_type is TaskType.TEXT_TO_IMAGE:
        out["prompt"] = _text(raw, "prompt", required=True)
        out["negative_prompt"] = _text(raw, "negative_prompt", required=False)
        out["width"] = _int(raw, "width", 512, MIN_SIDE, MAX_SIDE)
        out["height"] = _int(raw, "height", 512, MIN_SIDE, MAX_SIDE)
        out["seed"] = _int(raw, "seed", 0, 0, MAX_SEED)
        init = raw.pop("init_image_key", None)
        if init is not None:
            if not isinstance(init, str):
                raise InvalidParams("init_image_key must be a string", field="init_image_key")
            _check_own_key(init, user_id, "init_image_key")
            out["init_image_key"] = init
            if init not in keys:
                keys = (*keys, init)
        if len(keys) > 1:
            raise InvalidParams("text_to_image takes at most one input image", field="input_keys")
    elif task_type is TaskType.BASIC_CLEAN:
        out["size"] = _int(raw, "size", 1024, MIN_CLEAN_SIZE, MAX_CLEAN_SIZE)
        _exactly_one(keys, "basic_clean needs exactly one product photo")
    elif task_type is TaskType.MODEL_POSE12:
        out["scene"] = _choice(raw, "scene", SCENES, "studio")
        out["category"] = _choice(raw, "category", CATEGORIES, None)
        _exactly_one(keys, "model_pose12 needs exactly one garment photo")
    if raw:
        name = sorted(raw)[0]
        raise InvalidParams(f"unknown parameter {name!r} for {task_type}", field=name)
    return ValidatedParams(params=out, input_keys=keys)


def pose12_prompts(params: Mapping[str, Any]) -> list[str]:
    """The twelve server-side prompts of a model_pose12 task."""
    return [
        _POSE12_TEMPLATE.format(category=params["category"], scene=params["scene"], pose=pose)
        for pose in POSES
    ]


def _check_own_key(key: str, user_id: str, field: str) -> None:
    if not isinstance(key, str) or not key.startswith(f"{user_id}/") or ".." in key.split("/"):
        raise InvalidParams("input images must be the caller's own uploads", field=field)


def _exactly_one(keys: tuple[str, ...], message: str) -> None:
    if len(keys) != 1:
        raise InvalidParams(message, field="input_keys")


def _text(raw: dict[str, Any], name: str, *, required: bool) -> str:
    value = raw.pop(name, None)
    if value is None or value == "":
        if required:
            raise InvalidParams(f"{name} is required", field=name)
        return ""
    if not isinstance(value, str):
        raise InvalidParams(f"{name} must be a string", field=name)
    value = value.strip()
    if required and not value:
        raise InvalidParams(f"{name} is required", field=name)
    if len(value) > MAX_PROMPT_CHARS:
        raise InvalidParams(f"{name} is longer than {MAX_PROMPT_CHARS} characters", field=name)
    return value


def _int(raw: dict[str, Any], name: str, default: int, lo: int, hi: int) -> int:
    value = raw.pop(name, None)
    if value is None:
        return default
    # JSON numbers arrive as floats through protobuf Struct; accept integral ones only.
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise InvalidParams(f"{name} must be an integer", field=name)
    number = int(value)
    if not lo <= number <= hi:
        raise InvalidParams(f"{name} must be between {lo} and {hi}", field=name)
    return number


def _choice(raw: dict[str, Any], name: str, allowed: tuple[str, ...], default: str | None) -> str:
    value = raw.pop(name, None)
    if value is None:
        if default is None:
            raise InvalidParams(f"{name} is required (one of {', '.join(allowed)})", field=name)
        return default
    if value not in allowed:
        raise InvalidParams(f"{name} must be one of {', '.join(allowed)}", field=name)
    return str(value)
