"""The moderation contract's driver for ``TencentModeration``: the real adapter and the official
TMS/IMS SDKs against ``tests/support/tencent_moderation_server.py``, which checks every TC3
signature and decides by words and image colours the tests choose."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from atelier_tasks.adapters.tencent_moderation import TencentModeration
from atelier_tasks.application.ports.moderation import ImageToModerate, Moderation
from tests.support import tencent_moderation_server as tms
from tests.support.tencent_moderation_server import FakeTencentModeration

THRESHOLD = 0.8


@dataclass
class TencentDriver:
    fake: FakeTencentModeration
    adapter: TencentModeration
    threshold: float = THRESHOLD
    has_request_ids: bool = True
    can_go_down: bool = True

    @property
    def moderation(self) -> Moderation:
        return self.adapter

    def allowed_text(self) -> str:
        return "A linen shirt on a wooden hanger, soft daylight, 白色背景"

    def rejected_text(self) -> str:
        return "a porn scene, 色情图片"

    def allowed_image(self) -> ImageToModerate:
        return ImageToModerate(data=tms.product_png(), content_type="image/png")

    def rejected_image(self) -> ImageToModerate:
        return ImageToModerate(data=tms.magenta_png(), content_type="image/png")

    def go_down(self) -> None:
        self.fake.go_down()

    def come_back(self) -> None:
        self.fake.come_back()


@contextmanager
def open_driver() -> Iterator[TencentDriver]:
    with FakeTencentModeration() as fake:
        adapter = TencentModeration(
            secret_id=tms.SECRET_ID,
            secret_key=tms.SECRET_KEY,
            region=tms.REGION,
            threshold=THRESHOLD,
            endpoint=fake.url,
        )
        yield TencentDriver(fake=fake, adapter=adapter)
