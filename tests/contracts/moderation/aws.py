"""The ``aws`` adapter (Rekognition + Comprehend through boto3) against the local AWS JSON 1.1
server (tests/support/aws_moderation_server.py): SigV4 checked, decisions the tests control."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from atelier_tasks.adapters.aws_moderation import AwsModeration
from atelier_tasks.application.ports.moderation import ImageToModerate
from tests.support.aws_moderation_server import BLOCKED_WORD, MAGENTA, FakeAwsModeration, png

THRESHOLD = 0.8


@dataclass
class AwsDriver:
    server: FakeAwsModeration
    moderation: AwsModeration
    threshold: float = THRESHOLD
    has_request_ids: bool = True
    can_go_down: bool = True

    def allowed_text(self) -> str:
        return "A linen shirt on a wooden hanger, soft morning light, studio backdrop"

    def rejected_text(self) -> str:
        return f"a model wearing a linen shirt, {BLOCKED_WORD} pose"

    def allowed_image(self) -> ImageToModerate:
        return ImageToModerate(png((70, 110, 160)), "image/png")

    def rejected_image(self) -> ImageToModerate:
        return ImageToModerate(png(MAGENTA), "image/png")

    def go_down(self) -> None:
        self.server.go_down()

    def come_back(self) -> None:
        self.server.come_back()


@contextmanager
def open_driver() -> Iterator[AwsDriver]:
    with FakeAwsModeration() as server:
        settings = server.tasks_settings()
        yield AwsDriver(
            server,
            AwsModeration(
                region=settings["AWS_MODERATION_REGION"],
                threshold=THRESHOLD,
                access_key_id=settings["AWS_MODERATION_ACCESS_KEY_ID"],
                secret_access_key=settings["AWS_MODERATION_SECRET_ACCESS_KEY"],
                endpoint_url=settings["AWS_MODERATION_ENDPOINT_URL"],
            ),
        )
