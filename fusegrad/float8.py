"""The 8-bit float formats of PyTorch's float8_e4m3fn and float8_e5m2 (OCP FP8), and their host codec.

e4m3fn: 4 exponent bits (bias 7), 3 mantissa bits, no infinities, NaN only as S.1111.111; largest
finite 448. e5m2: 5 exponent bits (bias 15), 2 mantissa bits, IEEE-like with infinities; largest
finite 57344. Encoding a float32 rounds to nearest even; a magnitude beyond the range becomes 448 in
e4m3fn (infinities too: PyTorch's casts saturate) and infinity in e5m2 (from the midpoint above
57344 on). The same arithmetic is rendered for the kernels (codegen/float8.py), so host and device
round alike.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def _bits(value: float) -> int:
    return int(np.array(value, dtype=np.float32).view(np.uint32))


@dataclass(frozen=True)
class Format:
    name: str
    short: str  # the helpers' name part: fg_f32_to_<short>, fg_<short>_to_f32
    mantissa: int  # bits
    bias: int
    overflow_from: int  # float32 bits of the smallest magnitude that encodes as `overflow`
    overflow: int  # the code of such magnitudes (the largest finite, or infinity)
    infinity: bool  # whether exponent all-ones with mantissa 0 is infinity (else a finite value)

    @property
    def shift(self) -> int:
        """float32 mantissa bits dropped."""
        return 23 - self.mantissa

    @property
    def rebias(self) -> int:
        """Subtracted from a float32's (exponent, mantissa) bits shifted down to give the code."""
        return (127 - self.bias) << self.mantissa

    @property
    def normal_from(self) -> int:
        """float32 bits of the smallest normal magnitude."""
        return (128 - self.bias) << 23

    @property
    def subnormal_scale(self) -> float:
        """Subnormal magnitudes times this are their codes: 1 / the smallest subnormal."""
        return 2.0 ** (self.bias - 1 + self.mantissa)


E4M3FN = Format("float8_e4m3fn", "e4m3", 3, 7, _bits(448.0), 0x7E, False)
E5M2 = Format("float8_e5m2", "e5m2", 2, 15, _bits(61440.0), 0x7C, True)
FORMATS = {f.name: f for f in (E4M3FN, E5M2)}
NAN = 0x7F  # the code written for NaN (with the sign of the input)


def encode(values: np.ndarray, fmt: Format) -> np.ndarray:
    """float values -> the format's codes (uint8), rounded to nearest even."""
    f32 = np.asarray(values, dtype=np.float32)
    u = f32.view(np.uint32).astype(np.int64)
    sign, a = (u >> 24) & 0x80, u & 0x7FFFFFFF
    rounded = (a + (1 << (fmt.shift - 1)) - 1 + ((a >> fmt.shift) & 1)) >> fmt.shift
    small = np.where(a < fmt.normal_from, np.abs(f32), 0).astype(np.float64)  # NaN and overflow are replaced below
    subnormal = np.rint(small * fmt.subnormal_scale).astype(np.int64)
    code = np.where(a < fmt.normal_from, subnormal, rounded - fmt.rebias)
    code = np.where(a >= fmt.overflow_from, fmt.overflow, code)
    code = np.where(a > 0x7F800000, NAN, code)
    return (code | sign).astype(np.uint8)


def _decode_one(code: int, fmt: Format) -> float:
    sign = -1.0 if code & 0x80 else 1.0
    exponent, mantissa = (code & 0x7F) >> fmt.mantissa, code & ((1 << fmt.mantissa) - 1)
    top = (1 << (7 - fmt.mantissa)) - 1
    if exponent == top and (fmt.infinity or mantissa == (1 << fmt.mantissa) - 1):
        return sign * math.inf if fmt.infinity and mantissa == 0 else math.copysign(math.nan, sign)
    if exponent == 0:
        return sign * mantissa / fmt.subnormal_scale
    return sign * (1 + mantissa / (1 << fmt.mantissa)) * 2.0 ** (exponent - fmt.bias)


_TABLES = {name: np.array([_decode_one(c, f) for c in range(256)], dtype=np.float32) for name, f in FORMATS.items()}


def decode(codes: np.ndarray, fmt: Format) -> np.ndarray:
    """The format's codes -> float32 (exact)."""
    return _TABLES[fmt.name][np.asarray(codes, dtype=np.uint8)]
