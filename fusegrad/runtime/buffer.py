"""Device buffers and the counting allocator every device uses."""
from __future__ import annotations

import threading
import weakref
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

    __slots__ = ("device", "nbytes", "handle", "base", "offset", "address", "__weakref__")

    def __init__(self, device: str, nbytes: int, handle: Any, base: "Buffer | None" = None, offset: int = 0):
        self.device = device
        self.nbytes = nbytes
        self.handle = handle
        self.base = base
        self.offset = offset
        self.address: int | None = None  # the device pointer, cached by the device that owns the buffer


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
            s.peak_bytes = max(s.peak_bytes, s.current_bytes)
        weakref.finalize(buf, self._release, nbytes, handle if self._raw_free else None)
        return buf

    def _release(self, nbytes: int, handle: Any) -> None:
        if handle is not None and self._raw_free is not None:
            self._raw_free(handle)
        with self._lock:
            self.stats.current_bytes -= nbytes
            self.stats.frees += 1

    def reset_peak(self) -> None:
        with self._lock:
            self.stats.peak_bytes = self.stats.current_bytes
