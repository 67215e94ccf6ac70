"""A minimal PNG encoder (8-bit, no interlace, no filtering) for image summaries: zlib + struct."""
from __future__ import annotations

import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> gray, gray + alpha, RGB, RGBA


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of a uint8 array shaped (height, width, channels), channels 1 to 4."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] not in COLOR_TYPES:
        raise ValueError(f"expected uint8 pixels (H, W, 1..4), got {pixels.dtype} {pixels.shape}")
    height, width, channels = pixels.shape
    if height == 0 or width == 0:
        raise ValueError(f"an image needs at least one pixel, got {height}x{width}")
    rows = np.zeros((height, 1 + width * channels), dtype=np.uint8)  # each row starts with filter type 0
    rows[:, 1:] = pixels.reshape(height, width * channels)
    header = struct.pack(">IIBBBBB", width, height, 8, COLOR_TYPES[channels], 0, 0, 0)
    pixels_chunk = _chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
    return SIGNATURE + _chunk(b"IHDR", header) + pixels_chunk + _chunk(b"IEND", b"")
