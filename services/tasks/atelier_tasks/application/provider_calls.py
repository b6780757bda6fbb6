"""One call to a generation provider, as the saga sees it: errors become results, and the
outcome and its time (on the Clock port) go to the metrics."""

from __future__ import annotations

from collections.abc import Callable

from atelier_ports.clock import Clock
from atelier_ports.errors import ProviderRejected, ProviderUnavailable
from atelier_tasks.application.ports import TaskMetrics
from atelier_tasks.application.ports.generation import (
    GenerationProvider,
    GenerationResult,
    GenerationState,
)


def timed_call(
    provider: GenerationProvider,
    call: str,
    do: Callable[[], GenerationResult],
    clock: Clock,
    metrics: TaskMetrics,
) -> GenerationResult:
    """``call``: submit | poll. Unavailable: submitting again is a new attempt (a transient
    failure); a poll simply asks again later (still running). Rejected: a permanent failure."""
    started_at = clock.now()
    try:
        result = do()
        outcome = result.state.value
    except ProviderUnavailable as exc:
        result = (
            GenerationResult(GenerationState.FAILED, error=str(exc), transient=True)
            if call == "submit"
            else GenerationResult(GenerationState.RUNNING, error=str(exc))
        )
        outcome = "unavailable"
    except ProviderRejected as exc:
        result = GenerationResult(GenerationState.FAILED, error=str(exc))
        outcome = "rejected"
    metrics.provider_call(provider.name, call, outcome, (clock.now() - started_at).total_seconds())
    return result
