"""Image encoding: PNG with fdgen's own writer, JPEG through OpenCV.

PNGs (8-bit grey, 8-bit RGB and 1-bit two-level) are deflated by ``fdgen.kernels.deflate``:
run-length matches and one dynamic Huffman block. On fdgen's images (thin lines or points on
a flat background) that is 3x faster than OpenCV's PNG writer and smaller, and the bytes depend
only on the pixels, whatever the CPU or the zlib/libpng build. Every row uses filter "none".

Grey FractalDB images hold only two values (0 and 127). They are written as 1-bit palette
PNGs (palette [black, grey]): eight times less data to deflate than 8-bit grey, and about half
the size. Standard decoders return the same pixel values when asked for grey or RGB (PIL
``convert("L")`` or ``convert("RGB")``, webdataset's ``decode``, OpenCV's ``imread``); only
code that reads the raw palette indices sees 0 and 1.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from fdgen.lazy import lazy_module

cv2 = lazy_module("cv2")
kernels = lazy_module("fdgen.kernels.deflate")

FORMATS = ("png", "jpg")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ZLIB_HEADER = b"\x78\x01"  # deflate, 32 KiB window, "fastest" level hint; a multiple of 31
JPEG_QUALITY = 95
GREY, RGB, PALETTE = 0, 2, 3  # PNG colour types


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(width: int, height: int, depth: int, colour: int, rows: np.ndarray, palette=b"") -> bytes:
    """A PNG of ``rows`` (height, 1 + row bytes): each row's filter byte then its bytes."""
    data = rows.reshape(-1)
    idat = ZLIB_HEADER + kernels.deflate(data) + struct.pack(">I", zlib.adler32(data))
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    chunks = [PNG_SIGNATURE, _chunk(b"IHDR", header)]
    if palette:
        chunks.append(_chunk(b"PLTE", palette))
    chunks += [_chunk(b"IDAT", idat), _chunk(b"IEND", b"")]
    return b"".join(chunks)


def _with_filter_bytes(row_bytes: np.ndarray) -> np.ndarray:
    """(height, n) uint8 rows -> (height, 1 + n) with filter type 0 ("none") in front."""
    rows = np.empty((row_bytes.shape[0], row_bytes.shape[1] + 1), np.uint8)
    rows[:, 0] = 0
    rows[:, 1:] = row_bytes
    return rows


def two_level_png(image: np.ndarray, value: int) -> bytes:
    """1-bit palette PNG of a 2D image whose pixels are all 0 or ``value``."""
    rows = _with_filter_bytes(np.packbits(image, axis=1))  # every non-zero value maps to 1
    return two_level_png_rows(rows, image.shape[1], value)


def two_level_png_rows(rows: np.ndarray, width: int, value: int) -> bytes:
    """1-bit palette PNG of packed rows: (height, 1 + ceil(width / 8)) uint8, each a filter
    byte 0 then the pixels, 8 per byte, leftmost in the top bit (1 = ``value``, 0 = black)."""
    palette = bytes([0, 0, 0, value, value, value])
    return _png(width, rows.shape[0], 1, PALETTE, rows, palette)


def png(image: np.ndarray) -> bytes:
    """8-bit PNG of an (H, W) grey or (H, W, 3) RGB uint8 image."""
    height, width = image.shape[:2]
    colour = GREY if image.ndim == 2 else RGB
    rows = _with_filter_bytes(np.ascontiguousarray(image, np.uint8).reshape(height, -1))
    return _png(width, height, 8, colour, rows)


def encode_image(image: np.ndarray, fmt: str, two_level: int | None = None) -> bytes:
    """Encode an (H, W) or (H, W, C) uint8 RGB/grey image as ``fmt`` (png or jpg).

    ``two_level``: the one non-zero value of a grey image, enabling the 1-bit PNG path.
    """
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if fmt == "png":
        if two_level is not None and image.ndim == 2:
            return two_level_png(image, two_level)
        if image.ndim == 2 or image.shape[2] == 3:
            return png(image)
    if image.ndim == 3:
        image = image[:, :, ::-1]  # OpenCV expects BGR
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if fmt == "jpg" else []
    ok, buf = cv2.imencode("." + fmt, np.ascontiguousarray(image), params)
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {image.shape} image as {fmt}")
    return buf.tobytes()
