"""Training augmentation that imitates shelf cameras: perspective, scale, blur, glare,
colour shift, occlusion (hands, price tags), busy backgrounds, JPEG noise.

Pure functions of (image, numpy Generator), so a seed reproduces a training set.
"""

from __future__ import annotations

import cv2
import numpy as np

SKIN_TONES = [(80, 110, 170), (60, 90, 140), (120, 150, 200), (40, 60, 100), (100, 140, 190)]  # BGR


def perspective(image: np.ndarray, rng: np.random.Generator, strength: float = 0.12) -> np.ndarray:
    h, w = image.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    jitter = rng.uniform(-strength, strength, (4, 2)) * [w, h]
    dst = (src + jitter).astype(np.float32)
    dst -= dst.min(0)
    size = (int(np.ceil(dst[:, 0].max())) + 1, int(np.ceil(dst[:, 1].max())) + 1)
    return cv2.warpPerspective(image, cv2.getPerspectiveTransform(src, dst), size, borderMode=cv2.BORDER_CONSTANT,
                               borderValue=(255, 255, 255))


def place_on_background(image: np.ndarray, background: np.ndarray, rng: np.random.Generator, out: int) -> np.ndarray:
    """The product at 45–95 % of a square canvas cut from a real store photo."""
    bh, bw = background.shape[:2]
    side = int(min(bh, bw) * rng.uniform(0.5, 1.0))
    y, x = rng.integers(0, bh - side + 1), rng.integers(0, bw - side + 1)
    canvas = cv2.resize(background[y:y + side, x:x + side], (out, out), interpolation=cv2.INTER_AREA)
    h, w = image.shape[:2]
    scale = out * rng.uniform(0.45, 0.95) / max(h, w)
    ph, pw = max(2, int(h * scale)), max(2, int(w * scale))
    product = cv2.resize(image, (pw, ph), interpolation=cv2.INTER_AREA)
    y0, x0 = rng.integers(0, out - ph + 1), rng.integers(0, out - pw + 1)
    # white studio background of catalog shots becomes transparent
    mask = (product.min(axis=2) < 235).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))[..., None]
    region = canvas[y0:y0 + ph, x0:x0 + pw]
    canvas[y0:y0 + ph, x0:x0 + pw] = np.where(mask.astype(bool), product, region)
    return canvas


def colour(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    gains = rng.uniform(0.8, 1.2, 3)  # white balance
    alpha, beta = rng.uniform(0.7, 1.3), rng.uniform(-30, 30)  # contrast, brightness
    out = image.astype(np.float32) * gains * alpha + beta
    hsv = cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_BGR2HSV).astype(np.int16)
    hsv[..., 0] = (hsv[..., 0] + rng.integers(-6, 7)) % 180
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.7, 1.3), 0, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)


def blur(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.5:
        k = int(rng.choice([3, 5, 7]))
        return cv2.GaussianBlur(image, (k, k), 0)
    k = int(rng.choice([5, 7, 9]))  # motion blur along a random direction
    kernel = np.zeros((k, k), np.float32)
    kernel[k // 2] = 1 / k
    rot = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), float(rng.uniform(0, 180)), 1)
    return cv2.filter2D(image, -1, cv2.warpAffine(kernel, rot, (k, k)))


def glare(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape[:2]
    mask = np.zeros((h, w), np.float32)
    centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
    axes = (int(w * rng.uniform(0.05, 0.25)), int(h * rng.uniform(0.05, 0.3)))
    cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), max(axes) / 2 + 1)[..., None] * rng.uniform(0.5, 0.9)
    return (image * (1 - mask) + 255 * mask).astype(np.uint8)


def occlude(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A hand (skin-coloured ellipse from an edge) or a price tag / neighbour (rectangle)."""
    out = image.copy()
    h, w = image.shape[:2]
    if rng.random() < 0.5:
        tone = SKIN_TONES[rng.integers(len(SKIN_TONES))]
        centre = (int(rng.choice([0, w])), int(rng.integers(h // 4, h)))
        cv2.ellipse(out, centre, (int(w * rng.uniform(0.15, 0.35)), int(h * rng.uniform(0.1, 0.2))),
                    float(rng.uniform(-40, 40)), 0, 360, tone, -1)
    else:
        rw, rh = int(w * rng.uniform(0.1, 0.35)), int(h * rng.uniform(0.05, 0.2))
        x, y = int(rng.integers(0, w - rw + 1)), int(rng.integers(0, h - rh + 1))
        cv2.rectangle(out, (x, y), (x + rw, y + rh), tuple(int(c) for c in rng.integers(0, 256, 3)), -1)
    return out


def jpeg(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(35, 90))])
    return cv2.imdecode(data, cv2.IMREAD_COLOR) if ok else image


def random_resized_crop(image: np.ndarray, rng: np.random.Generator, out: int, scale=(0.55, 1.0)) -> np.ndarray:
    h, w = image.shape[:2]
    s = np.sqrt(rng.uniform(*scale))
    ch, cw = max(2, int(h * s)), max(2, int(w * s * rng.uniform(0.85, 1.15)))
    cw = min(cw, w)
    y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    return cv2.resize(image[y:y + ch, x:x + cw], (out, out), interpolation=cv2.INTER_AREA)


def catalog_view(image: np.ndarray, background: np.ndarray, rng: np.random.Generator, out: int) -> np.ndarray:
    """A catalog (studio) image made to look like a shelf-camera crop."""
    view = perspective(image, rng) if rng.random() < 0.8 else image
    view = place_on_background(view, background, rng, out)
    return shelf_effects(view, rng)


def photo_view(image: np.ndarray, rng: np.random.Generator, out: int) -> np.ndarray:
    """A real store photo, lightly varied."""
    # never mirrored: printed packaging is not symmetric
    return shelf_effects(random_resized_crop(image, rng, out, scale=(0.35, 1.0)), rng, strength=0.5)


def shelf_effects(view: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    view = colour(view, rng)
    if rng.random() < 0.4 * strength:
        view = blur(view, rng)
    if rng.random() < 0.3 * strength:
        view = glare(view, rng)
    if rng.random() < 0.3 * strength:
        view = occlude(view, rng)
    if rng.random() < 0.5:
        view = jpeg(view, rng)
    return view


def catalog_variant(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An extra catalog view for retrieval: the product as a shelf camera might see it, at its own size."""
    view = perspective(image, rng, strength=0.08) if rng.random() < 0.7 else image
    h, w = view.shape[:2]
    view = cv2.resize(random_resized_crop(view, rng, max(h, w), scale=(0.7, 1.0)), (w, h), interpolation=cv2.INTER_AREA)
    return shelf_effects(view, rng, strength=0.7)
