"""``TencentModeration`` with the official TMS/IMS SDKs against the local Tencent Cloud endpoint
of ``tests/support/tencent_moderation_server.py``, which recomputes every TC3-HMAC-SHA256
signature and enforces the documented limits (10,000 characters of text, 10 MB of base64)."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import socket
from collections.abc import Iterator

import pytest
from PIL import Image

from atelier_ports.errors import ProviderRejected, ProviderUnavailable
from atelier_tasks.adapters.tencent_moderation import (
    TEXT_CHUNK_CHARS,
    TencentModeration,
    fit_image,
    text_chunks,
)
from atelier_tasks.application.ports.moderation import ImageToModerate, Verdict
from tests.support import tencent_moderation_server as tms
from tests.support.tencent_moderation_server import FakeTencentModeration, serving_image

THRESHOLD = 0.8


@pytest.fixture
def fake() -> Iterator[FakeTencentModeration]:
    with FakeTencentModeration() as server:
        yield server


def adapter_for(
    fake: FakeTencentModeration, *, secret_key: str = tms.SECRET_KEY, **kw: str
) -> TencentModeration:
    return TencentModeration(
        secret_id=kw.get("secret_id", tms.SECRET_ID),
        secret_key=secret_key,
        region=tms.REGION,
        threshold=THRESHOLD,
        biz_type=kw.get("biz_type"),
        endpoint=fake.url,
    )


def png(data_colour: tuple[int, int, int]) -> ImageToModerate:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), data_colour).save(out, "PNG")
    return ImageToModerate(data=out.getvalue(), content_type="image/png")


# -- signatures and errors ------------------------------------------------------------------


def test_a_wrong_secret_key_is_refused_by_the_signature_check_and_never_shown(
    fake: FakeTencentModeration, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "not-the-moderation-secret-key-000000"
    moderation = adapter_for(fake, secret_key=wrong)
    with caplog.at_level(logging.DEBUG), pytest.raises(ProviderRejected) as refused:
        moderation.check_text("a linen shirt")
    assert "AuthFailure.SignatureFailure" in str(refused.value)
    assert "TENCENT_MODERATION_SECRET_KEY" in str(refused.value)  # what the admin fixes
    assert wrong not in str(refused.value) and wrong not in caplog.text
    assert [c.outcome for c in fake.calls] == ["AuthFailure.SignatureFailure"]
    with pytest.raises(ProviderRejected, match="SignatureFailure"):
        moderation.check_image(ImageToModerate(data=tms.product_png(), content_type="x"))


def test_an_unknown_secret_id_is_refused(fake: FakeTencentModeration) -> None:
    with pytest.raises(ProviderRejected, match=r"AuthFailure\.SecretIdNotFound"):
        adapter_for(fake, secret_id="AKIDsomeoneElse").check_text("hello")


def test_the_right_keys_sign_both_services_with_their_own_scope(
    fake: FakeTencentModeration,
) -> None:
    moderation = adapter_for(fake)
    moderation.check_text("a linen shirt")
    moderation.check_image(ImageToModerate(data=tms.product_png(), content_type="image/png"))
    assert [(c.service, c.action, c.region, c.outcome) for c in fake.calls] == [
        ("tms", "TextModeration", tms.REGION, "Pass"),
        ("ims", "ImageModeration", tms.REGION, "Pass"),
    ]


def test_throttling_is_unavailable_until_it_stops(fake: FakeTencentModeration) -> None:
    moderation = adapter_for(fake)
    fake.throttle()
    with pytest.raises(ProviderUnavailable, match="RequestLimitExceeded"):
        moderation.check_text("a porn scene")
    with pytest.raises(ProviderUnavailable, match="RequestLimitExceeded"):
        moderation.check_image(ImageToModerate(data=tms.magenta_png(), content_type="image/png"))
    fake.come_back()
    assert moderation.check_text("a porn scene").rejected


def test_http_errors_and_a_dead_endpoint_are_unavailable(fake: FakeTencentModeration) -> None:
    moderation = adapter_for(fake)
    fake.go_down("http_503")
    with pytest.raises(ProviderUnavailable):
        moderation.check_text("hello")
    assert fake.calls[-1].outcome == "HTTP 503"
    fake.come_back()

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = TencentModeration(
        secret_id=tms.SECRET_ID,
        secret_key=tms.SECRET_KEY,
        region=tms.REGION,
        threshold=THRESHOLD,
        endpoint=f"http://127.0.0.1:{port}",
    )
    with pytest.raises(ProviderUnavailable):
        dead.check_text("hello")


@pytest.mark.parametrize(
    ("code", "error", "hint"),
    [
        ("ResourceInsufficient", ProviderRejected, "console"),
        ("UnauthorizedOperation.Unauthorized", ProviderRejected, "QcloudTMSFullAccess"),
        ("AuthFailure.SignatureExpire", ProviderRejected, "clock"),
        ("InvalidParameterValue.InvalidBizType", ProviderRejected, "BizType"),
        ("InternalError.ErrTextTimeOut", ProviderUnavailable, "unavailable"),
        ("ResourceUnavailable.ModelCallFailed", ProviderUnavailable, "unavailable"),
        ("LimitExceeded", ProviderUnavailable, "unavailable"),
    ],
)
def test_tencent_error_codes_are_told_apart(
    fake: FakeTencentModeration, code: str, error: type[Exception], hint: str
) -> None:
    fake.fail_next(code)
    with pytest.raises(error) as raised:
        adapter_for(fake).check_text("hello")
    assert code in str(raised.value) and hint in str(raised.value)
    assert fake.calls[-1].request_id in str(raised.value)  # for a ticket with Tencent


def test_an_image_tencent_cannot_read_is_rejected_not_retried(
    fake: FakeTencentModeration,
) -> None:
    with pytest.raises(ProviderRejected, match="InvalidImageContent"):
        adapter_for(fake).check_image(ImageToModerate(data=b"not an image", content_type="x"))


# -- text -----------------------------------------------------------------------------------


def test_text_is_sent_as_base64_of_utf8_with_the_biz_type(fake: FakeTencentModeration) -> None:
    decision = adapter_for(fake, biz_type="atelier_prompts").check_text("白色背景的衬衫 shirt")
    assert decision.verdict is Verdict.ALLOWED and decision.labels == ()
    (call,) = fake.calls
    assert call.text == "白色背景的衬衫 shirt" and call.biz_type == "atelier_prompts"
    assert decision.request_id == call.request_id


def test_a_block_names_its_labels_and_the_request_id(fake: FakeTencentModeration) -> None:
    decision = adapter_for(fake).check_text("PORN and an idiot")
    assert decision.rejected
    assert {(label.name, label.confidence) for label in decision.labels} == {
        ("Porn", 0.95),
        ("Abuse", 0.92),
    }
    assert decision.request_id == fake.calls[-1].request_id


def test_blank_text_is_allowed_without_a_call(fake: FakeTencentModeration) -> None:
    decision = adapter_for(fake).check_text("  \n ")
    assert decision.verdict is Verdict.ALLOWED and decision.request_id is None
    assert fake.calls == []


def test_long_text_is_checked_in_overlapping_chunks_within_the_limit(
    fake: FakeTencentModeration,
) -> None:
    moderation = adapter_for(fake)
    filler = "a linen shirt on a hanger. " * 1000  # 27,000 characters
    allowed = moderation.check_text(filler)
    assert allowed.verdict is Verdict.ALLOWED
    calls = fake.calls_to("tms")
    assert len(calls) == 3 and all(len(c.text or "") <= TEXT_CHUNK_CHARS for c in calls)
    assert allowed.request_id == ",".join(c.request_id for c in calls)

    # A blocked word cut by the first chunk boundary is still seen whole in the second chunk.
    cut = filler[: TEXT_CHUNK_CHARS - 2] + "porn" + filler
    assert "porn" not in cut[:TEXT_CHUNK_CHARS]
    assert moderation.check_text(cut).rejected
    # One blocked chunk among many rejects the whole text.
    assert moderation.check_text(filler + "色情").rejected


def test_text_chunks_cover_the_text() -> None:
    text = "".join(chr(0x4E00 + i % 500) for i in range(23_456))
    chunks = text_chunks(text, size=10_000, overlap=200)
    assert [len(c) for c in chunks] == [10_000, 10_000, 3_856]
    assert "".join(c if i == 0 else c[200:] for i, c in enumerate(chunks)) == text
    assert text_chunks("short") == ["short"]


def test_review_is_judged_by_the_threshold() -> None:
    with FakeTencentModeration(review_score=72) as low:
        decision = adapter_for(low).check_text("a borderline outfit")
        assert low.calls[-1].outcome == "Review"
        assert decision.verdict is Verdict.ALLOWED
        assert [(label.name, label.confidence) for label in decision.labels] == [("Porn", 0.72)]
        image = adapter_for(low).check_image(png((255, 255, 0)))
        assert low.calls[-1].outcome == "Review" and not image.rejected
    with FakeTencentModeration(review_score=85) as high:
        assert adapter_for(high).check_text("a borderline outfit").rejected
        assert adapter_for(high).check_image(png((255, 255, 0))).rejected


def test_what_tencent_itself_passes_is_not_a_finding(fake: FakeTencentModeration) -> None:
    """An Ad 99 the BizType policy allows (a brand logo, a QR code on a label) comes back with
    Suggestion Pass: neither a rejection nor a label, whatever its score."""
    text = adapter_for(fake).check_text("a shirt with the brand logo on the chest")
    assert text.verdict is Verdict.ALLOWED and text.labels == ()
    image = adapter_for(fake).check_image(png((0, 255, 255)))
    assert image.verdict is Verdict.ALLOWED and image.labels == ()
    # ... while what it does not pass still counts next to it.
    both = adapter_for(fake).check_text("a logo and a porn scene")
    assert both.rejected and [label.name for label in both.labels] == ["Porn"]


# -- images ---------------------------------------------------------------------------------


def test_an_image_with_a_signed_url_is_read_by_tencent_from_the_url(
    fake: FakeTencentModeration,
) -> None:
    data = tms.magenta_png()
    with serving_image(data) as url:
        decision = adapter_for(fake).check_image(
            ImageToModerate(data=data, content_type="image/png", key="u/1/in.png", url=url)
        )
    assert decision.rejected
    assert [(label.name, label.confidence) for label in decision.labels] == [("Porn", 0.97)]
    (call,) = fake.calls
    assert call.file_url == url and call.file_content_chars is None
    assert call.image_sha256 == hashlib.sha256(data).hexdigest()  # what the fake downloaded
    assert decision.request_id == call.request_id


def test_an_image_without_a_url_is_sent_as_content(fake: FakeTencentModeration) -> None:
    data = tms.product_png()
    decision = adapter_for(fake).check_image(ImageToModerate(data=data, content_type="image/png"))
    assert decision.verdict is Verdict.ALLOWED and decision.labels == ()
    (call,) = fake.calls
    assert call.file_url is None and call.image_sha256 == hashlib.sha256(data).hexdigest()
    fake.block_image(data)  # the same bytes, now on the fake's block list
    assert adapter_for(fake).check_image(ImageToModerate(data=data, content_type="x")).rejected


def test_an_image_above_the_content_limit_is_downscaled_to_fit(
    fake: FakeTencentModeration,
) -> None:
    side = 1800  # random pixels: a PNG of ~9.7 MB, ~13 MB of base64 — above IMS's 10 MB
    noise = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    out = io.BytesIO()
    noise.save(out, "PNG", compress_level=1)
    data = out.getvalue()
    assert len(data) * 4 / 3 > tms.MAX_FILE_CONTENT_BASE64
    decision = adapter_for(fake).check_image(ImageToModerate(data=data, content_type="image/png"))
    assert decision.verdict is Verdict.ALLOWED
    (call,) = fake.calls
    assert call.outcome == "Pass"
    assert call.file_content_chars is not None
    assert call.file_content_chars <= tms.MAX_FILE_CONTENT_BASE64


def test_fit_image_leaves_small_images_alone_and_refuses_non_images() -> None:
    data = tms.product_png()
    assert fit_image(data, len(data)) is data
    with pytest.raises(ProviderRejected):
        fit_image(b"x" * 100, 10)
