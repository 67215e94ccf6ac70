"""Grad mode: whether ops record history (`no_grad`, `enable_grad`, `set_grad_enabled`), per thread."""
from __future__ import annotations

import contextlib
import copy
import threading
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from ..tensor import Tensor
    from .engine import GradientTape


class _State(threading.local):
    def __init__(self) -> None:
        self.grad_enabled = True
        self.tapes: list["GradientTape"] = []


_state = _State()



def is_grad_enabled() -> bool:
    return _state.grad_enabled


class set_grad_enabled(contextlib.ContextDecorator):
    """Context manager and decorator switching gradient recording on or off (like torch)."""

    def __init__(self, mode: bool):
        self.mode = bool(mode)
        self.prev: list[bool] = []

    def __enter__(self) -> None:
        self.prev.append(_state.grad_enabled)
        _state.grad_enabled = self.mode

    def __exit__(self, *exc: object) -> None:
        _state.grad_enabled = self.prev.pop()

    def _recreate_cm(self) -> "set_grad_enabled":
        # as a decorator, one object per call (like torch's clone()): threads calling the decorated
        # function at once must not pop each other's saved modes
        fresh = copy.copy(self)
        fresh.prev = []
        return fresh


def no_grad() -> set_grad_enabled:
    """Ops inside record no history: `with fg.no_grad():` or `@fg.no_grad()`."""
    return set_grad_enabled(False)


def enable_grad() -> set_grad_enabled:
    return set_grad_enabled(True)


def should_record(inputs: Sequence["Tensor"]) -> bool:
    """Record history when grads are on and an input requires grad or a tape is watching."""
    return recording(any(t.requires_grad for t in inputs))


def watching() -> bool:
    """Whether a GradientTape is recording (its sources need not require grad)."""
    return bool(_state.tapes)


def recording(input_requires_grad: bool) -> bool:
    """should_record for a caller that already knows whether an input requires grad (every op)."""
    return _state.grad_enabled and (input_requires_grad or bool(_state.tapes))


# derivative rules: rule(ctx, out, grad) -> one gradient (or None) per input
