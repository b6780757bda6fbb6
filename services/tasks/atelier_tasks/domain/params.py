"""Reading task parameters: the field readers every task type's parser uses, and the parsers
of the simple types (``model_pose12``'s is in ``pose12.py``). The registry that picks a parser per
type is ``task_types.py``."""

from __future__ import annotations

import math
from typing import Any

from atelier_tasks.domain.errors import InvalidParams, UnknownTaskType
from atelier_tasks.domain.model import TaskType

MAX_PROMPT_CHARS = 2000
# text_to_image sides (HTTP_API.md): 256–2048 pixels, multiples of 8, default 1024.
MIN_SIDE, MAX_SIDE, SIDE_STEP, DEFAULT_SIDE = 256, 2048, 8, 1024
MIN_CLEAN_SIZE, MAX_CLEAN_SIZE = 256, 2048
MAX_SEED = 2**32 - 1
# The documented sandbox trigger of the local provider (like a payment provider's test card).
SANDBOX_KEY = "sandbox_outcome"
SANDBOX_OUTCOMES = ("fail",)

# What a type's parser gets: the client's params (it pops what it reads; anything left over is an
# unknown parameter) and the input keys; it returns the normalised params.
Raw = dict[str, Any]


def parse_task_type(value: str) -> TaskType:
    try:
        return TaskType(value)
    except ValueError:
        raise UnknownTaskType(f"unknown task type {value!r}", field="type") from None


def text_to_image_params(raw: Raw, keys: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    out["prompt"] = text(raw, "prompt", required=True)
    out["negative_prompt"] = text(raw, "negative_prompt", required=False)
    for side in ("width", "height"):
        out[side] = integer(raw, side, DEFAULT_SIDE, MIN_SIDE, MAX_SIDE)
        if out[side] % SIDE_STEP:
            raise InvalidParams(f"{side} must be a multiple of {SIDE_STEP}", field=side)
    out["seed"] = integer(raw, "seed", 0, 0, MAX_SEED)
    if len(keys) > 1:
        raise InvalidParams("text_to_image takes at most one input image", field="input_keys")
    return out


def basic_clean_params(raw: Raw, keys: tuple[str, ...]) -> dict[str, Any]:
    size = integer(raw, "size", 1024, MIN_CLEAN_SIZE, MAX_CLEAN_SIZE)
    exactly_one(keys, "basic_clean needs exactly one product photo")
    return {"size": size}


def sandbox_outcome(raw: Raw, *, sandbox: bool) -> dict[str, Any]:
    """Pops ``sandbox_outcome``: honoured only where the provider is the local one (elsewhere it
    is refused here rather than charged and then failed)."""
    outcome = raw.pop(SANDBOX_KEY, None)
    if outcome is None:
        return {}
    if not sandbox:
        raise InvalidParams(f"{SANDBOX_KEY} works in the local market only", field=SANDBOX_KEY)
    if outcome not in SANDBOX_OUTCOMES:
        raise InvalidParams(
            f"{SANDBOX_KEY} must be one of {', '.join(SANDBOX_OUTCOMES)}", field=SANDBOX_KEY
        )
    return {SANDBOX_KEY: outcome}


def check_own_key(key: str, user_id: str, field: str) -> None:
    if not isinstance(key, str) or not key.startswith(f"{user_id}/") or ".." in key.split("/"):
        raise InvalidParams("input images must be the caller's own uploads", field=field)


def exactly_one(keys: tuple[str, ...], message: str) -> None:
    if len(keys) != 1:
        raise InvalidParams(message, field="input_keys")


def text(raw: dict[str, Any], name: str, *, required: bool) -> str:
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


def integer(raw: dict[str, Any], name: str, default: int, lo: int, hi: int) -> int:
    value = raw.pop(name, None)
    if value is None:
        return default
    # A JSON number may be written 1024.0; accept integral ones only.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidParams(f"{name} must be an integer", field=name)
    if isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()):
        raise InvalidParams(f"{name} must be an integer", field=name)
    number = int(value)
    if not lo <= number <= hi:
        raise InvalidParams(f"{name} must be between {lo} and {hi}", field=name)
    return number


def choice(
    raw: dict[str, Any], name: str, allowed: tuple[str, ...], default: str | None
) -> str | None:
    value = raw.pop(name, None)
    if value is None:
        return default
    if value not in allowed:
        raise InvalidParams(f"{name} must be one of {', '.join(allowed)}", field=name)
    return str(value)
