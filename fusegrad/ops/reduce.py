"""Composite reductions: arg-reductions, statistics, softmax family, scans, norms.

Built from the primitive reductions (sum, prod, amax) and elementwise ops, so gradients come
from the primitives' rules. Maxima subtracted for numerical stability are detached: they cancel
mathematically, and a detached constant keeps a useless path out of the gradient graph.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, NamedTuple

from .. import autograd, dtypes
from ..errors import DTypeError
from ..graph.shapes import normalize_dim
from .autocast import autocast_op
from .composite import in_float32, rounds_once

if TYPE_CHECKING:
    from ..tensor import Tensor


class ValuesIndices(NamedTuple):
    """What max(dim)/min(dim) return, like torch.return_types.max: unpacks as (values, indices)."""

    values: "Tensor"
    indices: "Tensor"


def _need_float(x: "Tensor", name: str) -> None:
    if not x.dtype.is_floating_point:
        raise DTypeError(f"{name}() needs a floating point tensor, got {x.dtype.name}")


def _reduced_shape(shape: tuple[int, ...], axes: tuple[int, ...], keepdim: bool) -> tuple[int, ...]:
    if keepdim:
        return tuple(1 if i in axes else s for i, s in enumerate(shape))
    return tuple(s for i, s in enumerate(shape) if i not in axes)


def _positions(x: "Tensor", dim: int) -> "Tensor":
    """int64 index along `dim` of every element of x. The index is broadcast before any arithmetic
    on it, so it stays a free view that fuses into the consumer's kernel."""
    from ..creation import arange
    n = x.shape[dim]
    along = (1,) * dim + (n,) + (1,) * (x.ndim - dim - 1)
    return arange(n, device=x.device).reshape(along).expand(x.shape)


def _extreme_and_index(x: "Tensor", dim: int, largest: bool, keepdim: bool) -> tuple["Tensor", "Tensor"]:
    """x's max (or min) along dim with kept dims, and the int64 index of its first occurrence;
    NaN counts as the extreme, like torch."""
    extreme = x.amax(dim, keepdim=True) if largest else x.amin(dim, keepdim=True)
    n = x.shape[dim]
    hit = x == extreme
    if x.dtype.is_floating_point:
        hit = hit | (x != x)
    # the first hit has the largest count-down position n - i
    countdown = n - _positions(x, dim)
    return extreme, n - countdown.where(hit, 0).amax(dim, keepdim)


