"""Composite reductions: arg-reductions, statistics, softmax family, scans, norms."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..tensor import Tensor


class ReduceMixin:
    __slots__ = ()

    def max(self: "Tensor", dim: Any = None, keepdim: bool = False) -> Any:
        if dim is None or hasattr(dim, "_node"):
            return self.amax() if dim is None else self.maximum(dim)
        return self.amax(dim, keepdim)

    def min(self: "Tensor", dim: Any = None, keepdim: bool = False) -> Any:
        if dim is None or hasattr(dim, "_node"):
            return self.amin() if dim is None else self.minimum(dim)
        return self.amin(dim, keepdim)
