"""Synthetic shelf scenes with product boxes, for training a class-agnostic product detector.

No permissively licensed box-labelled shelf dataset exists here, so scenes are
composed: products (catalog packshots with their white backdrop removed, and
package-shaped sprites — cartons, boxes, bottles, cans, pots, bags — with
made-up prints or recoloured parts of real packs) in shelf rows with facings
and back rows, held in a hand in front of a shelf, or grouped on a table, over
shelf-like backgrounds; then the camera: light, colour cast, motion blur,
glare, noise, JPEG. A product is labelled when at least `MIN_VISIBLE` of it shows (the box
is its visible extent); a hand in front of a package does not shrink its box.

Pure functions of a numpy Generator: (seed, index) reproduces a scene. Small sprite and camera-effect functions
first; the scene composer that uses them comes last.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from models.augment import SKIN_TONES, blur, colour, glare, jpeg

MIN_VISIBLE = 0.45
MIN_BOX_PX = 5
ASPECTS = ((16, 9), (4, 3), (1, 1), (3, 4), (9, 16))
PACKAGE_KINDS = ("carton", "box", "bottle", "can", "pot", "bag")
KIND_WEIGHTS = (0.15, 0.15, 0.3, 0.15, 0.1, 0.15)  # drinks shelves are mostly bottles
LIQUIDS = ((20, 20, 30), (10, 30, 60), (20, 120, 230), (40, 160, 60), (60, 200, 220), (180, 180, 180), (30, 30, 150))  # BGR


@dataclass(frozen=True)
class Sprite:
    rgb: np.ndarray  # H x W x 3 uint8 BGR
    mask: np.ndarray  # H x W uint8, 1 where the product is


@dataclass
class Sources:
    """What scenes are made of: product cut-outs, and real store photos (blurred, as backgrounds)."""

    cutouts: list[Sprite]
    photos: list[np.ndarray]


def cut_out_white(image: np.ndarray, convex: bool = False) -> Sprite | None:
    """A packshot on a white backdrop → the product and its mask (largest non-white region, holes filled).

    `convex`: the product is the convex hull of every part that is not backdrop. A white carton's white print
    touches the backdrop, so by colour alone the pack falls apart into pieces (measured on the Grocery Store
    Dataset's packshots: 12 of 31 packaged products kept 50–75 % of their pack, Oatly's oatghurt only its side
    panel); cartons, pots and bottles are convex, or nearly."""
    near_white = (image.min(axis=2) > 232).astype(np.uint8)
    h, w = near_white.shape
    # the backdrop is the near-white region connected to the border; white inside the product stays
    flood = near_white.copy()
    fill = np.zeros((h + 2, w + 2), np.uint8)
    for x, y in ((0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1)):
        if flood[y, x] == 1:
            cv2.floodFill(flood, fill, (x, y), 2)
    mask = (flood != 2).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
    if count < 2:
        return None
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[biggest, cv2.CC_STAT_AREA] < 0.05 * h * w:
        return None
    if convex:  # every part of some size: specks of dust or JPEG noise on the backdrop are not the product
        parts = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= 0.002 * h * w) + 1
        points = cv2.findNonZero(np.isin(labels, parts).astype(np.uint8))
        mask = np.zeros((h, w), np.uint8)
        cv2.fillConvexPoly(mask, cv2.convexHull(points), 1)
        x, y, bw, bh = cv2.boundingRect(mask)
        return Sprite(image[y:y + bh, x:x + bw].copy(), mask[y:y + bh, x:x + bw])
    x, y, bw, bh = stats[biggest, :4]
    mask = (labels == biggest).astype(np.uint8)[y:y + bh, x:x + bw]
    return Sprite(image[y:y + bh, x:x + bw].copy(), mask)


def _random_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(0, 256, 3))


def _printed_design(rng: np.random.Generator, cutouts: list[Sprite], w: int, h: int) -> np.ndarray:
    """A made-up package print: a base colour, bands, a logo, lines of lettering, sometimes a product photo."""
    tex = np.empty((h, w, 3), np.uint8)
    tex[:] = _random_colour(rng)
    for _ in range(int(rng.integers(0, 4))):
        y0 = int(rng.integers(0, h))
        tex[y0:y0 + int(h * rng.uniform(0.05, 0.35))] = _random_colour(rng)
    if cutouts and rng.random() < 0.5:  # the fruit or product pictured on the pack
        sprite = cutouts[rng.integers(len(cutouts))]
        side = max(4, int(w * rng.uniform(0.4, 0.9)))
        scale = side / max(sprite.mask.shape)
        size = (max(2, int(sprite.mask.shape[1] * scale)), max(2, int(sprite.mask.shape[0] * scale)))
        rgb, mask = cv2.resize(sprite.rgb, size), cv2.resize(sprite.mask, size, interpolation=cv2.INTER_NEAREST)
        x, y = int(rng.integers(0, max(1, w - size[0]))), int(rng.integers(h // 4, max(h // 4 + 1, h - size[1])))
        region = tex[y:y + size[1], x:x + size[0]]
        m = mask[:region.shape[0], :region.shape[1]].astype(bool)
        region[m] = rgb[:region.shape[0], :region.shape[1]][m]
    if rng.random() < 0.6:
        cv2.ellipse(tex, (int(rng.integers(0, w)), int(rng.integers(0, h // 2 + 1))),
                    (max(2, int(w * rng.uniform(0.1, 0.4))), max(2, int(h * rng.uniform(0.03, 0.12)))), 0, 0, 360,
                    _random_colour(rng), -1)
    letters = "ABCDEFGHIJKLMNOPRSTUVWXYZ0123456789 "
    for _ in range(int(rng.integers(1, 6))):
        text = "".join(letters[i] for i in rng.integers(0, len(letters), int(rng.integers(3, 12))))
        scale = max(0.2, w / 160 * rng.uniform(0.5, 1.5))
        cv2.putText(tex, text, (int(rng.integers(-w // 4, w // 2 + 1)), int(rng.integers(h // 8, h))),
                    int(rng.choice([0, 2, 3, 4])), scale, _random_colour(rng), max(1, int(scale * 2)), cv2.LINE_AA)
    return tex


def _packaging_crop(rng: np.random.Generator, cutouts: list[Sprite], w: int, h: int) -> np.ndarray:
    """Part of a real pack's print (a catalog packshot), recoloured."""
    rgb = cutouts[rng.integers(len(cutouts))].rgb
    ph, pw = rgb.shape[:2]
    cw, ch = max(4, int(pw * rng.uniform(0.5, 1.0))), max(4, int(ph * rng.uniform(0.5, 1.0)))
    x, y = int(rng.integers(0, pw - cw + 1)), int(rng.integers(0, ph - ch + 1))
    tex = cv2.resize(rgb[y:y + ch, x:x + cw], (w, h), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(tex, cv2.COLOR_BGR2HSV)
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + int(rng.integers(0, 180))) % 180
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def _texture(rng: np.random.Generator, cutouts: list[Sprite], w: int, h: int) -> np.ndarray:
    """A package's print. Never a crop of a store photo: a rectangle of shelf would teach that any patch of
    shelf is a product (the first detector trained that way boxed whole shelf sections)."""
    if cutouts and rng.random() < 0.4:
        return _packaging_crop(rng, cutouts, w, h)
    return _printed_design(rng, cutouts, w, h)


