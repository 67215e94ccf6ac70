"""What code above the Tensor API may know of a capture by `fg.jit` (engine/capture.py)."""
from __future__ import annotations

from typing import Callable

from .engine import capture

__all__ = ["before_each_replay", "is_capturing"]


def is_capturing() -> bool:
    """Whether the running code is being captured by fg.jit (its Python will not run on replays)."""
    return capture.current() is not None


def before_each_replay(check: Callable[[], bool]) -> None:
    """While capturing: run `check` before each replay of the captured step; False makes fg.jit capture
    again (a changed hyperparameter compiled into the kernels, say)."""
    recording = capture.current()
    if recording is not None:
        recording.replay_checks.append(check)
