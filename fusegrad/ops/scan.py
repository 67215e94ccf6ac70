"""Running extremes (cummax, cummin) and logcumsumexp.

Like cumsum, a scan along a dim of length n is one fused O(n^2) reduction: the input spread over
a new axis i, masked to the entries j <= i, reduced over j. The index of a running extreme is the
last j <= i holding it (torch's CPU rule, NaN counting as the extreme), and the value is gathered
at that index, so its gradient goes to that element alone.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import autograd, dtypes
from ..errors import DTypeError
from .autocast import autocast_op
from .sorting import ValuesIndices, _from_last, _iota, _select_slots, _to_last

if TYPE_CHECKING:
    from ..tensor import Tensor


def _triangle(x: "Tensor") -> tuple["Tensor", "Tensor"]:
    """x (..., n) spread to (..., n_i, n_j), and the mask j <= i."""
    n, nd = x.shape[-1], x.ndim + 1
    spread = x.unsqueeze(-2).expand(x.shape[:-1] + (n, n))
    return spread, _iota(n, x, nd - 1, nd) <= _iota(n, x, nd - 2, nd)


def _lowest(x: "Tensor", largest: bool) -> Any:
    """The value that never wins a running max (min when not largest) of x's dtype."""
    if x.dtype.is_floating_point:
        return -math.inf if largest else math.inf
    info = np.iinfo(x.dtype.np)
    return int(info.min) if largest else int(info.max)


def _running_extreme(x: "Tensor", dim: int, largest: bool) -> ValuesIndices:
    if x.ndim == 0:
        return ValuesIndices(x, x._const(0, dtypes.int64))
    src = x.cast(dtypes.uint8) if x.dtype is dtypes.bool_ else x
    last, d = _to_last(src, dim)
    c = last.detach()
    spread, tri = _triangle(c)
    masked = spread.where(tri, _lowest(c, largest))
    best = (masked.amax(-1) if largest else masked.amin(-1)).unsqueeze(-1)  # (..., n_i, 1)
    hit = (spread == best) & tri
    if c.dtype.is_floating_point:
        hit = hit | (spread.isnan() & best.isnan() & tri)
    n, nd = c.shape[-1], c.ndim + 1
    index = _iota(n, c, nd - 1, nd).where(hit, -1).amax(-1)
    values = best.squeeze(-1)
    if x.dtype.is_floating_point and autograd.should_record((x,)):
        values = _select_slots(last, _iota(n, c, nd - 1, nd) == index.unsqueeze(-1))[0]
    values = values.cast(x.dtype) if values.dtype is not x.dtype else values
    return ValuesIndices(_from_last(values, d), _from_last(index, d))


class ScanMixin:
    __slots__ = ()

    def cummax(self: "Tensor", dim: int) -> ValuesIndices:
        """(values, indices) of the running maximum along dim (NaN propagates). O(n^2) per row."""
        return _running_extreme(self, dim, largest=True)

    def cummin(self: "Tensor", dim: int) -> ValuesIndices:
        """(values, indices) of the running minimum along dim (NaN propagates). O(n^2) per row."""
        return _running_extreme(self, dim, largest=False)

    @autocast_op("logcumsumexp")
    def logcumsumexp(self: "Tensor", dim: int) -> "Tensor":
        """log(cumsum(exp(x))) along dim, each prefix shifted by its own maximum (no overflow). O(n^2)."""
        if not self.dtype.is_floating_point:
            raise DTypeError(f"logcumsumexp() needs a floating point tensor, got {self.dtype.name}")
        if self.ndim == 0:
            return self
        last, d = _to_last(self, dim)
        spread, tri = _triangle(last)
        return _from_last(spread.where(tri, -math.inf).logsumexp(-1), d)


def cummax(input: "Tensor", dim: int) -> ValuesIndices:
    return input.cummax(dim)


def cummin(input: "Tensor", dim: int) -> ValuesIndices:
    return input.cummin(dim)


def logcumsumexp(input: "Tensor", dim: int) -> "Tensor":
    return input.logcumsumexp(dim)


def cumsum(input: "Tensor", dim: int, dtype: Any = None) -> "Tensor":
    return input.cumsum(dim, dtype=dtype)


def cumprod(input: "Tensor", dim: int, dtype: Any = None) -> "Tensor":
    return input.cumprod(dim, dtype=dtype)
