"""Host data (numpy arrays, nested lists, scalars) into device buffers: the upload path."""
from __future__ import annotations

from typing import Any

import numpy as np

from . import dtypes, float8
from .dtypes import DType
from .errors import DTypeError, IntegerOverflowError, ValueRangeError
from .graph import node as G
from .graph.node import Node
from .runtime import registry


def node_from_data(data: Any, dtype: DType | None, device: str) -> Node:
    """Upload host data (numpy array, nested lists, scalars) into a new device buffer."""
    if hasattr(data, "_node"):  # a Tensor: its values
        data = data.numpy()
    arr = np.asarray(data)
    from_numpy = isinstance(data, (np.ndarray, np.generic))  # numpy data keeps its dtype and wraps, like torch
    if not from_numpy and arr.dtype.kind == "O" and any(type(v) is float for v in arr.flat):
        arr = arr.astype(np.float64)  # ints beyond int64 beside a float: a float list, as torch reads it
    if not from_numpy and (dtype is None or dtype.is_int):
        _check_python_ints(arr)
    if dtype is None:
        if arr.dtype.kind in "OUSV":
            raise DTypeError(f"cannot make a tensor from data of numpy dtype {arr.dtype}")
        if from_numpy:
            dtype = dtypes.from_numpy_dtype(arr.dtype)
        elif arr.dtype.kind == "f" or (arr.size == 0 and arr.dtype.kind != "b"):
            dtype = dtypes.float32  # Python floats (and empty lists) default to float32
        elif arr.dtype.kind in "iu":
            dtype = dtypes.int64
        else:
            dtype = dtypes.from_numpy_dtype(arr.dtype)
    if not from_numpy and dtype.is_int and arr.size and arr.dtype.kind in "iuf":
        _check_fits(arr, dtype)
    if dtype is dtypes.bfloat16:
        f32 = arr.astype(np.float32)
        bits = f32.view(np.uint32).astype(np.uint64)
        rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
        arr = np.where(np.isnan(f32), np.uint16(0x7FC0), rounded)
    elif dtype in dtypes.FLOAT8:
        arr = float8.encode(arr, float8.FORMATS[dtype.name])
    else:
        arr = arr.astype(dtype.np, copy=False)
    arr = np.require(arr, requirements="C")  # ascontiguousarray would make 0-d arrays 1-d
    dev = registry.get(device)
    buf = dev.alloc(arr.nbytes)
    dev.copy_in(buf, arr)
    return G.buffer_node(buf, tuple(arr.shape), dtype, device)


def _check_python_ints(arr: np.ndarray) -> None:
    """Python ints beyond int64 (numpy holds them as uint64 or objects) cannot be integer elements, as in torch."""
    if arr.dtype.kind == "u":  # numpy picks uint64 for a list only when an int in it is >= 2**63
        big = [int(arr.max())]
    elif arr.dtype.kind == "O":
        big = [v for v in arr.flat if type(v) is int and not -2 ** 63 <= v < 2 ** 63]
    else:
        return
    if big:
        raise IntegerOverflowError(f"Python int {big[0]} does not fit int64, the widest integer a tensor holds")


def _check_fits(arr: np.ndarray, dtype: DType) -> None:
    """Numbers from Python lists must fit the integer dtype asked for, as torch.tensor checks."""
    low, high = dtypes.int_range(dtype, strict=arr.dtype.kind == "f")
    bad = arr[~((arr >= low) & (arr <= high))]  # NaN fails both comparisons
    if bad.size:
        raise ValueRangeError(f"value {bad.flat[0].item()!r} cannot be converted to type {dtype.name} "
                              "without overflow")
