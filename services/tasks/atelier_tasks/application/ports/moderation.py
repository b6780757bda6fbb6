"""The content moderation port (local word list + NSFW model, Tencent TMS/IMS, AWS Rekognition
and Comprehend).

An adapter answers one question — may this text or image be used? — with a
:class:`ModerationDecision`: the verdict against the adapter's threshold, every label the
provider reported with its confidence (0..1), and the provider's request id for the record.

A provider that cannot answer (down, throttled, timed out) raises
``atelier_ports.errors.ProviderUnavailable``: the caller retries later and never fails open.
A provider that refuses the request itself (bad credentials, an image it cannot read) raises
``atelier_ports.errors.ProviderRejected``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


class Verdict(enum.StrEnum):
    ALLOWED = "allowed"
    REJECTED = "rejected"


class ModerationSubject(enum.StrEnum):
    """What was checked (recorded with each decision)."""

    PROMPT = "prompt"  # the prompt and the negative prompt, at creation
    INPUT_IMAGE = "input_image"  # an input photo, before dispatch
    RESULT_IMAGE = "result_image"  # a provider's output, before it is stored as a result


@dataclass(frozen=True, slots=True)
class ModerationLabel:
    name: str  # the provider's own label, e.g. "Porn", "Explicit Nudity", "FEMALE_BREAST_EXPOSED"
    confidence: float  # 0..1


@dataclass(frozen=True, slots=True)
class ModerationDecision:
    verdict: Verdict
    provider: str  # local | tencent | aws
    labels: Sequence[ModerationLabel] = field(default_factory=tuple)
    request_id: str | None = None  # the provider's id of the check (None for local checks)

    @property
    def rejected(self) -> bool:
        return self.verdict is Verdict.REJECTED


@dataclass(frozen=True, slots=True)
class ImageToModerate:
    """An image in hand. Providers that read images by URL (Tencent IMS reads COS objects)
    use ``url`` — a short-lived signed GET of ``key`` — when the caller has one; the others
    send ``data``."""

    data: bytes
    content_type: str
    key: str | None = None  # its object-storage key, when stored
    url: str | None = None  # a signed GET of ``key`` the provider may fetch


class Moderation(Protocol):
    @property
    def name(self) -> str:
        """local | tencent | aws"""
        ...

    def check_text(self, text: str) -> ModerationDecision:
        """Raises ProviderUnavailable (try again later) or ProviderRejected."""
        ...

    def check_image(self, image: ImageToModerate) -> ModerationDecision:
        """Raises ProviderUnavailable (try again later) or ProviderRejected."""
        ...
