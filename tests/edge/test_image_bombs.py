"""edge.core.images against JPEG scan bombs (issue 33): start-of-scan markers counted before any decode, in the first
image only, and a file of more than MAX_JPEG_SCANS refused at once, by the device's reader as by the server's check."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image, ImageFile

from edge.core.errors import ImageError
from edge.core.images import MAX_JPEG_SCANS, check_decodes, jpeg_scans, read_image


def scan_bomb(side: int = 2000, copies: int = 5000) -> bytes:
    """A grayscale progressive JPEG whose first AC scan (with its Huffman table) is repeated `copies` times: a few hundred
    KB that cost a pass over every coefficient per copy (about 3 s to decode at 4 MP and 5,000 copies here)."""
    out = io.BytesIO()
    Image.new("L", (side, side), 0).save(out, "JPEG", progressive=True, quality=90)
    data = out.getvalue()
    scans = [m.start() for m in re.finditer(rb"\xff\xda", data)]
    tables = data.rfind(b"\xff\xc4", 0, scans[1])  # the DHT segment just before the second scan
    start = tables if tables > scans[0] else scans[1]
    return data[:scans[2]] + data[start:scans[2]] * copies + data[scans[2]:]


def jpeg(progressive: bool, mode: str = "RGB") -> bytes:
    pixels = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(out, "JPEG", progressive=progressive)
    return out.getvalue()


def with_app2(data: bytes, payload: bytes) -> bytes:
    """`data` with an APP2 segment holding `payload` right after SOI (where EXIF thumbnails and ICC profiles live)."""
    return data[:2] + b"\xff\xe2" + (len(payload) + 2).to_bytes(2, "big") + payload + data[2:]


@pytest.mark.parametrize("data,scans", [(jpeg(False), 1), (jpeg(True), 10), (jpeg(True, "L"), 6),
                                        (with_app2(jpeg(True), jpeg(True)), 10),  # a JPEG inside a segment is not counted
                                        (jpeg(True) + jpeg(True), 10)])  # a second image after EOI (as in MPO) is not counted
def test_scans_are_counted_in_the_first_image_only(data, scans):
    assert jpeg_scans(data, stop_after=1000) == scans


def decodes_counted(monkeypatch) -> list:
    """Every image Pillow decodes from now on (its class), in a list that grows as they happen."""
    decoded = []
    load = ImageFile.ImageFile.load

    def counted(image):
        decoded.append(type(image).__name__)
        return load(image)
    monkeypatch.setattr(ImageFile.ImageFile, "load", counted)
    return decoded


def test_a_scan_bomb_is_refused_by_the_reader_before_it_is_decoded(tmp_path, monkeypatch):
    path = tmp_path / "bomb.jpg"
    path.write_bytes(scan_bomb(copies=5000))
    decoded = decodes_counted(monkeypatch)
    for read in (read_image, check_decodes):
        with pytest.raises(ImageError, match=f"a JPEG with over {MAX_JPEG_SCANS} scans"):
            read(path)
    assert decoded == []  # a decode would take seconds: one pass over every coefficient per scan
    (tmp_path / "plain.jpg").write_bytes(jpeg(True))
    read_image(tmp_path / "plain.jpg")
    assert set(decoded) == {"JpegImageFile"}  # what is counted: a plain JPEG's decode


def test_a_file_at_the_bound_still_reads(tmp_path):
    path = tmp_path / "many.jpg"
    path.write_bytes(scan_bomb(side=64, copies=MAX_JPEG_SCANS - 6))  # 6 scans of its own + the copies: exactly the bound
    assert jpeg_scans(path.read_bytes(), stop_after=1000) == MAX_JPEG_SCANS
    assert read_image(path).shape == (64, 64, 3) and check_decodes(path) == ("JPEG", (64, 64))
