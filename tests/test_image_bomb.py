"""A frame inside an uploaded zip whose header declares a huge image is refused from the header,
before any pixel is decoded (a 20000x20000 PNG of zeros compresses to a few MB and decodes to 1.2 GB)."""
from __future__ import annotations

import struct
import zipfile
import zlib

import cv2
import numpy as np
import pytest

from mer_core.preprocess import video
from mer_core.preprocess.video import ClipError, decode_clip, image_header_size


def _png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    idat = zlib.compress(b"\0" * 1024)
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
            + struct.pack(">I", len(idat)) + b"IDAT" + idat + struct.pack(">I", zlib.crc32(b"IDAT" + idat)))


def _jpeg_header(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof + b"\xff\xd9"


@pytest.mark.parametrize("fmt", ["png", "jpg", "bmp"])
def test_header_sizes_of_real_images(fmt):
    ok, data = cv2.imencode(f".{fmt}", np.zeros((37, 53, 3), np.uint8))
    assert ok and image_header_size(data.tobytes()) == (53, 37)


def test_header_sizes_of_crafted_headers():
    assert image_header_size(_png_header(20000, 20000)) == (20000, 20000)
    assert image_header_size(_jpeg_header(30000, 25000)) == (30000, 25000)
    assert image_header_size(b"not an image") is None


def test_a_bomb_in_a_zip_is_refused_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "clip.zip"
    small = cv2.imencode(".png", np.zeros((16, 16, 3), np.uint8))[1].tobytes()
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("img000.png", _png_header(20000, 20000))
        for i in range(1, 4):
            zf.writestr(f"img{i:03d}.png", small)
    decoded = []
    real = cv2.imdecode

    def watched(buf, flags):
        decoded.append(len(buf))
        return real(buf, flags)

    monkeypatch.setattr(video.cv2, "imdecode", watched)
    with pytest.raises(ClipError, match=r"img000\.png.*20000x20000.*header"):
        decode_clip(path)
    assert not decoded  # refused before any decode
