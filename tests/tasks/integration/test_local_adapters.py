"""The local generator and local storage do real work (Pillow, files, HMAC)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from atelier_tasks.adapters.local_generation import LocalGenerationProvider
from atelier_tasks.adapters.local_storage import InvalidKey, LocalObjectStorage
from atelier_tasks.adapters.pillow_images import PillowImageTools
from atelier_tasks.application.ports.generation import GenerationRequest, GenerationState
from tests.tasks.fakes import clock_at_start


def request(
    task_type: str, params: dict[str, object], inputs: tuple[bytes, ...] = ()
) -> GenerationRequest:
    return GenerationRequest(
        task_id="task_x", user_id="u1", task_type=task_type, params=params, inputs=inputs
    )


def image(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def photo_with_exif_rotation() -> bytes:
    """A 120x60 product shot (red box on a grey background) stored sideways: EXIF orientation 6."""
    img = Image.new("RGB", (120, 60), (200, 200, 200))
    img.paste((220, 20, 20), (40, 15, 80, 45))
    img = img.transpose(Image.Transpose.ROTATE_90)  # what the camera wrote: 60x120
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 270 (i.e. 90 clockwise) to view
    out = io.BytesIO()
    img.save(out, format="JPEG", exif=exif, quality=95)
    return out.getvalue()


def test_text_to_image_is_deterministic_per_prompt_and_seed() -> None:
    gen = LocalGenerationProvider()
    a = gen.submit(
        request("text_to_image", {"prompt": "fox", "seed": 1, "width": 128, "height": 96})
    )
    b = gen.submit(
        request("text_to_image", {"prompt": "fox", "seed": 1, "width": 128, "height": 96})
    )
    c = gen.submit(
        request("text_to_image", {"prompt": "fox", "seed": 2, "width": 128, "height": 96})
    )
    d = gen.submit(
        request("text_to_image", {"prompt": "owl", "seed": 1, "width": 128, "height": 96})
    )
    assert a.state is GenerationState.SUCCEEDED
    data = [r.outputs[0].data for r in (a, b, c, d)]
    assert data[0] == data[1]
    assert len({data[0], data[2], data[3]}) == 3
    assert data[0] is not None
    assert image(data[0]).size == (128, 96)


def test_basic_clean_orients_squares_and_whitens() -> None:
    gen = LocalGenerationProvider()
    result = gen.submit(request("basic_clean", {"size": 200}, (photo_with_exif_rotation(),)))
    assert result.state is GenerationState.SUCCEEDED
    data = result.outputs[0].data
    assert data is not None
    img = image(data).convert("RGB")
    assert img.size == (200, 200)
    # Upright again: the product (landscape) spans wider than tall once oriented.
    red = [
        (x, y)
        for x in range(0, 200, 2)
        for y in range(0, 200, 2)
        if _rgb(img, x, y)[0] > 150 and _rgb(img, x, y)[1] < 100
    ]
    xs, ys = [p[0] for p in red], [p[1] for p in red]
    assert max(xs) - min(xs) > max(ys) - min(ys)
    # The grey background became white; so did the padding.
    assert img.getpixel((100, 60)) == (255, 255, 255)
    assert img.getpixel((2, 2)) == (255, 255, 255)


def test_model_pose12_makes_twelve_distinct_images() -> None:
    gen = LocalGenerationProvider()
    garment = io.BytesIO()
    Image.new("RGB", (80, 100), (30, 60, 200)).save(garment, format="PNG")
    result = gen.submit(
        request("model_pose12", {"scene": "indoor", "category": "coat"}, (garment.getvalue(),))
    )
    assert result.state is GenerationState.SUCCEEDED
    assert len(result.outputs) == 12
    assert len({o.data for o in result.outputs}) == 12


def test_sandbox_trigger_and_failure_injection() -> None:
    gen = LocalGenerationProvider()
    failed = gen.submit(request("text_to_image", {"prompt": "x", "sandbox_outcome": "fail"}))
    assert failed.state is GenerationState.FAILED and not failed.transient
    always = LocalGenerationProvider(fail_rate=1.0)
    assert always.submit(request("text_to_image", {"prompt": "x"})).state is GenerationState.FAILED
    never = LocalGenerationProvider(fail_rate=0.0)
    assert (
        never.submit(request("text_to_image", {"prompt": "x"})).state is GenerationState.SUCCEEDED
    )


def test_undecodable_input_fails_cleanly() -> None:
    result = LocalGenerationProvider().submit(request("basic_clean", {}, (b"not an image",)))
    assert result.state is GenerationState.FAILED


def test_local_storage_round_trip_signing_and_uploads(tmp_path: Path) -> None:
    clock = clock_at_start()
    storage = LocalObjectStorage(tmp_path, b"secret", clock, base_url="http://gw/files")
    stored = storage.put("u1/a/b.png", b"data", "image/png")
    assert storage.get("u1/a/b.png") == b"data"
    assert storage.head("u1/a/b.png") == stored and len(stored.sha256) == 64
    for bad in ("../x", "/abs", "u1//x", "u1/./x"):
        with pytest.raises(InvalidKey):
            storage.put(bad, b"x", "image/png")
    url = storage.signed_url("u1/a/b.png", 60)
    expires = url.split("expires=")[1].split("&")[0]
    signature = url.split("signature=")[1]
    assert storage.verify_download("u1/a/b.png", expires, signature)
    assert not storage.verify_download("u1/a/c.png", expires, signature)
    clock.advance(seconds=61)
    assert not storage.verify_download("u1/a/b.png", expires, signature)
    target = storage.upload_target("u1/up/x.png", ("image/png",), 10, 60)
    fields = dict(target.fields)
    assert storage.accept_upload(fields, b"12345", "image/png").size == 5
    with pytest.raises(PermissionError):
        storage.accept_upload(fields, b"x" * 11, "image/png")
    with pytest.raises(PermissionError):
        storage.accept_upload(fields, b"x", "image/gif")
    with pytest.raises(PermissionError):
        storage.accept_upload({**fields, "key": "u2/steal.png"}, b"x", "image/png")
    storage.delete("u1/a/b.png")
    assert storage.head("u1/a/b.png") is None


def test_pillow_tools_inspect_and_thumbnail() -> None:
    out = io.BytesIO()
    Image.new("RGB", (640, 320), (1, 2, 3)).save(out, format="PNG")
    tools = PillowImageTools()
    info = tools.inspect(out.getvalue())
    assert (info.content_type, info.width, info.height) == ("image/png", 640, 320)
    thumb, content_type = tools.thumbnail(out.getvalue(), 256)
    assert content_type == "image/jpeg" and image(thumb).size == (256, 128)
    with pytest.raises(ValueError):
        tools.inspect(b"nope")


def test_failure_rate_is_roughly_the_configured_share() -> None:
    gen = LocalGenerationProvider(fail_rate=0.3)
    outcomes = [
        gen.submit(
            GenerationRequest(
                f"task_{i}", "u1", "text_to_image", {"prompt": "x", "width": 64, "height": 64}
            )
        ).state
        for i in range(200)
    ]
    share = outcomes.count(GenerationState.FAILED) / len(outcomes)
    assert 0.2 < share < 0.4


def _rgb(img: Image.Image, x: int, y: int) -> tuple[int, ...]:
    pixel = img.getpixel((x, y))
    assert isinstance(pixel, tuple)
    return pixel
