"""Images for the moderation tests: a plain product photo drawn here, and the abstract pattern that
NudeNet's detector flags (``data/flagged_by_nudenet.png``, made by ``make_flagged_image.py``;
coloured noise, no person in it — see that script for how and why)."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw

FLAGGED_PNG = Path(__file__).parent / "data" / "flagged_by_nudenet.png"


def flagged_image() -> bytes:
    """A PNG that NudeNet 3.4's detector reads as BUTTOCKS_EXPOSED at about 0.93."""
    return FLAGGED_PNG.read_bytes()


def product_photo(side: int = 640, fmt: str = "JPEG") -> bytes:
    """A blue T-shirt laid flat on white, as a shop would photograph it."""
    img = Image.new("RGB", (side, side), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    s = side / 640
    body = [
        (200, 170),
        (260, 130),
        (380, 130),
        (440, 170),
        (520, 240),
        (470, 300),
        (430, 270),
        (430, 540),
        (210, 540),
        (210, 270),
        (170, 300),
        (120, 240),
    ]
    draw.polygon([(x * s, y * s) for x, y in body], fill=(40, 80, 160), outline=(20, 40, 90))
    draw.arc([270 * s, 100 * s, 370 * s, 170 * s], 20, 160, fill=(230, 230, 230), width=int(6 * s))
    out = io.BytesIO()
    img.save(out, format=fmt)
    return out.getvalue()
