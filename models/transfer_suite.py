"""A synthetic transfer suite, made on the fly from any packshot set: what shops and shelf cameras do to a pack.

Per packshot, a catalog reference of one of three kinds (the packshot as given,
a tight crop of the product front without its backdrop, that crop upscaled to
a high-resolution packshot) and queries under four conditions:

  shelf    pasted among neighbours on a shelf background at a shelf camera's size (packs 90–170 px
           high in a 640×480 frame), blurred, noisy, JPEG-compressed, cut out with a detector's jitter
  small    the same, packs 48–72 px high (a camera far from the shelf)
  sticker  a promo banner or price sticker over 10–25 % of the face, then the shelf
  light    a lighting and white-balance shift (per-channel gains, gamma), then the shelf

Colour-variant look-alikes: for some packs a twin with the same artwork and
other colours (hues rotated, or two colour channels swapped: a blue pack and
its orange twin) is its own product, queried the same way; one of each pair is
left out of the open-set catalog, so its queries must come back unknown rather
than named as the twin that stayed.

Pure functions of a seed: (seed, product, condition) reproduces a query, whatever else is generated.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cv2
import numpy as np

from models.shelf_scenes import cut_out_white

REFERENCE_KINDS = ("packshot", "tight", "upscaled")
CONDITIONS = ("shelf", "small", "sticker", "light")
FRAME = (640, 480)  # a shelf camera's frame, width × height
PACK_HEIGHT = {"small": (48, 72)}  # pixels in FRAME; other conditions: SHELF_HEIGHT
SHELF_HEIGHT = (90, 170)
UPSCALED_SIDE = 800  # longest side of an upscaled packshot
STICKER_SHARE = (0.10, 0.25)  # of the face's area
MIN_COLOURFUL = 0.2  # share of a pack's pixels that must be saturated for a colour twin to differ


@dataclass(frozen=True)
class Pack:
    product_id: str
    family: str  # a pack and its colour twin share one
    face: np.ndarray  # H x W x 3 BGR: the product alone, cut from its packshot
    mask: np.ndarray  # H x W uint8, 1 where the product is
    reference: np.ndarray  # the catalog image, of reference_kind
    reference_kind: str


@dataclass(frozen=True)
class Query:
    product_id: str
    condition: str
    crop: np.ndarray  # BGR, as a detector would hand it over


@dataclass(frozen=True)
class Suite:
    packs: tuple[Pack, ...]
    queries: tuple[Query, ...]
    left_out: frozenset[str]  # products the open-set catalog lacks: one twin of each pair


def _rng(seed: int, *keys: str | int) -> np.random.Generator:
    """A generator for one item, independent of every other item's draws."""
    return np.random.default_rng([seed, *(k if isinstance(k, int) else int(hashlib.sha256(k.encode()).hexdigest()[:15], 16)
                                          for k in keys)])


