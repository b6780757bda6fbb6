"""The local generation provider: real images made with Pillow on this machine.

- ``text_to_image``: a procedural picture (gradient sky, shapes, strokes) seeded by
  sha256(prompt, negative prompt, seed) — the same prompt and seed give the same bytes;
  an init image, if given, is blended in.
- ``basic_clean``: EXIF auto-orientation, background whitening (pixels close to the colour of
  the image border become white), fit onto a white square canvas.
- ``model_pose12``: twelve distinct variants of the garment photo (pose-specific placement,
  rotation, mirroring, a pose silhouette), painted in the scene and placed by the category.

``LOCAL_GENERATOR_DELAY_MS`` adds latency; ``LOCAL_GENERATOR_FAIL_RATE`` makes that share of
tasks fail (chosen deterministically from the task id). The sandbox trigger
``params.sandbox_outcome = "fail"`` always fails — the documented way to demonstrate failure and
refund; other adapters reject or ignore it.
"""

from __future__ import annotations

import hashlib
import io
import math
import random
import time
from collections.abc import Mapping

from PIL import Image, ImageChops, ImageDraw, ImageOps

from atelier_ports.errors import InvalidNotification, ProviderRejected
from atelier_tasks.application.ports.generation import (
    GeneratedOutput,
    GenerationNotification,
    GenerationRequest,
    GenerationResult,
    GenerationState,
    ProviderStyle,
)

# How the local generator paints each scene and where it places each garment category. The valid
# names live in ``atelier_tasks.domain.pose12``; a name added there but not here still works (a
# colour derived from its name, the garment on the torso).
SCENE_COLOURS = {
    "studio": (236, 236, 240),
    "street": (170, 176, 186),
    "indoor": (226, 210, 186),
}
# category → (vertical anchor as a share of the side, scale of the garment)
CATEGORY_PLACEMENT = {
    "shoes": (0.86, 0.35),
    "dress": (0.30, 1.15),
    "hoodie": (0.26, 0.9),
    "coat": (0.26, 1.1),
}
_TORSO = (0.26, 1.0)


class LocalGenerationProvider:
    def __init__(self, delay_ms: int = 0, fail_rate: float = 0.0) -> None:
        self.delay_ms = max(delay_ms, 0)
        self.fail_rate = min(max(fail_rate, 0.0), 1.0)

    @property
    def name(self) -> str:
        return "local"

    @property
    def style(self) -> ProviderStyle:
        return ProviderStyle.SYNCHRONOUS

    def submit(self, request: GenerationRequest) -> GenerationResult:
        if self.delay_ms:
            time.sleep(self.delay_ms / 1000)
        job = f"local_{request.task_id}"
        if request.params.get("sandbox_outcome") == "fail":
            return GenerationResult(
                GenerationState.FAILED, job, error="sandbox failure requested (sandbox_outcome)"
            )
        if self.fail_rate and _unit(request.task_id) < self.fail_rate:
            return GenerationResult(GenerationState.FAILED, job, error="injected local failure")
        try:
            if request.task_type == "text_to_image":
                init = request.inputs[0] if request.inputs else None
                images = [text_to_image(request.params, init)]
            elif request.task_type == "basic_clean":
                images = [basic_clean(_one(request), int(str(request.params.get("size", 1024))))]
            elif request.task_type == "model_pose12":
                images = model_pose12(
                    _one(request),
                    str(request.params.get("scene", "studio")),
                    str(request.params.get("category", "")),
                )
            else:
                raise ProviderRejected(f"local provider cannot do {request.task_type!r}")
        except (OSError, ValueError) as exc:  # undecodable input
            return GenerationResult(GenerationState.FAILED, job, error=f"bad input image: {exc}")
        outputs = [GeneratedOutput(content_type="image/png", data=data) for data in images]
        return GenerationResult(GenerationState.SUCCEEDED, job, outputs=outputs)

    def poll(self, provider_job_id: str) -> GenerationResult:
        raise ProviderRejected("the local provider is synchronous; there is nothing to poll")

    def cancel(self, provider_job_id: str) -> None:
        return None

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> GenerationNotification:
        raise InvalidNotification("the local provider sends no notifications")


