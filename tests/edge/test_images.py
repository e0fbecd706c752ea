"""Untrusted image files: each kind of bad file gets its own clear error."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest

from edge.core.errors import ImageError
from edge.core.images import read_image
from tests.conftest import SAMPLES


def png_header_only(path, width: int, height: int) -> None:
    """A PNG whose header claims width × height, with a token of pixel data (a decompression-bomb shape)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def test_reads_a_real_jpeg_as_bgr():
    path = sorted(SAMPLES.glob("*.jpg"))[0]
    image = read_image(path)
    assert image.shape == (720, 1280, 3) and image.dtype == np.uint8
    assert np.abs(image.astype(int) - cv2.imread(str(path)).astype(int)).mean() < 2


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty.jpg: empty file \(0 bytes\)"):
        read_image(path)


def test_truncated_jpeg(tmp_path):
    data = sorted(SAMPLES.glob("*.jpg"))[0].read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="cut.jpg: not a readable image: .*truncated"):
        read_image(path)


def test_huge_png_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    png_header_only(path, 20_000, 20_000)
    with pytest.raises(ImageError, match="bomb.png: .*over the limit of 40,000,000 pixels"):
        read_image(path)
    png_header_only(path, 8000, 8000)  # under Pillow's own bomb limit: our cap still refuses it
    with pytest.raises(ImageError, match="bomb.png: 8000×8000 pixels is over the limit of 40,000,000 pixels"):
        read_image(path)


def test_text_file_named_like_an_image(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("not an image")
    with pytest.raises(ImageError, match="notes.jpg: not a readable image"):
        read_image(path)


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="cannot read"):
        read_image(tmp_path / "absent.jpg")
