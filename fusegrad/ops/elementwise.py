"""Elementwise composites: arithmetic variants, activations, rounding, clamping, float classification.

Everything here is written with Tensor methods, so autograd, fusion and every backend come free.
Two rules shape the formulas:
- a branch of a `where` that is not taken still gets a zero gradient, and 0 * inf is NaN, so each
  branch is fed inputs on which it stays finite (e.g. sigmoid only ever exponentiates -|x|);
- where the accurate formula's derivative is not accurate itself (Kahan's log1p/expm1 tricks),
  the value comes from the accurate formula and the derivatives from the plain one
  (`_with_grad_of`), so higher orders stay right too.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .. import autograd, dtypes
from ..errors import DTypeError
from .autocast import autocast_op
from .composite import rounds_once

if TYPE_CHECKING:
    from ..tensor import Tensor



def _where(cond: "Tensor", a: Any, b: Any) -> "Tensor":
    from ..tensor import where
    return where(cond, a, b)


def _float(x: "Tensor") -> "Tensor":
    """x in the dtype that exp(x) has: itself if floating, else float32 (like torch)."""
    return x.cast(dtypes.least_float(x.dtype))


def _need_float(x: "Tensor", name: str) -> None:
    if not x.dtype.is_floating_point:
        raise DTypeError(f"{name}() needs a floating point tensor, got {x.dtype.name}")


def _no_bool(x: "Tensor", name: str) -> None:
    if x.dtype is dtypes.bool_:
        raise DTypeError(f"{name}() does not support bool tensors")


def _with_grad_of(value: "Tensor", surrogate: "Tensor") -> "Tensor":
    """The numbers of `value` with the derivatives of `surrogate` (the same function, computed plainly).

    `surrogate - surrogate.detach()` is exactly 0 where the surrogate is finite and NaN where it is
    not; there the surrogate's own value (inf or NaN) is the right answer anyway.
    """
    if not autograd.should_record((surrogate,)):
        return value
    zero = surrogate - surrogate.detach()
    return _where(zero == 0, value.detach() + zero, surrogate)


class ElementwiseMixin:
    __slots__ = ()

    # ---- arithmetic with torch's keyword arguments ---------------------------------------
    def add(self: "Tensor", other: Any, alpha: Any = 1) -> "Tensor":
        """self + alpha * other."""
        return self + self._scaled(other, alpha, "add")

    def sub(self: "Tensor", other: Any, alpha: Any = 1) -> "Tensor":
        """self - alpha * other."""
        return self - self._scaled(other, alpha, "sub")

    def _scaled(self: "Tensor", other: Any, alpha: Any, name: str) -> Any:
        if alpha == 1:
            return other
        _, dt = self._promote(other)
        if isinstance(alpha, float) and not dt.is_floating_point:
            raise DTypeError(f"{name}(): for {dt.name} tensors, alpha must not be a floating point number")
        dtypes.checked_scalar(alpha, dt)
        return self._operand(other) * alpha

    subtract = sub

    def mul(self: "Tensor", other: Any) -> "Tensor":
        """self * other."""
        return self * other

    multiply = mul

    def div(self: "Tensor", other: Any, rounding_mode: str | None = None) -> "Tensor":
        """True division, or rounded toward zero ('trunc') or down ('floor')."""
        if rounding_mode is None:
            return self / other
        if rounding_mode == "floor":
            return self.floor_divide(other)
        if rounding_mode != "trunc":
            raise ValueError(f"div expected rounding_mode to be one of None, 'trunc' or 'floor', got {rounding_mode!r}")
        ts, dt = self._promote(other)
        if dt.is_floating_point:
            return (self / other).trunc()
        if dt is dtypes.bool_:
            raise DTypeError("div(rounding_mode='trunc') does not support bool tensors")
        a, b = self._broadcast_all(ts, dt)
        q = a // b  # rounds down; a quotient with a remainder and mixed signs is one too low
        signs_differ = (a < 0) ^ (b < 0)
        return _where(signs_differ & ((a % b) != 0), q + 1, q)

    divide = div

    def true_divide(self: "Tensor", other: Any) -> "Tensor":
        """self / other, always floating."""
        return self / other

    def fmod(self: "Tensor", other: Any) -> "Tensor":
        """C's remainder: the sign follows the dividend (remainder() follows the divisor)."""
        ts, dt = self._promote(other)
        _no_bool(ts[0], "fmod")
        a, b = self._broadcast_all(ts, dt)
        # on non-negative operands both conventions agree and the remainder is exact
        sa = _where(a < 0, -1, 1).cast(dt)
        sb = _where(b < 0, -1, 1).cast(dt)
        return sa * ((a * sa) % (b * sb))

    # ---- sign and magnitude -------------------------------------------------------------
    def abs(self: "Tensor") -> "Tensor":
        """|x|; the gradient at 0 is 0, like torch."""
        _no_bool(self, "abs")
        if self.dtype.is_int:
            return _where(self < 0, -self, self)
        return self * self.sign() + 0.0  # + 0.0 turns -0.0 (from -0.0 * 0) into +0.0

    absolute = abs

    def sign(self: "Tensor") -> "Tensor":
        """-1, 0 or 1 in the input's dtype (0 for NaN, like torch)."""
        if self.dtype is dtypes.bool_:
            return self.detach()
        out = (self > 0).cast(self.dtype) - (self < 0).cast(self.dtype)
        if autograd.recording(self.requires_grad) and self.dtype.is_floating_point:
            # stay in the graph with a zero gradient, as torch's sign does: a where that never picks self
            out = self.where(self._const(False, dtypes.bool_), out)
        return out

    sgn = sign

    def negative(self: "Tensor") -> "Tensor":
        """-x."""
        return -self

    def square(self: "Tensor") -> "Tensor":
        """x * x (bool is squared as int64, like torch)."""
        x = self.cast(dtypes.int64) if self.dtype is dtypes.bool_ else self
        return x * x

    @autocast_op("reciprocal")
    def reciprocal(self: "Tensor") -> "Tensor":
        """1 / x, always floating."""
        return 1 / _float(self)

    @autocast_op("rsqrt")
    def rsqrt(self: "Tensor") -> "Tensor":
        """1 / sqrt(x)."""
        return 1 / self.sqrt()

    # ---- exponentials and logarithms ----------------------------------------------------
    def exp2(self: "Tensor") -> "Tensor":
        """2 ** x (pow keeps integer powers of two exact)."""
        return 2.0 ** _float(self)

    @autocast_op("log2")
    def log2(self: "Tensor") -> "Tensor":
        """Base-2 logarithm."""
        return self.log() * (1 / math.log(2))

    @autocast_op("log10")
    def log10(self: "Tensor") -> "Tensor":
        """Base-10 logarithm."""
        return self.log() * (1 / math.log(10))

    @autocast_op("expm1")
    def expm1(self: "Tensor") -> "Tensor":
        """exp(x) - 1, accurate near 0."""
        x = _float(self)
        u = x.exp()
        um1 = u - 1
        # Kahan: the rounding error of u cancels between u - 1 and log(u); away from 0 (where u may
        # be 0 or inf) u - 1 is accurate as it is
        near = um1 * x / u.log()
        value = _where(u == 1, x, _where(x * x < 1, near, um1))
        return _with_grad_of(value, um1)

    @autocast_op("log1p")
    def log1p(self: "Tensor") -> "Tensor":
        """log(1 + x), accurate near 0."""
        x = _float(self)
        u = 1 + x
        um1 = u - 1
        # Kahan: log(u) * x / (u - 1) cancels the rounding of 1 + x; x = inf would give inf / inf
        near = u.log() * (x / um1)
        value = _where(um1 == 0, x, _where(x == math.inf, x, near))
        return _with_grad_of(value, u.log())

    # ---- trigonometric and hyperbolic ---------------------------------------------------
    @autocast_op("tan")
    @rounds_once
    def tan(self: "Tensor") -> "Tensor":
        """Tangent."""
        return self.sin() / self.cos()

    @autocast_op("tanh")
    @rounds_once
    def tanh(self: "Tensor") -> "Tensor":
        """Hyperbolic tangent: -expm1(-2|x|) / (2 + expm1(-2|x|)), mirrored for x < 0."""
        x = _float(self)
        pos = x >= 0
        # -2|x| spelled with where, so the derivative at 0 is -2 from one side instead of abs's 0
        m = _where(pos, x * -2, x * 2).expm1()
        t = -m / (m + 2)
        return _where(pos, t, -t)

    # ---- activations ----------------------------------------------------------------------
    def relu(self: "Tensor") -> "Tensor":
        """max(x, 0); the gradient at 0 is 0."""
        _no_bool(self, "relu")
        return _where(self <= 0, 0, self)  # NaN stays NaN

    @autocast_op("sigmoid")
    @rounds_once
    def sigmoid(self: "Tensor") -> "Tensor":
        """1 / (1 + exp(-x)), exponentiating only -|x| so no branch overflows."""
        x = _float(self)
        pos = x >= 0
        e = _where(pos, -x, x).exp()
        return _where(pos, 1 / (1 + e), e / (1 + e))

    def leaky_relu(self: "Tensor", negative_slope: float = 0.01) -> "Tensor":
        """x for x > 0, else negative_slope * x."""
        _need_float(self, "leaky_relu")
        return self.where(self > 0, self * negative_slope)

    @autocast_op("elu")
    @rounds_once
    def elu(self: "Tensor", alpha: float = 1.0) -> "Tensor":
        """x for x > 0, else alpha * (exp(x) - 1)."""
        _need_float(self, "elu")
        pos = self > 0
        negative_part = _where(pos, 0, self)  # exp of the positive side would overflow unused
        return self.where(pos, negative_part.expm1() * alpha)

    @autocast_op("gelu")
    @rounds_once
    def gelu(self: "Tensor", approximate: str = "none") -> "Tensor":
        """x * Phi(x), exactly with erf ('none') or with the tanh approximation ('tanh')."""
        _need_float(self, "gelu")
        if approximate == "none":
            return self * 0.5 * (1 + (self * (1 / math.sqrt(2))).erf())
        if approximate == "tanh":
            inner = (self + self * self * self * 0.044715) * math.sqrt(2 / math.pi)
            return self * 0.5 * (1 + inner.tanh())
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")

    @autocast_op("silu")
    @rounds_once
    def silu(self: "Tensor") -> "Tensor":
        """x * sigmoid(x) (swish)."""
        _need_float(self, "silu")
        return self * self.sigmoid()

    @autocast_op("softplus")
    @rounds_once
    def softplus(self: "Tensor", beta: float = 1.0, threshold: float = 20.0) -> "Tensor":
        """log(1 + exp(beta * x)) / beta, and x itself where beta * x > threshold."""
        _need_float(self, "softplus")
        bx = self * beta if beta != 1 else self
        linear = bx > threshold
        soft = _where(linear, 0, bx).exp().log1p()
        return self.where(linear, soft / beta if beta != 1 else soft)

    @autocast_op("mish")
    @rounds_once
    def mish(self: "Tensor") -> "Tensor":
        """x * tanh(softplus(x))."""
        _need_float(self, "mish")
        return self * self.softplus().tanh()

    # ---- rounding -------------------------------------------------------------------------
    def ceil(self: "Tensor") -> "Tensor":
        """The smallest integer >= x."""
        _no_bool(self, "ceil")
        if self.dtype.is_int:
            return self.detach()
        return -((-self).floor())

    def trunc(self: "Tensor") -> "Tensor":
        """x rounded toward zero."""
        _no_bool(self, "trunc")
        if self.dtype.is_int:
            return self.detach()
        return _where(self < 0, self.ceil(), self.floor())

    fix = trunc

    def round(self: "Tensor", decimals: int = 0) -> "Tensor":
        """Round half to even (to `decimals` decimal places), like torch.round."""
        _no_bool(self, "round")
        if self.dtype.is_int:
            if decimals != 0:
                raise DTypeError(f"round(decimals={decimals}) needs a floating point tensor, got {self.dtype.name}")
            return self.detach()
        # rint takes the scaled value rounded to the dtype: a fused multiply-add (GPU compilers contract
        # x * scale - floor(x * scale)) would see the exact product and round 0.35 * 10 down
        if decimals > 0:
            scale = 10.0 ** decimals
            return (self * scale)._rint() / scale
        if decimals < 0:
            scale = 10.0 ** -decimals
            return (self / scale)._rint() * scale
        return self._rint()

    # ---- clamping and comparisons -------------------------------------------------------
    def minimum(self: "Tensor", other: Any) -> "Tensor":
        """Elementwise minimum (NaN propagates; ties split the gradient, like torch)."""
        ts, dt = self._promote(other)
        a, b = self._broadcast_all(ts, dt)
        if dt is dtypes.bool_:
            return a & b
        if dt.is_int:
            return ~((~a).maximum(~b))  # ~ reverses the order of every integer type, unsigned too
        return -((-a).maximum(-b))

    def clamp(self: "Tensor", min: Any = None, max: Any = None) -> "Tensor":
        """Limit to [min, max] (scalars or tensors, either may be None); the bounds get the gradient
        only where they bind, x also at equality, like torch."""
        bounds = [b for b in (min, max) if b is not None]
        if not bounds:
            raise ValueError("clamp: at least one of 'min' or 'max' must not be None")
        if self.dtype.is_floating_point and all(type(b) in (int, float) for b in bounds):
            dt = self.dtype  # Python numbers keep a float tensor's dtype (what _promote would say)
        else:
            _, dt = self._promote(*bounds)
        for b in bounds:
            dtypes.checked_scalar(b, dt)  # torch: int8.clamp(max=1000) raises instead of wrapping the bound
        out = self.cast(dt)
        if min is not None:
            out = _where(out < min, min, out)
        if max is not None:
            out = _where(out > max, max, out)
        return out.cast(dt)

    clip = clamp

    def clamp_min(self: "Tensor", min: Any) -> "Tensor":
        """clamp(min=min)."""
        return self.clamp(min=min)

    def clamp_max(self: "Tensor", max: Any) -> "Tensor":
        """clamp(max=max)."""
        return self.clamp(max=max)

    def lerp(self: "Tensor", end: Any, weight: Any) -> "Tensor":
        """self + weight * (end - self), evaluated from the nearer end like torch."""
        from ..tensor import Tensor
        _need_float(self, "lerp")
        end_t = self._operand(end)
        for name, t in (("end", end), ("weight", weight)):
            if isinstance(t, Tensor) and t.dtype is not self.dtype:
                raise DTypeError(f"lerp: expected {name} to have dtype {self.dtype.name}, got {t.dtype.name}")
        diff = end_t - self
        if not isinstance(weight, Tensor):
            return self + diff * weight if abs(weight) < 0.5 else end_t - diff * (1 - weight)
        near_start = weight * weight < 0.25
        return _where(near_start, self + weight * diff, end_t - diff * (1 - weight))

    # ---- float classification ---------------------------------------------------------------
    def isnan(self: "Tensor") -> "Tensor":
        """True where x is NaN."""
        if not self.dtype.is_floating_point:
            return self._const(False, dtypes.bool_)
        return self != self

    def isinf(self: "Tensor") -> "Tensor":
        """True where x is +inf or -inf."""
        if not self.dtype.is_floating_point:
            return self._const(False, dtypes.bool_)
        return (self == math.inf) | (self == -math.inf)

    def isposinf(self: "Tensor") -> "Tensor":
        """True where x is +inf."""
        if not self.dtype.is_floating_point:
            return self._const(False, dtypes.bool_)
        return self == math.inf

    def isneginf(self: "Tensor") -> "Tensor":
        """True where x is -inf."""
        if not self.dtype.is_floating_point:
            return self._const(False, dtypes.bool_)
        return self == -math.inf

    def isfinite(self: "Tensor") -> "Tensor":
        """True where x is neither inf nor NaN."""
        if not self.dtype.is_floating_point:
            return self._const(True, dtypes.bool_)
        return (self - self) == 0  # inf - inf and NaN - NaN are NaN

    def nan_to_num(self: "Tensor", nan: float = 0.0, posinf: float | None = None,
                   neginf: float | None = None) -> "Tensor":
        """NaN -> nan, +inf -> posinf, -inf -> neginf (defaults: the dtype's largest/lowest finite value)."""
        if not self.dtype.is_floating_point:
            return self.detach()
        big = dtypes.FLOAT_MAX[self.dtype.name]
        hi = big if posinf is None else posinf
        lo = -big if neginf is None else neginf
        out = _where(self == math.inf, hi, _where(self == -math.inf, lo, self))
        return _where(self != self, nan, out).cast(self.dtype)
