"""Matrix products from broadcast multiply + sum (one fused reduction kernel), and einsum."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ShapeError

if TYPE_CHECKING:
    from ..tensor import Tensor


class LinalgMixin:
    __slots__ = ()

    def matmul(self: "Tensor", other: "Tensor") -> "Tensor":
        """torch.matmul semantics: 1-D vectors, 2-D matrices and broadcast batches."""
        a, b = self, self._operand(other)
        if a.ndim == 0 or b.ndim == 0:
            raise ShapeError(f"matmul needs at least 1-D inputs, got shapes {a.shape} and {b.shape}")
        a2 = a.unsqueeze(0) if a.ndim == 1 else a
        b2 = b.unsqueeze(-1) if b.ndim == 1 else b
        if a2.shape[-1] != b2.shape[-2]:
            raise ShapeError(f"matmul: shapes {a.shape} and {b.shape} cannot be multiplied "
                             f"({a2.shape[-1]} != {b2.shape[-2]})")
        out = (a2.unsqueeze(-1) * b2.unsqueeze(-3)).sum(-2)
        if a.ndim == 1:
            out = out.squeeze(-2)
        if b.ndim == 1:
            out = out.squeeze(-1)
        return out

    def __matmul__(self: "Tensor", other: "Tensor") -> "Tensor":
        return self.matmul(other)

    def __rmatmul__(self: "Tensor", other: "Tensor") -> "Tensor":
        return self._operand(other).matmul(self)
