"""Data types, their C names, and PyTorch's type-promotion rules."""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import DTypeError, IntegerOverflowError, ValueRangeError


@dataclass(frozen=True, eq=False)
class DType:
    """A tensor element type. `np` is the host storage format (bfloat16 is stored as uint16)."""

    name: str
    itemsize: int
    kind: str  # "b" bool, "i" signed int, "u" unsigned int, "f" float
    priority: int  # position in the promotion lattice within its kind
    np: np.dtype

    @property
    def is_floating_point(self) -> bool:
        return self.kind == "f"

    @property
    def is_int(self) -> bool:
        return self.kind in "iu"

    @property
    def category(self) -> int:
        """0 bool, 1 integer, 2 floating: the order PyTorch promotes across."""
        return {"b": 0, "i": 1, "u": 1, "f": 2}[self.kind]

    def __repr__(self) -> str:
        return f"fusegrad.{self.name}"

    def __reduce__(self):
        return (_by_name, (self.name,))


bool_ = DType("bool", 1, "b", 0, np.dtype(np.bool_))
uint8 = DType("uint8", 1, "u", 1, np.dtype(np.uint8))
int8 = DType("int8", 1, "i", 1, np.dtype(np.int8))
int16 = DType("int16", 2, "i", 2, np.dtype(np.int16))
int32 = DType("int32", 4, "i", 3, np.dtype(np.int32))
int64 = DType("int64", 8, "i", 4, np.dtype(np.int64))
float16 = DType("float16", 2, "f", 1, np.dtype(np.float16))
bfloat16 = DType("bfloat16", 2, "f", 1, np.dtype(np.uint16))
float32 = DType("float32", 4, "f", 2, np.dtype(np.float32))
float64 = DType("float64", 8, "f", 3, np.dtype(np.float64))
# 8-bit floats (float8.py), stored as their codes; they promote with no other dtype (as in PyTorch)
float8_e4m3fn = DType("float8_e4m3fn", 1, "f", 0, np.dtype(np.uint8))
float8_e5m2 = DType("float8_e5m2", 1, "f", 0, np.dtype(np.uint8))

ALL: tuple[DType, ...] = (bool_, uint8, int8, int16, int32, int64, float16, bfloat16, float32, float64,
                          float8_e4m3fn, float8_e5m2)
HALF: tuple[DType, ...] = (float16, bfloat16)  # computed in float32, rounded to their type
FLOAT8: tuple[DType, ...] = (float8_e4m3fn, float8_e5m2)
NARROW: tuple[DType, ...] = HALF + FLOAT8  # floats computed in float32 and rounded to their type after each op
_BY_NAME = {d.name: d for d in ALL}
_BY_NAME.update({"float": float32, "double": float64, "half": float16, "long": int64, "int": int32,
                 "short": int16, "bool_": bool_})
_FROM_NP = {d.np: d for d in ALL if d is not bfloat16 and d not in FLOAT8}


def _by_name(name: str) -> DType:
    return _BY_NAME[name]


def to_dtype(x: object) -> DType:
    """Accept a DType, a name ("float32"), a numpy dtype, a torch dtype or a Python type."""
    if isinstance(x, DType):
        return x
    if x is float:
        return float32
    if x is int:
        return int64
    if x is bool:
        return bool_
    if isinstance(x, str) and x.removeprefix("torch.").removeprefix("fusegrad.") in _BY_NAME:
        return _BY_NAME[x.removeprefix("torch.").removeprefix("fusegrad.")]
    if type(x).__name__ == "dtype" and str(x).startswith("torch."):
        return to_dtype(str(x))
    try:
        npd = np.dtype(x)  # type: ignore[call-overload]
    except TypeError:
        npd = None
    if npd is not None and npd in _FROM_NP:
        return _FROM_NP[npd]
    raise DTypeError(f"unsupported dtype {x!r}; fusegrad supports {', '.join(d.name for d in ALL)}")


def from_numpy_dtype(npd: np.dtype) -> DType:
    if npd in _FROM_NP:
        return _FROM_NP[npd]
    raise DTypeError(f"numpy dtype {npd} has no fusegrad equivalent")


def promote_types(a: DType, b: DType) -> DType:
    """The smallest dtype that holds both (torch.promote_types)."""
    if a is b:
        return a
    if a in FLOAT8 or b in FLOAT8:
        raise DTypeError(f"promotion for float8 types is not supported: {a.name} and {b.name} (cast one first)")
    if a.category != b.category:
        return a if a.category > b.category else b
    if a.kind == "f":
        if a.priority == b.priority:  # float16 with bfloat16
            return float32
        return a if a.priority > b.priority else b
    if a.kind == b.kind:
        return a if a.priority > b.priority else b
    signed, unsigned = (a, b) if a.kind == "i" else (b, a)
    if signed.itemsize > unsigned.itemsize:
        return signed
    return {1: int16, 2: int32, 4: int64, 8: int64}[unsigned.itemsize]


