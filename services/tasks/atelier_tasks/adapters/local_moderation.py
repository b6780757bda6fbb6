"""Moderation offline: word lists for text, NudeNet's detector for images (the ``local`` adapter).

Text: the packaged lists (``moderation_terms/en.txt`` and ``zh.txt``) plus an optional file of the
operator's own, in the same format (one term per line, ``#`` comments, ``[category]`` sections,
an ``[allow]`` section of harmless phrases that contain a term). The text is normalised first —
NFKC (full-width forms become half-width), casefold, zero-width characters dropped, letters
spelled out one by one ("s e x", "s.e.x") joined, light leetspeak undone ("s3x") — then Latin
terms are matched as whole words (an English ending allowed) and other terms, Chinese, as
substrings. A match rejects with ``blocked_term:<category>`` at confidence 1.0.

Images: NudeNet's detector (``320n.onnx``, shipped inside the ``nudenet`` wheel; nothing is
downloaded), run by onnxruntime with one thread. The session is built once per process, on the
first image. The image is decoded from memory with Pillow (up to 8 frames of an animation),
downscaled when large, padded to a square and resized to 320×320 as NudeNet does; a check
rejects when an explicit label reaches the threshold in any frame, and reports every label found
(its highest confidence).
"""

from __future__ import annotations

import importlib.util
import io
import re
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from atelier_ports.errors import ProviderRejected
from atelier_tasks.application.ports.moderation import (
    ImageToModerate,
    ModerationDecision,
    ModerationLabel,
    Verdict,
)

PROVIDER = "local"

# NudeNet 3.4's output classes, in the model's order (nudenet/nudenet.py, pinned in pyproject).
NUDENET_LABELS: tuple[str, ...] = (
    "FEMALE_GENITALIA_COVERED",
    "FACE_FEMALE",
    "BUTTOCKS_EXPOSED",
    "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_BREAST_EXPOSED",
    "ANUS_EXPOSED",
    "FEET_EXPOSED",
    "BELLY_COVERED",
    "FEET_COVERED",
    "ARMPITS_COVERED",
    "ARMPITS_EXPOSED",
    "FACE_MALE",
    "BELLY_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "ANUS_COVERED",
    "FEMALE_BREAST_COVERED",
    "BUTTOCKS_COVERED",
)
# The labels that reject an image; the others (faces, covered parts, feet) are reported only.
BLOCKED_IMAGE_LABELS = frozenset(
    {
        "FEMALE_GENITALIA_EXPOSED",
        "MALE_GENITALIA_EXPOSED",
        "FEMALE_BREAST_EXPOSED",
        "BUTTOCKS_EXPOSED",
        "ANUS_EXPOSED",
    }
)
MODEL_SIZE = 320  # the model's input side
MAX_DECODED_SIDE = 1024  # larger images are downscaled before anything else
MAX_FRAMES = 8  # of an animation (GIF, WebP, APNG), the frames checked at most
MAX_PIXELS = 64_000_000  # a bigger image (after a JPEG's reduced-scale decode) is refused unread
_MIN_SCORE = 0.2  # NudeNet's own cut-offs: a box below this is no detection ...
_NMS_SCORE, _NMS_IOU = 0.25, 0.45  # ... and its non-maximum suppression

_PACKAGED_TERM_FILES = ("en.txt", "zh.txt")
_ALLOW = "allow"
_CUSTOM = "custom"  # the category of an operator's term given before any section


# --- text ---------------------------------------------------------------------------------------

_ZERO_WIDTH = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u2060-\u206f\ufeff]"
)
# A Latin "word" after casefolding: letters, digits and the two symbols leetspeak uses for letters.
_LATIN_TOKEN = re.compile(r"[0-9a-z@$\u00df-\u024f]+")
_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}
)
_HAS_LETTER = re.compile(r"[a-z\u00df-\u024f]")
_LATIN_LETTERS = re.compile(r"[0-9a-z\u00df-\u024f]+")
_LATIN_TERM = re.compile(r"[0-9a-z\u00df-\u024f ]+")
_ENDINGS = "(?:s|es|ed|er|ers|ing)?"
_NOT_ALPHANUMERIC = re.compile(r"[\W_]+")  # \w: what str.isalnum() accepts, and "_"
_SPELLED_OUT_RUN = 3  # this many one-letter tokens in a row are read as one word ("s e x")


