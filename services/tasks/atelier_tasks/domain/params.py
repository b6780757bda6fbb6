"""Parameters of each task type: validation, normalisation and server-side prompt templates."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from atelier_tasks.domain.errors import InvalidParams, UnknownTaskType
from atelier_tasks.domain.model import TaskType
from atelier_tasks.domain.pose12 import CATEGORIES, DEFAULT_SCENE, SCENES, pose12_prompts

__all__ = ["ValidatedParams", "parse_task_type", "pose12_prompts", "validate_params"]

MAX_PROMPT_CHARS = 2000
# text_to_image sides (HTTP_API.md): 256–2048 pixels, multiples of 8, default 1024.
MIN_SIDE, MAX_SIDE, SIDE_STEP, DEFAULT_SIDE = 256, 2048, 8, 1024
MIN_CLEAN_SIZE, MAX_CLEAN_SIZE = 256, 2048
MAX_SEED = 2**32 - 1
# The documented sandbox trigger of the local provider (like a payment provider's test card).
SANDBOX_KEY = "sandbox_outcome"
SANDBOX_OUTCOMES = ("fail",)


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
    *,
    sandbox: bool = True,
) -> ValidatedParams:
    """Check and normalise what a client sent; raises InvalidParams naming the field.

    ``sandbox``: whether the task's provider is the local one, the only one that honours
    ``sandbox_outcome`` (elsewhere it is refused here rather than charged and then failed).
    """
    keys = tuple(input_keys)
    for key in keys:
        _check_own_key(key, user_id, "input_keys")
    raw = dict(params)
    out: dict[str, Any] = {}
    outcome = raw.pop(SANDBOX_KEY, None)
    if outcome is not None:
        if not sandbox:
            raise InvalidParams(f"{SANDBOX_KEY} works in the local market only", field=SANDBOX_KEY)
        if outcome not in SANDBOX_OUTCOMES:
            raise InvalidParams(
                f"{SANDBOX_KEY} must be one of {', '.join(SANDBOX_OUTCOMES)}", field=SANDBOX_KEY
            )
        out[SANDBOX_KEY] = outcome
    if task_type is TaskType.TEXT_TO_IMAGE:
        out["prompt"] = _text(raw, "prompt", required=True)
        out["negative_prompt"] = _text(raw, "negative_prompt", required=False)
        for side in ("width", "height"):
            out[side] = _int(raw, side, DEFAULT_SIDE, MIN_SIDE, MAX_SIDE)
            if out[side] % SIDE_STEP:
                raise InvalidParams(f"{side} must be a multiple of {SIDE_STEP}", field=side)
        out["seed"] = _int(raw, "seed", 0, 0, MAX_SEED)
        if len(keys) > 1:
            raise InvalidParams("text_to_image takes at most one input image", field="input_keys")
    elif task_type is TaskType.BASIC_CLEAN:
        out["size"] = _int(raw, "size", 1024, MIN_CLEAN_SIZE, MAX_CLEAN_SIZE)
        _exactly_one(keys, "basic_clean needs exactly one product photo")
    elif task_type is TaskType.MODEL_POSE12:
        out["scene"] = _choice(raw, "scene", tuple(SCENES), DEFAULT_SCENE)
        category = _choice(raw, "category", tuple(CATEGORIES), None)
        if category is not None:
            out["category"] = category
        _exactly_one(keys, "model_pose12 needs exactly one garment photo")
    if raw:
        name = sorted(raw)[0]
        raise InvalidParams(f"unknown parameter {name!r} for {task_type}", field=name)
    return ValidatedParams(params=out, input_keys=keys)


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
        raise InvalidParams(f"{name} must not be blank", field=name)
    if len(value) > MAX_PROMPT_CHARS:
        raise InvalidParams(f"{name} is longer than {MAX_PROMPT_CHARS} characters", field=name)
    return value


def _int(raw: dict[str, Any], name: str, default: int, lo: int, hi: int) -> int:
    value = raw.pop(name, None)
    if value is None:
        return default
    # JSON numbers arrive as floats through protobuf Struct; accept integral ones only.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidParams(f"{name} must be an integer", field=name)
    if isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()):
        raise InvalidParams(f"{name} must be an integer", field=name)
    number = int(value)
    if not lo <= number <= hi:
        raise InvalidParams(f"{name} must be between {lo} and {hi}", field=name)
    return number


def _choice(
    raw: dict[str, Any], name: str, allowed: tuple[str, ...], default: str | None
) -> str | None:
    value = raw.pop(name, None)
    if value is None:
        return default
    if value not in allowed:
        raise InvalidParams(f"{name} must be one of {', '.join(allowed)}", field=name)
    return str(value)
