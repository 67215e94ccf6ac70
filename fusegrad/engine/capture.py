"""Recording of what a realization does, for `fg.jit`.

While a recording is active, `realize.run` appends every kernel launch (program and the buffers
it writes and reads), random-number draws note their state buffers, and stateful objects (the
optimizers) add checks that run before each replay. Reading a value back to the host raises:
the replayed step would not run that Python code again.
"""
from __future__ import annotations

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


_current: Recording | None = None


def current() -> Recording | None:
    return _current


def begin() -> Recording:
    global _current
    if _current is not None:
        raise JitError("a capture is already running")
    _current = Recording()
    return _current


def end() -> None:
    global _current
    _current = None


def forbid_host_read(what: str) -> None:
    """Raise when a capture is running: the value read now would be frozen into every replay."""
    if _current is not None:
        raise JitError(f"{what} inside a function being captured by fg.jit: replays do not run Python, so the "
                       "value would be frozen. Return the tensor from the jitted function and read it outside.")
