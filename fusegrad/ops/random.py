"""Random streams: `Generator` (torch.Generator) and the uniform draw every random op builds on.

A stream is a seed and an offset. A draw of n numbers reads Philox(seed, offset + i) for i < n
inside the kernel (graph op RAND) and moves the offset by n, so a seed reproduces the same
sequence of tensors on every device. `default_generator` is the global stream (`fg.manual_seed`),
kept per thread; a `Generator` made by the user is a stream of its own, and drawing from it
leaves the global one where it was.
"""
from __future__ import annotations

import math
import secrets
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import dtypes
from ..engine import capture
from ..errors import DTypeError, JitError, ShapeError
from ..graph import node as G
from ..hostdata import node_from_data
from ..runtime import registry

if TYPE_CHECKING:
    from ..tensor import Tensor

DEFAULT_SEED = 0x5EED
_draw_lock = threading.Lock()  # a Generator shared by threads: each draw reads and advances its offset at once
_MASK = 2**64 - 1


class _Stream:
    """The state of a user generator: the seed it was given and the counters used so far."""

    def __init__(self) -> None:
        self.seed = DEFAULT_SEED
        self.offset = 0


class _ThreadStream(threading.local):
    """The default generator's state: one per thread, so threads draw reproducibly."""

    def __init__(self) -> None:
        self.seed = DEFAULT_SEED
        self.offset = 0


class Generator:
    """A random stream, like torch.Generator: `fg.Generator().manual_seed(0)`, passed as `generator=`.

    `device` only records where the generator was meant for: Philox gives the same numbers on
    every device, so any generator serves tensors on any device.
    """

    def __init__(self, device: Any = "cpu") -> None:
        self.device = registry.canonical(device)
        self._state: _Stream | _ThreadStream = _Stream()

    def manual_seed(self, seed: int) -> "Generator":
        """Restart the stream at `seed` (negative seeds wrap to 64 bits, as in torch); returns self."""
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"manual_seed expects an int, got {type(seed).__name__}")
        self._state.seed = int(seed) & _MASK
        self._state.offset = 0
        return self

    def seed(self) -> int:
        """Restart the stream at a non-deterministic seed and return it."""
        seed = secrets.randbits(63)
        self.manual_seed(seed)
        return seed

    def initial_seed(self) -> int:
        """The seed the stream started from."""
        return self._state.seed

    def get_state(self) -> "Tensor":
        """The stream's state as a uint8 tensor (16 bytes: seed, then offset), for `set_state`."""
        from ..tensor import tensor
        words = np.array([self._state.seed, self._state.offset], dtype=np.uint64)
        return tensor(words.view(np.uint8), dtype=dtypes.uint8)

    def set_state(self, new_state: "Tensor") -> "Generator":
        """Restore a state `get_state` returned; returns self."""
        if getattr(new_state, "dtype", None) is not dtypes.uint8:
            raise DTypeError(f"set_state expects a uint8 tensor from get_state(), got {new_state!r:.60}")
        if new_state.shape != (16,):
            raise ShapeError(f"set_state expects the 16-byte state get_state() returns, got shape {new_state.shape}")
        seed, offset = (int(v) for v in np.ascontiguousarray(new_state.numpy()).view(np.uint64))
        self._state.seed, self._state.offset = seed, offset
        return self

    def __repr__(self) -> str:
        return f"<fusegrad.Generator device={self.device} seed={self._state.seed}>"


# made without Generator.__init__: naming a device reads the config file, which importing fusegrad must not do
default_generator = Generator.__new__(Generator)
default_generator.device, default_generator._state = "cpu", _ThreadStream()


def stream(generator: Generator | None) -> _Stream | _ThreadStream:
    """The state a draw advances: the generator's, or the default one's."""
    if generator is None:
        return default_generator._state
    if not isinstance(generator, Generator):
        raise TypeError(f"generator must be an fg.Generator, got {type(generator).__name__}")
    return generator._state


def uniform(shape: tuple[int, ...], device: Any, generator: Generator | None = None) -> "Tensor":
    """float32 numbers uniform in [0, 1), the next prod(shape) counters of the stream."""
    from ..tensor import Tensor
    state = stream(generator)
    n = math.prod(shape)
    with _draw_lock:
        seed, offset = state.seed, state.offset
        state.offset = offset + n
    seed_offset = np.array([seed, offset], dtype=np.uint64).view(np.int64)
    buffer = node_from_data(seed_offset, dtypes.int64, registry.canonical(device))
    recording = capture.current()
    if recording is not None:
        if generator is not None and generator is not default_generator:
            raise JitError("fg.jit replays random draws from the default generator only; "
                           "draw without generator= inside a jitted function")
        recording.random_states.append((buffer.buffer, n))  # a replay writes the then-current state here
    return Tensor._from_node(G.rand(shape, buffer, dtypes.float32))


def zero_gradient_link(value: "Tensor", *inputs: Any) -> "Tensor":
    """`value` joined to the graph of the `inputs` that require grad, with a zero gradient: torch's normal
    and bernoulli return tensors that require grad when their parameters do, and pass back zeros."""
    from ..tensor import Tensor, where
    for x in inputs:
        if isinstance(x, Tensor) and x.requires_grad:
            never = value._const(False, dtypes.bool_)
            value = where(never, x.cast(value.dtype).broadcast_to(value.shape), value)
    return value


def integers(low: int, high: int, shape: tuple[int, ...], device: Any, generator: Generator | None) -> "Tensor":
    """int64 numbers uniform in [low, high). A float32 draw holds 24 random bits; wider ranges join two
    draws into 48 bits (exact in float64), so every value of a range up to 2**48 can come out."""
    if high <= low:
        raise ValueError(f"random integers need low < high, got low={low} >= high={high}")
    u = uniform(shape, device, generator).cast(dtypes.float64)
    if high - low > 2**24:
        low_bits = uniform(shape, device, generator).cast(dtypes.float64)
        u = u + (low_bits * 2**24).floor() * 2.0**-48
    return (u * (high - low)).floor().cast(dtypes.int64) + low
