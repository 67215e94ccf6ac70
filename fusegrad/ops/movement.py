"""Composite movement ops: views built from reshape/permute/expand/pad/shrink/flip."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from ..errors import ShapeError
from ..graph.ops import Op

if TYPE_CHECKING:
    from ..tensor import Tensor


class MovementMixin:
    __slots__ = ()

    def transpose(self: "Tensor", dim0: int, dim1: int) -> "Tensor":
        from ..tensor import normalize_dim
        order = list(range(self.ndim))
        a, b = normalize_dim(dim0, self.ndim), normalize_dim(dim1, self.ndim)
        order[a], order[b] = order[b], order[a]
        return self.permute(order)

    @property
    def T(self: "Tensor") -> "Tensor":
        return self.permute(tuple(reversed(range(self.ndim))))

    @property
    def mT(self: "Tensor") -> "Tensor":
        if self.ndim < 2:
            raise ShapeError(f"mT needs at least 2 dimensions, got shape {self.shape}")
        return self.transpose(-2, -1)

    def unsqueeze(self: "Tensor", dim: int) -> "Tensor":
        from ..tensor import normalize_dim
        d = normalize_dim(dim, self.ndim + 1)
        return self.reshape(self.shape[:d] + (1,) + self.shape[d:])

    def squeeze(self: "Tensor", dim: Any = None) -> "Tensor":
        axes = self._axes(dim)
        return self.reshape(tuple(s for i, s in enumerate(self.shape) if not (i in axes and s == 1)))

    def flatten(self: "Tensor", start_dim: int = 0, end_dim: int = -1) -> "Tensor":
        from ..tensor import normalize_dim
        if self.ndim == 0:
            return self.reshape(1)
        s, e = normalize_dim(start_dim, self.ndim), normalize_dim(end_dim, self.ndim)
        return self.reshape(self.shape[:s] + (-1,) + self.shape[e + 1:]) if self.numel() else \
            self.reshape(self.shape[:s] + (0,) + self.shape[e + 1:])

    def flip(self: "Tensor", dims: Any) -> "Tensor":
        return self._movement(Op.FLIP, self._axes(dims))

    def pad_zeros(self: "Tensor", padding: Sequence[tuple[int, int]]) -> "Tensor":
        """Zero padding, ((before, after), ...) per dimension (negative values crop)."""
        crop = tuple((max(0, -lo), s - max(0, -hi)) for (lo, hi), s in zip(padding, self.shape))
        out = self._movement(Op.SHRINK, crop)
        return out._movement(Op.PAD, tuple((max(0, lo), max(0, hi)) for lo, hi in padding))

    def shrink(self: "Tensor", bounds: Sequence[tuple[int, int]]) -> "Tensor":
        """The view [start, end) per dimension."""
        return self._movement(Op.SHRINK, tuple(bounds))
