"""Reducing scatters: scatter_reduce, index_reduce, index_add, index_copy, index_fill.

Built like `scatter` (ops/index.py): a one-hot comparison of the index with the target positions,
`eq[m, n] = index[m] == n`, and a reduction over the sources m, so duplicates combine as the
reduction asks and the gradient is the primitives' for free. The index is realized and its range
checked before the op is built (a sync point, as in `gather`).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import dtypes
from ..errors import ShapeError
from .autocast import autocast_op
from .index import _checked, _eq_arange, _index_tensor, _pick, _place
from .scatter import SCATTER_DTYPES, index_add_rows

if TYPE_CHECKING:
    from ..tensor import Tensor

REDUCTIONS = ("sum", "prod", "mean", "amax", "amin")


def _identity(x: "Tensor", reduce: str) -> Any:
    """The value that leaves `reduce` unchanged, in x's dtype."""
    if reduce in ("sum", "mean"):
        return 0
    if reduce == "prod":
        return 1
    if x.dtype.is_floating_point:
        return -math.inf if reduce == "amax" else math.inf
    info = np.iinfo(np.uint8 if x.dtype is dtypes.bool_ else x.dtype.np)
    return int(info.min) if reduce == "amax" else int(info.max)


def _scatter_reduce(x: "Tensor", d: int, index: "Tensor", src: "Tensor", reduce: str,
                    include_self: bool) -> "Tensor":
    n = x.shape[d]
    eq = _eq_arange(index.unsqueeze(d + 1), n, d + 1, index.shape[:d + 1] + (n,) + index.shape[d + 1:])
    s = src.unsqueeze(d + 1)
    ident = _identity(x, reduce)
    if reduce in ("sum", "mean"):
        part = _pick(s, eq, d)
    elif reduce == "prod":
        part = s.where(eq, ident).prod(d).cast(x.dtype)
    else:
        masked = s.where(eq, ident)
        part = masked.amax(d) if reduce == "amax" else masked.amin(d)
    part = _place(part, x.shape, ident)
    hit = _place(eq.sum(d) > 0, x.shape, False)
    if reduce == "mean":
        count = _place(eq.sum(d), x.shape, 0)
        if include_self:
            part, count = part + x, count + 1
        count = count.maximum(1).cast(part.dtype)
        # integers round down, like torch
        mean = (part / count if part.dtype.is_floating_point else part.floor_divide(count)).cast(x.dtype)
        return mean.where(hit, x) if not include_self else mean
    if include_self:
        if reduce == "sum":
            return (x + part).cast(x.dtype)
        if reduce == "prod":
            return (x * part).cast(x.dtype)
        part = part.maximum(x) if reduce == "amax" else part.minimum(x)
    return part.where(hit, x)


def _full_index(x: "Tensor", d: int, index: Any, source: "Tensor", what: str) -> "Tensor":
    """A 1-D index along d broadcast to source's shape (index_add and friends)."""
    index = _checked_index(x, d, index, source, what)
    return index.reshape(tuple(-1 if i == d else 1 for i in range(x.ndim))).expand(source.shape)


def _checked_index(x: "Tensor", d: int, index: Any, source: "Tensor", what: str) -> "Tensor":
    """The 1-D index along d, checked to be in range, for a source of the shape it must have."""
    index = _index_tensor(x, index, what)
    if index.ndim > 1:
        raise ShapeError(f"{what}: index must be 0-d or 1-D, got shape {index.shape}")
    index = index.reshape(-1)
    want = x.shape[:d] + (index.shape[0],) + x.shape[d + 1:]
    if source.shape != want:
        raise ShapeError(f"{what}: source of shape {source.shape} must have shape {want} (self's shape {x.shape} "
                         f"with dimension {d} the index's length)")
    return _checked(index, x.shape[d], d, False, what)


def _dim_source(x: "Tensor", dim: int, source: Any) -> tuple[int, "Tensor"]:
    from .movement import _dim
    if x.ndim == 0:
        raise ShapeError("index ops need at least a 1-D tensor, got a 0-d tensor")
    return _dim(dim, x.ndim), x._operand(source)