def _face(packshot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sprite = cut_out_white(packshot, convex=True)
    if sprite is None:  # no white backdrop: the whole image is the product
        return packshot.copy(), np.ones(packshot.shape[:2], np.uint8)
    return sprite.rgb, sprite.mask


def reference_image(packshot: np.ndarray, face: np.ndarray, kind: str) -> np.ndarray:
    """The catalog's image of a product: the packshot as given, its tight crop, or that crop upscaled."""
    if kind == "packshot":
        return packshot
    if kind == "tight":
        return face
    if kind == "upscaled":
        s = UPSCALED_SIDE / max(face.shape[:2])
        return cv2.resize(face, None, fx=s, fy=s, interpolation=cv2.INTER_CUBIC)
    raise ValueError(f"reference kind {kind!r}: expected one of {', '.join(REFERENCE_KINDS)}")


def colourful(face: np.ndarray, mask: np.ndarray) -> float:
    """Share of the pack's pixels with a clear hue (saturation and value over 60 of 255)."""
    hsv = cv2.cvtColor(face, cv2.COLOR_BGR2HSV)
    return float(((hsv[..., 1] > 60) & (hsv[..., 2] > 60))[mask > 0].mean())


def colour_twin(image: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """The same artwork in other colours: hues rotated by 60–120° (greys and whites kept), or red and blue swapped."""
    if kind == "swap":
        return image[..., ::-1].copy()
    if kind != "hue":
        raise ValueError(f"twin kind {kind!r}: expected hue or swap")
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
    shift = int(rng.integers(30, 61))  # OpenCV hue is degrees / 2
    hue = hsv[..., 0].astype(np.int32)
    hsv[..., 0] = np.where(hsv[..., 1] > 40, (hue + shift) % 180, hue).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def sticker(face: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A promo banner across the face or a round price sticker, covering 10–25 % of the pack."""
    out = face.copy()
    h, w = mask.shape
    area = float(rng.uniform(*STICKER_SHARE)) * float(mask.sum())
    colour = [(40, 40, 220), (30, 210, 250), (250, 250, 250), (40, 160, 40)][int(rng.integers(4))]
    drawn = np.zeros((h, w), np.uint8)
    if rng.random() < 0.5:  # a banner: the face's width, a band of height area / width
        band = int(np.clip(area / w, 4, h - 1))
        y = int(rng.integers(0, max(h - band, 1)))
        cv2.rectangle(drawn, (0, y), (w - 1, y + band), 1, -1)
        text_at, scale = (int(w * 0.08), y + int(band * 0.75)), band / 40
    else:
        r = int(np.clip(np.sqrt(area / np.pi), 4, min(h, w) // 2))
        cx, cy = int(rng.integers(r, max(w - r, r + 1))), int(rng.integers(r, max(h - r, r + 1)))
        cv2.circle(drawn, (cx, cy), r, 1, -1)
        text_at, scale = (cx - int(r * 0.8), cy + int(r * 0.3)), r / 40
    drawn &= mask
    out[drawn > 0] = colour
    ink = (0, 0, 0) if sum(colour) > 400 else (255, 255, 255)
    cv2.putText(out, "-30%", text_at, cv2.FONT_HERSHEY_SIMPLEX, max(scale, 0.3), ink, max(int(scale * 2), 1), cv2.LINE_AA)
    return np.where(mask[..., None] > 0, out, face)


def light(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Other lighting and white balance: a brightness gain, a gamma, a gain per colour channel."""
    gains = rng.uniform(0.6, 1.3) * rng.uniform(0.8, 1.2, 3)
    gamma = rng.uniform(0.8, 1.25)
    x = (image.astype(np.float32) / 255.0) ** gamma * gains
    return np.clip(x * 255.0, 0, 255).astype(np.uint8)


def _background(backgrounds: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    w, h = FRAME
    if backgrounds:
        image = backgrounds[int(rng.integers(len(backgrounds)))]
        return cv2.GaussianBlur(cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA), (0, 0), 2.0)
    frame = np.empty((h, w, 3), np.uint8)
    frame[:] = rng.integers(60, 200, 3).astype(np.uint8)
    for y in range(int(rng.integers(40, 120)), h, int(rng.integers(120, 200))):  # shelf boards
        frame[y:y + 12] = (200, 200, 205)
    return frame


def _paste(frame: np.ndarray, face: np.ndarray, mask: np.ndarray, x: int, y: int) -> None:
    h, w = mask.shape
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, frame.shape[1]), min(y + h, frame.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    region = frame[y0:y1, x0:x1]
    m = mask[y0 - y:y1 - y, x0 - x:x1 - x, None] > 0
    region[:] = np.where(m, face[y0 - y:y1 - y, x0 - x:x1 - x], region)


def _scaled(face: np.ndarray, mask: np.ndarray, height: int) -> tuple[np.ndarray, np.ndarray]:
    s = height / face.shape[0]
    size = (max(int(round(face.shape[1] * s)), 4), height)
    return cv2.resize(face, size, interpolation=cv2.INTER_AREA), cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)


def _camera(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.5:
        frame = cv2.GaussianBlur(frame, (0, 0), rng.uniform(0.5, 1.3))
    else:  # horizontal motion blur, a pan
        k = int(rng.integers(3, 8))
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2] = 1.0 / k
        frame = cv2.filter2D(frame, -1, kernel)
    noisy = frame.astype(np.float32) + rng.normal(0, rng.uniform(1, 4), frame.shape)
    frame = np.clip(noisy, 0, 255).astype(np.uint8)
    ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(55, 86))])
    return cv2.imdecode(jpeg, cv2.IMREAD_COLOR)


