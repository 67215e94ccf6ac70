"""Inverse trigonometric and hyperbolic functions, atan2, copysign, logaddexp, hypot, isclose, and more
of torch's elementwise functions (signbit, sinc, xlogy, fmax, addcmul, ...).

Composed from the primitives (SQRT, EXP, LOG, DIV, WHERE ...), so gradients, fusion and every device
come free. The rules of ops/elementwise.py hold here too: each branch of a `where` gets inputs on which
it stays finite, and odd functions are built as `where(x < 0, -f(-x), f(x))` (not from `abs`, whose
gradient at 0 is 0) so the derivative at 0 is right.

Everything rests on one arctangent kernel (`_atan_unit`, |r| <= 1): argument halvings
`atan(r) = 2 atan(r / (1 + sqrt(1 + r^2)))`, then the odd Taylor series. float64 halves three times,
to |r| < tan(pi/32) < 0.099, where 8 terms truncate below 1e-17; float32 halves once (|r| < 0.415) and
sums 9 terms, which rounds less than more halvings do (2.8 ulp at most, against 4.3 for three).
Measured against torch over 1e-300..1e300 the results are within a few ulp (tests/test_ops_math.py).
float16 and bfloat16 compute in float32 and round once at the end, as torch does.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .. import dtypes
from ..errors import DTypeError
from .autocast import autocast_op
from .elementwise import _where, _with_grad_of

if TYPE_CHECKING:
    from ..tensor import Tensor

_HALVINGS = {"float64": 3, "float32": 1}
_TERMS = {"float64": 8, "float32": 9}
_LN2 = math.log(2)
_HUGE = 2.0 ** 28  # asinh/acosh beyond this: log(2x), the dropped term is below 2^-58 relative


def _work(out: Any) -> Any:
    """The dtype the math runs in for a result dtype: float32 for the 16-bit floats."""
    return dtypes.float32 if out.itemsize < 4 else out


def _compute(x: "Tensor") -> tuple["Tensor", Any]:
    """x in the dtype the math runs in (float32 for ints and the 16-bit floats), and the result dtype."""
    out = dtypes.least_float(x.dtype)
    return x.cast(_work(out)), out


def _binary_float(a: "Tensor", other: Any, name: str, allow_int: bool) -> tuple["Tensor", "Tensor", Any]:
    """Both operands promoted like torch, broadcast, in the computing dtype; and the result dtype."""
    ts, dt = a._promote(other)
    if not dt.is_floating_point and not allow_int:
        raise DTypeError(f"{name}() needs floating point tensors, got {dt.name}")
    out = dtypes.least_float(dt)
    x, y = a._broadcast_all(ts, _work(out))
    return x, y, out


def _sign_bit(x: "Tensor") -> "Tensor":
    """True where x is negative, -0.0 included (1 / -0.0 is -inf); NaN counts as positive."""
    x = x.detach()
    return (x < 0) | ((x == 0) & ((1 / x) < 0))


def _atan_unit(r: "Tensor") -> "Tensor":
    """atan(r) for |r| <= 1 (see the module docstring)."""
    t = r
    halvings = _HALVINGS[r.dtype.name]
    for _ in range(halvings):
        t = t / (1 + (1 + t * t).sqrt())
    s = t * t
    n = _TERMS[r.dtype.name]
    poly = t._const((-1) ** (n - 1) / (2 * n - 1))
    for k in range(n - 2, -1, -1):
        poly = poly * s + (-1) ** k / (2 * k + 1)
    return t * poly * (2 ** halvings)


def _mirror(x: "Tensor", fn: Any) -> "Tensor":
    """An odd function from its values on x >= 0: fn(|x|), negated where x < 0."""
    neg = x < 0
    m = fn(_where(neg, -x, x))
    return _where(neg, -m, m)


def _atan2(y: "Tensor", x: "Tensor") -> "Tensor":
    """atan2 of two float tensors of one shape and dtype, with C's signed zeros and infinities."""
    swap = y.detach().abs() > x.detach().abs()  # |y| > |x|: use pi/2 - atan(x / y)
    num = _where(swap, x, y)
    den = _where(swap, y, x)
    both_zero = den == 0  # never 0 when swapped, so both are 0 here
    both_inf = x.isinf() & y.isinf()
    r = num / _where(both_zero | both_inf, 1, den)
    r = _where(both_zero, num.detach(), r)  # +-0 keeps its sign; torch's gradient at (0, 0) is 0
    r = _where(both_inf, _where((num > 0) == (den > 0), r._const(1), r._const(-1)), r)
    core = _atan_unit(r)
    y_neg = _sign_bit(y)
    half_pi = _where(y_neg, core._const(-math.pi / 2), core._const(math.pi / 2))
    full_pi = _where(y_neg, core._const(-math.pi), core._const(math.pi))
    return _where(swap, half_pi - core, _where(_sign_bit(x), core + full_pi, core))


