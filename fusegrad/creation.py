"""Tensor creation: constants, ranges, identity matrices (computed lazily in kernels)."""
from __future__ import annotations

import math
from typing import Any

from . import dtypes
from .graph import node as G
from .graph.shapes import shape_arg
from .runtime import registry
from .tensor import Scalar, Tensor, where


def _full(shape: tuple[int, ...], value: Scalar, dtype: Any, device: Any, requires_grad: bool) -> Tensor:
    dt = dtypes.to_dtype(dtype) if dtype is not None else (
        dtypes.python_scalar_dtype(value) if not isinstance(value, float) else dtypes.float32)
    t = Tensor._from_node(G.const(value, shape, dt, registry.canonical(device)))
    if requires_grad:
        t = t.contiguous().realize().detach().requires_grad_(True)
    return t


def zeros(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return _full(shape_arg(size), 0.0, dtype, device, requires_grad)


def ones(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return _full(shape_arg(size), 1.0, dtype, device, requires_grad)


def empty(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Like torch.empty, but zero-filled: fusegrad never exposes uninitialized memory."""
    return zeros(*size, dtype=dtype, device=device, requires_grad=requires_grad)


def full(size: Any, fill_value: Scalar, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return _full(shape_arg((size,)), fill_value, dtype, device, requires_grad)


def zeros_like(x: Tensor, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return zeros(x.shape, dtype=dtype or x.dtype, device=device or x.device, requires_grad=requires_grad)


def ones_like(x: Tensor, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return ones(x.shape, dtype=dtype or x.dtype, device=device or x.device, requires_grad=requires_grad)


def full_like(x: Tensor, fill_value: Scalar, dtype: Any = None, device: Any = None,
              requires_grad: bool = False) -> Tensor:
    return full(x.shape, fill_value, dtype=dtype or x.dtype, device=device or x.device, requires_grad=requires_grad)


def empty_like(x: Tensor, dtype: Any = None, device: Any = None) -> Tensor:
    return zeros_like(x, dtype=dtype, device=device)


def arange(start: Scalar, end: Scalar | None = None, step: Scalar = 1, dtype: Any = None,
           device: Any = None, requires_grad: bool = False) -> Tensor:
    """[start, start + step, ...) below end, computed in the kernel that reads it."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    n = max(0, math.ceil((end - start) / step))
    is_float = any(isinstance(v, float) for v in (start, end, step))
    dt = dtypes.to_dtype(dtype) if dtype is not None else (dtypes.float32 if is_float else dtypes.int64)
    idx = Tensor._from_node(G.iota(n, registry.canonical(device)))
    out = idx if not is_float else idx.cast(dtypes.float64)
    if step != 1:
        out = out * step
    if start != 0:
        out = out + start
    out = out.cast(dt)
    if requires_grad:
        out = out.contiguous().realize().detach().requires_grad_(True)
    return out


def linspace(start: float, end: float, steps: int, dtype: Any = None, device: Any = None,
             requires_grad: bool = False) -> Tensor:
    if steps < 0:
        raise ValueError("linspace: number of steps must be non-negative")
    dt = dtypes.to_dtype(dtype) if dtype is not None else dtypes.float32
    if steps == 1:
        return full((1,), start, dtype=dt, device=device, requires_grad=requires_grad)
    step = (end - start) / max(steps - 1, 1)
    i = Tensor._from_node(G.iota(steps, registry.canonical(device))).cast(dtypes.float64)
    # fill from both ends so the last value is exactly `end`, as torch does
    half = steps // 2
    out = where(i < half, i * step + start, end - (steps - 1 - i) * step).cast(dt)
    if requires_grad:
        out = out.contiguous().realize().detach().requires_grad_(True)
    return out


def eye(n: int, m: int | None = None, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    m = n if m is None else m
    rows = arange(n, device=device).reshape(n, 1)
    cols = arange(m, device=device).reshape(1, m)
    out = (rows == cols).cast(dtypes.to_dtype(dtype) if dtype is not None else dtypes.float32)
    if requires_grad:
        out = out.contiguous().realize().detach().requires_grad_(True)
    return out
