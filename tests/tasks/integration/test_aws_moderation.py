"""The AWS moderation adapter (boto3's Rekognition and Comprehend clients) against the local AWS
JSON 1.1 server (tests/support/aws_moderation_server.py): SigV4, errors, image preparation, text
segmentation, request ids. The shared behaviour is in the moderation contract suite."""

from __future__ import annotations

import io
import json
import random
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from PIL import Image

from atelier_ports.errors import ProviderRejected, ProviderUnavailable
from atelier_tasks.adapters.aws_moderation import (
    MAX_IMAGE_BYTES,
    SEGMENT_BYTES,
    AwsModeration,
    split_utf8,
)
from atelier_tasks.application.ports.moderation import ImageToModerate, Verdict
from tests.support.aws_moderation_server import (
    ACCESS_KEY_ID,
    BLOCKED_WORD,
    COMPREHEND,
    MAGENTA,
    REGION,
    REKOGNITION,
    SECRET_ACCESS_KEY,
    YELLOW,
    FakeAwsModeration,
    ImageRule,
    png,
)


@pytest.fixture
def server() -> Iterator[FakeAwsModeration]:
    with FakeAwsModeration() as s:
        yield s


def adapter(
    server: FakeAwsModeration,
    *,
    key: str = ACCESS_KEY_ID,
    secret: str = SECRET_ACCESS_KEY,
    region: str = REGION,
    threshold: float = 0.8,
) -> AwsModeration:
    return AwsModeration(
        region=region,
        threshold=threshold,
        access_key_id=key,
        secret_access_key=secret,
        endpoint_url=server.url,
    )


def encoded(colour: tuple[int, int, int], fmt: str, side: int = 96) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (side, side), colour).save(out, format=fmt)
    return out.getvalue()


