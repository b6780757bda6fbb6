"""CreateUpload: a signed target for the browser to upload one input image straight to storage."""

from __future__ import annotations

import re
from dataclasses import dataclass

from atelier_ports.ids import IdGenerator
from atelier_tasks.application.config import TasksConfig
from atelier_tasks.application.ports.storage import ObjectStorage, UploadTarget
from atelier_tasks.domain.errors import InvalidUpload

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}


@dataclass(frozen=True, slots=True)
class CreateUploadCommand:
    user_id: str
    content_type: str
    size: int
    filename: str


class CreateUpload:
    def __init__(self, *, storage: ObjectStorage, ids: IdGenerator, config: TasksConfig) -> None:
        self.storage = storage
        self.ids = ids
        self.config = config

    def __call__(self, command: CreateUploadCommand) -> tuple[UploadTarget, int, tuple[str, ...]]:
        user_id, content_type = command.user_id, command.content_type
        size, filename = command.size, command.filename
        allowed = self.config.upload_content_types
        max_bytes = self.config.upload_max_bytes
        if content_type not in allowed:
            raise InvalidUpload(
                f"content type must be one of {', '.join(allowed)}", field="content_type"
            )
        if size <= 0 or size > max_bytes:
            raise InvalidUpload(f"size must be between 1 and {max_bytes} bytes", field="size_bytes")
        stem = _SAFE_NAME.sub("-", filename.rsplit(".", 1)[0])[:40].strip("-.") or "image"
        key = f"{user_id}/uploads/{self.ids.new_id('up')}/{stem}.{_EXTENSIONS[content_type]}"
        target = self.storage.upload_target(
            key, (content_type,), min(size, max_bytes), self.config.upload_ttl_seconds
        )
        return target, max_bytes, (content_type,)
