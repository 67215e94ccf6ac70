"""Recording of what a realization does, for `fg.jit`.

While a recording is active, `realize.run` appends every kernel launch (program and the buffers
it writes and reads), random-number draws note their state buffers, and stateful objects (the
optimizers) add checks that run before each replay. Reading a value back to the host raises:
the replayed step would not run that Python code again.

The recording is per thread, as torch's graph capture is per stream: a capture sees only the
launches of the thread that runs it, and other threads realize and read values as usual.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import JitError


@dataclass
class Launch:
    program: Any
    out: Any
    inputs: list[Any]
    scratch: list[Any]
    flops: int = 0
    label: str = ""  # the fused ops, for the profiler
    shape: tuple[int, ...] = ()


@dataclass
class Recording:
    launches: list[Launch] = field(default_factory=list)
    random_states: list[tuple[Any, int]] = field(default_factory=list)  # (state buffer, numbers drawn)
    replay_checks: list[Callable[[], bool]] = field(default_factory=list)  # False: capture again


class _ThreadState(threading.local):
    recording: Recording | None = None  # the capture running on this thread


_state = _ThreadState()


def current() -> Recording | None:
    """The recording of the capture running on the calling thread, or None."""
    return _state.recording


def begin() -> Recording:
    if _state.recording is not None:
        raise JitError("a capture is already running on this thread")
    _state.recording = Recording()
    return _state.recording


def end() -> None:
    _state.recording = None


def forbid_host_read(what: str) -> None:
    """Raise when this thread is capturing: the value read now would be frozen into every replay."""
    if _state.recording is not None:
        raise JitError(f"{what} inside a function being captured by fg.jit: replays do not run Python, so the "
                       "value would be frozen. Return the tensor from the jitted function and read it outside.")
