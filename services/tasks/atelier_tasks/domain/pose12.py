"""``model_pose12``: the scenes and garment categories a client may ask for, in ONE place.

Each entry carries what the server-side prompt says about it; adding a scene or a category is
adding one line here (validation, the prompts sent to a vendor model and the local generator
all read these tables). The prompts are never returned to clients.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from atelier_tasks.domain.params import Raw, choice, exactly_one

# scene → where the photo is taken (the HTTP contract names street, studio and indoor).
SCENES: Mapping[str, str] = {
    "street": "on a city street with shopfronts and soft daylight",
    "studio": "in a photo studio against a seamless light-grey backdrop with softbox lighting",
    "indoor": "in a bright, modern living room with natural window light",
}
DEFAULT_SCENE = "studio"

# category → how the garment is named and framed (shoes, dress, hoodie and coat by contract).
CATEGORIES: Mapping[str, str] = {
    "shoes": "the pair of shoes from the reference image, framed so that the shoes are clearly "
    "visible",
    "dress": "the dress from the reference image, showing its cut, length and drape",
    "hoodie": "the hoodie from the reference image, showing its fit, hood and cuffs",
    "coat": "the coat from the reference image, showing its cut, collar and length",
}
# Without a category the garment is described by the reference image alone.
ANY_GARMENT = "the garment from the reference image"

POSES = (
    "standing front",
    "standing three-quarter left",
    "standing three-quarter right",
    "walking towards camera",
    "side profile left",
    "side profile right",
    "hands on hips",
    "arms crossed",
    "sitting",
    "looking over shoulder",
    "leaning",
    "back view",
)

_TEMPLATE = (
    "full-body fashion photo of a model wearing {garment}, pose: {pose}, {scene}, "
    "sharp focus, true-to-garment colours and texture"
)


def pose12_prompts(params: Mapping[str, Any]) -> list[str]:
    """The twelve server-side prompts of a model_pose12 task (validated params)."""
    scene = SCENES[str(params.get("scene", DEFAULT_SCENE))]
    category = params.get("category")
    garment = CATEGORIES[str(category)] if category is not None else ANY_GARMENT
    return [_TEMPLATE.format(garment=garment, pose=pose, scene=scene) for pose in POSES]


def model_pose12_params(raw: Raw, keys: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {"scene": choice(raw, "scene", tuple(SCENES), DEFAULT_SCENE)}
    category = choice(raw, "category", tuple(CATEGORIES), None)
    if category is not None:
        out["category"] = category
    exactly_one(keys, "model_pose12 needs exactly one garment photo")
    return out


def pose12_prompt(params: Mapping[str, Any]) -> str:
    """What a vendor model is sent: the twelve prompts, one a line."""
    return "\n".join(pose12_prompts(params))