def package_sprite(rng: np.random.Generator, cutouts: list[Sprite], height: int = 160) -> Sprite:
    """A package-shaped product with a made-up or recoloured print."""
    kind = PACKAGE_KINDS[rng.choice(len(PACKAGE_KINDS), p=KIND_WEIGHTS)]
    aspect = {"carton": (0.35, 0.6), "box": (0.5, 1.6), "bottle": (0.25, 0.4), "can": (0.45, 0.65),
              "pot": (0.8, 1.5), "bag": (0.6, 0.9)}[kind]
    h = height
    w = max(8, int(h * rng.uniform(*aspect)))
    tex = _texture(rng, cutouts, w, h)
    mask = np.zeros((h, w), np.uint8)
    if kind == "carton":
        top = int(h * rng.uniform(0.08, 0.15))
        mask[top:] = 1
        cv2.fillPoly(mask, [np.array([[0, top], [w // 6, 0], [w - 1 - w // 6, 0], [w - 1, top]])], 1)
        if rng.random() < 0.6:  # screw cap
            cw = max(3, w // 4)
            cv2.rectangle(tex, (w // 2 - cw // 2, 0), (w // 2 + cw // 2, top), tuple(int(c) for c in rng.integers(0, 256, 3)), -1)
    elif kind == "box":
        mask[:] = 1
    elif kind == "bottle":
        neck, shoulder = int(h * rng.uniform(0.12, 0.2)), int(h * rng.uniform(0.12, 0.22))
        nw = max(3, int(w * rng.uniform(0.3, 0.45)))
        mask[neck + shoulder:] = 1
        cv2.fillPoly(mask, [np.array([[0, neck + shoulder], [w // 2 - nw // 2, neck], [w // 2 + nw // 2, neck],
                                      [w - 1, neck + shoulder]])], 1)
        mask[:neck + 1, w // 2 - nw // 2:w // 2 + nw // 2 + 1] = 1
        if rng.random() < 0.5:  # rounded shoulders
            cv2.ellipse(mask, (w // 2, neck + shoulder), (w // 2, shoulder), 0, 180, 360, 1, -1)
        # the drink seen through the plastic, a printed label band around the middle, a cap
        liquid = np.array(LIQUIDS[rng.integers(len(LIQUIDS))], np.float32) * rng.uniform(0.7, 1.2)
        body = np.clip(liquid + rng.normal(0, 8, (h, w, 3)), 0, 255).astype(np.uint8)
        y0 = int(neck + shoulder + h * rng.uniform(0.0, 0.25))
        y1 = int(min(h, y0 + h * rng.uniform(0.2, 0.55)))
        body[y0:y1] = tex[y0:y1]
        body[: max(2, neck // 2)] = rng.integers(0, 256, 3)
        tex = body
    elif kind == "can":
        r = max(2, int(w * 0.08))
        cv2.rectangle(mask, (0, r), (w - 1, h - 1 - r), 1, -1)
        cv2.ellipse(mask, (w // 2, r), (w // 2, r), 0, 0, 360, 1, -1)
        cv2.ellipse(mask, (w // 2, h - 1 - r), (w // 2, r), 0, 0, 360, 1, -1)
        tex[: 2 * r] = tex[: 2 * r] // 2 + 100  # metallic lid
    elif kind == "pot":
        inset = int(w * rng.uniform(0.05, 0.15))
        cv2.fillPoly(mask, [np.array([[0, 0], [w - 1, 0], [w - 1 - inset, h - 1], [inset, h - 1]])], 1)
    else:  # bag: a pillow with a sealed top
        cv2.rectangle(mask, (0, h // 10), (w - 1, h - 1), 1, -1)
        cv2.ellipse(mask, (w // 2, h // 10), (w // 2, h // 10), 0, 180, 360, 1, -1)
    if kind in ("bottle", "can") or rng.random() < 0.3:  # a cylinder's shading and highlight
        x = np.linspace(-1, 1, w, dtype=np.float32)
        shade = 0.55 + 0.45 * np.sqrt(np.clip(1 - x ** 2, 0, 1))
        shade += 0.35 * np.exp(-((x - rng.uniform(-0.6, 0.6)) ** 2) / 0.01)
        tex = np.clip(tex.astype(np.float32) * shade[None, :, None], 0, 255).astype(np.uint8)
    return Sprite(tex, mask)


def _background(rng: np.random.Generator, photos: list[np.ndarray], w: int, h: int) -> tuple[np.ndarray, list[int]]:
    """A shelf-like background and the y of each shelf board's top (products stand there)."""
    kind = rng.random()
    if kind < 0.35:  # a real store photo, blurred beyond recognising its products
        photo = photos[rng.integers(len(photos))]
        bg = cv2.GaussianBlur(cv2.resize(photo, (w, h)), (0, 0), rng.uniform(6, 14))
    else:
        base = rng.integers(20, 250, 3).astype(np.float32)
        ramp = np.linspace(rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0), h, dtype=np.float32)[:, None, None]
        bg = np.clip(base * ramp * np.ones((h, w, 3), np.float32), 0, 255).astype(np.uint8)
        noise = rng.normal(0, rng.uniform(2, 12), (h // 8 + 1, w // 8 + 1, 3)).astype(np.float32)
        bg = np.clip(bg + cv2.resize(noise, (w, h)), 0, 255).astype(np.uint8)
    levels = int(rng.integers(1, 5))
    edge = max(4, int(h * rng.uniform(0.03, 0.07)))
    boards, board_colour = [], rng.integers(0, 256, 3)
    for i in range(levels):
        y = int(h * (i + 1) / levels * rng.uniform(0.9, 1.0)) - edge
        boards.append(y)
        if kind < 0.85:  # the board's front edge with price tags
            cv2.rectangle(bg, (0, y), (w, y + edge), tuple(int(c) for c in board_colour), -1)
            for x in range(int(rng.integers(0, 40)), w, int(rng.integers(40, 140))):
                tw = int(rng.integers(15, 45))
                cv2.rectangle(bg, (x, y + 1), (x + tw, y + edge - 1), (int(rng.integers(180, 256)),) * 2 + (int(rng.integers(150, 256)),), -1)
                cv2.line(bg, (x + 2, y + edge // 2), (x + tw - 2, y + edge // 2), (30, 30, 30), 1)
    return bg, boards


def _resize_sprite(sprite: Sprite, height: int, rng: np.random.Generator, stretch: float = 0.15) -> Sprite:
    h, w = sprite.mask.shape
    height = max(4, height)
    width = max(3, int(w * height / h * rng.uniform(1 - stretch, 1 + stretch)))
    return Sprite(cv2.resize(sprite.rgb, (width, height), interpolation=cv2.INTER_AREA),
                  cv2.resize(sprite.mask, (width, height), interpolation=cv2.INTER_NEAREST))


def _any_sprite(rng: np.random.Generator, sources: Sources) -> Sprite:
    if sources.cutouts and rng.random() < 0.45:
        sprite = sources.cutouts[rng.integers(len(sources.cutouts))]
        tinted = colour(sprite.rgb, rng) if rng.random() < 0.7 else sprite.rgb
        return Sprite(tinted, sprite.mask)
    return package_sprite(rng, sources.cutouts)


class _Canvas:
    """The scene being composed, and which product owns each pixel (to measure how much of each shows)."""

    def __init__(self, image: np.ndarray):
        self.image = image
        self.owner = np.zeros(image.shape[:2], np.int32)
        self.areas: list[int] = [0]  # per product id (0: background), its whole area

    def paste(self, sprite: Sprite, x: int, y: int, darken: float = 1.0) -> None:
        h, w = sprite.mask.shape
        H, W = self.owner.shape
        x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
        if x1 <= x0 or y1 <= y0:
            return
        m = sprite.mask[y0 - y:y1 - y, x0 - x:x1 - x].astype(bool)
        rgb = sprite.rgb[y0 - y:y1 - y, x0 - x:x1 - x]
        if darken != 1.0:
            rgb = (rgb * darken).astype(np.uint8)
        region = self.image[y0:y1, x0:x1]
        region[m] = rgb[m]
        pid = len(self.areas)
        self.owner[y0:y1, x0:x1][m] = pid
        self.areas.append(int(sprite.mask.sum()))  # including what the frame cuts off

    def boxes(self) -> np.ndarray:
        """Visible boxes [N, 4] (x1, y1, x2, y2) of the products that show enough."""
        ids, counts = np.unique(self.owner, return_counts=True)
        out = []
        for pid, count in zip(ids, counts):
            if pid == 0 or count < MIN_VISIBLE * self.areas[pid]:
                continue
            ys, xs = np.nonzero(self.owner == pid)
            x1, y1, x2, y2 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
            if x2 - x1 >= MIN_BOX_PX and y2 - y1 >= MIN_BOX_PX:
                out.append((x1, y1, x2, y2))
        return np.array(out, np.float32).reshape(-1, 4)


def _shelf_rows(canvas: _Canvas, boards: list[int], rng: np.random.Generator, sources: Sources) -> None:
    H, W = canvas.owner.shape
    tops = [0] + boards[:-1]
    for top, floor in zip(tops, boards):
        level_h = floor - top
        if level_h < 12:
            continue
        # a back row shows above the front one (the camera looks down a little): only its tops, usually, which
        # are not labelled, so the front product's box must stop at its own cap
        back_row = rng.random() < 0.6
        lift = int(level_h * rng.uniform(0.04, 0.3))
        for row in (("back", "front") if back_row else ("front",)):
            x = int(rng.integers(-W // 10, W // 10))
            row_h = level_h * rng.uniform(0.55, 0.95) * (0.9 if row == "back" else 1.0)
            while x < W:
                sprite = _any_sprite(rng, sources)
                facings = int(rng.integers(1, 5))
                sized = _resize_sprite(sprite, int(row_h * rng.uniform(0.85, 1.0)), rng, stretch=0.1)
                for _ in range(facings):
                    w = sized.mask.shape[1]
                    y = floor - sized.mask.shape[0] - (lift if row == "back" else 0)
                    canvas.paste(sized, x, y, darken=rng.uniform(0.35, 0.8) if row == "back" else 1.0)
                    x += int(w * rng.uniform(0.85, 1.12))
                    if x >= W:
                        break
                x += int(rng.integers(0, max(2, W // 30)))


def _held(canvas: _Canvas, rng: np.random.Generator, sources: Sources) -> None:
    """One product large in front, as a shopper holds it to the camera, often with the hand over it."""
    H, W = canvas.owner.shape
    sprite = _any_sprite(rng, sources)
    sized = _resize_sprite(sprite, int(H * rng.uniform(0.35, 0.95)), rng)
    if sized.mask.shape[1] > W:
        sized = _resize_sprite(sized, int(sized.mask.shape[0] * W / sized.mask.shape[1] * 0.95), rng, stretch=0)
    h, w = sized.mask.shape
    x = int(W / 2 - w / 2 + rng.normal(0, W * 0.12))
    y = int(H / 2 - h / 2 + rng.normal(0, H * 0.12))
    canvas.paste(sized, x, y)
    if rng.random() < 0.7:  # the hand is drawn, not owned: the package's box stays its outline
        tone = SKIN_TONES[rng.integers(len(SKIN_TONES))]
        side = x if rng.random() < 0.5 else x + w
        cy = int(y + h * rng.uniform(0.4, 0.9))
        cv2.ellipse(canvas.image, (side, cy), (int(w * rng.uniform(0.25, 0.5)), int(h * rng.uniform(0.12, 0.25))),
                    float(rng.uniform(-30, 30)), 0, 360, tone, -1)


def _table(canvas: _Canvas, rng: np.random.Generator, sources: Sources) -> None:
    """A group of products standing or lying on a table, nearer ones in front of farther ones; a phone-like object
    that is not a product."""
    H, W = canvas.owner.shape
    cx, cy = rng.uniform(0.2, 0.8) * W, rng.uniform(0.3, 0.8) * H
    placed = []
    for _ in range(int(rng.integers(1, 9))):
        sprite = _resize_sprite(_any_sprite(rng, sources), int(H * rng.uniform(0.15, 0.6)), rng)
        if rng.random() < 0.3:  # lying on its side
            sprite = Sprite(np.ascontiguousarray(np.rot90(sprite.rgb, rng.choice([1, 3]))),
                            np.ascontiguousarray(np.rot90(sprite.mask)))
        h, w = sprite.mask.shape
        x, y = int(cx + rng.normal(0, 0.15 * W) - w / 2), int(cy + rng.normal(0, 0.12 * H) - h / 2)
        placed.append((y + h, x, y, sprite))
    for _, x, y, sprite in sorted(placed, key=lambda p: p[0]):  # the lower its base, the nearer the camera
        canvas.paste(sprite, x, y)
    if rng.random() < 0.4:
        pw, ph = int(W * rng.uniform(0.08, 0.16)), int(H * rng.uniform(0.05, 0.1))
        px, py = int(rng.integers(0, W - pw)), int(rng.integers(0, H - ph))
        cv2.rectangle(canvas.image, (px, py), (px + pw, py + ph), (int(rng.integers(0, 60)),) * 3, -1)


def compose_scene(rng: np.random.Generator, sources: Sources, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One scene, long side `size`: image (BGR uint8) and product boxes [N, 4] xyxy in its pixels."""
    aw, ah = ASPECTS[rng.integers(len(ASPECTS))]
    W, H = (size, int(size * ah / aw)) if aw >= ah else (int(size * aw / ah), size)
    bg, boards = _background(rng, sources.photos, W, H)
    canvas = _Canvas(bg)
    layout = rng.random()
    if layout < 0.6:
        _shelf_rows(canvas, boards, rng, sources)
    elif layout < 0.85:
        if rng.random() < 0.6:
            _shelf_rows(canvas, boards, rng, sources)
            canvas.image = cv2.GaussianBlur(canvas.image, (0, 0), rng.uniform(0.5, 3))
        _held(canvas, rng, sources)
    else:
        _table(canvas, rng, sources)
    image, boxes = canvas.image, canvas.boxes()
    image = colour(image, rng)
    if rng.random() < 0.45:
        image = blur(image, rng)
    if rng.random() < 0.15:
        k = int(rng.integers(7, 21))  # the strong vertical smear of a moving hand-held camera
        kernel = np.zeros((k, 1), np.float32) + 1 / k
        image = cv2.filter2D(image, -1, kernel if rng.random() < 0.6 else kernel.T)
    if rng.random() < 0.2:
        image = glare(image, rng)
    if rng.random() < 0.3:
        image = np.clip(image + rng.normal(0, rng.uniform(2, 10), image.shape), 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        image = jpeg(image, rng)
    return image, boxes
