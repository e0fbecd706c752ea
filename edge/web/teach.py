"""What the installer's page sends to teach the device, checked at the boundary, and what the page needs answered.

    GET  /api/unknowns                tracks the device could not name lately (newest first), each with crop URLs
    GET  /unknown/<track>/<k>.jpg     one of a track's sharpest crops (a product box, never the frame)
    GET  /api/products?q=TEXT         catalog products whose name or SKU holds TEXT (accents and case ignored), at most 20
    POST /api/unknowns/<track>        JSON: {"action": "product", "product_id": ID}
                                            {"action": "new", "name": NAME, "sku": SKU}
                                            {"action": "not_a_product"}
                                      optional "crops": [k, …] (default: all of the track's), "by": who confirms,
                                      "override": true to teach crops the device's own check disputes (409)

The daemon implements Teacher (edge.daemon.teaching); the web server only parses, checks and answers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Protocol

from edge.core.text import printable

ACTIONS = ("product", "new", "not_a_product")
MAX_BODY = 4096
MAX_TEXT = 128


class LessonError(ValueError):
    """A request the page should not have sent: its message is the 4xx answer's."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Lesson:
    track_id: int
    action: str
    product_id: str | None = None
    name: str | None = None
    sku: str | None = None
    crops: tuple[int, ...] | None = None  # None: all the track's crops
    by: str = "installer page"
    override: bool = False  # teach it although edge.core.reference_check disputes it


class Teacher(Protocol):
    def unknowns(self) -> list[dict]: ...
    def crop(self, track_id: int, k: int) -> bytes | None: ...
    def products(self, query: str) -> list[dict]: ...
    def teach(self, lesson: Lesson) -> dict:
        """Apply it; raises LessonError (404: no such track or product; 409: a clash) for the page to show."""
        ...


def parse_lesson(track_id: int, body: bytes) -> Lesson:
    """The POST body as a Lesson, or LessonError(400/422) saying what is wrong with it."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise LessonError(400, f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise LessonError(400, "the body must be a JSON object")
    unknown = set(data) - {"action", "product_id", "name", "sku", "crops", "by", "override"}
    if unknown:
        raise LessonError(422, f"unknown fields {sorted(unknown)[:5]}: send action, product_id, name, sku, crops, by, override")
    if not isinstance(data.get("override", False), bool):
        raise LessonError(422, "override must be true or false")
    action = data.get("action")
    if action not in ACTIONS:
        raise LessonError(422, f"action must be one of {', '.join(ACTIONS)}, got {str(action)[:40]!r}")
    crops = data.get("crops")
    if crops is not None and not (isinstance(crops, list) and 0 < len(crops) <= 16
                                  and all(isinstance(k, int) and not isinstance(k, bool) and 0 <= k < 16 for k in crops)):
        raise LessonError(422, "crops must be a list of 1 to 16 crop numbers (0, 1, …) of the track")
    texts = {key: _text(data, key) for key in ("product_id", "name", "sku", "by")}
    if action == "product" and not texts["product_id"]:
        raise LessonError(422, "action product needs product_id (the catalog product this is)")
    if action == "new" and not (texts["name"] and texts["sku"]):
        raise LessonError(422, "action new needs the new product's name and sku")
    return Lesson(track_id, action, texts["product_id"], texts["name"], texts["sku"],
                  tuple(dict.fromkeys(crops)) if crops is not None else None, texts["by"] or "installer page", data.get("override", False))


def _text(data: dict, key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise LessonError(422, f"{key} must be a string")
    value = value.strip()
    if len(value) > MAX_TEXT:
        raise LessonError(422, f"{key} is over {MAX_TEXT} characters")
    if printable(value) != value:
        raise LessonError(422, f"{key} holds a control or direction character ({printable(value)[:60]}): send plain text")
    return value or None
