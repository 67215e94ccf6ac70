"""Running extremes (cummax, cummin), logcumsumexp, and multinomial sampling.

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
from ..errors import DTypeError, ShapeError
from .sorting import ValuesIndices, _iota, _ranks, _slots

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
    from .sorting import _from_last, _to_last
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
        from .sorting import _select_slots
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

    def logcumsumexp(self: "Tensor", dim: int) -> "Tensor":
        """log(cumsum(exp(x))) along dim, each prefix shifted by its own maximum (no overflow). O(n^2)."""
        from .sorting import _from_last, _to_last
        if not self.dtype.is_floating_point:
            raise DTypeError(f"logcumsumexp() needs a floating point tensor, got {self.dtype.name}")
        if self.ndim == 0:
            return self
        last, d = _to_last(self, dim)
        spread, tri = _triangle(last)
        return _from_last(spread.where(tri, -math.inf).logsumexp(-1), d)

    def multinomial(self: "Tensor", num_samples: int, replacement: bool = False, *,
                    generator: Any = None) -> "Tensor":
        """int64 indices drawn from the rows of this tensor of non-negative weights (fg.manual_seed
        seeds it). The weights are checked on the host (a sync point, as in torch)."""
        return _multinomial(self, num_samples, replacement, generator)


def _check_weights(p: "Tensor", num_samples: int, replacement: bool) -> None:
    if not p.dtype.is_floating_point:
        raise DTypeError(f"multinomial() needs floating point weights, got {p.dtype.name}")
    if p.ndim not in (1, 2):
        raise ShapeError(f"multinomial(): weights must be 1-D or 2-D, got shape {p.shape}")
    n = p.shape[-1]
    if n == 0:
        raise ShapeError("multinomial(): the number of categories cannot be zero")
    if num_samples <= 0:
        raise ShapeError(f"multinomial(): cannot sample num_samples={num_samples} <= 0 samples")
    if not replacement and num_samples > n:
        raise ShapeError(f"multinomial(): cannot sample {num_samples} > {n} categories without replacement")
    arr = p.detach().numpy().reshape(-1, n)  # sync point: torch checks the weights too
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise ValueError("multinomial(): weights must be finite and non-negative")
    positive = (arr > 0).sum(-1)
    if (positive == 0).any():
        raise ValueError("multinomial(): every row of weights needs a positive sum")
    if not replacement and (positive < num_samples).any():
        raise ValueError(f"multinomial(): fewer than {num_samples} categories of non-zero weight to sample "
                         "without replacement")


def _multinomial(p: "Tensor", num_samples: int, replacement: bool, generator: Any) -> "Tensor":
    from ..random import rand
    if generator is not None:
        raise TypeError("multinomial(): generators are not supported; seed with fg.manual_seed")
    _check_weights(p, num_samples, replacement)
    w = p.detach().reshape(-1, p.shape[-1])
    rows, n = w.shape
    if replacement:
        # inverse CDF: the sample is the count of cumulative weights <= u * total
        cdf = w.cumsum(-1)
        u = rand(rows, num_samples, device=p.device).cast(w.dtype) * cdf._narrow(1, n - 1, n)
        picked = (cdf.unsqueeze(1) <= u.unsqueeze(-1)).sum(-1)
        # rounding can put u * total at the total: fall back to the last category of non-zero weight
        last = _iota(n, w, 1, 2).where(w > 0, 0).amax(-1, keepdim=True)
        out = picked.minimum(last)
    else:
        # exponential races: the num_samples smallest of Exp(1) / w are a draw without replacement
        keys = -(1 - rand(rows, n, device=p.device).cast(dtypes.float64)).log() / w.cast(dtypes.float64)
        keys = keys.where(w > 0, math.inf)
        out = _slots(keys, _ranks(keys, descending=False), _iota(num_samples, keys, 1, 2))[1]
    return out.reshape(num_samples) if p.ndim == 1 else out


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


def multinomial(input: "Tensor", num_samples: int, replacement: bool = False, *, generator: Any = None) -> "Tensor":
    return input.multinomial(num_samples, replacement, generator=generator)

