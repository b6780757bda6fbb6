"""The generation provider port (local generators, Replicate, RunningHub, Tencent CI).

Sketch: finished with the tasks service. It fits three styles of provider:
- synchronous: ``submit`` returns a terminal :class:`GenerationResult` at once (Tencent CI, local);
- webhook: ``submit`` returns a running result; completion arrives through ``parse_notification``
  (Replicate);
- polling: ``submit`` returns a running result; the worker calls ``poll`` (RunningHub).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol


class GenerationState(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    task_id: str
    user_id: str
    task_type: str
    params: Mapping[str, object]
    input_keys: Sequence[str] = ()  # object-storage keys of input images


@dataclass(frozen=True, slots=True)
class GeneratedOutput:
    """One output: either bytes in hand (local) or a vendor URL to copy from (never handed out)."""

    content_type: str
    data: bytes | None = None
    source_url: str | None = None


@dataclass(frozen=True, slots=True)
class GenerationResult:
    state: GenerationState
    provider_job_id: str | None = None
    outputs: Sequence[GeneratedOutput] = field(default_factory=tuple)
    error: str | None = None
    transient: bool = False  # a failure worth retrying


@dataclass(frozen=True, slots=True)
class GenerationNotification:
    notification_id: str
    provider_job_id: str
    result: GenerationResult


class GenerationProvider(Protocol):
    @property
    def name(self) -> str: ...

    def submit(self, request: GenerationRequest) -> GenerationResult: ...

    def poll(self, provider_job_id: str) -> GenerationResult: ...

    def cancel(self, provider_job_id: str) -> None: ...

    def parse_notification(
        self, headers: Mapping[str, str], body: bytes
    ) -> GenerationNotification:
        """Verify and parse a webhook; raises InvalidNotification."""
        ...