def _cos_of_asin(x: "Tensor") -> "Tensor":
    """sqrt(1 - x^2): the value from (1 - x)(1 + x) (exact near |x| = 1), the derivatives from 1 - x^2,
    which at |x| = 1 are -inf (the product's are inf * 0 = NaN there)."""
    return _with_grad_of(((1 - x) * (1 + x)).sqrt(), (1 - x * x).sqrt())


class MathMixin:
    __slots__ = ()

    # ---- inverse trigonometric ------------------------------------------------------------
    def atan(self: "Tensor") -> "Tensor":
        """Arctangent: atan(x) = +-pi/2 + atan(-1/x) for |x| > 1, then `_atan_unit`."""
        x, out = _compute(self)
        big = (x > 1) | (x < -1)
        r = _where(big, -1 / _where(big, x, 1), x)
        core = _atan_unit(r)
        half_pi = _where(x > 0, x._const(math.pi / 2), x._const(-math.pi / 2))
        return _where(big, half_pi + core, core).cast(out)

    arctan = atan

    @autocast_op("atan2")
    def atan2(self: "Tensor", other: Any) -> "Tensor":
        """Angle of the point (other, self) in (-pi, pi], with C's signed zeros and infinities."""
        y, x, out = _binary_float(self, other, "atan2", allow_int=True)
        return _atan2(y, x).cast(out)

    arctan2 = atan2

    @autocast_op("asin")
    def asin(self: "Tensor") -> "Tensor":
        """Arcsine: atan2(x, sqrt((1 - x)(1 + x))), accurate up to |x| = 1."""
        x, out = _compute(self)
        return _atan2(x, _cos_of_asin(x)).cast(out)

    arcsin = asin

    @autocast_op("acos")
    def acos(self: "Tensor") -> "Tensor":
        """Arccosine: atan2(sqrt((1 - x)(1 + x)), x)."""
        x, out = _compute(self)
        return _atan2(_cos_of_asin(x), x).cast(out)

    arccos = acos

    # ---- hyperbolic -------------------------------------------------------------------------
    @autocast_op("sinh")
    def sinh(self: "Tensor") -> "Tensor":
        """Hyperbolic sine: (expm1(x) - expm1(-x)) / 2 for |x| < 1, else e/2 - 1/(2e) from exp(|x|/2)."""
        x, out = _compute(self)
        small = (x > -1) & (x < 1)
        xs = _where(small, x, 0)
        near = (xs.expm1() - (-xs).expm1()) * 0.5

        def far(a: "Tensor") -> "Tensor":
            h = (_where(small, 1, a) * 0.5).exp()
            e = (h * 0.5) * h  # exp(a) / 2 without overflowing before the result does
            return e - 0.25 / e

        return _where(small, near, _mirror(x, far)).cast(out)

    @autocast_op("cosh")
    def cosh(self: "Tensor") -> "Tensor":
        """Hyperbolic cosine: e/2 + 1/(2e) with e/2 = (exp(|x|/2)/2) * exp(|x|/2)."""
        x, out = _compute(self)
        h = (_where(x < 0, -x, x) * 0.5).exp()
        e = (h * 0.5) * h
        return (e + 0.25 / e).cast(out)

    def asinh(self: "Tensor") -> "Tensor":
        """Inverse hyperbolic sine: log1p(a + a^2 / (1 + sqrt(1 + a^2))) on |x|, log(2|x|) when huge."""
        x, out = _compute(self)

        def positive(a: "Tensor") -> "Tensor":
            big = a > _HUGE
            s = _where(big, 1, a)
            near = (s + s * s / (1 + (1 + s * s).sqrt())).log1p()
            return _where(big, _where(big, a, 1).log() + _LN2, near)

        return _mirror(x, positive).cast(out)

    arcsinh = asinh

    def acosh(self: "Tensor") -> "Tensor":
        """Inverse hyperbolic cosine: log1p(t + sqrt(t (t + 2))) with t = x - 1; NaN below 1."""
        x, out = _compute(self)
        big = x > _HUGE
        t = _where(big, 1, x - 1)
        near = (t + (t * (t + 2)).sqrt()).log1p()
        near = _where(t < 0, math.nan, near)  # t (t + 2) is positive again below x = -1
        return _where(big, _where(big, x, 1).log() + _LN2, near).cast(out)

    arccosh = acosh

    def atanh(self: "Tensor") -> "Tensor":
        """Inverse hyperbolic tangent: (log1p(x) - log1p(-x)) / 2 (opposite signs: nothing cancels)."""
        x, out = _compute(self)
        return ((x.log1p() - (-x).log1p()) * 0.5).cast(out)

    arctanh = atanh

    # ---- sign, sums of exponentials, distances --------------------------------------------------
    def copysign(self: "Tensor", other: Any) -> "Tensor":
        """|self| with the sign of other (-0.0 counts as negative; NaN in other as positive)."""
        a, b, out = _binary_float(self, other, "copysign", allow_int=True)
        mag = a.abs()
        result = _where(_sign_bit(b), -mag, mag)
        # other never gets the branch: its gradient is zero, as in torch (not absent)
        return _where(b._const(True, dtypes.bool_), result, b).cast(out)

    @autocast_op("logaddexp")
    def logaddexp(self: "Tensor", other: Any) -> "Tensor":
        """log(exp(self) + exp(other)) without overflow: max + log1p(exp(-|self - other|))."""
        a, b, out = _binary_float(self, other, "logaddexp", allow_int=False)
        same_inf = (a == b) & a.isinf()  # inf - inf would be NaN; the answer is that infinity
        d = _where(same_inf, 0, a - b)
        return _where(same_inf, a, a.maximum(b) + (-d.abs()).exp().log1p()).cast(out)

    @autocast_op("logaddexp2")
    def logaddexp2(self: "Tensor", other: Any) -> "Tensor":
        """log2(2**self + 2**other) without overflow."""
        a, b, out = _binary_float(self, other, "logaddexp2", allow_int=False)
        same_inf = (a == b) & a.isinf()
        d = _where(same_inf, 0, a - b)
        return _where(same_inf, a, a.maximum(b) + (-d.abs()).exp2().log1p() * (1 / _LN2)).cast(out)

    def hypot(self: "Tensor", other: Any) -> "Tensor":
        """sqrt(self^2 + other^2) without overflow or underflow: m * sqrt(1 + (n/m)^2), m = max(|.|)."""
        a, b, out = _binary_float(self, other, "hypot", allow_int=False)
        ax, bx = a.abs(), b.abs()
        m, n = ax.maximum(bx), ax.minimum(bx)
        q = n / _where(m == 0, 1, m)
        h = m * (1 + q * q).sqrt()
        return _where(a.isinf() | b.isinf(), math.inf, h).cast(out)

    # ---- closeness --------------------------------------------------------------------------------
    def isclose(self: "Tensor", other: "Tensor", rtol: float = 1e-05, atol: float = 1e-08,
                equal_nan: bool = False) -> "Tensor":
        """|self - other| <= atol + rtol * |other| elementwise (infinities only equal themselves)."""
        from ..tensor import Tensor
        if not isinstance(other, Tensor):
            raise TypeError(f"isclose(): argument 'other' must be a Tensor, not {type(other).__name__}")
        if other.dtype is not self.dtype:
            raise DTypeError(f"isclose(): {self.dtype.name} did not match {other.dtype.name}")
        if rtol < 0 or atol < 0:
            raise ValueError(f"isclose(): rtol and atol must be >= 0, got rtol={rtol}, atol={atol}")
        a, b = (self.float(), other.float()) if self.dtype is dtypes.bool_ else (self, other)
        close = a == b
        if equal_nan and a.dtype.is_floating_point:
            close = close | (a.isnan() & b.isnan())
        if math.isinf(rtol) or math.isinf(atol):
            return close
        allowed = (b * rtol).abs() + atol
        actual = (a - b).abs()
        return close | (actual.isfinite() & (actual <= allowed))

    def allclose(self: "Tensor", other: "Tensor", rtol: float = 1e-05, atol: float = 1e-08,
                 equal_nan: bool = False) -> bool:
        """True when isclose holds everywhere (reads the result back: a Python bool)."""
        return bool(self.isclose(other, rtol, atol, equal_nan).all().item())

    # ---- more of torch's elementwise functions --------------------------------------------------
    def greater(self: "Tensor", other: Any) -> "Tensor":
        """self > other."""
        return self > other

    def greater_equal(self: "Tensor", other: Any) -> "Tensor":
        """self >= other."""
        return self >= other

    def less(self: "Tensor", other: Any) -> "Tensor":
        """self < other."""
        return self < other

    def less_equal(self: "Tensor", other: Any) -> "Tensor":
        """self <= other."""
        return self <= other

    def not_equal(self: "Tensor", other: Any) -> "Tensor":
        """self != other."""
        return self != other

    def positive(self: "Tensor") -> "Tensor":
        """self itself (+x); bool tensors raise, like torch."""
        if self.dtype is dtypes.bool_:
            raise DTypeError("positive() does not support bool tensors")
        return self

    def signbit(self: "Tensor") -> "Tensor":
        """True where the sign bit is set: x < 0 and -0.0 (NaN counts as positive: no bit-cast primitive)."""
        if self.dtype is dtypes.bool_:
            return self._const(False, dtypes.bool_)
        return _sign_bit(self) if self.dtype.is_floating_point else self < 0

    def deg2rad(self: "Tensor") -> "Tensor":
        """Degrees to radians."""
        x = self.cast(dtypes.least_float(self.dtype))
        return x * (math.pi / 180)

    def rad2deg(self: "Tensor") -> "Tensor":
        """Radians to degrees."""
        x = self.cast(dtypes.least_float(self.dtype))
        return x * (180 / math.pi)

    def frac(self: "Tensor") -> "Tensor":
        """x - trunc(x), keeping the sign of x."""
        if not self.dtype.is_floating_point:
            raise DTypeError(f"frac() needs a floating point tensor, got {self.dtype.name}")
        return self - self.trunc()

    def sinc(self: "Tensor") -> "Tensor":
        """sin(pi x) / (pi x), 1 at 0 (with a zero derivative there, like torch)."""
        x, out = _compute(self)
        zero = x == 0
        px = _where(zero, 1, x) * math.pi
        return _where(zero, 1, px.sin() / px).cast(out)

    @autocast_op("logit")
    def logit(self: "Tensor", eps: float | None = None) -> "Tensor":
        """log(x / (1 - x)), with x clamped to [eps, 1 - eps] when eps is given."""
        x = self.cast(dtypes.least_float(self.dtype))
        if eps is not None:
            x = x.clamp(eps, 1 - eps)
        return (x / (1 - x)).log()

    def float_power(self: "Tensor", exponent: Any) -> "Tensor":
        """self ** exponent in float64."""
        from ..tensor import Tensor
        e = exponent.double() if isinstance(exponent, Tensor) else exponent
        return self.double() ** e

    def ldexp(self: "Tensor", other: Any) -> "Tensor":
        """self * 2**other (floating)."""
        e = self._operand(other)
        return self.cast(dtypes.least_float(self.dtype)) * e.exp2()

    @autocast_op("xlogy")
    def xlogy(self: "Tensor", other: Any) -> "Tensor":
        """self * log(other), 0 where self is 0 (unless other is NaN)."""
        x, y, out = _binary_float(self, other, "xlogy", allow_int=True)
        zero = x == 0
        value = _where(zero, 0, x * _where(zero, 1, y).log())
        return _where(y.isnan(), math.nan, value).cast(out)

    def heaviside(self: "Tensor", values: "Tensor") -> "Tensor":
        """0 where x < 0, values where x == 0, 1 where x > 0."""
        from ..tensor import Tensor
        if not isinstance(values, Tensor) or values.dtype is not self.dtype:
            got = values.dtype.name if isinstance(values, Tensor) else type(values).__name__
            raise DTypeError(f"heaviside(): values must be a tensor of the input's dtype {self.dtype.name}, got {got}")
        return _where(self == 0, values, (self > 0).cast(self.dtype))

    def fmax(self: "Tensor", other: Any) -> "Tensor":
        """Elementwise maximum ignoring NaN (NaN only where both are); ties give self the gradient, like torch."""
        ts, dt = self._promote(other)
        a, b = self._broadcast_all(ts, dt)
        if dt is dtypes.bool_:
            return a | b
        return _where((a >= b) | b.isnan(), a, b)

    def fmin(self: "Tensor", other: Any) -> "Tensor":
        """Elementwise minimum ignoring NaN (NaN only where both are)."""
        ts, dt = self._promote(other)
        a, b = self._broadcast_all(ts, dt)
        if dt is dtypes.bool_:
            return a & b
        return _where((a <= b) | b.isnan(), a, b)

    @autocast_op("nansum")
    def nansum(self: "Tensor", dim: Any = None, keepdim: bool = False, dtype: Any = None) -> "Tensor":
        """sum() counting NaN as 0."""
        x = _where(self.isnan(), 0, self) if self.dtype.is_floating_point else self
        return x.sum(dim, keepdim, dtype=dtype)

    @autocast_op("nanmean")
    def nanmean(self: "Tensor", dim: Any = None, keepdim: bool = False, dtype: Any = None) -> "Tensor":
        """mean() of the elements that are not NaN."""
        x = self.cast(dtypes.to_dtype(dtype)) if dtype is not None else self
        if not x.dtype.is_floating_point:
            raise DTypeError(f"nanmean() needs a floating point tensor, got {x.dtype.name}")
        return x.nansum(dim, keepdim) / (~x.isnan()).sum(dim, keepdim)

    @autocast_op("addcmul")
    def addcmul(self: "Tensor", tensor1: Any, tensor2: Any, *, value: Any = 1) -> "Tensor":
        """self + value * tensor1 * tensor2."""
        _, dt = self._promote(tensor1, tensor2)
        if isinstance(value, float) and not dt.is_floating_point:
            value = int(value)  # torch converts the scalar to the integer dtype
        product = self._operand(tensor1) * tensor2
        return (self + (product * value if value != 1 else product)).cast(dt)

    @autocast_op("addcdiv")
    def addcdiv(self: "Tensor", tensor1: Any, tensor2: Any, *, value: Any = 1) -> "Tensor":
        """self + value * tensor1 / tensor2 (floating tensors only, like torch)."""
        _, dt = self._promote(tensor1, tensor2)
        t1 = self._operand(tensor1)
        if not t1.dtype.is_floating_point and not self._operand(tensor2).dtype.is_floating_point:
            raise DTypeError("addcdiv(): integer division is not supported; use (input + value * tensor1 / tensor2)")
        quotient = t1 / tensor2
        return (self + (quotient * value if value != 1 else quotient)).cast(dtypes.promote_types(dt, quotient.dtype))

    @autocast_op("dist")
    def dist(self: "Tensor", other: Any, p: float = 2) -> "Tensor":
        """The p-norm of self - other."""
        return (self - other).norm(p)

    def equal(self: "Tensor", other: "Tensor") -> bool:
        """True when both have the same shape and elements (reads the result back: a Python bool)."""
        if self.shape != other.shape:
            return False
        return bool((self == other).all().item())

    def is_same_size(self: "Tensor", other: "Tensor") -> bool:
        """True when both have the same shape."""
        return self.shape == other.shape

    def is_signed(self: "Tensor") -> bool:
        """True for the signed integer and the floating dtypes."""
        return self.dtype not in (dtypes.uint8, dtypes.bool_)

    def is_nonzero(self: "Tensor") -> bool:
        """bool() of a one-element tensor (reads it back); other sizes raise ShapeError."""
        return bool(self)