class IndexReduceMixin:
    __slots__ = ()

    def scatter_reduce(self: "Tensor", dim: int, index: Any, src: "Tensor", reduce: str, *,
                       include_self: bool = True) -> "Tensor":
        """self with src combined into the positions `index` along `dim` by `reduce` ('sum', 'prod',
        'mean', 'amax', 'amin'); include_self=False leaves self's value out where a source lands."""
        if reduce not in REDUCTIONS:
            raise ValueError(f"scatter_reduce: reduce must be one of {REDUCTIONS}, got {reduce!r}")
        d, index, src = self._scatter_args(dim, index, src, "scatter_reduce")
        if not index.numel():
            return self.contiguous()
        return _scatter_reduce(self, d, index, src, reduce, include_self)

    def index_reduce(self: "Tensor", dim: int, index: Any, source: "Tensor", reduce: str, *,
                     include_self: bool = True) -> "Tensor":
        """self with slices of source combined into the entries `index` (1-D) of `dim` by `reduce`
        ('prod', 'mean', 'amax', 'amin')."""
        if reduce not in REDUCTIONS[1:]:
            raise ValueError(f"index_reduce: reduce must be one of {REDUCTIONS[1:]}, got {reduce!r}")
        d, source = _dim_source(self, dim, source)
        full = _full_index(self, d, index, source, "index_reduce")
        if not full.numel():
            return self.contiguous()
        return _scatter_reduce(self, d, full, source.cast(self.dtype), reduce, include_self)

    def index_add(self: "Tensor", dim: int, index: Any, source: "Tensor", *, alpha: Any = 1) -> "Tensor":
        """self plus alpha * source's slices added into the entries `index` (1-D) of `dim`."""
        d, source = _dim_source(self, dim, source)
        checked = _checked_index(self, d, index, source, "index_add")
        if not checked.numel():
            return self.contiguous()
        src = (source if alpha == 1 else source * alpha).cast(self.dtype)
        if self.dtype.name in SCATTER_DTYPES:  # the slices summed in one fused kernel (ops/scatter.py)
            moved, base = src.movedim(d, 0), self.movedim(d, 0)
            width = math.prod(base.shape[1:])  # not -1: a slice may be empty
            out = index_add_rows(moved.reshape(moved.shape[0], width), checked, self.shape[d],
                                 base.reshape(self.shape[d], width))
            return out.reshape(base.shape).movedim(0, d)
        full = checked.reshape(tuple(-1 if i == d else 1 for i in range(self.ndim))).expand(source.shape)
        return _scatter_reduce(self, d, full, src, "sum", include_self=True)

    @autocast_op("index_copy")
    def index_copy(self: "Tensor", dim: int, index: Any, source: "Tensor") -> "Tensor":
        """self with source's slices written to the entries `index` (1-D) of `dim`."""
        d, source = _dim_source(self, dim, source)
        full = _full_index(self, d, index, source, "index_copy")
        if not full.numel():
            return self.contiguous()
        return self.scatter(d, full, source.cast(self.dtype))

    def index_fill(self: "Tensor", dim: int, index: Any, value: Any) -> "Tensor":
        """self with the entries `index` (1-D) of `dim` set to `value` (a number or a 0-d tensor)."""
        from ..tensor import Tensor
        from .movement import _dim
        index = _index_tensor(self, index, "index_fill")
        if index.ndim > 1:
            raise ShapeError(f"index_fill: index must be 0-d or 1-D, got shape {index.shape}")
        if isinstance(value, Tensor) and value.ndim:
            raise ShapeError(f"index_fill: value must be a number or a 0-d tensor, got shape {value.shape}")
        x = self.reshape(1) if self.ndim == 0 else self
        d = _dim(dim, x.ndim)
        n = x.shape[d]
        index = _checked(index.reshape(-1), n, d, True, "index_fill")
        if not index.numel():
            return self.contiguous()
        hit = _eq_arange(index.reshape(-1, 1), n, 1, (index.shape[0], n)).sum(0) > 0
        hit = hit.reshape(tuple(n if i == d else 1 for i in range(x.ndim)))
        fill = x._operand(dtypes.checked_scalar(value, x.dtype)).cast(x.dtype)
        return fill.where(hit, x).reshape(self.shape)

    def scatter_reduce_(self: "Tensor", dim: int, index: Any, src: "Tensor", reduce: str, *,
                        include_self: bool = True) -> "Tensor":
        return self._rebind(self._snapshot().scatter_reduce(dim, index, src, reduce, include_self=include_self))

    def index_reduce_(self: "Tensor", dim: int, index: Any, source: "Tensor", reduce: str, *,
                      include_self: bool = True) -> "Tensor":
        return self._rebind(self._snapshot().index_reduce(dim, index, source, reduce, include_self=include_self))

    def index_add_(self: "Tensor", dim: int, index: Any, source: "Tensor", *, alpha: Any = 1) -> "Tensor":
        return self._rebind(self._snapshot().index_add(dim, index, source, alpha=alpha))

    def index_copy_(self: "Tensor", dim: int, index: Any, source: "Tensor") -> "Tensor":
        return self._rebind(self._snapshot().index_copy(dim, index, source))

    def index_fill_(self: "Tensor", dim: int, index: Any, value: Any) -> "Tensor":
        return self._rebind(self._snapshot().index_fill(dim, index, value))


def scatter_reduce(input: "Tensor", dim: int, index: Any, src: "Tensor", reduce: str, *,
                   include_self: bool = True) -> "Tensor":
    return input.scatter_reduce(dim, index, src, reduce, include_self=include_self)


def index_reduce(input: "Tensor", dim: int, index: Any, source: "Tensor", reduce: str, *,
                 include_self: bool = True) -> "Tensor":
    return input.index_reduce(dim, index, source, reduce, include_self=include_self)


def index_add(input: "Tensor", dim: int, index: Any, source: "Tensor", *, alpha: Any = 1) -> "Tensor":
    return input.index_add(dim, index, source, alpha=alpha)


def index_copy(input: "Tensor", dim: int, index: Any, source: "Tensor") -> "Tensor":
    return input.index_copy(dim, index, source)


def index_fill(input: "Tensor", dim: int, index: Any, value: Any) -> "Tensor":
    return input.index_fill(dim, index, value)