def noise_png(side: int) -> bytes:
    """A PNG that does not compress: random pixels."""
    rng = random.Random(side)
    img = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def image_of(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


# --- decisions ----------------------------------------------------------------------------------


def test_text_labels_toxicity_and_request_id(server: FakeAwsModeration) -> None:
    decision = adapter(server).check_text(f"a linen shirt and {BLOCKED_WORD.upper()} words")
    assert decision.verdict is Verdict.REJECTED and decision.provider == "aws"
    assert [(x.name, x.confidence) for x in decision.labels] == [
        ("SEXUAL", 0.93),
        ("TOXICITY", 0.93),
        ("PROFANITY", 0.91),
    ]
    [call] = server.calls_to(COMPREHEND)
    assert decision.request_id == call.request_id
    assert call.language == "en" and call.access_key_id == ACCESS_KEY_ID


def test_clean_text_is_allowed_with_no_noise_labels(server: FakeAwsModeration) -> None:
    decision = adapter(server).check_text("A wool coat on a rail")
    assert decision.verdict is Verdict.ALLOWED
    assert decision.labels == ()  # Comprehend's 0.01 scores are below the 0.5 floor
    assert decision.request_id == server.calls_to(COMPREHEND)[0].request_id


def test_blank_text_needs_no_call(server: FakeAwsModeration) -> None:
    decision = adapter(server).check_text(" \n\t ")
    assert decision.verdict is Verdict.ALLOWED and decision.request_id is None
    assert server.calls == []


def test_image_labels_keep_the_hierarchy(server: FakeAwsModeration) -> None:
    decision = adapter(server).check_image(ImageToModerate(png(MAGENTA), "image/png"))
    assert decision.rejected
    assert [(x.name, x.confidence) for x in decision.labels] == [
        ("Explicit", 0.97),
        ("Explicit Nudity", 0.96),
        ("Exposed Female Nipple", 0.95),
    ]
    [call] = server.calls_to(REKOGNITION)
    assert decision.request_id == call.request_id
    assert call.min_confidence == 50.0
    assert call.image == png(MAGENTA)  # a PNG within the limits goes as it is


def test_a_parent_carries_its_strongest_child_and_is_named_when_absent() -> None:
    rules = (
        ImageRule(
            MAGENTA,
            (
                {"Name": "Violence", "Confidence": 55.0, "ParentName": ""},
                {"Name": "Weapon Violence", "Confidence": 84.0, "ParentName": "Violence"},
                {"Name": "Graphic Violence", "Confidence": 61.0, "ParentName": "Violence"},
                {"Name": "Hate Symbols", "Confidence": 30.0, "ParentName": ""},
                {"Name": "Nazi Party", "Confidence": 70.0, "ParentName": "Hate Symbols"},
                {"Name": "Drug Use", "Confidence": 52.0, "ParentName": "Drugs & Tobacco"},
            ),
            tolerance=10,
        ),
    )
    with FakeAwsModeration(image_rules=rules) as server:
        decision = adapter(server).check_image(ImageToModerate(png(MAGENTA), "image/png"))
        names = {x.name: x.confidence for x in decision.labels}
        assert names == {
            "Violence": 0.84,
            "Weapon Violence": 0.84,
            "Graphic Violence": 0.61,
            "Hate Symbols": 0.70,
            "Nazi Party": 0.70,
            "Drugs & Tobacco": 0.52,
            "Drug Use": 0.52,
        }
        # Hate Symbols itself (30) was below MinConfidence (50): left out by the server,
        # named again through its child.
        assert decision.rejected


def test_a_label_below_the_threshold_is_reported_and_allowed(server: FakeAwsModeration) -> None:
    decision = adapter(server).check_image(ImageToModerate(png(YELLOW), "image/png"))
    assert decision.verdict is Verdict.ALLOWED
    assert [(x.name, x.confidence) for x in decision.labels] == [("Swimwear or Underwear", 0.62)]
    assert (
        adapter(server, threshold=0.6)
        .check_image(ImageToModerate(png(YELLOW), "image/png"))
        .rejected
    )


def test_the_threshold_sets_min_confidence(server: FakeAwsModeration) -> None:
    adapter(server, threshold=0.3).check_image(ImageToModerate(png(YELLOW), "image/png"))
    assert server.calls_to(REKOGNITION)[0].min_confidence == pytest.approx(30.0)


def test_threshold_and_region_are_checked() -> None:
    with pytest.raises(ValueError, match="threshold"):
        AwsModeration(region=REGION, threshold=0.0)
    with pytest.raises(ValueError, match="threshold"):
        AwsModeration(region=REGION, threshold=1.5)
    with pytest.raises(ValueError, match="region"):
        AwsModeration(region="", threshold=0.8)


# --- SigV4 and errors ---------------------------------------------------------------------------


def test_a_wrong_secret_fails_the_signature_and_is_rejected(server: FakeAwsModeration) -> None:
    wrong = "wrongSecretAccessKey000000000000000000000"
    moderation = adapter(server, secret=wrong)
    with pytest.raises(ProviderRejected) as text_error:
        moderation.check_text("a linen shirt")
    with pytest.raises(ProviderRejected) as image_error:
        moderation.check_image(ImageToModerate(png(MAGENTA), "image/png"))
    for error in (text_error.value, image_error.value):
        assert "InvalidSignatureException" in str(error)
        assert wrong not in str(error) and SECRET_ACCESS_KEY not in str(error)
    assert [c.error for c in server.calls] == ["InvalidSignatureException"] * 2  # no retry
    # the same server, the right secret: the signature is what was wrong
    assert adapter(server).check_text("a linen shirt").verdict is Verdict.ALLOWED


def test_an_unknown_key_is_rejected(server: FakeAwsModeration) -> None:
    with pytest.raises(ProviderRejected, match="UnrecognizedClientException"):
        adapter(server, key="AKIAUNKNOWN000000000").check_text("a linen shirt")


def test_a_request_signed_for_another_region_is_rejected(server: FakeAwsModeration) -> None:
    with pytest.raises(ProviderRejected, match="InvalidSignatureException"):
        adapter(server, region="eu-west-1").check_image(ImageToModerate(png(YELLOW), "image/png"))


def test_throttling_is_unavailable_after_one_retry(server: FakeAwsModeration) -> None:
    moderation = adapter(server)
    server.throttle()
    with pytest.raises(ProviderUnavailable, match="ThrottlingException"):
        moderation.check_text("a linen shirt")
    with pytest.raises(ProviderUnavailable, match="ThrottlingException"):
        moderation.check_image(ImageToModerate(png(MAGENTA), "image/png"))
    assert [c.error for c in server.calls] == ["ThrottlingException"] * 4  # two attempts each
    server.come_back()
    server.throttle(1)  # one throttled answer: boto3's one retry gets through
    assert moderation.check_image(ImageToModerate(png(MAGENTA), "image/png")).rejected
    assert [c.error for c in server.calls[4:]] == ["ThrottlingException", ""]


def test_a_service_that_is_down_is_unavailable(server: FakeAwsModeration) -> None:
    server.go_down()
    with pytest.raises(ProviderUnavailable, match="503 ServiceUnavailableException"):
        adapter(server).check_text("a linen shirt")


def test_an_endpoint_that_does_not_answer_is_unavailable() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    moderation = AwsModeration(
        region=REGION,
        threshold=0.8,
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET_ACCESS_KEY,
        endpoint_url=f"http://127.0.0.1:{port}",
    )
    with pytest.raises(ProviderUnavailable, match="did not answer"):
        moderation.check_text("a linen shirt")


def test_clients_are_shared_between_threads(server: FakeAwsModeration) -> None:
    moderation = adapter(server)
    images = [png(MAGENTA), png(YELLOW)] * 4
    with ThreadPoolExecutor(max_workers=8) as pool:
        decisions = list(pool.map(lambda d: moderation.check_image(ImageToModerate(d, "")), images))
    assert [d.rejected for d in decisions] == [True, False] * 4
    assert len({d.request_id for d in decisions}) == 8


# --- images Rekognition would refuse ------------------------------------------------------------


def raw_client(server: FakeAwsModeration) -> Any:
    return boto3.session.Session().client(
        "rekognition",
        region_name=REGION,
        endpoint_url=server.url,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )


def test_the_server_refuses_what_the_adapter_must_prepare(server: FakeAwsModeration) -> None:
    client = raw_client(server)
    for data, code in [
        (encoded(MAGENTA, "WEBP"), "InvalidImageFormatException"),
        (noise_png(1400), "ImageTooLargeException"),
        (png(MAGENTA, side=40), "InvalidParameterException"),
    ]:
        with pytest.raises(ClientError) as error:
            client.detect_moderation_labels(Image={"Bytes": data})
        assert error.value.response["Error"]["Code"] == code


def test_a_big_image_is_scaled_below_5_mb(server: FakeAwsModeration) -> None:
    big = noise_png(1400)
    assert len(big) > MAX_IMAGE_BYTES
    decision = adapter(server).check_image(ImageToModerate(big, "image/png"))
    assert decision.verdict is Verdict.ALLOWED
    [call] = server.calls_to(REKOGNITION)
    assert call.status == 200 and call.image is not None
    assert len(call.image) <= MAX_IMAGE_BYTES
    sent = image_of(call.image)
    assert sent.format in ("PNG", "JPEG") and min(sent.size) >= 80


def test_webp_goes_as_png_and_still_decides(server: FakeAwsModeration) -> None:
    decision = adapter(server).check_image(ImageToModerate(encoded(MAGENTA, "WEBP"), "image/webp"))
    assert decision.rejected
    [call] = server.calls_to(REKOGNITION)
    assert call.image is not None and image_of(call.image).format == "PNG"


def test_a_tiny_image_is_scaled_up(server: FakeAwsModeration) -> None:
    decision = adapter(server).check_image(ImageToModerate(encoded(MAGENTA, "JPEG", 40), ""))
    assert decision.rejected
    [call] = server.calls_to(REKOGNITION)
    assert call.image is not None
    sent = image_of(call.image)
    assert sent.format == "JPEG" and sent.size == (80, 80)


def test_an_unreadable_image_is_rejected_without_a_call(server: FakeAwsModeration) -> None:
    with pytest.raises(ProviderRejected, match="cannot be read"):
        adapter(server).check_image(ImageToModerate(b"<html>not an image</html>", "image/png"))
    assert server.calls == []


def test_image_bytes_travel_base64_encoded(server: FakeAwsModeration) -> None:
    """JSON 1.1 blobs are base64: the server decodes the very bytes the adapter sent."""
    data = encoded(YELLOW, "JPEG")
    adapter(server).check_image(ImageToModerate(data, "image/jpeg"))
    assert server.calls_to(REKOGNITION)[0].image == data


# --- long text ----------------------------------------------------------------------------------

MIXED = "Étoffe légère 中文描述 🧥 linen-shirt "  # 1-, 2-, 3- and 4-byte characters


def test_long_text_is_split_into_segments_of_at_most_1_kb(server: FakeAwsModeration) -> None:
    text = MIXED * 150  # about 6.4 KB → 7 segments, one call
    decision = adapter(server).check_text(text)
    assert decision.verdict is Verdict.ALLOWED
    [call] = server.calls_to(COMPREHEND)
    assert 6 <= len(call.segments) <= 10
    assert all(len(s.encode()) <= SEGMENT_BYTES for s in call.segments)
    assert "".join(call.segments) == text  # nothing lost, no character cut
    assert all(s.endswith(" ") for s in call.segments[:-1])  # cut after whitespace


def test_more_than_ten_segments_take_several_calls(server: FakeAwsModeration) -> None:
    text = MIXED * 400 + f" {BLOCKED_WORD}"  # about 17 KB: 18 segments, the word in the last
    decision = adapter(server).check_text(text)
    assert decision.rejected
    calls = server.calls_to(COMPREHEND)
    assert [len(c.segments) for c in calls] == [10, len(calls[1].segments)]
    assert "".join(s for c in calls for s in c.segments) == text
    assert decision.request_id == f"{calls[0].request_id},{calls[1].request_id}"


def test_a_rejection_in_the_first_call_ends_the_check(server: FakeAwsModeration) -> None:
    decision = adapter(server).check_text(f"{BLOCKED_WORD} " + MIXED * 400)
    assert decision.rejected
    assert len(server.calls_to(COMPREHEND)) == 1


def test_split_never_cuts_a_character_even_without_spaces() -> None:
    text = "🧥中é" * 500
    pieces = split_utf8(text, SEGMENT_BYTES)
    assert "".join(pieces) == text
    assert all(len(p.encode()) <= SEGMENT_BYTES for p in pieces)
    assert all(len(p.encode()) > SEGMENT_BYTES - 4 for p in pieces[:-1])  # full, bar a char
    with pytest.raises(ValueError):
        split_utf8("🧥", 3)


def test_the_server_checks_what_was_signed(server: FakeAwsModeration) -> None:
    """Signed with botocore's own SigV4 signer: accepted as signed, refused once the body or a
    signed header changes after signing."""

    def send(body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(server.url + "/", body, headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    body = json.dumps({"TextSegments": [{"Text": "a linen shirt"}], "LanguageCode": "en"})
    signed = AWSRequest(
        "POST",
        server.url + "/",
        data=body.encode(),
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": COMPREHEND},
    )
    SigV4Auth(Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY), "comprehend", REGION).add_auth(signed)
    headers = {k: str(v) for k, v in signed.headers.items()}
    status, answer = send(body.encode(), headers)
    assert status == 200 and "ResultList" in answer
    status, answer = send(body.replace("linen", BLOCKED_WORD).encode(), headers)
    assert (status, answer["__type"]) == (400, "InvalidSignatureException")
    status, answer = send(body.encode(), {**headers, "X-Amz-Target": REKOGNITION})
    assert (status, answer["__type"]) == (400, "InvalidSignatureException")
