"""Device buffers and the counting allocator every device uses."""
from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from typing import Any


@dataclass
class MemoryStats:
    """Bytes held now, the most ever held, and how many allocations were made."""

    current_bytes: int = 0
    peak_bytes: int = 0
    allocations: int = 0
    frees: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"current_bytes": self.current_bytes, "peak_bytes": self.peak_bytes,
                "allocations": self.allocations, "frees": self.frees}


class Buffer:
    """`nbytes` of device memory. `handle` is the device's own object (a numpy array on the CPU).

    A buffer may be a byte range of a larger one (`base`, at `offset`): several results packed
    back to back, so that together they can be read as one flat buffer.
    """

    __slots__ = ("device", "nbytes", "handle", "base", "offset", "address", "_owner", "_raw", "__weakref__")

    def __init__(self, device: str, nbytes: int, handle: Any, base: "Buffer | None" = None, offset: int = 0):
        self.device = device
        self.nbytes = nbytes
        self.handle = handle
        self.base = base
        self.offset = offset
        self.address: int | None = None  # the device pointer, cached by the device that owns the buffer
        self._owner: CountingAllocator | None = None  # set by the allocator that must be told of its death
        self._raw: Any = None  # the allocation itself (`handle` may be swapped for a marker)

    def __del__(self, _exiting: Any = sys.is_finalizing) -> None:
        # cheaper than weakref.finalize (~3 us per buffer, paid by every eager kernel's output); at
        # interpreter exit the driver bindings may already be gone, and the process frees everything
        if self._owner is not None and not _exiting():
            self._owner.release(self.nbytes, self._raw)


class CountingAllocator:
    """Wraps a device's raw allocation so every byte is accounted; frees when the Buffer dies."""

    def __init__(self, device: str, raw_alloc: Any, raw_free: Any = None):
        self.device = device
        self._raw_alloc = raw_alloc
        self._raw_free = raw_free
        self.stats = MemoryStats()
        self._lock = threading.Lock()

    def alloc(self, nbytes: int) -> Buffer:
        handle = self._raw_alloc(nbytes)
        buf = Buffer(self.device, nbytes, handle)
        with self._lock:
            s = self.stats
            s.current_bytes += nbytes
            s.allocations += 1
            if s.current_bytes > s.peak_bytes:
                s.peak_bytes = s.current_bytes
        buf._raw = handle if self._raw_free is not None else None
        buf._owner = self
        return buf

    def release(self, nbytes: int, handle: Any) -> None:
        """Account for (and hand back to the device) a buffer that died."""
        if handle is not None:
            self._raw_free(handle)
        with self._lock:
            self.stats.current_bytes -= nbytes
            self.stats.frees += 1

    def reset_peak(self) -> None:
        with self._lock:
            self.stats.peak_bytes = self.stats.current_bytes
