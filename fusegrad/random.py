"""Random tensors from a counter-based generator (Philox) that runs inside the kernels.

Every function takes `generator=` (an `fg.Generator`; default: the global stream). `manual_seed(s)`
restarts the global stream; each call consumes as many counters as it draws numbers, so a seed
reproduces the same sequence of tensors (`ops/random.py` has the streams).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import dtypes
from .errors import DTypeError, ValueRangeError
from .graph.shapes import shape_arg
from .hostdata import node_from_data
from .ops.random import Generator, default_generator, integers, uniform, zero_gradient_link
from .runtime import registry
from .tensor import Scalar, Tensor

_gen = default_generator._state  # the global stream's seed and offset (fg.jit's replays write them)

__all__ = ["Generator", "default_generator", "manual_seed", "seed", "initial_seed", "get_rng_state", "set_rng_state",
           "rand", "randn", "randint", "rand_like", "randn_like", "randint_like", "randperm", "normal", "bernoulli"]


def manual_seed(seed: int) -> Generator:
    """Restart the global random stream at `seed`; returns the default generator, like torch."""
    return default_generator.manual_seed(int(seed))  # like torch.manual_seed: 1.5 seeds 1


def seed() -> int:
    """Restart the global stream at a non-deterministic seed and return it."""
    return default_generator.seed()


def initial_seed() -> int:
    """The seed the global stream started from."""
    return default_generator.initial_seed()


def get_rng_state() -> Tensor:
    """The global stream's state (a uint8 tensor) for `set_rng_state`."""
    return default_generator.get_state()


def set_rng_state(new_state: Tensor) -> None:
    """Restore the global stream's state from `get_rng_state`."""
    default_generator.set_state(new_state)


_HALF_BITS = {"float16": 11, "bfloat16": 8}  # significand bits: k/2**bits for k < 2**bits is exact


def _finish(t: Tensor, dtype: Any, requires_grad: bool) -> Tensor:
    dt = dtypes.to_dtype(dtype) if dtype is not None else dtypes.float32
    out = t.cast(dt)
    if requires_grad:
        out = out.contiguous().realize().detach().requires_grad_(True)
    return out


def _normal(shape: tuple[int, ...], dtype: Any, device: Any, generator: Generator | None) -> Tensor:
    """Standard normal numbers (Box-Muller on two uniform streams), float64 math for float64."""
    wide = dtypes.float64 if dtype is not None and dtypes.to_dtype(dtype) is dtypes.float64 else dtypes.float32
    u1 = uniform(shape, device, generator).cast(wide)
    u2 = uniform(shape, device, generator).cast(wide)
    return (-2 * (1 - u1).log()).sqrt() * (2 * math.pi * u2).cos()


def rand(*size: Any, generator: Generator | None = None, dtype: Any = None, device: Any = None,
         requires_grad: bool = False) -> Tensor:
    """Uniform numbers in [0, 1)."""
    u = uniform(shape_arg(size), device, generator)
    bits = _HALF_BITS.get(dtypes.to_dtype(dtype).name if dtype is not None else "")
    if bits is not None:  # keep the bits the dtype holds, so rounding never makes 1.0
        u = (u * 2**bits).floor() * 2.0**-bits
    return _finish(u, dtype, requires_grad)


def randn(*size: Any, generator: Generator | None = None, dtype: Any = None, device: Any = None,
          requires_grad: bool = False) -> Tensor:
    """Standard normal numbers."""
    return _finish(_normal(shape_arg(size), dtype, device, generator), dtype, requires_grad)


