"""nn.Parameter: a leaf tensor that a Module registers as trainable."""
from __future__ import annotations

from typing import Any

from ..tensor import Tensor


class Parameter(Tensor):
    """A tensor that requires grad by default and is registered when assigned to a Module."""

    __slots__ = ()

    def __init__(self, data: Tensor | Any = None, requires_grad: bool = True):
        src = data if isinstance(data, Tensor) else Tensor(data if data is not None else [])
        self._init(src.detach()._node, None, False)
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()