def normalise(text: str) -> str:
    """NFKC, casefold and without zero-width characters: the form both matchers start from."""
    return _ZERO_WIDTH.sub("", unicodedata.normalize("NFKC", text).casefold())


def _latin_tokens(text: str) -> tuple[list[str], list[str]]:
    """The Latin words of normalised ``text`` (runs of one-letter words joined into one), and those
    runs alone; leetspeak undone in every word that has a letter."""
    words: list[str] = []
    runs: list[str] = []
    run: list[str] = []
    for token in [*_LATIN_TOKEN.findall(text), ""]:
        if len(token) == 1:
            run.append(token)
            continue
        if len(run) >= _SPELLED_OUT_RUN:
            words.append("".join(run))
            runs.append(words[-1])
        else:
            words.extend(run)
        run = []
        if token:
            words.append(token)
    return [_unleet(w) for w in words], [_unleet(r) for r in runs]


def _unleet(word: str) -> str:
    return word.translate(_LEET) if _HAS_LETTER.search(word) else word


def latin_words(text: str) -> str:
    """The Latin words of normalised ``text``, one space apart and one at each end: spelled-out
    letters joined ("s.e.x" → "sex"), leetspeak undone in words that have a letter ("s3x")."""
    return " " + " ".join(_latin_tokens(text)[0]) + " "


def spelled_out(text: str) -> str:
    """The letters of normalised ``text`` spelled out one by one ("a s e x video" → "asex"), each
    run apart: terms are looked for anywhere inside a run, since a one-letter word before or after
    the spelled term ("a", "i") joins it."""
    return " ".join(_latin_tokens(text)[1])


def compact(text: str) -> str:
    """Normalised ``text`` with only its letters and digits: every space, punctuation mark,
    symbol and separator between characters dropped ("色 情", "色.情" → "色情")."""
    return _NOT_ALPHANUMERIC.sub("", text)


@dataclass
class _TermList:
    """Terms by category, and harmless phrases, read from one or more files."""

    terms: dict[str, set[str]] = field(default_factory=dict)
    allowed: set[str] = field(default_factory=set)

    def read(self, lines: Iterable[str], *, default_category: str) -> None:
        category = default_category
        for raw in lines:
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            if line.startswith("[") and line.endswith("]"):
                category = line[1:-1].strip().casefold() or default_category
                continue
            term = _term(line)
            if not term:
                continue
            if category == _ALLOW:
                self.allowed.add(term)
            else:
                self.terms.setdefault(category, set()).add(term)


def _term(line: str) -> str:
    """A term as its matcher reads it: Latin words one space apart ("gore-tex" → "gore tex"),
    anything else (Chinese) compacted."""
    text = normalise(line)
    letters = compact(text)
    if _LATIN_LETTERS.fullmatch(letters):
        return " ".join(_unleet(t) for t in _LATIN_TOKEN.findall(text))  # as the text will be
    return letters


def _is_latin(term: str) -> bool:
    return _LATIN_TERM.fullmatch(term) is not None


def _alternation(terms: Iterable[str]) -> str:
    return "|".join(re.escape(t) for t in sorted(terms, key=lambda t: (-len(t), t)))


def _words_pattern(terms: Iterable[str], *, endings: bool) -> re.Pattern[str] | None:
    """Whole words of ``latin_words`` output; the words of a term written apart or together."""
    alternatives = sorted(
        (" ?".join(re.escape(w) for w in t.split(" ")) for t in terms),
        key=lambda p: (-len(p), p),
    )
    if not alternatives:
        return None
    suffix = _ENDINGS if endings else ""
    return re.compile(f"(?<= )(?:{'|'.join(alternatives)}){suffix}(?= )")


def _substring_pattern(terms: Iterable[str]) -> re.Pattern[str] | None:
    terms = list(terms)
    return re.compile(_alternation(terms)) if terms else None


