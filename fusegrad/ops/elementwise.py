"""Elementwise composites: activations, rounding, clamping, float classification."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .. import dtypes

if TYPE_CHECKING:
    from ..tensor import Tensor


class ElementwiseMixin:
    __slots__ = ()

    def relu(self: "Tensor") -> "Tensor":
        return self.where(self > 0, 0)

    def sigmoid(self: "Tensor") -> "Tensor":
        return 1 / (1 + (-self).exp())

    def tanh(self: "Tensor") -> "Tensor":
        return 2 * (2 * self).sigmoid() - 1

    def abs(self: "Tensor") -> "Tensor":
        if self.dtype is dtypes.bool_:
            return self
        return self.where(self >= 0, -self)

    def square(self: "Tensor") -> "Tensor":
        return self * self

    def minimum(self: "Tensor", other: Any) -> "Tensor":
        return -((-self).maximum(-other if not hasattr(other, "_node") else -other))

    def clamp(self: "Tensor", min: Any = None, max: Any = None) -> "Tensor":
        out = self
        if min is not None:
            out = out.maximum(min)
        if max is not None:
            out = out.minimum(max)
        return out

    clip = clamp
