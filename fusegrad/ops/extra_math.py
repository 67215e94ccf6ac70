"""Special functions (erfc, erfinv, lgamma, digamma) and statistics (quantile, cov, corrcoef).

The special functions are series and iterations written with Tensor methods, evaluated in float64 (a
float32 input is cast back at the end), so their gradients come from autograd: lgamma's derivative
is the derivative of its series, which is digamma's series, and digamma's is trigamma's (torch's
polygamma(1, x)). erfinv refines a polynomial guess by Halley steps outside the graph, then takes one
Newton step inside it, which gives the exact first derivative sqrt(pi)/2 * exp(erfinv(x)^2) (and no
second derivative).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .. import dtypes
from ..errors import DTypeError, ShapeError
from .autocast import autocast_op

if TYPE_CHECKING:
    from ..tensor import Tensor

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
# Stirling's series of lgamma(z) - ((z - 1/2) log z - z + log(2 pi)/2): B_2k / (2k (2k-1) z^(2k-1))
_STIRLING = (1 / 12, -1 / 360, 1 / 1260, -1 / 1680, 1 / 1188, -691 / 360360, 1 / 156)
# digamma's asymptotic series beyond log z - 1/(2z): -B_2k / (2k z^2k)
_DIGAMMA = (-1 / 12, 1 / 120, -1 / 252, 1 / 240, -1 / 132, 691 / 32760, -1 / 12)
_SHIFT = 8  # both series are used at z >= 8, where their last term is below 1e-14
# erfinv's starting guess: a polynomial in w = -log(1 - x^2) (Giles' single precision approximation)
_ERFINV_SMALL = (2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087,
                 -0.00125372503, -0.00417768164, 0.246640727, 1.50140941)
_ERFINV_LARGE = (-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773,
                 -0.0076224613, 0.00943887047, 1.00167406, 2.83297682)
_ERFC_CF_FROM, _ERFC_CF_TERMS = 2.5, 36  # erfc's continued fraction is used from 2.5, where it has converged
_INTERPOLATIONS = ("linear", "lower", "higher", "midpoint", "nearest")


def _horner(coeffs: tuple[float, ...], w: "Tensor") -> "Tensor":
    p = w._const(coeffs[0])
    for c in coeffs[1:]:
        p = p * w + c
    return p


def _wide(x: "Tensor") -> tuple["Tensor", dtypes.DType]:
    """x in float64 plus the dtype the result goes back to (float32 for integer input, like torch)."""
    out = dtypes.least_float(x.dtype)
    return x.cast(dtypes.float64), out


def _reflect_arg(x: "Tensor", reflect: "Tensor") -> "Tensor":
    """x - round(x) where x is reflected, else 1/2: the exact argument of sin(pi x) and cos(pi x)."""
    safe = x.where(reflect, 0.5)
    return safe - safe.round()


def _lgamma_positive(y: "Tensor") -> "Tensor":
    """lgamma for y >= 1/2: Stirling's series at y + 8 (or y, when y >= 8) less the logs of the shift."""
    small = y < _SHIFT
    ys = y.clamp(max=_SHIFT)
    prod = ys
    for k in range(1, _SHIFT):
        prod = prod * (ys + k)
    z = (y + _SHIFT).where(small, y)
    inv, inv2 = z.reciprocal(), z.reciprocal().square()
    series, power = z._const(0.0), inv
    for c in _STIRLING:
        series = series + c * power
        power = power * inv2
    return (z - 0.5) * z.log() - z + _HALF_LOG_2PI + series - prod.log().where(small, 0.0)


def _digamma_positive(y: "Tensor") -> "Tensor":
    """digamma for y >= 1/2: the asymptotic series at y + 8 (or y) less the recurrence's 1/(y + k)."""
    small = y < _SHIFT
    ys = y.clamp(max=_SHIFT)
    recur = ys.reciprocal()
    for k in range(1, _SHIFT):
        recur = recur + (ys + k).reciprocal()
    z = (y + _SHIFT).where(small, y)
    inv2 = z.reciprocal().square()
    series, power = z._const(0.0), inv2
    for c in _DIGAMMA:
        series = series + c * power
        power = power * inv2
    return z.log() - 0.5 * z.reciprocal() + series - recur.where(small, 0.0)


def _erfc_tail(x: "Tensor") -> "Tensor":
    """erfc for x >= 2.5 from its continued fraction exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + ...)))."""
    t = x
    for k in range(_ERFC_CF_TERMS, 0, -1):
        t = x + (k / 2) / t
    return (-x.square()).exp() / (math.sqrt(math.pi) * t)


