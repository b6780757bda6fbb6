"""The generation provider port (local generators, Replicate, RunningHub, Tencent CI).

It fits three styles of provider (``GenerationProvider.style``):
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


class ProviderStyle(enum.StrEnum):
    SYNCHRONOUS = "synchronous"  # submit() returns a terminal result
    WEBHOOK = "webhook"  # completion arrives by notification; poll() is the lost-webhook sweep
    POLLING = "polling"  # the worker polls, with backoff, until a terminal result


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
    # Input images in hand, in the order of ``input_keys`` (the caller reads them from storage).
    inputs: Sequence[bytes] = ()
    # Server-side prompt (e.g. the model_pose12 template); never shown to clients.
    prompt: str | None = None


@dataclass(frozen=True, slots=True)
class GeneratedOutput:
    """One output, its bytes in hand: an adapter whose vendor answers with URLs downloads them
    itself (Replicate: ``SafeOutputFetcher``) — a vendor URL is never handed out."""

    content_type: str
    data: bytes


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
    # An unverifiable notification (RunningHub's webhook is unsigned) is only a hint: ``result``
    # is ignored and the task, if ours and still processing, is polled now.
    poll_now: bool = False


class GenerationProvider(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def style(self) -> ProviderStyle: ...

    def submit(self, request: GenerationRequest) -> GenerationResult:
        """Start (or, for synchronous providers, do) the work.

        Raises ProviderUnavailable for transient trouble, ProviderRejected for permanent.
        """
        ...

    def poll(self, provider_job_id: str) -> GenerationResult: ...

    def cancel(self, provider_job_id: str) -> None:
        """Best effort; providers without cancellation do nothing."""
        ...

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> GenerationNotification:
        """Verify and parse a webhook; raises InvalidNotification."""
        ...
