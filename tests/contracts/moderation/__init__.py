"""Drivers of the moderation contract suite (``tests/contracts/integration/test_moderation.py``):
one module per adapter, each with ``open_driver()`` — a context manager yielding a
:class:`ModerationDriver` wired to the adapter under test and whatever local server speaks its
vendor's protocol."""

from __future__ import annotations

from typing import Protocol

from atelier_tasks.application.ports.moderation import ImageToModerate, Moderation


class ModerationDriver(Protocol):
    @property
    def moderation(self) -> Moderation: ...  # the adapter under test, typed as its port

    @property
    def threshold(self) -> float: ...  # the threshold the adapter was built with

    @property
    def has_request_ids(self) -> bool: ...  # whether the provider names its checks

    def allowed_text(self) -> str: ...

    def rejected_text(self) -> str: ...

    def allowed_image(self) -> ImageToModerate: ...

    def rejected_image(self) -> ImageToModerate: ...

    @property
    def can_go_down(self) -> bool: ...  # False for in-process adapters (local)

    def go_down(self) -> None:
        """From now on the provider cannot answer (stopped, 5xx or throttling)."""
        ...

    def come_back(self) -> None: ...
