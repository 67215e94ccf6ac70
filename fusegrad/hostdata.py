"""Host data (numpy arrays, nested lists, scalars) into device buffers: the upload path."""
from __future__ import annotations

from typing import Any

import numpy as np

from . import dtypes
from .dtypes import DType
from .errors import DTypeError
from .graph import node as G
from .graph.node import Node
from .runtime import registry


def node_from_data(data: Any, dtype: DType | None, device: str) -> Node:
    """Upload host data (numpy array, nested lists, scalars) into a new device buffer."""
    if hasattr(data, "_node"):  # a Tensor: its values
        data = data.numpy()
    arr = np.asarray(data)
    if dtype is None:
        from_numpy = isinstance(data, (np.ndarray, np.generic))  # numpy data keeps its dtype, like torch
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
    if dtype is dtypes.bfloat16:
        f32 = arr.astype(np.float32)
        bits = f32.view(np.uint32).astype(np.uint64)
        rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
        arr = np.where(np.isnan(f32), np.uint16(0x7FC0), rounded)
    else:
        arr = arr.astype(dtype.np, copy=False)
    arr = np.require(arr, requirements="C")  # ascontiguousarray would make 0-d arrays 1-d
    dev = registry.get(device)
    buf = dev.alloc(arr.nbytes)
    dev.copy_in(buf, arr)
    return G.buffer_node(buf, tuple(arr.shape), dtype, device)
