"""PyTorch-style repr of tensors."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from . import dtypes

if TYPE_CHECKING:
    from .tensor import Tensor


def tensor_repr(t: "Tensor") -> str:
    arr = t.numpy()
    body = np.array2string(arr, separator=", ", prefix="tensor(", threshold=1000, edgeitems=3)
    extras = []
    if t.dtype not in (dtypes.float32, dtypes.int64, dtypes.bool_):
        extras.append(f"dtype=fusegrad.{t.dtype.name}")
    if t.requires_grad:
        extras.append("requires_grad=True")
    return "tensor(" + body + "".join(", " + e for e in extras) + ")"