def randint(*args: Any, size: Any = None, generator: Generator | None = None, dtype: Any = None,
            device: Any = None, requires_grad: bool = False, low: int | None = None,
            high: int | None = None) -> Tensor:
    """Integers uniform in [low, high): `randint(high, size)`, `randint(low, high, size)` (size may be a keyword)."""
    args = list(args)
    if size is None and args and isinstance(args[-1], (tuple, list)):
        size = args.pop()
    if size is None:
        raise TypeError("randint() missing the size argument (a tuple of ints)")
    if isinstance(size, int):
        raise TypeError(f"randint(): argument 'size' must be a tuple of ints, not int ({size})")
    bounds = [*args, *(v for v in (low, high) if v is not None)]
    if len(bounds) not in (1, 2):
        raise TypeError(f"randint() takes (high, size) or (low, high, size), got {len(bounds)} bounds")
    lo, hi = (0, bounds[0]) if len(bounds) == 1 else bounds
    dt = dtypes.to_dtype(dtype) if dtype is not None else dtypes.int64
    dtypes.check_python_int(int(lo))
    dtypes.check_python_int(int(hi))
    if not dt.is_floating_point:  # torch: randint(0, 1000, dtype=int8) raises rather than wrapping the draws
        low, high = (0, 1) if dt is dtypes.bool_ else dtypes.int_range(dt, strict=True)
        for what, bound in (("from", int(lo)), ("to - 1", int(hi) - 1)):
            if not low <= bound <= high:
                raise ValueRangeError(f"randint: {what} = {bound} is out of bounds for {dt.name} [{low}, {high}]")
    out = integers(int(lo), int(hi), shape_arg((size,)), device, generator).cast(dt)
    return out.contiguous().realize().detach().requires_grad_(True) if requires_grad else out


def rand_like(x: Tensor, *, generator: Generator | None = None, dtype: Any = None, device: Any = None,
              requires_grad: bool = False) -> Tensor:
    """Uniform [0, 1) numbers of x's shape (and dtype and device unless given)."""
    return rand(x.shape, generator=generator, dtype=dtype or x.dtype, device=device or x.device,
                requires_grad=requires_grad)


def randn_like(x: Tensor, *, generator: Generator | None = None, dtype: Any = None, device: Any = None,
               requires_grad: bool = False) -> Tensor:
    """Standard normal numbers of x's shape (and dtype and device unless given)."""
    return randn(x.shape, generator=generator, dtype=dtype or x.dtype, device=device or x.device,
                 requires_grad=requires_grad)


def randint_like(x: Tensor, low: int = 0, high: int | None = None, *, generator: Generator | None = None,
                 dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Integers uniform in [low, high) of x's shape, in x's dtype unless given (`randint_like(x, high)` too)."""
    if high is None:
        low, high = 0, low
    out = integers(int(low), int(high), x.shape, device or x.device, generator)
    return _finish(out, dtype or x.dtype, requires_grad)


def randperm(n: int, *, generator: Generator | None = None, dtype: Any = dtypes.int64, device: Any = None,
             requires_grad: bool = False) -> Tensor:
    """A random permutation of 0..n-1 (an argsort of uniform keys: the sort runs on the host)."""
    if n < 0:
        raise ValueError(f"randperm: n must be non-negative, got {n}")
    keys = uniform((n,), device, generator).numpy()
    order = np.argsort(keys, kind="stable")
    out = Tensor._from_node(node_from_data(order, dtypes.int64, registry.canonical(device)))
    return _finish(out, dtype, requires_grad)


def normal(mean: Any = 0.0, std: Any = 1.0, size: Any = None, *, generator: Generator | None = None,
           dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Normal numbers of mean `mean` and standard deviation `std` (tensors broadcast; numbers need `size`)."""
    tensors = [v for v in (mean, std) if isinstance(v, Tensor)]
    if not tensors:
        if size is None:
            raise TypeError("normal(mean, std) with two numbers needs a size, as in torch")
        z = _normal(shape_arg((size,)), dtype, device, generator)
        return _finish(z * std + mean, dtype, requires_grad)
    if isinstance(std, (int, float)) and std < 0:
        raise ValueError(f"normal expects std >= 0.0, got {std}")
    first = tensors[0]
    shape = first.shape if len(tensors) == 1 else np.broadcast_shapes(mean.shape, std.shape)
    dt = dtypes.result_type([t.dtype for t in tensors], [], [])
    if not dt.is_floating_point:
        raise DTypeError(f"normal expects floating point mean and std, got {dt.name}")
    z = _normal(tuple(shape), dt, first.device, generator).cast(dt)
    out = z * (std.detach() if isinstance(std, Tensor) else std) + (mean.detach() if isinstance(mean, Tensor) else mean)
    return zero_gradient_link(out.cast(dt), mean, std)


def bernoulli(input: Tensor, p: Scalar | None = None, *, generator: Generator | None = None) -> Tensor:
    """1 with probability `input` (or `p`), else 0, in input's dtype."""
    if not isinstance(input, Tensor):
        raise TypeError(f"bernoulli expects a Tensor of probabilities, got {type(input).__name__}")
    return input.bernoulli(p, generator=generator)
