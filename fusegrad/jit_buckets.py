"""Shape buckets for `fg.jit(fn, buckets=...)`: a batch size is rounded up to a bucket, so a
function called with many batch sizes is captured once per bucket instead of once per size.

Every tensor argument is padded with zeros along `batch_dim` to the bucket size, and every result
that has the bucket size along that dim is sliced back to the true size. This computes the right
values only when each output row depends on its input row alone (inference, per-sample losses with
reduction='none'): a mean over the batch, batch norm or anything that mixes rows also sees the
padding. A function with a parameter named `valid` receives a bool tensor of shape (bucket,), True
for the real rows, to mask such reductions (`(loss * valid).sum() / valid.sum()`).
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Sequence

from .creation import arange
from .errors import ShapeError
from .tensor import Tensor


def _tensors(x: Any) -> list[Tensor]:
    """The tensors in an argument structure (tuples, lists and dicts of them), in order."""
    if isinstance(x, Tensor):
        return [x]
    if isinstance(x, (tuple, list)):
        return [t for v in x for t in _tensors(v)]
    if isinstance(x, dict):
        return [t for v in x.values() for t in _tensors(v)]
    return []


def map_tensors(x: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    """The structure with `fn` applied to each tensor in it."""
    if isinstance(x, Tensor):
        return fn(x)
    if isinstance(x, (tuple, list)):
        return type(x)(map_tensors(v, fn) for v in x)
    if isinstance(x, dict):
        return {k: map_tensors(v, fn) for k, v in x.items()}
    return x


class Buckets:
    """The bucket sizes and batch dim of one jitted function, and the padding and slicing around a call."""

    def __init__(self, fn: Callable, buckets: bool | Sequence[int], batch_dim: int):
        if buckets is True:
            self.sizes: tuple[int, ...] = ()  # powers of two
        elif isinstance(buckets, (tuple, list)) and buckets and \
                all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in buckets):
            if list(buckets) != sorted(set(buckets)):
                raise ValueError(f"fg.jit: buckets must increase strictly, got {tuple(buckets)}")
            self.sizes = tuple(buckets)
        else:
            raise TypeError(f"fg.jit: buckets is True (powers of two) or a sequence of positive ints, got {buckets!r}")
        if not isinstance(batch_dim, int) or isinstance(batch_dim, bool):
            raise TypeError(f"fg.jit: batch_dim must be an int, got {type(batch_dim).__name__}")
        self.dim = batch_dim
        try:
            self.valid = "valid" in inspect.signature(fn).parameters
        except (TypeError, ValueError):  # a builtin or C function: no signature to read
            self.valid = False

    def size_for(self, n: int) -> int:
        """The bucket of batch size `n`: the next power of two, or the first bucket that holds it (past
        the largest: the next multiple of the largest)."""
        if n <= 0:
            return n
        if not self.sizes:
            return 1 << (n - 1).bit_length()
        for size in self.sizes:
            if size >= n:
                return size
        return -(-n // self.sizes[-1]) * self.sizes[-1]

    def pad(self, args: tuple, kwargs: dict) -> tuple[tuple, dict, int, int]:
        """The arguments padded to the bucket (with `valid` added where the function takes it), the
        true batch size and the bucket size."""
        tensors = _tensors([args, kwargs])
        if not tensors:
            raise TypeError("fg.jit with buckets needs at least one tensor argument to take the batch size from")
        if self.valid and "valid" in kwargs:
            raise TypeError("fg.jit with buckets passes `valid` itself (the mask of real rows); do not pass it")
        sizes = set()
        for t in tensors:
            if not -t.ndim <= self.dim < t.ndim:
                raise ShapeError(f"fg.jit: batch_dim {self.dim} is out of range for a tensor argument of shape "
                                 f"{tuple(t.shape)}; with buckets every tensor argument has the batch dim")
            sizes.add(t.shape[self.dim])
        if len(sizes) > 1:
            raise ShapeError(f"fg.jit: the tensor arguments disagree on the batch size along dim {self.dim}: "
                             f"{sorted(sizes)}")
        n = sizes.pop()
        size = self.size_for(n)
        if size != n:
            args, kwargs = map_tensors((args, kwargs), lambda t: self._pad(t, size - n))
        if self.valid:
            kwargs = {**kwargs, "valid": arange(size, device=tensors[0].device) < n}
        return args, kwargs, n, size

    def _pad(self, t: Tensor, extra: int) -> Tensor:
        dim = self.dim % t.ndim
        return t.pad_zeros([(0, extra) if d == dim else (0, 0) for d in range(t.ndim)])

    def unpad(self, out: Any, n: int, size: int) -> Any:
        """The results with the padding rows cut off (results without the bucket size there are kept whole)."""
        if n == size:
            return out

        def cut(t: Tensor) -> Tensor:
            if -t.ndim <= self.dim < t.ndim and t.shape[self.dim] == size:
                return t.narrow(self.dim, 0, n)
            return t

        return map_tensors(out, cut)


class BucketedFunction:
    """A function compiled by `fg.jit(fn, buckets=...)`: calls the jitted function at bucket sizes.
    Its counters and methods (`captures`, `replays`, `memory_plan()`, `reset()`) are the jitted one's."""

    def __init__(self, jitted: Callable, buckets: Buckets):
        self._jitted = jitted
        self.buckets = buckets
        functools.update_wrapper(self, jitted, updated=())  # not its __dict__: the counters stay live

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        args, kwargs, n, size = self.buckets.pad(args, kwargs)
        return self.buckets.unpad(self._jitted(*args, **kwargs), n, size)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._jitted, name)