class ExtraMathMixin:
    __slots__ = ()

    # ---- special functions --------------------------------------------------------------------
    def erfc(self: "Tensor") -> "Tensor":
        """1 - erf(x), accurate in the tail (a continued fraction from x = 2.5)."""
        x, out = _wide(self)
        tail = x >= _ERFC_CF_FROM
        return _erfc_tail(x.clamp(min=_ERFC_CF_FROM)).where(tail, 1.0 - x.erf()).cast(out)

    @autocast_op("erfinv")
    def erfinv(self: "Tensor") -> "Tensor":
        """The inverse of erf on [-1, 1] (+-inf at +-1, NaN outside)."""
        x, out = _wide(self)
        xd = x.detach()
        w = -((1.0 - xd) * (1.0 + xd)).log()
        small = w < 5.0
        y = _horner(_ERFINV_SMALL, w - 2.5).where(small, _horner(_ERFINV_LARGE, w.sqrt() - 3.0)) * xd
        for _ in range(2):  # Halley steps: the guess's 1e-7 error becomes far below float64's resolution
            u = (y.erf() - xd) * (0.5 * math.sqrt(math.pi)) * y.square().exp()
            y = y - u / (1.0 + y * u)
        # one Newton step with x in the graph: its derivative in x is erfinv's, sqrt(pi)/2 exp(y^2)
        y = y - (y.erf() - x) * (0.5 * math.sqrt(math.pi) * y.square().exp())
        edge = xd.abs() == 1.0
        return y.where(edge.logical_not(), xd * math.inf).cast(out)

    def lgamma(self: "Tensor") -> "Tensor":
        """log |Gamma(x)| (+inf at the poles 0, -1, -2, ...)."""
        x, out = _wide(self)
        reflect = x < 0.5
        lg = _lgamma_positive((1.0 - x).where(reflect, x))
        r = _reflect_arg(x, reflect)
        reflected = (math.pi / (math.pi * r).sin().abs()).log() - lg
        result = reflected.where(reflect, lg).where(x != math.inf, math.inf)
        return result.cast(out)

    def digamma(self: "Tensor") -> "Tensor":
        """d/dx lgamma(x) (-inf at 0, NaN at negative integers, like torch)."""
        x, out = _wide(self)
        reflect = x < 0.5
        psi = _digamma_positive((1.0 - x).where(reflect, x))
        r = _reflect_arg(x, reflect)
        reflected = psi - math.pi * (math.pi * r).cos() / (math.pi * r).sin()
        pole = (x < 0) & (r == 0)
        result = reflected.where(reflect, psi).where(pole.logical_not(), math.nan)
        return result.cast(out)

    # ---- statistics -----------------------------------------------------------------------------
    @autocast_op("quantile")
    def quantile(self: "Tensor", q: Any, dim: int | None = None, keepdim: bool = False, *,
                 interpolation: str = "linear") -> "Tensor":
        """The q-th quantiles along dim (all elements when None); a row with NaN gives NaN. q: a number
        or a 0-d/1-D tensor (its values are read on the host, as torch does, to check them)."""
        return self._quantile("quantile", q, dim, keepdim, interpolation, ignore_nan=False)

    @autocast_op("nanquantile")
    def nanquantile(self: "Tensor", q: Any, dim: int | None = None, keepdim: bool = False, *,
                    interpolation: str = "linear") -> "Tensor":
        """quantile that ignores NaN (a row of NaN only gives NaN)."""
        return self._quantile("nanquantile", q, dim, keepdim, interpolation, ignore_nan=True)

    def _quantile(self: "Tensor", name: str, q: Any, dim: int | None, keepdim: bool, interpolation: str,
                  ignore_nan: bool) -> "Tensor":
        from ..tensor import Tensor, tensor
        if self.dtype not in (dtypes.float32, dtypes.float64):
            raise DTypeError(f"{name}() input tensor must be either float or double dtype, got {self.dtype.name}")
        if interpolation not in _INTERPOLATIONS:
            raise ShapeError(f"{name}() interpolation must be one of linear, lower, higher, midpoint or nearest. "
                             f"Got {interpolation}")
        if isinstance(q, Tensor):
            if q.dtype is not self.dtype:
                raise DTypeError(f"{name}() q tensor must be same dtype as the input tensor, got {q.dtype.name}")
            if q.ndim > 1:
                raise ShapeError(f"{name}() q must be a scalar or 1D tensor, got shape {q.shape}")
            values = q.reshape(-1).tolist()
            scalar_q, qt = q.ndim == 0, q.reshape(-1)
        else:
            values = [float(v) for v in q] if isinstance(q, (list, tuple)) else [float(q)]
            scalar_q = not isinstance(q, (list, tuple))
            qt = tensor(values, dtype=self.dtype, device=self.device)
        if any(not 0 <= v <= 1 for v in values):
            raise ShapeError(f"{name}() q values must be in the range [0, 1]")
        if self.numel() == 0:
            raise ShapeError(f"{name}() input tensor must be non-empty")
        x, d = (self.reshape(-1), 0) if dim is None else (self, dim)
        rows = x.movedim(d, -1) if x.ndim else x.reshape(1)
        n = rows.shape[-1]
        srt = rows.sort(-1).values  # NaN sorts last
        if ignore_nan:  # positions among the non-NaN values; a row of NaN only clamps to its first (NaN)
            last = (n - 1 - rows.isnan().sum(-1, keepdim=True)).cast(self.dtype)
            pos = (qt * last).clamp(min=0)
        else:
            # a row holding NaN reads its last (NaN) element, so the NaN and its gradient flow through
            nan = rows.isnan().any(-1, keepdim=True)
            pos = (qt * (n - 1)).expand(*rows.shape[:-1], qt.shape[0]).where(nan.logical_not(), float(n - 1))
        lo, hi = pos.floor(), pos.ceil()
        if interpolation == "nearest":
            lo = hi = pos.round()
        elif interpolation == "lower":
            hi = lo
        elif interpolation == "higher":
            lo = hi
        below = srt.gather(-1, lo.cast(dtypes.int64))
        above = srt.gather(-1, hi.cast(dtypes.int64))
        if interpolation in ("linear", "midpoint"):
            weight = pos - lo if interpolation == "linear" else pos._const(0.5)
            result = below.lerp(above, weight)
        else:
            result = below
        result = result.movedim(-1, 0)
        if keepdim:
            kept = (1,) * self.ndim if dim is None else tuple(
                1 if i == (d % self.ndim) else s for i, s in enumerate(self.shape))
            result = result.reshape(qt.shape[0], *kept)
        return result.squeeze(0) if scalar_q else result

    def cov(self: "Tensor", *, correction: int = 1, fweights: Any = None, aweights: Any = None) -> "Tensor":
        """Covariance of the rows (variables) over the columns (observations), optionally weighted."""
        if self.ndim > 2:
            raise ShapeError(f"cov(): expected input to have two or fewer dimensions but got an input with "
                             f"{self.ndim} dimensions")
        x = self.reshape(1, -1) if self.ndim < 2 else self
        if not x.dtype.is_floating_point:
            x = x.cast(dtypes.float32)
        n = x.shape[1]
        w: "Tensor | None" = None
        for name, weights in (("fweights", fweights), ("aweights", aweights)):
            if weights is None:
                continue
            if weights.ndim > 1 or weights.numel() != n:
                raise ShapeError(f"cov(): expected {name} to have one or fewer dimensions and {n} elements, "
                                 f"got shape {weights.shape}")
            if name == "fweights" and weights.dtype.is_floating_point:
                raise DTypeError("cov(): expected fweights to have integral dtype")
            if name == "aweights" and not weights.dtype.is_floating_point:
                raise DTypeError("cov(): expected aweights to have floating point dtype")
            wt = weights.reshape(-1).cast(x.dtype)
            w = wt if w is None else w * wt
        if w is None:
            avg, w_sum = x.mean(1), float(n)
            norm: Any = max(n - correction, 0)
        else:
            w_sum = w.sum()
            avg = (x * w).sum(1) / w_sum
            if aweights is None or correction == 0:
                norm = w_sum - correction
            else:
                norm = w_sum - correction * (w * aweights.reshape(-1).cast(x.dtype)).sum() / w_sum
            norm = norm.clamp(min=0)
        xm = x - avg.unsqueeze(1)
        c = xm.matmul((xm if w is None else xm * w).t())
        return (c / norm).squeeze()

    def corrcoef(self: "Tensor") -> "Tensor":
        """Pearson correlation coefficients of the rows, clipped to [-1, 1]."""
        c = self.cov()
        if c.ndim == 0:
            return c / c
        std = c.diagonal().sqrt()
        return (c / std.unsqueeze(1) / std.unsqueeze(0)).clamp(-1, 1)
