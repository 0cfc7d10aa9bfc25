"""Image encoding: PNG and JPEG through OpenCV, plus a fast path for two-level grey images.

Grey FractalDB images hold only two values (0 and 127). They are written as 1-bit palette
PNGs (palette [black, grey]): eight times less data to deflate than 8-bit grey (zlib with
run-length matching), so several times faster to encode and about half the size. Standard
decoders return the same pixel values when asked for grey or RGB (PIL ``convert("L")`` or
``convert("RGB")``, webdataset's ``decode``, OpenCV's ``imread``); only code that reads the
raw palette indices sees 0 and 1.
"""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np

FORMATS = ("png", "jpg")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ZLIB_LEVEL = 6
JPEG_QUALITY = 95


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _deflate(data: bytes) -> bytes:
    # Run-length matching suits two-level scanlines: smaller than level 1 and faster (measured).
    z = zlib.compressobj(ZLIB_LEVEL, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    return z.compress(data) + z.flush()


def two_level_png(image: np.ndarray, value: int) -> bytes:
    """1-bit palette PNG of a 2D image whose pixels are all 0 or ``value``."""
    height, width = image.shape
    rows = np.empty((height, (width + 7) // 8 + 1), np.uint8)
    rows[:, 0] = 0  # filter type "none" on every row
    rows[:, 1:] = np.packbits(image, axis=1)  # packbits maps every non-zero value to 1
    header = struct.pack(">IIBBBBB", width, height, 1, 3, 0, 0, 0)
    palette = bytes([0, 0, 0, value, value, value])
    return b"".join(
        (
            PNG_SIGNATURE,
            _chunk(b"IHDR", header),
            _chunk(b"PLTE", palette),
            _chunk(b"IDAT", _deflate(rows.tobytes())),
            _chunk(b"IEND", b""),
        )
    )


def encode_image(image: np.ndarray, fmt: str, two_level: int | None = None) -> bytes:
    """Encode an (H, W) or (H, W, C) uint8 RGB/grey image as ``fmt`` (png or jpg).

    ``two_level``: the one non-zero value of a grey image, enabling the 1-bit PNG path.
    """
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if fmt == "png" and two_level is not None and image.ndim == 2:
        return two_level_png(image, two_level)
    if image.ndim == 3:
        image = image[:, :, ::-1]  # OpenCV expects BGR
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if fmt == "jpg" else []
    ok, buf = cv2.imencode("." + fmt, np.ascontiguousarray(image), params)
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {image.shape} image as {fmt}")
    return buf.tobytes()