@dataclass(frozen=True)
class _TextMatcher:
    latin: dict[str, re.Pattern[str]]  # whole words of latin_words()
    spelled: dict[str, re.Pattern[str]]  # Latin terms anywhere inside spelled_out()
    other: dict[str, re.Pattern[str]]  # substrings of compact()
    allowed_latin: re.Pattern[str] | None
    allowed_other: re.Pattern[str] | None

    @classmethod
    def build(cls, terms: _TermList) -> _TextMatcher:
        latin: dict[str, re.Pattern[str]] = {}
        spelled: dict[str, re.Pattern[str]] = {}
        other: dict[str, re.Pattern[str]] = {}
        for category, words in sorted(terms.terms.items()):
            if pattern := _words_pattern([w for w in words if _is_latin(w)], endings=True):
                latin[category] = pattern
            if pattern := _substring_pattern(w.replace(" ", "") for w in words if _is_latin(w)):
                spelled[category] = pattern
            if pattern := _substring_pattern(w for w in words if not _is_latin(w)):
                other[category] = pattern
        return cls(
            latin=latin,
            spelled=spelled,
            other=other,
            allowed_latin=_words_pattern([w for w in terms.allowed if _is_latin(w)], endings=False),
            allowed_other=_substring_pattern(w for w in terms.allowed if not _is_latin(w)),
        )

    def categories(self, text: str) -> list[str]:
        """The categories of the blocked terms found in ``text``, sorted."""
        text = normalise(text)
        words = latin_words(text)
        if self.allowed_latin is not None:
            words = self.allowed_latin.sub(" ", words)
        letters = compact(text)
        if self.allowed_other is not None:
            letters = self.allowed_other.sub("\x00", letters)
        found = {c for c, p in self.latin.items() if p.search(words)}
        if runs := spelled_out(text):
            found |= {c for c, p in self.spelled.items() if p.search(runs)}
        found |= {c for c, p in self.other.items() if p.search(letters)}
        return sorted(found)


