"""Random tensors from a counter-based generator (Philox) that runs inside the kernels.

`manual_seed(s)` resets the stream; each call consumes as many counters as it draws numbers,
so a seed reproduces the same sequence of tensors.
"""
from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

from . import dtypes
from .engine import capture
from .graph import node as G
from .runtime import registry
from .hostdata import node_from_data
from .graph.shapes import shape_arg
from .tensor import Tensor


class _Generator(threading.local):
    def __init__(self) -> None:
        self.seed = 0x5EED
        self.offset = 0


_gen = _Generator()


def manual_seed(seed: int) -> None:
    """Reset the random stream to `seed`."""
    _gen.seed = int(seed) & (2**64 - 1)
    _gen.offset = 0


def initial_seed() -> int:
    return _gen.seed


def _uniform(shape: tuple[int, ...], device: Any) -> Tensor:
    dev = registry.canonical(device)
    n = math.prod(shape)
    state = node_from_data(np.array([_gen.seed, _gen.offset], dtype=np.uint64).view(np.int64), dtypes.int64, dev)
    _gen.offset += n
    recording = capture.current()
    if recording is not None:  # a replay writes the then-current seed and offset into this buffer
        recording.random_states.append((state.buffer, n))
    return Tensor._from_node(G.rand(shape, state, dtypes.float32))


def _finish(t: Tensor, dtype: Any, requires_grad: bool) -> Tensor:
    dt = dtypes.to_dtype(dtype) if dtype is not None else dtypes.float32
    out = t.cast(dt)
    if requires_grad:
        out = out.contiguous().realize().detach().requires_grad_(True)
    return out


def rand(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Uniform numbers in [0, 1)."""
    return _finish(_uniform(shape_arg(size), device), dtype, requires_grad)


def randn(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Standard normal numbers (Box-Muller on two uniform streams)."""
    shape = shape_arg(size)
    wide = dtypes.float64 if dtype is not None and dtypes.to_dtype(dtype) is dtypes.float64 else dtypes.float32
    u1 = _uniform(shape, device).cast(wide)
    u2 = _uniform(shape, device).cast(wide)
    z = (-2 * (1 - u1).log()).sqrt() * (2 * math.pi * u2).cos()
    return _finish(z, dtype, requires_grad)


def randint(low: int, high: int | None = None, size: Any = (), dtype: Any = None, device: Any = None) -> Tensor:
    """Integers uniform in [low, high)."""
    if high is None:
        low, high = 0, low
    if high <= low:
        raise ValueError(f"randint: high ({high}) must be greater than low ({low})")
    u = _uniform(shape_arg((size,)), device).cast(dtypes.float64)
    out = (u * (high - low)).floor().cast(dtypes.int64) + low
    return out.cast(dtypes.to_dtype(dtype) if dtype is not None else dtypes.int64)


def rand_like(x: Tensor, dtype: Any = None) -> Tensor:
    return rand(x.shape, dtype=dtype or x.dtype, device=x.device)


def randn_like(x: Tensor, dtype: Any = None) -> Tensor:
    return randn(x.shape, dtype=dtype or x.dtype, device=x.device)


def randperm(n: int, device: Any = None) -> Tensor:
    """A random permutation of 0..n-1 (argsort of uniform keys, done on the host)."""
    keys = _uniform((n,), device).numpy()
    return Tensor._from_node(node_from_data(np.argsort(keys, kind="stable"), dtypes.int64,
                                             registry.canonical(device)))
