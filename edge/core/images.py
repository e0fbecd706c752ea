"""Reading untrusted image files: size, pixel and JPEG scan caps, truncation caught, EXIF orientation applied;
and the shaping every stage shares (a centre crop, a resize to a longest side)."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

from edge.core.errors import ImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
MAX_PIXELS = 40_000_000  # a 40 MP photo; a 20,000 × 20,000 PNG (decompression bomb) is refused
MAX_BYTES = 50 << 20
# Every scan of a progressive JPEG is one more pass over all of its coefficients, so the decode time grows with the
# scan count while the file hardly grows: 10,000 empty scans made a 738 KB file cost 30 s (issue 33). libjpeg's own
# progressive script writes 10 scans (6 for grayscale), baseline files have 1 (3 when not interleaved), and encoders
# that tune their scripts (mozjpeg, jpegtran -scans) stay well under 30; libjpeg-turbo's djpeg offers -maxscans for
# the same reason, with no limit by default. 64 keeps every real file and bounds a 40 MP decode to a fraction of a second.
MAX_JPEG_SCANS = 64
JPEG_FORMATS = ("JPEG", "MPO")
NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")  # in entropy-coded data FF is followed by 00 (stuffing) or a RST


def jpeg_scans(data: bytes, stop_after: int = MAX_JPEG_SCANS) -> int:
    """Start-of-scan segments (FFDA) in the first image of a JPEG, walked segment by segment, so an EXIF thumbnail or a
    second image appended after EOI does not count; stops counting past `stop_after`. A malformed structure ends the
    count there (the decoder then says what is wrong with it)."""
    scans, pos = 0, 2  # after SOI
    while pos + 4 <= len(data) and scans <= stop_after:
        if data[pos] != 0xFF:
            break
        code = data[pos + 1]
        if code == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if code == 0xD9:  # EOI
            break
        if 0xD0 <= code <= 0xD7 or code == 0x01:  # RSTn, TEM: no length
            pos += 2
            continue
        end = pos + 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
        if code == 0xDA:
            scans += 1
            found = NEXT_MARKER.search(data, end)
            end = found.start() if found else len(data)
        pos = end
    return scans


@contextmanager
def _opened(path: Path, max_pixels: int) -> Iterator[Image.Image]:
    """The file opened, with what its header tells checked (bytes, pixels, JPEG scans) and nothing decoded yet; what
    the caller's block then raises while decoding becomes an ImageError too."""
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
                if image.format in JPEG_FORMATS and jpeg_scans(path.read_bytes()) > MAX_JPEG_SCANS:
                    raise ImageError(f"{path}: a JPEG with over {MAX_JPEG_SCANS} scans (a normal one has at most about 10); "
                                     "save it again as a baseline or standard progressive JPEG")
                yield image
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{path}: over the limit of {max_pixels:,} pixels ({exc})") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"{path}: not a readable image: {exc}") from None


def read_image(path: Path | str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A BGR uint8 array, or ImageError saying why the file is not a usable image."""
    with _opened(Path(path), max_pixels) as image:
        image.load()  # raises on truncated data
        rgb = ImageOps.exif_transpose(image).convert("RGB")
    return np.ascontiguousarray(np.asarray(rgb)[:, :, ::-1])


def check_decodes(path: Path | str, max_pixels: int = MAX_PIXELS) -> tuple[str, tuple[int, int]]:
    """(format, (width, height)) of a file that `read_image` reads, found by decoding all of it and keeping nothing;
    ImageError otherwise. For checking uploads: the decode holds the image at its own size (one byte per pixel for
    grayscale), not the RGB and BGR copies `read_image` makes."""
    with _opened(Path(path), max_pixels) as image:
        image.load()  # raises on truncated data
        image.getexif()  # read_image applies the orientation: a broken EXIF block shows here
        return image.format, image.size


def centre_crop(image: np.ndarray, fraction: float) -> np.ndarray:
    """The middle `fraction` of each side (a view): the product region of a photo that centres one product."""
    if not 0 < fraction <= 1:
        raise ValueError(f"crop fraction must be in (0, 1], got {fraction}")
    h, w = image.shape[:2]
    ch, cw = max(1, round(h * fraction)), max(1, round(w * fraction))
    y, x = (h - ch) // 2, (w - cw) // 2
    return image[y:y + ch, x:x + cw]


def resize_longest(image: np.ndarray, longest: int, upscale: bool = False) -> np.ndarray:
    """Scale so the longest side is `longest`; smaller images are enlarged only with `upscale`."""
    h, w = image.shape[:2]
    scale = longest / max(h, w)
    if scale == 1 or (scale > 1 and not upscale):
        return image
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=interpolation)
