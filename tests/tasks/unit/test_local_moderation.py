"""The local moderation adapter: how text is normalised and matched (and what must not match), the
operator's blocked-terms file, and how images reach NudeNet's model."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from atelier_ports.errors import ProviderRejected
from atelier_tasks.adapters.local_moderation import (
    BLOCKED_IMAGE_LABELS,
    MAX_DECODED_SIDE,
    MODEL_SIZE,
    LocalModeration,
    compact,
    decode_frames,
    decode_image,
    latin_words,
    model_input,
    normalise,
    nudenet_model_path,
    spelled_out,
)
from atelier_tasks.application.ports.moderation import ImageToModerate, Verdict
from tests.support.moderation_images import flagged_image, product_photo


@pytest.fixture(scope="module")
def moderation() -> LocalModeration:
    return LocalModeration(threshold=0.8)


def labels(moderation: LocalModeration, text: str) -> list[str]:
    return [label.name for label in moderation.check_text(text).labels]


# --- normalisation ------------------------------------------------------------------------------


def test_normalise_folds_width_and_case_and_drops_zero_width_characters() -> None:
    assert normalise("ＰＯＲＮ Ｓｅｘ") == "porn sex"
    assert normalise("s\u200be\u200dx\ufeff") == "sex"
    assert normalise("Straße") == "strasse"


def test_latin_words_join_spelled_out_letters_and_undo_leetspeak() -> None:
    assert latin_words("s e x") == " sex "
    assert latin_words("s.e.x-y") == " sexy "
    assert latin_words("a b") == " a b "  # two letters are two words
    assert latin_words("p0rn and 2024") == " porn and 2024 "  # digits alone stay digits
    assert latin_words("看porn片") == " porn "
    assert spelled_out("a s e x video, x x x") == "asex xxx"
    assert spelled_out("a b and c d") == ""


def test_compact_keeps_letters_and_digits_only() -> None:
    assert compact("色 情。") == "色情"
    assert compact("色_情-片!") == "色情片"


@pytest.mark.parametrize(
    "text",
    [
        "sex",
        "SeX",
        "s e x",
        "s.e.x",
        "S-E-X",
        "s_e_x",
        "ｓｅｘ",
        "s\u200bex",
        "se\u00adx",
        "s3x",
        "a s e x video",
        "s 3 x",
        "p0rn",
        "P O R N",
        "pornography",
        "ＰＯＲＮ",
        "blow job",
        "blowjob",
        "nudes",
        "raping",
        "a pic of her tits",
        "色情",
        "色 情",
        "色.情",
        "色\u200b情",
        "色情节目",
        "AV女优",
        "看porn片",
    ],
)
def test_sexual_terms_are_found_however_they_are_written(
    moderation: LocalModeration, text: str
) -> None:
    decision = moderation.check_text(text)
    assert decision.verdict is Verdict.REJECTED
    assert labels(moderation, text) == ["blocked_term:sexual"]
    assert all(label.confidence == 1.0 for label in decision.labels)


@pytest.mark.parametrize(
    "text",
    [
        # The Scunthorpe problem: a term inside an innocent word.
        "a classic class shirt",
        "assistant with a passion for bass",
        "Sussex, Essex and Middlesex",
        "a sextant on the desk",
        "therapist in a grape-coloured drape",
        "analysis of a cucumber document",
        "cocktail dress",
        "Scunthorpe United scarf",
        "skills",
        # Harmless phrases that hold a term, listed under [allow].
        "Gore-Tex jacket",
        "goretex boots",
        "summa cum laude graduation gown",
        "颜色情况",
        "特色情节",
        "角色情感",
        "杀人鲸图案T恤",
        "血腥玛丽鸡尾酒",
        # Fashion words left off the lists on purpose.
        "nude heels",
        "a sexy red dress",
        "killer heels",
        # Two letters apart are not a spelled-out word.
        "size s e",
        "",
    ],
)
def test_innocent_text_is_allowed(moderation: LocalModeration, text: str) -> None:
    decision = moderation.check_text(text)
    assert decision.verdict is Verdict.ALLOWED
    assert decision.labels == ()
    assert decision.provider == "local"
    assert decision.request_id is None


def test_each_category_found_is_one_label(moderation: LocalModeration) -> None:
    assert labels(moderation, "porn, gore and white power") == [
        "blocked_term:hate",
        "blocked_term:sexual",
        "blocked_term:violence",
    ]
    assert labels(moderation, "血腥 屠杀") == ["blocked_term:violence"]
    assert labels(moderation, "支那") == ["blocked_term:hate"]


def test_an_allowed_phrase_does_not_hide_the_same_term_elsewhere(
    moderation: LocalModeration,
) -> None:
    assert labels(moderation, "Gore-Tex jacket, gore everywhere") == ["blocked_term:violence"]
    assert labels(moderation, "颜色情况和色情") == ["blocked_term:sexual"]


# --- the operator's blocked-terms file ----------------------------------------------------------


def test_a_blocked_terms_file_adds_terms_categories_and_allowed_phrases(tmp_path: Path) -> None:
    terms = tmp_path / "terms.txt"
    terms.write_text(
        "# our own list\n"
        "\n"
        "glorbnik\n"
        "ca$hgrab\n"
        "[brand]\n"
        "acme rival   # a competitor\n"
        "竞品\n"
        "[allow]\n"
        "sex pistols\n",
        encoding="utf-8",
    )
    without = LocalModeration(threshold=0.8)
    with_file = LocalModeration(threshold=0.8, blocked_terms_file=str(terms))

    for text in ("glorbnik", "Acme-Rival hoodie", "看 竞 品"):
        assert not without.check_text(text).rejected
    assert without.check_text("sex pistols t-shirt").rejected
    assert labels(with_file, "a G.L.O.R.B.N.I.K shirt") == ["blocked_term:custom"]
    assert labels(with_file, "Acme-Rival hoodie") == ["blocked_term:brand"]
    assert labels(with_file, "acmerival hoodie") == ["blocked_term:brand"]
    assert labels(with_file, "CASHGRAB, c4shgr@b") == ["blocked_term:custom"]
    assert labels(with_file, "看 竞 品") == ["blocked_term:brand"]
    assert not with_file.check_text("sex pistols t-shirt").rejected
    assert not with_file.check_text("our own list, a competitor").rejected  # comments are not terms
    assert with_file.check_text("porn").rejected  # the packaged lists still apply


def test_an_unreadable_blocked_terms_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="blocked-terms file"):
        LocalModeration(threshold=0.8, blocked_terms_file=str(tmp_path / "missing.txt"))


@pytest.mark.parametrize("threshold", [0.0, -0.1, 1.5])
def test_the_threshold_is_a_confidence(threshold: float) -> None:
    with pytest.raises(ValueError, match="threshold"):
        LocalModeration(threshold=threshold)


# --- images -------------------------------------------------------------------------------------


def encoded(img: Image.Image, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    img.save(out, format=fmt)
    return out.getvalue()


def test_large_images_are_downscaled_when_decoded() -> None:
    wide = encoded(Image.new("RGB", (4000, 3000), (250, 250, 250)), "JPEG")
    rgb = decode_image(wide)
    assert rgb.dtype == np.uint8
    assert rgb.shape == (768, MAX_DECODED_SIDE, 3)
    small = decode_image(encoded(Image.new("RGBA", (300, 200), (1, 2, 3, 0))))
    assert small.shape == (200, 300, 3)


def test_the_model_sees_a_black_padded_square_of_320() -> None:
    rgb = np.full((160, 320, 3), 255, np.uint8)  # wide: padded at the bottom
    blob = model_input(rgb)
    assert blob.shape == (1, 3, MODEL_SIZE, MODEL_SIZE)
    assert blob.dtype == np.float32
    assert blob[0, :, :150, :].min() == 1.0
    assert blob[0, :, 170:, :].max() == 0.0


@pytest.mark.parametrize(
    "data",
    [b"", b"not an image", encoded(Image.new("RGB", (64, 64)))[:60]],
    ids=["empty", "text", "truncated png"],
)
def test_an_undecodable_image_is_rejected_by_the_provider(
    moderation: LocalModeration, data: bytes
) -> None:
    with pytest.raises(ProviderRejected):
        moderation.check_image(ImageToModerate(data, "image/png"))


@pytest.mark.parametrize("size", [(20_000, 10_000), (10_000, 7_000)], ids=["bomb", "too big"])
def test_an_image_with_too_many_pixels_is_rejected_unread(
    moderation: LocalModeration, size: tuple[int, int]
) -> None:
    huge = encoded(Image.new("1", size))  # 200 and 70 Mpx in a few kilobytes
    with pytest.raises(ProviderRejected):
        moderation.check_image(ImageToModerate(huge, "image/png"))


def test_a_product_photo_is_allowed_at_any_size(moderation: LocalModeration) -> None:
    for photo in (product_photo(), product_photo(side=3000, fmt="PNG")):
        decision = moderation.check_image(ImageToModerate(photo, "image/png"))
        assert decision.verdict is Verdict.ALLOWED
        assert all(label.confidence < 0.8 for label in decision.labels)


def test_the_flagged_image_is_refused_with_every_label_once(moderation: LocalModeration) -> None:
    decision = moderation.check_image(ImageToModerate(flagged_image(), "image/png"))
    assert decision.verdict is Verdict.REJECTED
    names = [label.name for label in decision.labels]
    assert len(names) == len(set(names))
    top = decision.labels[0]
    assert top.name in BLOCKED_IMAGE_LABELS
    assert top.confidence >= 0.8
    assert [label.confidence for label in decision.labels] == sorted(
        (label.confidence for label in decision.labels), reverse=True
    )


def test_the_threshold_decides(moderation: LocalModeration) -> None:
    image = ImageToModerate(flagged_image(), "image/png")
    top = moderation.check_image(image).labels[0].confidence
    assert LocalModeration(threshold=top).check_image(image).rejected
    assert not LocalModeration(threshold=min(1.0, top + 0.01)).check_image(image).rejected


def test_concurrent_checks_share_the_model_and_agree(moderation: LocalModeration) -> None:
    image = ImageToModerate(flagged_image(), "image/png")
    with ThreadPoolExecutor(max_workers=4) as pool:
        decisions = list(pool.map(lambda _: moderation.check_image(image), range(8)))
    assert all(d == decisions[0] for d in decisions)
    assert decisions[0].rejected


def test_the_model_is_the_one_inside_the_nudenet_wheel() -> None:
    path = nudenet_model_path()
    assert path.name == "320n.onnx"
    assert path.parent.name == "nudenet"
    assert path.stat().st_size > 1_000_000


def test_an_animation_is_checked_frame_by_frame(moderation: LocalModeration) -> None:
    shirt = Image.open(io.BytesIO(product_photo(side=320)))
    flagged = Image.open(io.BytesIO(flagged_image()))
    out = io.BytesIO()  # an APNG: lossless, so the flagged frame stays what the model flags
    shirt.save(out, format="PNG", save_all=True, append_images=[shirt, flagged, shirt])
    animation = ImageToModerate(out.getvalue(), "image/png")
    assert not moderation.check_image(ImageToModerate(encoded(shirt), "image/png")).rejected
    assert moderation.check_image(animation).rejected


def test_long_animations_are_sampled_from_first_to_last_frame() -> None:
    frames = [Image.new("L", (8, 8), i * 10) for i in range(20)]
    out = io.BytesIO()
    frames[0].save(out, format="PNG", save_all=True, append_images=frames[1:])
    decoded = decode_frames(out.getvalue(), max_frames=8)
    assert len(decoded) == 8
    assert decoded[0][0, 0, 0] == 0
    assert decoded[-1][0, 0, 0] == 190
    assert len(decode_frames(out.getvalue(), max_frames=30)) == 20
