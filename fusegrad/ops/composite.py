"""Half-precision inputs of composite ops: computed in float32, rounded once.

torch runs an activation, a softmax or a norm as one kernel that computes float16/bfloat16 values in
float and rounds its output once. fusegrad composes the same op from primitives, each of which rounds
its half-precision result (as torch rounds every op's output), so a GELU of bfloat16 values rounded
ten times: numbers further from torch's, and per-element rounding code in every fused kernel of its
forward and backward (docs/amp.md has the step times). `rounds_once`
widens an op's half-precision tensor arguments to float32, runs the composition, and rounds its
floating results back once; the gradients flow through the two casts the same way.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

from .. import dtypes

F = TypeVar("F", bound=Callable[..., Any])


def in_float32(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """fn(*args, **kwargs); when the first argument is a half-precision tensor, its half-precision tensor
    arguments are computed as float32 and the float32 results rounded once to the first argument's
    dtype (torch's norms, too, give their input's dtype whatever their weights' is)."""
    from ..tensor import Tensor
    half = args[0].dtype if args and isinstance(args[0], Tensor) and args[0].dtype in dtypes.HALF else None
    if half is None:
        return fn(*args, **kwargs)

    def widen(v: Any) -> Any:
        return v.float() if isinstance(v, Tensor) and v.dtype in dtypes.HALF else v

    return _narrow(fn(*(widen(a) for a in args), **{k: widen(v) for k, v in kwargs.items()}), half)


def _narrow(v: Any, half: Any) -> Any:
    """float32 results (in tuples too) back to `half` (module-level: a recursive closure is a reference cycle)."""
    from ..tensor import Tensor
    if isinstance(v, Tensor):
        return v.to(half) if v.dtype is dtypes.float32 else v
    return type(v)(_narrow(x, half) for x in v) if isinstance(v, tuple) else v


def rounds_once(fn: F) -> F:
    """Decorator form of `in_float32`, for an op whose result has its first argument's dtype."""
    @functools.wraps(fn)
    def op(*args: Any, **kwargs: Any) -> Any:
        return in_float32(fn, *args, **kwargs)
    return op  # type: ignore[return-value]
