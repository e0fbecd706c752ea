"""Reading untrusted image files: size and pixel caps, truncation caught, EXIF orientation applied."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from edge.core.errors import ImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
MAX_PIXELS = 40_000_000  # a 40 MP photo; a 20,000 × 20,000 PNG (decompression bomb) is refused
MAX_BYTES = 50 << 20


def read_image(path: Path | str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A BGR uint8 array, or ImageError saying why the file is not a usable image."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImageError(f"{path}: cannot read: {exc.strerror}") from None
    if size == 0:
        raise ImageError(f"{path}: empty file (0 bytes)")
    if size > MAX_BYTES:
        raise ImageError(f"{path}: {size >> 20} MB is over the {MAX_BYTES >> 20} MB limit for an image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size  # from the header: nothing decoded yet
                if width * height > max_pixels:
                    raise ImageError(f"{path}: {width}×{height} pixels is over the limit of {max_pixels:,} pixels")
                image.load()  # raises on truncated data
                rgb = ImageOps.exif_transpose(image).convert("RGB")
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{path}: over the limit of {max_pixels:,} pixels ({exc})") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"{path}: not a readable image: {exc}") from None
    return np.ascontiguousarray(np.asarray(rgb)[:, :, ::-1])


def centre_crop(image: np.ndarray, fraction: float) -> np.ndarray:
    """The middle `fraction` of each side (a view): the product region of a photo that centres one product."""
    if not 0 < fraction <= 1:
        raise ValueError(f"crop fraction must be in (0, 1], got {fraction}")
    h, w = image.shape[:2]
    ch, cw = max(1, round(h * fraction)), max(1, round(w * fraction))
    y, x = (h - ch) // 2, (w - cw) // 2
    return image[y:y + ch, x:x + cw]