def default_of_category(category: int) -> DType:
    return (bool_, int64, float32)[category]


def python_scalar_dtype(x: object) -> DType:
    if isinstance(x, bool):
        return bool_
    if isinstance(x, int):
        return int64
    if isinstance(x, float):
        return float32
    raise DTypeError(f"expected a Python number, got {type(x).__name__}")


def result_type(dim_dtypes: list[DType], zero_dim_dtypes: list[DType], scalar_dtypes: list[DType]) -> DType:
    """PyTorch's promotion: dimensioned tensors lead; 0-dim tensors and Python scalars only raise the category."""
    result: DType | None = None
    for group, is_scalar in ((dim_dtypes, False), (zero_dim_dtypes, False), (scalar_dtypes, True)):
        if not group:
            continue
        g = group[0]
        for d in group[1:]:
            g = promote_types(g, d)
        if result is None:
            result = g
        elif g.category > result.category:
            result = default_of_category(g.category) if is_scalar else g
    assert result is not None
    return result


def least_float(d: DType) -> DType:
    """The dtype an op like exp or true division returns for input dtype d."""
    return d if d.is_floating_point else float32


def round_half(value: float, dtype: DType) -> float:
    """The Python float `value` rounded to the half `dtype` (float16 or bfloat16; to nearest even)."""
    if dtype is float16:
        with np.errstate(over="ignore"):
            return float(np.float16(value))
    with np.errstate(over="ignore"):
        f = np.float32(value)  # (a double rounds to float32 first, as torch's conversion does)
    if math.isnan(f) or math.isinf(f):
        return float(f)
    bits = int(f.view(np.uint32))
    bits = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    return float(np.uint32(bits & 0xFFFFFFFF).view(np.float32))


def half_exact(value: float, dtype: DType) -> bool:
    """Whether the Python float `value` is a value of the half `dtype` (float16 or bfloat16) exactly."""
    return math.isnan(value) or round_half(value, dtype) == value


# the largest finite value of each float dtype (torch rejects fills above it; nan_to_num's default for inf)
FLOAT_MAX = {"float8_e4m3fn": 448.0, "float8_e5m2": 57344.0, "float16": 65504.0,
             "bfloat16": 2.0 ** 128 * (1 - 2.0 ** -8), "float32": 2.0 ** 128 * (1 - 2.0 ** -24),
             "float64": sys.float_info.max}


def check_python_int(value: int) -> int:
    """A Python int as ops read it: 64 bits, [2**63, 2**64) as unsigned (torch's range); else an error."""
    if not -2 ** 63 <= value < 2 ** 64:
        raise IntegerOverflowError(f"Python int {value} is too big to convert: tensors take integers in "
                                   f"[-2**63, 2**64)")
    return value


def int_range(dtype: DType, strict: bool = False) -> tuple[int, int]:
    """The values a number written into integer `dtype` may take (torch's check): [min, max]; unless
    `strict` (floats, random bounds), unsigned types also take -max..-1 from ints, which wrap."""
    info = np.iinfo(dtype.np)
    high = int(info.max)
    if dtype.kind == "u":
        return (0 if strict else -high), high
    return int(info.min), high


def checked_scalar(value: Any, dtype: DType, half_range: bool = True) -> Any:
    """`value` to be written into a tensor of `dtype` (full, fill_, masked_fill, x[i] = v, a where or
    clamp scalar), checked like torch: it must fit the dtype; bool takes any number. `half_range=False`
    lets a number too large for float16 or bfloat16 become inf (torch's item assignment and where do)."""
    if isinstance(value, int):  # bool too
        check_python_int(value)
    if dtype is bool_ or not isinstance(value, (int, float)) or isinstance(value, bool):
        return value
    if dtype.is_floating_point and dtype.itemsize < 4 and not half_range:
        return value
    if dtype.is_int:
        low, high = int_range(dtype, strict=isinstance(value, float))
        fits = low <= value <= high  # False for NaN
    else:
        fits = not abs(value) > FLOAT_MAX[dtype.name] or math.isinf(value)  # NaN fits
    if not fits:
        raise ValueRangeError(f"value {value!r} cannot be converted to type {dtype.name} without overflow")
    return value