def _one(request: GenerationRequest) -> bytes:
    if len(request.inputs) != 1:
        raise ProviderRejected(f"{request.task_type} needs exactly one input image")
    return request.inputs[0]


def _unit(task_id: str) -> float:
    """A number in [0, 1) fixed by the task id: failure injection is reproducible."""
    digest = hashlib.sha256(task_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _png(img: Image.Image, compress_level: int = 6) -> bytes:
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=False, compress_level=compress_level)
    return out.getvalue()


def text_to_image(params: Mapping[str, object], init: bytes | None = None) -> bytes:
    width = int(str(params.get("width", 512)))
    height = int(str(params.get("height", 512)))
    material = "\x00".join(
        [
            str(params.get("prompt", "")),
            str(params.get("negative_prompt", "")),
            str(params.get("seed", 0)),
        ]
    )
    rng = random.Random(hashlib.sha256(material.encode()).digest())
    top = tuple(rng.randrange(256) for _ in range(3))
    bottom = tuple(rng.randrange(256) for _ in range(3))
    img = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(img)
    for y in range(height):
        t = y / max(height - 1, 1)
        draw.line(
            [(0, y), (width, y)],
            fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)),
        )
    for _ in range(rng.randint(6, 14)):
        colour = tuple(rng.randrange(256) for _ in range(3))
        x0, y0 = rng.randrange(width), rng.randrange(height)
        r = rng.randint(max(width, height) // 20, max(width, height) // 4)
        box = [x0 - r, y0 - r, x0 + r, y0 + r]
        if rng.random() < 0.5:
            draw.ellipse(box, fill=colour)
        else:
            draw.polygon(
                [
                    (x0 + r * math.cos(a), y0 + r * math.sin(a))
                    for a in (rng.uniform(0, 2 * math.pi) for _ in range(rng.randint(3, 6)))
                ],
                fill=colour,
            )
    for _ in range(rng.randint(3, 8)):
        colour = tuple(rng.randrange(256) for _ in range(3))
        points = [(rng.randrange(width), rng.randrange(height)) for _ in range(4)]
        draw.line(points, fill=colour, width=rng.randint(2, 8))
    if init is not None:
        with Image.open(io.BytesIO(init)) as src:
            base = ImageOps.fit(ImageOps.exif_transpose(src).convert("RGB"), (width, height))
        img = Image.blend(base, img, 0.45)
    return _png(img)


def basic_clean(data: bytes, size: int, tolerance: int = 40) -> bytes:
    """Whiten the background and fit the photo on a white ``size``² canvas (PNG).

    Fast on large photos (a 12 MP JPEG well under half a second): a JPEG is decoded straight at
    the smallest DCT scale (1/2 … 1/8) still at least ``size`` on its shorter side, the photo is
    fitted first and whitened at the output size, and the PNG is written at a light compression
    level.
    """
    with Image.open(io.BytesIO(data)) as src:
        if src.format == "JPEG":
            src.draft("RGB", (size, size))
        img = ImageOps.exif_transpose(src).convert("RGB")
    fitted = _fit(img, size)
    background = _border_colour(fitted)
    # Pixels near the border colour become white: a real (if simple) background removal.
    diff = ImageChops.difference(fitted, Image.new("RGB", fitted.size, background)).convert("L")
    mask = diff.point([255 if v > tolerance else 0 for v in range(256)])
    canvas = Image.new("RGB", (size, size), (255, 255, 255))
    canvas.paste(fitted, ((size - fitted.width) // 2, (size - fitted.height) // 2), mask)
    return _png(canvas, compress_level=_FAST_PNG)


# zlib level for basic_clean's output: most of the canvas is white, so level 1 is nearly as small
# as the default 6 at a fraction of the time.
_FAST_PNG = 1


def _fit(img: Image.Image, size: int) -> Image.Image:
    """``img`` scaled to fit in ``size``², aspect kept (``ImageOps.contain``). Shrinking uses
    Pillow's antialiased bilinear filter (half the time of bicubic, no visible difference at these
    factors) and first an integer reduction of big images (``reducing_gap``), as its thumbnails
    do; enlarging stays bicubic."""
    ratio = min(size / img.width, size / img.height)
    target = (max(1, round(img.width * ratio)), max(1, round(img.height * ratio)))
    if target == img.size:
        return img
    if ratio > 1:
        return img.resize(target, Image.Resampling.BICUBIC)
    return img.resize(target, Image.Resampling.BILINEAR, reducing_gap=2.0)


def _border_colour(img: Image.Image) -> tuple[int, int, int]:
    w, h = img.size
    samples = [
        img.getpixel((x, y))
        for x, y in (
            (0, 0),
            (w - 1, 0),
            (0, h - 1),
            (w - 1, h - 1),
            (w // 2, 0),
            (w // 2, h - 1),
            (0, h // 2),
            (w - 1, h // 2),
        )
    ]
    channels = list(zip(*samples, strict=True))
    return tuple(sorted(c)[len(c) // 2] for c in channels)


def scene_colour(scene: str) -> tuple[int, int, int]:
    if scene in SCENE_COLOURS:
        return SCENE_COLOURS[scene]
    digest = hashlib.sha256(scene.encode()).digest()
    return (120 + digest[0] % 120, 120 + digest[1] % 120, 120 + digest[2] % 120)


def _paint_scene(draw: ImageDraw.ImageDraw, scene: str, side: int) -> None:
    """A few strokes that tell the scenes apart at a glance."""
    if scene == "street":
        for i in range(5):  # buildings along the back
            x = i * side // 5
            top = side // 8 + (i * 37) % (side // 4)
            draw.rectangle([x + 4, top, x + side // 5 - 4, side * 2 // 3], fill=(140, 146, 158))
        draw.rectangle([0, side * 2 // 3, side, side], fill=(110, 110, 116))  # pavement
    elif scene == "indoor":
        draw.rectangle([side * 2 // 3, side // 10, side - 16, side // 2], fill=(250, 246, 230))
        draw.rectangle([0, side * 3 // 4, side, side], fill=(176, 140, 104))  # floor boards
    else:  # studio: a seamless sweep
        draw.rectangle([0, side * 4 // 5, side, side], fill=(222, 222, 228))


def model_pose12(data: bytes, scene: str, category: str = "", side: int = 512) -> list[bytes]:
    with Image.open(io.BytesIO(data)) as src:
        garment = ImageOps.exif_transpose(src).convert("RGBA")
    garment = ImageOps.contain(garment, (side // 2, side // 2))
    backdrop = scene_colour(scene)
    anchor, base_scale = CATEGORY_PLACEMENT.get(category, _TORSO)
    outputs: list[bytes] = []
    for pose in range(12):
        angle = (pose - 5.5) * 6
        canvas = Image.new("RGB", (side, side), backdrop)
        draw = ImageDraw.Draw(canvas)
        _paint_scene(draw, scene, side)
        # A pose silhouette: head, torso and limbs at pose-specific angles.
        cx = side // 2 + int((pose % 4 - 1.5) * side / 10)
        head_y = side // 6 + (pose % 3) * 6
        skin = (224, 190, 160)
        draw.ellipse([cx - 22, head_y - 22, cx + 22, head_y + 22], fill=skin)
        hip = (cx, int(side * 0.62))
        for limb, base_angle in enumerate((200, 340, 250, 290)):
            a = math.radians(base_angle + (pose * 17 + limb * 23) % 50 - 25)
            start = (cx, head_y + 40) if limb < 2 else hip
            length = side * (0.22 if limb < 2 else 0.3)
            end = (start[0] + length * math.cos(a), start[1] - length * math.sin(a))
            draw.line([start, end], fill=skin, width=14)
        piece = garment.rotate(angle, expand=True, resample=Image.Resampling.BICUBIC)
        if pose % 2:
            piece = ImageOps.mirror(piece)
        scale = base_scale * (0.8 + (pose % 5) * 0.08)
        piece = piece.resize((max(1, int(piece.width * scale)), max(1, int(piece.height * scale))))
        top = int(side * anchor) if category in CATEGORY_PLACEMENT else head_y + 30
        top = min(top, side - piece.height // 2)
        canvas.paste(piece, (cx - piece.width // 2, top), piece)
        draw.rectangle([8, side - 28, 8 + 12 * (pose + 1), side - 16], fill=(40, 40, 40))
        outputs.append(_png(canvas))
    return outputs
