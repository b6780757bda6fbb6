"""Image inspection and thumbnails with Pillow."""

from __future__ import annotations

import io

from PIL import Image, UnidentifiedImageError

from atelier_tasks.application.ports import ImageInfo

_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}


class PillowImageTools:
    def inspect(self, data: bytes) -> ImageInfo:
        try:
            with Image.open(io.BytesIO(data)) as img:
                fmt = img.format or ""
                width, height = img.size
        except (UnidentifiedImageError, OSError) as exc:
            raise ValueError("not an image") from exc
        return ImageInfo(_TYPES.get(fmt, "application/octet-stream"), width, height)

    def thumbnail(self, data: bytes, max_side: int) -> tuple[bytes, str]:
        with Image.open(io.BytesIO(data)) as img:
            thumb = img.convert("RGB")
            thumb.thumbnail((max_side, max_side))
            out = io.BytesIO()
            thumb.save(out, format="JPEG", quality=85)
        return out.getvalue(), "image/jpeg"
