"""Indexing: basic slicing as views, integer-tensor/boolean indexing, gather/scatter."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..tensor import Tensor


class IndexMixin:
    __slots__ = ()