def _load_terms(blocked_terms_file: str | None) -> _TermList:
    terms = _TermList()
    folder = resources.files("atelier_tasks.adapters").joinpath("moderation_terms")
    for name in _PACKAGED_TERM_FILES:
        text = folder.joinpath(name).read_text(encoding="utf-8")
        terms.read(text.splitlines(), default_category=_CUSTOM)
    if blocked_terms_file:
        try:
            text = Path(blocked_terms_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read the blocked-terms file {blocked_terms_file}") from exc
        terms.read(text.splitlines(), default_category=_CUSTOM)
    return terms


# --- images -------------------------------------------------------------------------------------

FloatArray = npt.NDArray[np.float32]
ByteArray = npt.NDArray[np.uint8]


def decode_frames(
    data: bytes, *, max_side: int = MAX_DECODED_SIDE, max_frames: int = MAX_FRAMES
) -> list[ByteArray]:
    """``data`` as RGB arrays (height × width × 3), no side longer than ``max_side``: one per
    frame checked — every frame of an animation up to ``max_frames``, else that many spread
    evenly from the first to the last. Raises ProviderRejected when it is no image Pillow can read,
    or too large."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.draft("RGB", (max_side, max_side))  # JPEG: decode at a reduced scale already
            if img.size[0] * img.size[1] > MAX_PIXELS:
                raise ProviderRejected("the image has too many pixels to check")
            count = int(getattr(img, "n_frames", 1))
            checked = min(count, max_frames)
            step = (count - 1) / max(1, checked - 1)
            picks = sorted({round(i * step) for i in range(checked)})
            frames: list[Image.Image] = []
            for index in picks:
                img.seek(index)
                frames.append(img.convert("RGB"))
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
        raise ProviderRejected("the image cannot be decoded") from exc
    for frame in frames:
        if max(frame.size) > max_side:
            frame.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    return [np.asarray(frame, dtype=np.uint8) for frame in frames]


def decode_image(data: bytes, *, max_side: int = MAX_DECODED_SIDE) -> ByteArray:
    """The first frame of ``data`` as :func:`decode_frames` reads it."""
    return decode_frames(data, max_side=max_side, max_frames=1)[0]


def model_input(rgb: ByteArray) -> FloatArray:
    """NudeNet's preprocessing: pad right and bottom to a square with black, resize to 320×320
    (bilinear), scale to 0..1, channels first, a batch of one."""
    height, width = rgb.shape[:2]
    side = max(height, width)
    square = cv2.copyMakeBorder(
        rgb, 0, side - height, 0, side - width, cv2.BORDER_CONSTANT, value=(0, 0, 0)
    )
    if side != MODEL_SIZE:
        square = cv2.resize(square, (MODEL_SIZE, MODEL_SIZE), interpolation=cv2.INTER_LINEAR)
    blob = square.astype(np.float32) / np.float32(255.0)
    return np.ascontiguousarray(blob.transpose(2, 0, 1)[np.newaxis])


def detections(output: FloatArray) -> dict[str, float]:
    """NudeNet's postprocessing of one image's output (1 × 22 × anchors: box, then one score per
    class): each anchor's best class if ≥ 0.2, boxes de-duplicated by NMS; the highest confidence
    per label."""
    rows = output[0].T  # anchors × 22
    scores = rows[:, 4:]
    class_ids = scores.argmax(axis=1)
    best = scores.max(axis=1)
    keep = np.flatnonzero(best >= _MIN_SCORE)
    if keep.size == 0:
        return {}
    cx, cy, w, h = (rows[keep, i] for i in range(4))
    boxes = np.stack([cx - w / 2, cy - h / 2, w, h], axis=1)
    chosen = cv2.dnn.NMSBoxes(
        [(float(x), float(y), float(bw), float(bh)) for x, y, bw, bh in boxes],
        [float(s) for s in best[keep]],
        _NMS_SCORE,
        _NMS_IOU,
    )
    found: dict[str, float] = {}
    for i in np.asarray(chosen, dtype=np.int64).reshape(-1):
        label = NUDENET_LABELS[int(class_ids[keep[i]])]
        found[label] = max(found.get(label, 0.0), float(best[keep[i]]))
    return found


def nudenet_model_path() -> Path:
    """``320n.onnx`` inside the installed ``nudenet`` package (found without importing it)."""
    spec = importlib.util.find_spec("nudenet")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the nudenet package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "320n.onnx"


class _NudeNetModel:
    """The ONNX session of NudeNet's detector: one per process, built on first use."""

    _lock = threading.Lock()
    _instance: _NudeNetModel | None = None

    def __init__(self) -> None:
        import onnxruntime

        path = nudenet_model_path()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # many processes share few cores
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session: Any = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name

    @classmethod
    def get(cls) -> _NudeNetModel:
        if cls._instance is None:
            with cls._lock:
                if cls._instance is None:
                    cls._instance = cls()
        return cls._instance

    def detect(self, rgb: ByteArray) -> dict[str, float]:
        outputs: Sequence[FloatArray] = self._session.run(None, {self._input: model_input(rgb)})
        return detections(outputs[0])


# --- the adapter --------------------------------------------------------------------------------


class LocalModeration:
    """The ``Moderation`` port offline (see the module docstring)."""

    def __init__(self, *, threshold: float, blocked_terms_file: str | None = None) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError("the moderation threshold is a confidence in (0, 1]")
        self._threshold = threshold
        self._text = _TextMatcher.build(_load_terms(blocked_terms_file))

    @property
    def name(self) -> str:
        return PROVIDER

    def check_text(self, text: str) -> ModerationDecision:
        categories = self._text.categories(text)
        if not categories:
            return ModerationDecision(Verdict.ALLOWED, PROVIDER)
        labels = tuple(ModerationLabel(f"blocked_term:{c}", 1.0) for c in categories)
        return ModerationDecision(Verdict.REJECTED, PROVIDER, labels)

    def check_image(self, image: ImageToModerate) -> ModerationDecision:
        model = _NudeNetModel.get()
        found: dict[str, float] = {}
        for frame in decode_frames(image.data):
            for name, confidence in model.detect(frame).items():
                found[name] = max(found.get(name, 0.0), confidence)
        labels = tuple(
            ModerationLabel(name, confidence)
            for name, confidence in sorted(found.items(), key=lambda item: (-item[1], item[0]))
        )
        rejected = any(
            label.name in BLOCKED_IMAGE_LABELS and label.confidence >= self._threshold
            for label in labels
        )
        return ModerationDecision(
            Verdict.REJECTED if rejected else Verdict.ALLOWED, PROVIDER, labels
        )
