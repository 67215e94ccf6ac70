"""Operators and the primitive elementwise ops: arithmetic, comparison, bitwise/logical, where.

Each builds one primitive node through Tensor._binary/_unary (broadcasting and PyTorch type
promotion happen there); composites built from these live in ops/elementwise.py.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import dtypes
from ..errors import DTypeError
from ..graph.ops import COMPARISON, Op
from .autocast import autocast_op

if TYPE_CHECKING:
    from ..tensor import Tensor


class ArithmeticMixin:
    __slots__ = ()

    def __add__(self: "Tensor", other: Any) -> "Tensor":
        return self._binary(Op.ADD, other)

    def __radd__(self: "Tensor", other: Any) -> "Tensor":
        return self._binary(Op.ADD, other, reverse=True)

    def __sub__(self: "Tensor", other: Any) -> "Tensor":
        self._no_bool("subtraction", other)
        return self._binary(Op.SUB, other)

    def __rsub__(self: "Tensor", other: Any) -> "Tensor":
        self._no_bool("subtraction", other)
        return self._binary(Op.SUB, other, reverse=True)

    def __mul__(self: "Tensor", other: Any) -> "Tensor":
        return self._binary(Op.MUL, other)

    def __rmul__(self: "Tensor", other: Any) -> "Tensor":
        return self._binary(Op.MUL, other, reverse=True)

    def __truediv__(self: "Tensor", other: Any) -> "Tensor":
        return self._binary(Op.DIV, other, floating=True)

    def __rtruediv__(self: "Tensor", other: Any) -> "Tensor":
        return self._binary(Op.DIV, other, reverse=True, floating=True)

    def __floordiv__(self: "Tensor", other: Any) -> "Tensor":
        return self.floor_divide(other)

    def __rfloordiv__(self: "Tensor", other: Any) -> "Tensor":
        return self._operand(other).floor_divide(self)

    def floor_divide(self: "Tensor", other: Any) -> "Tensor":
        ts, dt = self._promote(other)
        if dt.is_floating_point:
            return (self / other).floor()
        return self._binary(Op.DIV, other)

    def __mod__(self: "Tensor", other: Any) -> "Tensor":
        return self._binary(Op.MOD, other)

    def __rmod__(self: "Tensor", other: Any) -> "Tensor":
        return self._binary(Op.MOD, other, reverse=True)

    def remainder(self: "Tensor", other: Any) -> "Tensor":
        return self % other

    def __pow__(self: "Tensor", other: Any) -> "Tensor":
        return self.pow(other)

    def __rpow__(self: "Tensor", other: Any) -> "Tensor":
        return self._binary(Op.POW, other, reverse=True)

    @autocast_op("pow")
    def pow(self: "Tensor", exponent: Any) -> "Tensor":
        if isinstance(exponent, (int, float)) and not isinstance(exponent, bool):
            # int ** 2.0 is a float, as in torch (float tensors keep their dtype: skip the promotion)
            x = self if self.dtype.is_floating_point else self.cast(self._promote(exponent)[1])
            if x.dtype.is_int:
                dtypes.checked_scalar(exponent, x.dtype)  # torch: int8 ** 200 raises
            if exponent == 2:
                return x * x
            if exponent == 1:
                return x * 1
            if exponent == 0.5 and x.dtype.is_floating_point:
                return x.sqrt()
            return x._binary(Op.POW, exponent)
        return self._binary(Op.POW, exponent)

    def __neg__(self: "Tensor") -> "Tensor":
        if self.dtype is dtypes.bool_:
            raise DTypeError("negation of a bool tensor is not supported; use ~ or logical_not() instead")
        return self._unary(Op.NEG, floating=False)

    def __pos__(self: "Tensor") -> "Tensor":
        return self

    def neg(self: "Tensor") -> "Tensor":
        return -self

    def _no_bool(self: "Tensor", what: str, other: Any) -> None:
        other_bool = isinstance(other, bool) or (hasattr(other, "_node") and other.dtype is dtypes.bool_)
        if self.dtype is dtypes.bool_ and other_bool:
            raise DTypeError(f"{what} of two bool tensors is not supported; use logical_xor() or ^ instead")

    def maximum(self: "Tensor", other: Any) -> "Tensor":
        return self._binary(Op.MAX, other)

    @autocast_op("exp")
    def exp(self: "Tensor") -> "Tensor":
        return self._unary(Op.EXP)

    @autocast_op("log")
    def log(self: "Tensor") -> "Tensor":
        return self._unary(Op.LOG)

    def sin(self: "Tensor") -> "Tensor":
        return self._unary(Op.SIN)

    def cos(self: "Tensor") -> "Tensor":
        return self._unary(Op.COS)

    def sqrt(self: "Tensor") -> "Tensor":
        return self._unary(Op.SQRT)

    def erf(self: "Tensor") -> "Tensor":
        return self._unary(Op.ERF)

    def floor(self: "Tensor") -> "Tensor":
        if not self.dtype.is_floating_point:
            return self
        return self._unary(Op.FLOOR)

    def _rint(self: "Tensor") -> "Tensor":
        """Nearest integer, ties to even (the primitive behind round)."""
        return self._unary(Op.RINT)

    # comparisons compute in the promoted dtype and return bool
    def _compare(self: "Tensor", op: Op, other: Any, reverse: bool = False) -> "Tensor":
        assert op in COMPARISON
        return self._binary(op, other, reverse=reverse)

    def __lt__(self: "Tensor", other: Any) -> "Tensor":
        return self._compare(Op.CMPLT, other)

    def __gt__(self: "Tensor", other: Any) -> "Tensor":
        return self._compare(Op.CMPLT, other, reverse=True)

    def __le__(self: "Tensor", other: Any) -> "Tensor":
        other = self._number_operand(other)
        return self._compare(Op.CMPLT, other) | self._compare(Op.CMPEQ, other)

    def __ge__(self: "Tensor", other: Any) -> "Tensor":
        other = self._number_operand(other)
        return self._compare(Op.CMPLT, other, reverse=True) | self._compare(Op.CMPEQ, other)

    def _number_operand(self: "Tensor", other: Any) -> Any:
        """A Python number that would become a constant of this float tensor's dtype as that constant,
        so that the two comparisons of <= and >= share one node; anything else unchanged."""
        if type(other) in (int, float) and self.dtype.is_floating_point:
            return self._const(other)
        return other

    def __eq__(self: "Tensor", other: Any) -> "Tensor":  # type: ignore[override]
        return self._compare(Op.CMPEQ, other)

    def __ne__(self: "Tensor", other: Any) -> "Tensor":  # type: ignore[override]
        return self._compare(Op.CMPEQ, other).logical_not()

    lt, gt, le, ge, eq, ne = __lt__, __gt__, __le__, __ge__, __eq__, __ne__

    def _bitwise(self: "Tensor", op: Op, other: Any, reverse: bool = False) -> "Tensor":
        same = getattr(other, "dtype", None) is self.dtype  # two masks: nothing to promote
        dt = self.dtype if same else self._promote(other)[1]
        if dt.is_floating_point:
            raise DTypeError(f"bitwise {op.name.lower()} needs bool or integer tensors, got {dt.name}")
        return self._binary(op, other, reverse=reverse)

    def __and__(self: "Tensor", other: Any) -> "Tensor":
        return self._bitwise(Op.AND, other)

    def __or__(self: "Tensor", other: Any) -> "Tensor":
        return self._bitwise(Op.OR, other)

    def __xor__(self: "Tensor", other: Any) -> "Tensor":
        return self._bitwise(Op.XOR, other)

    __rand__, __ror__, __rxor__ = __and__, __or__, __xor__
    bitwise_and, bitwise_or, bitwise_xor = __and__, __or__, __xor__

    def _shift(self: "Tensor", other: Any, left: bool, reverse: bool = False) -> "Tensor":
        """Shifts as products and floor divisions by 2**k in int64 (exact: a right shift of a signed
        integer is a floor division, arithmetic like torch's), wrapped back to the dtype like `*`.
        Amounts outside [0, bits) give 0, or the sign fill for right shifts, as torch does."""
        ts, dt = self._promote(other)
        name = "left" if left else "right"
        if dt.is_floating_point or dt is dtypes.bool_:
            raise DTypeError(f"bitwise_{name}_shift needs integer tensors, got {dt.name}")
        a, k = self._broadcast_all(ts, dt)
        if reverse:
            a, k = k, a
        wide, k = a.cast(dtypes.int64), k.cast(dtypes.int64)
        bits = 8 * dt.itemsize
        # 2**63 wraps to the int64 minimum: right for a product, not for a divisor
        limit = bits if left else min(bits, 63)
        valid = (k >= 0) & (k < limit)
        power = 2 ** k.where(valid, 0)
        from ..tensor import where
        if left:
            return where(valid, wide * power, 0).cast(dt)
        return where(valid, wide // power, where(wide < 0, -1, 0)).cast(dt)

    def bitwise_left_shift(self: "Tensor", other: Any) -> "Tensor":
        """self * 2**other, wrapping to the dtype; amounts outside [0, bits) give 0."""
        return self._shift(other, left=True)

    def bitwise_right_shift(self: "Tensor", other: Any) -> "Tensor":
        """Arithmetic right shift (floor division by 2**other); amounts outside [0, bits) give 0 or -1."""
        return self._shift(other, left=False)

    def __lshift__(self: "Tensor", other: Any) -> "Tensor":
        return self._shift(other, left=True)

    def __rshift__(self: "Tensor", other: Any) -> "Tensor":
        return self._shift(other, left=False)

    def __rlshift__(self: "Tensor", other: Any) -> "Tensor":
        return self._shift(other, left=True, reverse=True)

    def __rrshift__(self: "Tensor", other: Any) -> "Tensor":
        return self._shift(other, left=False, reverse=True)

    def __invert__(self: "Tensor") -> "Tensor":
        if self.dtype.is_floating_point:
            raise DTypeError(f"~ needs a bool or integer tensor, got {self.dtype.name}")
        return self._unary(Op.NOT, floating=False)

    bitwise_not = __invert__

    def logical_not(self: "Tensor") -> "Tensor":
        return self.bool()._unary(Op.NOT, floating=False)

    def logical_and(self: "Tensor", other: Any) -> "Tensor":
        return self.bool() & self._operand(other).bool()

    def logical_or(self: "Tensor", other: Any) -> "Tensor":
        return self.bool() | self._operand(other).bool()

    def logical_xor(self: "Tensor", other: Any) -> "Tensor":
        return self.bool() ^ self._operand(other).bool()

    def where(self: "Tensor", condition: Any, other: Any) -> "Tensor":
        """`x.where(cond, y)`: x where cond holds, else y (torch.Tensor.where)."""
        from ..tensor import where
        return where(condition, self, other)

