"""Sampling from tensors of weights: `multinomial`, drawing from ops/random.py's Philox streams (the
global one `fg.manual_seed` seeds, or a `generator=`)."""
from __future__ import annotations

import math
import numpy as np

from typing import TYPE_CHECKING

from .. import dtypes
from ..errors import DTypeError, InvalidValueError, ShapeError
from .random import Generator, uniform
from .sorting import _first_slots, _iota

if TYPE_CHECKING:
    from ..tensor import Tensor


def _check_weights(p: "Tensor", num_samples: int, replacement: bool) -> "Tensor":
    """The weights, checked: on the host when they are there already (torch's sync point), else by the
    kernel that reads them (lazy weights, a GPU, inside fg.jit), raising at the next synchronization."""
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
    w = p.detach()
    need = 1 if replacement else num_samples
    if not w._is_host_value():
        positive = (w > 0).sum(-1, keepdim=True) >= need
        ok = (w >= 0) & (w < math.inf) & positive  # NaN fails both comparisons
        return w._device_check(ok, f"multinomial(): weights must be finite and non-negative, with at least {need} "
                                   "positive per row (the first bad row holds element {position})", InvalidValueError)
    arr = w.numpy().reshape(-1, n)
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise InvalidValueError("multinomial(): weights must be finite and non-negative")
    positive = (arr > 0).sum(-1)
    if (positive == 0).any():
        raise InvalidValueError("multinomial(): every row of weights needs a positive sum")
    if not replacement and (positive < num_samples).any():
        raise InvalidValueError(f"multinomial(): fewer than {num_samples} categories of non-zero weight to sample "
                         "without replacement")
    return w


def _multinomial(p: "Tensor", num_samples: int, replacement: bool, generator: Generator | None) -> "Tensor":
    w = _check_weights(p, num_samples, replacement).reshape(-1, p.shape[-1])
    rows, n = w.shape
    if replacement:
        # inverse CDF: the sample is the count of cumulative weights <= u * total
        cdf = w.cumsum(-1)
        u = uniform((rows, num_samples), p.device, generator).cast(w.dtype) * cdf._narrow(1, n - 1, n)
        picked = (cdf.unsqueeze(1) <= u.unsqueeze(-1)).sum(-1)
        # rounding can put u * total at the total: fall back to the last category of non-zero weight
        last = _iota(n, w, 1, 2).where(w > 0, 0).amax(-1, keepdim=True)
        out = picked.minimum(last)
    else:
        # exponential races: the num_samples smallest of Exp(1) / w are a draw without replacement
        keys = -(1 - uniform((rows, n), p.device, generator).cast(dtypes.float64)).log() / w.cast(dtypes.float64)
        keys = keys.where(w > 0, math.inf)
        out = _first_slots(keys, False, num_samples)[1]
    return out.reshape(num_samples) if p.ndim == 1 else out


class SamplingMixin:
    __slots__ = ()

    def multinomial(self: "Tensor", num_samples: int, replacement: bool = False, *,
                    generator: Generator | None = None) -> "Tensor":
        """int64 indices drawn from the rows of this tensor of non-negative weights. With replacement:
        inverse CDF, one compare-sum over the cumulative weights per draw; without: the num_samples
        smallest keys Exp(1) / weight (a draw without replacement), picked as topk picks. The weights
        are checked on the host first (a sync point, as in torch)."""
        return _multinomial(self, num_samples, replacement, generator)


def multinomial(input: "Tensor", num_samples: int, replacement: bool = False, *,
                generator: Generator | None = None) -> "Tensor":
    """torch.multinomial: see Tensor.multinomial."""
    return _multinomial(input, num_samples, replacement, generator)
