"""A provider's outputs into our storage: each image and a thumbnail, under attempt-scoped keys."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

from atelier_tasks.application.config import TasksConfig
from atelier_tasks.application.ports import ImageTools
from atelier_tasks.application.ports.generation import GenerationResult
from atelier_tasks.application.ports.storage import ObjectStorage
from atelier_tasks.domain.model import ResultImage, Task


class OutputStore:
    def __init__(self, *, storage: ObjectStorage, images: ImageTools, config: TasksConfig) -> None:
        self.storage = storage
        self.images = images
        self.config = config

    def store(self, task: Task, result: GenerationResult, now: datetime) -> list[ResultImage]:
        images: list[ResultImage] = []
        for index, output in enumerate(result.outputs):
            data = output.data
            info = self.images.inspect(data)
            ext = info.content_type.split("/")[-1].replace("jpeg", "jpg")
            # Attempt-scoped keys: a retry never overwrites what a user may hold a URL to.
            base = f"{task.user_id}/tasks/{task.id}/a{task.attempts}-{index:02d}"
            stored = self.storage.put(f"{base}.{ext}", data, info.content_type)
            thumb, thumb_type = self.images.thumbnail(data, self.config.thumbnail_side)
            thumb_key = f"{base}.thumb.{thumb_type.split('/')[-1].replace('jpeg', 'jpg')}"
            self.storage.put(thumb_key, thumb, thumb_type)
            images.append(
                ResultImage(
                    id=f"img_{hashlib.sha256(base.encode()).hexdigest()[:24]}",
                    task_id=task.id,
                    user_id=task.user_id,
                    task_type=task.type,
                    index=index,
                    key=stored.key,
                    thumbnail_key=thumb_key,
                    content_type=info.content_type,
                    size=stored.size,
                    width=info.width,
                    height=info.height,
                    sha256=stored.sha256,
                    created_at=now,
                )
            )
        return images

    def discard(self, images: Sequence[ResultImage]) -> None:
        """Delete stored outputs that turned out not to be the task's (it ended meanwhile)."""
        for image in images:
            self.storage.delete(image.key)
            self.storage.delete(image.thumbnail_key)
