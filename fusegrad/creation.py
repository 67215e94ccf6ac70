"""Tensor creation: constants, ranges, identity matrices (computed lazily in kernels)."""
from __future__ import annotations

import math
from typing import Any

from . import dtypes
from .graph import node as G
from .graph.shapes import shape_arg
from .runtime import registry
from .tensor import Scalar, Tensor, tensor, where


def _full(shape: tuple[int, ...], value: Scalar, dtype: Any, device: Any, requires_grad: bool) -> Tensor:
    dt = dtypes.to_dtype(dtype) if dtype is not None else (
        dtypes.python_scalar_dtype(value) if not isinstance(value, float) else dtypes.float32)
    dtypes.checked_scalar(value, dt)
    t = Tensor._from_node(G.const(value, shape, dt, registry.canonical(device)))
    if requires_grad:
        t = t.contiguous().realize().detach().requires_grad_(True)
    return t


def _size(size: tuple, kwargs: dict[str, Any]) -> tuple[int, ...]:
    """The shape of f(2, 3), f((2, 3)), f([2, 3]) or f(size=(2, 3))."""
    keyword = kwargs.pop("size", None)
    if kwargs:
        raise TypeError(f"unexpected keyword argument(s): {', '.join(kwargs)}")
    if keyword is not None:
        if size:
            raise TypeError("the size is given both as arguments and as size=")
        return shape_arg((keyword,))
    return shape_arg(size)


def zeros(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False,
          **kwargs: Any) -> Tensor:
    """A tensor of zeros: `zeros(2, 3)`, `zeros((2, 3))`, `zeros(size=(2, 3))`."""
    return _full(_size(size, kwargs), 0.0, dtype, device, requires_grad)


def ones(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False, **kwargs: Any) -> Tensor:
    """A tensor of ones: `ones(2, 3)`, `ones((2, 3))`, `ones(size=(2, 3))`."""
    return _full(_size(size, kwargs), 1.0, dtype, device, requires_grad)


def empty(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False, **kwargs: Any) -> Tensor:
    """Like torch.empty, but zero-filled: fusegrad never exposes uninitialized memory."""
    return _full(_size(size, kwargs), 0.0, dtype, device, requires_grad)


def full(size: Any, fill_value: Scalar, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """`fill_value` everywhere; its dtype as torch infers it (int -> int64, bool -> bool, float -> float32)."""
    if hasattr(fill_value, "_node"):  # a one-element tensor, as torch accepts
        fill_value = fill_value.item()
    return _full(shape_arg((size,)), fill_value, dtype, device, requires_grad)


def zeros_like(x: Tensor, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return zeros(x.shape, dtype=dtype or x.dtype, device=device or x.device, requires_grad=requires_grad)


def ones_like(x: Tensor, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return ones(x.shape, dtype=dtype or x.dtype, device=device or x.device, requires_grad=requires_grad)


def full_like(x: Tensor, fill_value: Scalar, dtype: Any = None, device: Any = None,
              requires_grad: bool = False) -> Tensor:
    return full(x.shape, fill_value, dtype=dtype or x.dtype, device=device or x.device, requires_grad=requires_grad)


def empty_like(x: Tensor, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Like torch.empty_like, but zero-filled."""
    return zeros_like(x, dtype=dtype, device=device, requires_grad=requires_grad)


def arange(start: Scalar, end: Scalar | None = None, step: Scalar = 1, dtype: Any = None,
           device: Any = None, requires_grad: bool = False) -> Tensor:
    """[start, start + step, ...) below end, computed in the kernel that reads it (int64 for integer
    arguments, float32 when one is a float)."""
    start, end, step = (v.item() if isinstance(v, Tensor) else v for v in (start, end, step))
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


def logspace(start: float, end: float, steps: int, base: float = 10.0, dtype: Any = None, device: Any = None,
             requires_grad: bool = False) -> Tensor:
    """base ** linspace(start, end, steps), computed in float64."""
    dt = dtypes.to_dtype(dtype) if dtype is not None else dtypes.float32
    exponents = linspace(start, end, steps, dtype=dtypes.float64, device=device)
    out = (float(base) ** exponents).cast(dt)
    if requires_grad:
        out = out.contiguous().realize().detach().requires_grad_(True)
    return out


def is_tensor(obj: Any) -> bool:
    """Whether obj is a fusegrad Tensor."""
    return isinstance(obj, Tensor)


def as_tensor(data: Any, dtype: Any = None, device: Any = None) -> Tensor:
    """`data` as a tensor: a tensor already of that dtype and device is returned as is (no copy);
    other tensors are converted (keeping their history), host data is copied."""
    if isinstance(data, Tensor):
        return data.to(device=device, dtype=dtype)
    return tensor(data, dtype=dtype, device=device)


def scalar_tensor(s: Scalar, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A 0-d tensor holding s, float32 unless `dtype` says otherwise (as torch, even for ints)."""
    return _full((), s, dtype if dtype is not None else dtypes.float32, device, requires_grad)
