"""Reader for the IDX format of MNIST-style datasets, gzipped or raw, with its header validated.

Layout: two zero bytes, a type code, the number of dimensions, then one big-endian uint32 per
dimension, then the values in big-endian row-major order. The magic number is the first four bytes
read as one big-endian integer (2051 = uint8 with 3 dims: images, 2049 = uint8 with 1 dim: labels).
"""
from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from typing import BinaryIO

import numpy as np

from .dataset import DatasetError

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
TYPE_CODES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
GZIP_SIGNATURE = b"\x1f\x8b"


def _open(path: str | os.PathLike) -> BinaryIO:
    """Open raw or gzipped by content, not by name, so a misnamed file still reads."""
    with open(path, "rb") as f:
        gzipped = f.read(2) == GZIP_SIGNATURE
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def _read_exact(f: BinaryIO, out: memoryview) -> int:
    """Fill `out` from `f`; returns how many bytes were available (less than len(out) when truncated)."""
    filled = 0
    while filled < len(out):
        n = f.readinto(out[filled:])
        if not n:
            break
        filled += n
    return filled


def read_idx(path: str | os.PathLike, magic: int | None = None) -> np.ndarray:
    """The array stored in an IDX file (native byte order). `magic` checks the file's magic number.

    Raises DatasetError naming the file when it is not IDX, has another magic number, or is truncated
    or longer than its header says; FileNotFoundError when it does not exist.
    """
    try:
        with _open(path) as f:
            return _parse(f, os.fspath(path), magic)
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise DatasetError(f"{os.fspath(path)}: damaged gzip stream ({e})") from e


def _parse(f: BinaryIO, name: str, magic: int | None) -> np.ndarray:
    header = f.read(4)
    if len(header) < 4:
        raise DatasetError(f"{name}: not an IDX file (only {len(header)} bytes)")
    found = int.from_bytes(header, "big")
    if magic is not None and found != magic:
        raise DatasetError(f"{name}: wrong magic number {found} (0x{found:08x}), expected {magic} (0x{magic:08x})")
    if header[:2] != b"\0\0" or header[2] not in TYPE_CODES or header[3] == 0:
        raise DatasetError(f"{name}: not an IDX file (magic number 0x{found:08x})")
    ndim = header[3]
    raw_dims = f.read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DatasetError(f"{name}: truncated IDX header ({ndim} dimensions announced)")
    dims = struct.unpack(f">{ndim}I", raw_dims)
    dtype = TYPE_CODES[header[2]]
    nbytes = math.prod(dims) * dtype.itemsize
    data = np.empty(nbytes, dtype=np.uint8)
    got = _read_exact(f, memoryview(data))
    if got < nbytes:
        raise DatasetError(f"{name}: truncated: the header announces shape {dims} ({nbytes} bytes of data) "
                           f"but the file holds {got}")
    if f.read(1):
        raise DatasetError(f"{name}: longer than its header announces (shape {dims}, {nbytes} bytes of data)")
    array = data.view(dtype).reshape(dims)
    return array if dtype.itemsize == 1 else array.astype(dtype.newbyteorder("="))
