"""The task types, described ONCE: adding a type is one entry here (plus ``TaskType``'s member and
its generator adapters).

Each entry says how the type's parameters are read and checked, what it costs by default, which
provider serves it in each market, and the server-side prompt a vendor model is sent (never shown
to clients). Validation, the default costs (``TasksConfig``), the market routing
(``TasksSettings``) and the worker's generation requests all read this table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from atelier_tasks.domain.errors import InvalidParams
from atelier_tasks.domain.model import TaskType
from atelier_tasks.domain.params import (
    Raw,
    basic_clean_params,
    check_own_key,
    sandbox_outcome,
    text_to_image_params,
)
from atelier_tasks.domain.pose12 import model_pose12_params, pose12_prompt

MARKETS = ("local", "global", "cn")


def _no_prompt(params: Mapping[str, Any]) -> str | None:
    return None


@dataclass(frozen=True, slots=True)
class TaskTypeSpec:
    type: TaskType
    # Reads (pops) the type's parameters from the client's, checks the input keys, and returns
    # the normalised parameters; raises InvalidParams naming the field.
    parse: Callable[[Raw, tuple[str, ...]], dict[str, Any]]
    default_cost: int
    # market → provider name (overridable per type by TASKS_PROVIDER_<TYPE>).
    providers: Mapping[str, str]
    # The server-side prompt for a vendor model, from the validated params (None: the params
    # are the whole request).
    prompt: Callable[[Mapping[str, Any]], str | None] = field(default=_no_prompt)
    # market → cost where it differs from default_cost (cn: every type costs 1 generation).
    market_costs: Mapping[str, int] = field(default_factory=dict)
    # How many images a successful run delivers at least (fewer fails the task).
    outputs: int = 1
    # The parameters that are the user's own words, checked by content moderation at creation
    # (a server-side prompt is ours and is not checked).
    user_text: tuple[str, ...] = ()


TASK_TYPES: Mapping[TaskType, TaskTypeSpec] = {
    spec.type: spec
    for spec in (
        TaskTypeSpec(
            TaskType.TEXT_TO_IMAGE,
            parse=text_to_image_params,
            default_cost=1,
            # cn: local by default; TASKS_PROVIDER_TEXT_TO_IMAGE routes it elsewhere.
            providers={"local": "local", "global": "replicate", "cn": "local"},
            user_text=("prompt", "negative_prompt"),
        ),
        TaskTypeSpec(
            TaskType.BASIC_CLEAN,
            parse=basic_clean_params,
            default_cost=1,
            providers={"local": "local", "global": "replicate", "cn": "tencent_ci"},
        ),
        TaskTypeSpec(
            TaskType.MODEL_POSE12,
            parse=model_pose12_params,
            default_cost=4,
            providers={"local": "local", "global": "replicate", "cn": "runninghub"},
            prompt=pose12_prompt,
            market_costs={"cn": 1},
            outputs=12,
        ),
    )
}


def spec_of(task_type: TaskType) -> TaskTypeSpec:
    return TASK_TYPES[task_type]


def user_text(task_type: TaskType, params: Mapping[str, Any]) -> str | None:
    """The user's own words among the validated parameters (one line each), or None."""
    parts = [
        str(params[name]) for name in spec_of(task_type).user_text if str(params.get(name) or "")
    ]
    return "\n".join(parts) or None


def default_costs() -> dict[TaskType, int]:
    return {t: spec.default_cost for t, spec in TASK_TYPES.items()}


def market_costs() -> dict[str, dict[str, int]]:
    """market → {task type value → credits}: the default costs (TASKS_COST_<TYPE> overrides)."""
    return {
        m: {t.value: s.market_costs.get(m, s.default_cost) for t, s in TASK_TYPES.items()}
        for m in MARKETS
    }


def market_routes() -> dict[str, dict[str, str]]:
    """market → {task type value → provider}: the default routing."""
    return {m: {t.value: s.providers[m] for t, s in TASK_TYPES.items()} for m in MARKETS}


@dataclass(frozen=True, slots=True)
class ValidatedParams:
    params: dict[str, Any]
    input_keys: tuple[str, ...]


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
        check_own_key(key, user_id, "input_keys")
    raw = dict(params)
    out = sandbox_outcome(raw, sandbox=sandbox)
    out.update(spec_of(task_type).parse(raw, keys))
    if raw:
        name = sorted(raw)[0]
        raise InvalidParams(f"unknown parameter {name!r} for {task_type}", field=name)
    return ValidatedParams(params=out, input_keys=keys)