class ReduceMixin:
    __slots__ = ()

    # ---- extremes and their positions -----------------------------------------------------
    def max(self: "Tensor", dim: Any = None, keepdim: bool = False) -> Any:
        """The largest value; with dim, (values, indices); with a tensor, the elementwise maximum."""
        return self._extreme(dim, keepdim, largest=True)

    def min(self: "Tensor", dim: Any = None, keepdim: bool = False) -> Any:
        """The smallest value; with dim, (values, indices); with a tensor, the elementwise minimum."""
        return self._extreme(dim, keepdim, largest=False)

    def _extreme(self: "Tensor", dim: Any, keepdim: bool, largest: bool) -> Any:
        from ..tensor import Tensor
        name = "max" if largest else "min"
        if isinstance(dim, Tensor):
            return self.maximum(dim) if largest else self.minimum(dim)
        if dim is None:
            return self.amax() if largest else self.amin()
        if not isinstance(dim, int):
            raise TypeError(f"{name}(): dim must be an int, got {type(dim).__name__}")
        self._check_nonempty_reduce(name, dim)
        d = normalize_dim(dim, self.ndim)
        if self.ndim == 0:
            return ValuesIndices(self, self._const(0, dtypes.int64))
        values, indices = _extreme_and_index(self.detach(), d, largest, keepdim=True)
        if self.dtype.is_floating_point and autograd.should_record((self,)):
            # gather the chosen element so the whole gradient goes to it, like torch (amax would
            # split it among ties)
            values = self.where(_positions(self, d) == indices, 0).sum(d, keepdim=True)
        if not keepdim:
            values, indices = values.squeeze(d), indices.squeeze(d)
        return ValuesIndices(values, indices)

    def argmax(self: "Tensor", dim: int | None = None, keepdim: bool = False) -> "Tensor":
        """int64 index of the first maximum along dim (of the flattened tensor when dim is None)."""
        return self._arg_extreme(dim, keepdim, largest=True)

    def argmin(self: "Tensor", dim: int | None = None, keepdim: bool = False) -> "Tensor":
        """int64 index of the first minimum along dim (of the flattened tensor when dim is None)."""
        return self._arg_extreme(dim, keepdim, largest=False)

    def _arg_extreme(self: "Tensor", dim: int | None, keepdim: bool, largest: bool) -> "Tensor":
        name = "argmax" if largest else "argmin"
        if self.dtype is dtypes.bool_:
            raise DTypeError(f"{name}() does not support bool tensors")
        self._check_nonempty_reduce(name, dim)
        if dim is None:
            index = _extreme_and_index(self.detach().reshape(-1), 0, largest, keepdim=False)[1]
            return index.reshape((1,) * self.ndim) if keepdim else index
        d = normalize_dim(dim, self.ndim)
        if self.ndim == 0:
            return self._const(0, dtypes.int64)
        return _extreme_and_index(self.detach(), d, largest, keepdim)[1]

    # ---- boolean reductions -----------------------------------------------------------------
    def any(self: "Tensor", dim: Any = None, keepdim: bool = False) -> "Tensor":
        """True where any element along dim is nonzero (uint8 in, uint8 out, like torch)."""
        return self._truth_reduce(dim, keepdim, want_all=False)

    def all(self: "Tensor", dim: Any = None, keepdim: bool = False) -> "Tensor":
        """True where every element along dim is nonzero (uint8 in, uint8 out, like torch)."""
        return self._truth_reduce(dim, keepdim, want_all=True)

    def _truth_reduce(self: "Tensor", dim: Any, keepdim: bool, want_all: bool) -> "Tensor":
        axes = self._axes(dim)
        if any(self.shape[a] == 0 for a in axes):
            # an empty all() is True and an empty any() is False
            out = self._const(want_all, dtypes.bool_, _reduced_shape(self.shape, axes, keepdim))
        elif want_all:  # all() is "no element is zero"
            zero = self.logical_not() if self.dtype is dtypes.bool_ else self == 0
            out = zero.amax(axes, keepdim).logical_not()
        else:
            out = self.bool().amax(axes, keepdim)
        return out.cast(dtypes.uint8) if self.dtype is dtypes.uint8 else out

    def count_nonzero(self: "Tensor", dim: Any = None) -> "Tensor":
        """int64 count of nonzero elements along dim."""
        return self.bool().sum(dim)

    # ---- statistics ---------------------------------------------------------------------------
    @autocast_op("mean")
    def mean(self: "Tensor", dim: Any = None, keepdim: bool = False, dtype: Any = None) -> "Tensor":
        """The sum over `dim` divided by the count (NaN for an empty reduction, as torch)."""
        x = self.cast(dtypes.to_dtype(dtype)) if dtype is not None else self
        if not x.dtype.is_floating_point:
            raise DTypeError(f"mean() needs a floating point tensor, got {x.dtype.name}; use .float() first")
        axes = x._axes(dim)
        count = math.prod(x.shape[a] for a in axes) if x.ndim else 1
        return x.sum(dim, keepdim) / (count if count else float("nan"))

    @autocast_op("var")
    def var(self: "Tensor", dim: Any = None, unbiased: bool | None = None, keepdim: bool = False, *,
            correction: float | None = None) -> "Tensor":
        """Variance with `correction` (1 by default: Bessel's) subtracted from the count."""
        return self._var_mean(dim, unbiased, keepdim, correction, "var")[0]

    @autocast_op("std")
    def std(self: "Tensor", dim: Any = None, unbiased: bool | None = None, keepdim: bool = False, *,
            correction: float | None = None) -> "Tensor":
        """Standard deviation: sqrt(var)."""
        return self._var_mean(dim, unbiased, keepdim, correction, "std")[0].sqrt()

    @autocast_op("var_mean")
    def var_mean(self: "Tensor", dim: Any = None, unbiased: bool | None = None, keepdim: bool = False, *,
                 correction: float | None = None) -> tuple["Tensor", "Tensor"]:
        """(var, mean) from one pass over the mean."""
        return self._var_mean(dim, unbiased, keepdim, correction, "var_mean")

    @autocast_op("std_mean")
    def std_mean(self: "Tensor", dim: Any = None, unbiased: bool | None = None, keepdim: bool = False, *,
                 correction: float | None = None) -> tuple["Tensor", "Tensor"]:
        """(std, mean) from one pass over the mean."""
        var, mean = self._var_mean(dim, unbiased, keepdim, correction, "std_mean")
        return var.sqrt(), mean

    def _var_mean(self: "Tensor", dim: Any, unbiased: bool | None, keepdim: bool, correction: float | None,
                  name: str) -> tuple["Tensor", "Tensor"]:
        if isinstance(dim, bool):  # the legacy x.var(unbiased)
            dim, unbiased = None, dim
        _need_float(self, name)
        if correction is not None and unbiased is not None:
            raise ValueError(f"{name}(): pass only one of 'unbiased' and 'correction'")
        if correction is None:
            correction = 0 if unbiased is False else 1
        axes = self._axes(dim)
        count = math.prod(self.shape[a] for a in axes)
        mean = self.mean(axes, keepdim=True)
        centered = self - mean
        var = (centered * centered).sum(axes, keepdim) / max(0, count - correction)
        return var, mean if keepdim else mean.reshape(_reduced_shape(self.shape, axes, False))

    # ---- softmax family -----------------------------------------------------------------------
    @autocast_op("logsumexp")
    @rounds_once
    def logsumexp(self: "Tensor", dim: Any = None, keepdim: bool = False) -> "Tensor":
        """log(sum(exp(x))) along dim, shifted by the maximum so nothing overflows."""
        x = self.cast(dtypes.least_float(self.dtype))
        axes = x._axes(dim)
        if any(x.shape[a] == 0 for a in axes):
            return x.exp().sum(axes, keepdim).log()  # log(0) = -inf, like torch
        # the shift is the maximum clamped to finite values: a row of -inf (or holding +inf) must not
        # compute -inf - -inf (or inf - inf); clamping inside the max keeps this to 2 kernels
        big = dtypes.FLOAT_MAX[x.dtype.name]
        shift = x.detach().clamp(-big, big).amax(axes, keepdim=True)
        total = (x - shift).exp().sum(axes, keepdim).log()
        return total + (shift if keepdim else shift.reshape(total.shape))

    @autocast_op("softmax")
    def softmax(self: "Tensor", dim: int, dtype: Any = None) -> "Tensor":
        """exp(x) / sum(exp(x)) along dim (3 kernels: max, sum, normalize)."""
        x = self._softmax_input(dtype, "softmax")
        if x.numel() == 0:
            return x

        def softmax(x: "Tensor") -> "Tensor":
            e = (x - x.detach().amax(dim, keepdim=True)).exp()
            return e / e.sum(dim, keepdim=True)
        return in_float32(softmax, x)

    @autocast_op("log_softmax")
    def log_softmax(self: "Tensor", dim: int, dtype: Any = None) -> "Tensor":
        """x - logsumexp(x) along dim, without forming exp(x) / sum."""
        x = self._softmax_input(dtype, "log_softmax")
        if x.numel() == 0:
            return x

        def log_softmax(x: "Tensor") -> "Tensor":
            shifted = x - x.detach().amax(dim, keepdim=True)
            return shifted - shifted.exp().sum(dim, keepdim=True).log()
        return in_float32(log_softmax, x)

    def _softmax_input(self: "Tensor", dtype: Any, name: str) -> "Tensor":
        x = self.cast(dtypes.to_dtype(dtype)) if dtype is not None else self
        _need_float(x, name)
        return x

    # ---- scans ----------------------------------------------------------------------------------
    @autocast_op("cumsum")
    def cumsum(self: "Tensor", dim: int, dtype: Any = None) -> "Tensor":
        """Running sum along dim (integers and bool accumulate in int64, like torch)."""
        return self._scan(dim, dtype, product=False)

    @autocast_op("cumprod")
    def cumprod(self: "Tensor", dim: int, dtype: Any = None) -> "Tensor":
        """Running product along dim (integers and bool accumulate in int64, like torch)."""
        return self._scan(dim, dtype, product=True)

    def _scan(self: "Tensor", dim: int, dtype: Any, product: bool) -> "Tensor":
        if dtype is not None:
            x = self.cast(dtypes.to_dtype(dtype))
        else:
            x = self if self.dtype.is_floating_point else self.cast(dtypes.int64)
        d = normalize_dim(dim, x.ndim)
        if x.ndim == 0:
            return x
        # out[.., i, ..] reduces x[.., j, ..] over j <= i: x spread over a new axis i (at d, its
        # own axis j moves to d + 1), masked by a triangle; one fused O(n^2) reduction kernel
        spread = x.unsqueeze(d).expand(x.shape[:d] + (x.shape[d],) + x.shape[d:])
        triangle = _positions(spread, d + 1) <= _positions(spread, d)
        picked = spread.where(triangle, 1 if product else 0)
        return picked.prod(d + 1) if product else picked.sum(d + 1)

    # ---- norms ------------------------------------------------------------------------------------
    @autocast_op("norm")
    def norm(self: "Tensor", p: Any = "fro", dim: Any = None, keepdim: bool = False, dtype: Any = None) -> "Tensor":
        """Vector p-norm over dim (all elements by default): p = 'fro', 2, 1, inf, -inf, 0 or any number."""
        x = self.cast(dtypes.to_dtype(dtype)) if dtype is not None else self
        _need_float(x, "norm")
        if p == "fro" or p == 2:
            return _safe_root(x.square().sum(dim, keepdim), 0.5)
        if isinstance(p, str):
            raise ValueError(f"norm: unsupported p={p!r} (use 'fro' or a number)")
        if p == math.inf:
            return x.abs().amax(dim, keepdim)
        if p == -math.inf:
            return x.abs().amin(dim, keepdim)
        if p == 0:
            return (x != 0).sum(dim, keepdim).cast(x.dtype)
        if p == 1:
            return x.abs().sum(dim, keepdim)
        return _safe_root((x.abs() ** p).sum(dim, keepdim), 1 / p)


def _safe_root(total: "Tensor", exponent: float) -> "Tensor":
    """total ** exponent with a zero gradient where total is 0, like torch's norms (the root's
    derivative is infinite there; feeding the untaken branch 1 keeps the gradient finite)."""
    zero = total == 0
    root = total.where(zero.logical_not(), 1)
    root = root.sqrt() if exponent == 0.5 else root ** exponent
    return root.where(zero.logical_not(), 0)