def shelf_crop(face: np.ndarray, mask: np.ndarray, neighbours: list[tuple[np.ndarray, np.ndarray]], height: tuple[int, int],
               backgrounds: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """The pack among neighbours on a shelf, seen by a shelf camera, cut out by a detector's box (±6 % per side)."""
    frame = _background(backgrounds, rng)
    pack, pack_mask = _scaled(face, mask, int(rng.integers(*height)))
    ph, pw = pack_mask.shape
    x = int(rng.integers(pw // 2, max(FRAME[0] - pw - pw // 2, pw // 2 + 1)))
    base = int(rng.integers(ph + 4, FRAME[1] - 4))  # the shelf board the packs stand on
    left, right = x, x + pw
    for n, (other, other_mask) in enumerate(neighbours):
        o, om = _scaled(other, other_mask, int(ph * rng.uniform(0.8, 1.15)))
        gap = int(rng.integers(1, 8))
        if n % 2 == 0:
            left -= om.shape[1] + gap
            _paste(frame, o, om, left, base - om.shape[0])
        else:
            _paste(frame, o, om, right + gap, base - om.shape[0])
            right += gap + om.shape[1]
    _paste(frame, pack, pack_mask, x, base - ph)
    frame = _camera(frame, rng)
    jitter = rng.uniform(-0.06, 0.06, 4) * np.array([pw, ph, pw, ph])
    x1, y1 = int(max(x + jitter[0], 0)), int(max(base - ph + jitter[1], 0))
    x2, y2 = int(min(x + pw + jitter[2], FRAME[0])), int(min(base + jitter[3], FRAME[1]))
    return frame[y1:y2, x1:x2].copy()


def _query(pack: Pack, condition: str, neighbours: list[Pack], backgrounds: list[np.ndarray], seed: int) -> Query:
    rng = _rng(seed, pack.product_id, condition)
    face = pack.face
    if condition == "sticker":
        face = sticker(face, pack.mask, rng)
    elif condition not in CONDITIONS:
        raise ValueError(f"condition {condition!r}: expected one of {', '.join(CONDITIONS)}")
    picked = [neighbours[int(i)] for i in rng.choice(len(neighbours), size=min(2, len(neighbours)), replace=False)]
    crop = shelf_crop(face, pack.mask, [(n.face, n.mask) for n in picked], PACK_HEIGHT.get(condition, SHELF_HEIGHT),
                      backgrounds, rng)
    if condition == "light":  # the light and the camera's white balance change the whole scene, not the pack alone
        crop = light(crop, rng)
    return Query(pack.product_id, condition, crop)


def make_packs(packshots: dict[str, np.ndarray], seed: int = 0, twins: int = 8) -> tuple[list[Pack], frozenset[str]]:
    """A pack per packshot (reference kinds in turn, seeded), and `twins` colour twins of the most colourful ones;
    returns the packs and the twin of each pair left out of the open-set catalog (alternately the original)."""
    ids = sorted(packshots)
    kinds = _rng(seed, "kinds").permutation(len(ids))
    packs, colour = [], {}
    for i, pid in enumerate(ids):
        face, mask = _face(packshots[pid])
        kind = REFERENCE_KINDS[int(kinds[i]) % len(REFERENCE_KINDS)]
        packs.append(Pack(pid, pid, face, mask, reference_image(packshots[pid], face, kind), kind))
        colour[pid] = colourful(face, mask)
    eligible = [pid for pid in ids if colour[pid] >= MIN_COLOURFUL]
    chosen = sorted(_rng(seed, "twins").choice(eligible, size=min(twins, len(eligible)), replace=False).tolist())
    left_out = set()
    by_id = {p.product_id: p for p in packs}
    for n, pid in enumerate(chosen):
        base, kind = by_id[pid], ("swap", "hue")[n % 2]
        twin_id = f"{pid}.{kind}-twin"  # a valid product id: a catalog build skips any other
        rng = _rng(seed, twin_id)
        twin_face = colour_twin(base.face, kind, rng)
        twin_reference = colour_twin(base.reference, kind, _rng(seed, twin_id))  # the same draw: the same hue shift
        packs.append(Pack(twin_id, pid, twin_face, base.mask, twin_reference, base.reference_kind))
        left_out.add(twin_id if n % 4 < 2 else pid)
    return packs, frozenset(left_out)


def make_suite(packshots: dict[str, np.ndarray], backgrounds: list[np.ndarray] | None = None, seed: int = 0, twins: int = 8,
               conditions: tuple[str, ...] = CONDITIONS) -> Suite:
    """The suite for a set of packshots (product id → BGR image); `backgrounds`: shelf photos (else plain shelves)."""
    packs, left_out = make_packs(packshots, seed, twins)
    queries = []
    for pack in packs:
        others = [p for p in packs if p.family != pack.family]
        queries += [_query(pack, condition, others, list(backgrounds or []), seed) for condition in conditions]
    return Suite(tuple(packs), tuple(queries), left_out)


def contact_sheet(suite: Suite, rows: int = 12, cell: int = 120) -> np.ndarray:
    """One row per pack (twins included): its reference, then its queries, each fitted into a cell × cell square."""
    by_pack: dict[str, list[np.ndarray]] = {}
    for q in suite.queries:
        by_pack.setdefault(q.product_id, []).append(q.crop)
    twins = [p for p in suite.packs if p.family != p.product_id]
    shown = [p for t in twins for p in suite.packs if p.product_id in (t.family, t.product_id)][: rows]
    shown += [p for p in suite.packs if p not in shown][: max(rows - len(shown), 0)]
    columns = 1 + max((len(v) for v in by_pack.values()), default=0)
    sheet = np.full((len(shown) * cell, columns * cell, 3), 255, np.uint8)
    for r, pack in enumerate(shown):
        for c, image in enumerate([pack.reference, *by_pack.get(pack.product_id, [])]):
            s = (cell - 4) / max(image.shape[:2])
            small = cv2.resize(image, None, fx=s, fy=s, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
            y, x = r * cell + 2, c * cell + 2
            sheet[y:y + small.shape[0], x:x + small.shape[1]] = small
        tag = pack.reference_kind + (" OUT" if pack.product_id in suite.left_out else "")
        cv2.putText(sheet, tag, (4, r * cell + cell - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 255), 1, cv2.LINE_AA)
    return sheet
