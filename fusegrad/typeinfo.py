"""`fg.finfo` and `fg.iinfo`: the numerical properties of a dtype, with torch.finfo's and torch.iinfo's
fields, values, reprs and errors (bfloat16 and the float8 types included, which numpy cannot describe)."""
from __future__ import annotations

from typing import Any

import numpy as np

from . import dtypes, float8

# bits, eps, smallest normal, resolution (10 ** -decimal digits) of the types numpy lacks
_NARROW = {"bfloat16": (16, 2.0 ** -7, 2.0 ** -126, 0.01),
           **{f.name: (8, 2.0 ** -f.mantissa, 2.0 ** (1 - f.bias), 1.0) for f in float8.FORMATS.values()}}


class finfo:  # noqa: N801  (torch's name)
    """Machine limits of a floating dtype: bits, eps, max, min, tiny (= smallest_normal), resolution."""

    __slots__ = ("bits", "eps", "max", "min", "tiny", "smallest_normal", "resolution", "dtype")

    def __init__(self, type: Any = None):  # noqa: A002  (torch's argument name)
        dtype = dtypes.float32 if type is None else dtypes.to_dtype(type)  # (the default dtype is fixed)
        if not dtype.is_floating_point:
            raise TypeError(f"fg.finfo() requires a floating point input type, got {dtype.name}; use fg.iinfo")
        if dtype.name in _NARROW:
            self.bits, self.eps, self.smallest_normal, self.resolution = _NARROW[dtype.name]
            self.max = dtypes.FLOAT_MAX[dtype.name]
        else:
            info = np.finfo(dtype.np)
            self.bits, self.eps, self.max = info.bits, float(info.eps), float(info.max)
            self.smallest_normal, self.resolution = float(info.smallest_normal), 10.0 ** -info.precision
        self.min, self.tiny, self.dtype = -self.max, self.smallest_normal, dtype.name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, finfo) and other.dtype == self.dtype

    def __hash__(self) -> int:
        return hash(("finfo", self.dtype))

    def __repr__(self) -> str:
        return (f"finfo(resolution={self.resolution:g}, min={self.min:g}, max={self.max:g}, eps={self.eps:g}, "
                f"smallest_normal={self.smallest_normal:g}, tiny={self.tiny:g}, dtype={self.dtype})")


class iinfo:  # noqa: N801  (torch's name)
    """Limits of an integer dtype: bits, min, max."""

    __slots__ = ("bits", "min", "max", "dtype")

    def __init__(self, type: Any):  # noqa: A002  (torch's argument name)
        dtype = dtypes.to_dtype(type)
        if dtype is dtypes.bool_:
            raise TypeError("fusegrad.bool is not supported by fg.iinfo")
        if not dtype.is_int:
            raise TypeError(f"fg.iinfo() requires an integer input type, got {dtype.name}; use fg.finfo")
        info = np.iinfo(dtype.np)
        self.bits, self.min, self.max, self.dtype = info.bits, int(info.min), int(info.max), dtype.name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, iinfo) and other.dtype == self.dtype

    def __hash__(self) -> int:
        return hash(("iinfo", self.dtype))

    def __repr__(self) -> str:
        return f"iinfo(min={self.min:g}, max={self.max:g}, dtype={self.dtype})"
