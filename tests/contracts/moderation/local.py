"""The ``local`` adapter's driver: the packaged word lists and NudeNet's model, in-process."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from atelier_tasks.adapters.local_moderation import LocalModeration
from atelier_tasks.application.ports.moderation import ImageToModerate, Moderation
from tests.support.moderation_images import flagged_image, product_photo

THRESHOLD = 0.8


class LocalModerationDriver:
    def __init__(self) -> None:
        self._moderation = LocalModeration(threshold=THRESHOLD)

    @property
    def moderation(self) -> Moderation:
        return self._moderation

    @property
    def threshold(self) -> float:
        return THRESHOLD

    @property
    def has_request_ids(self) -> bool:
        return False

    def allowed_text(self) -> str:
        return "A classic white cotton shirt on a wooden hanger, soft daylight, Sussex studio"

    def rejected_text(self) -> str:
        return "a P.O.R.N photo, 色 情 写真"

    def allowed_image(self) -> ImageToModerate:
        return ImageToModerate(product_photo(), "image/jpeg")

    def rejected_image(self) -> ImageToModerate:
        return ImageToModerate(flagged_image(), "image/png")

    @property
    def can_go_down(self) -> bool:
        return False

    def go_down(self) -> None:
        raise NotImplementedError("the local adapter runs in-process")

    def come_back(self) -> None:
        raise NotImplementedError("the local adapter runs in-process")


@contextmanager
def open_driver() -> Iterator[LocalModerationDriver]:
    yield LocalModerationDriver()
