"""`fg.inference_mode`: torch's inference mode, which in fusegrad is `no_grad` (no history is recorded;
version counters keep counting, which costs nothing worth switching off)."""
from __future__ import annotations

import threading
from typing import Any

from .autograd import set_grad_enabled


class _Depth(threading.local):
    def __init__(self) -> None:
        self.value = 0


_depth = _Depth()


class inference_mode(set_grad_enabled):  # noqa: N801  (torch's name)
    """Context manager and decorator: `with fg.inference_mode():`, `@fg.inference_mode()` or `@fg.inference_mode`."""

    def __new__(cls, mode: Any = True) -> Any:
        if callable(mode):  # used bare as a decorator: `@fg.inference_mode`
            return cls(True)(mode)
        return super().__new__(cls)

    def __init__(self, mode: bool = True) -> None:
        super().__init__(not mode)
        self.inference = bool(mode)

    def __enter__(self) -> None:
        super().__enter__()
        _depth.value += self.inference

    def __exit__(self, *exc: object) -> None:
        _depth.value -= self.inference
        super().__exit__(*exc)


def is_inference_mode_enabled() -> bool:
    """Whether code runs inside `fg.inference_mode()`."""
    return _depth.value > 0


__all__ = ["inference_mode", "is_inference_mode_enabled"]
