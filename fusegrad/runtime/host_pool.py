"""Released host buffers kept by size for the next allocation of that size.

An eager training step allocates the same sizes every time, and a fresh large allocation comes
from the operating system as untouched pages: each first write faults (a GPT's eager step made
24,000 page faults, about a quarter of its time). Buffers of POOL_MIN bytes or more are kept when
released, up to POOL_LIMIT bytes in all (past it a released buffer is freed), and handed out again
for an allocation of exactly their size. Smaller ones come from malloc's own free lists anyway.
"""
from __future__ import annotations

import threading

import numpy as np

POOL_MIN = 1 << 16
POOL_LIMIT = 1 << 30


class HostPool:
    """A free list of numpy byte arrays per size."""

    def __init__(self) -> None:
        self._free: dict[int, list[np.ndarray]] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def cached_bytes(self) -> int:
        return self._bytes

    def take(self, nbytes: int) -> np.ndarray:
        """An array of `nbytes` (at least one) bytes: a released one of that size, else a new one."""
        n = max(nbytes, 1)
        if n >= POOL_MIN:
            with self._lock:
                arrays = self._free.get(n)
                if arrays:
                    self._bytes -= n
                    return arrays.pop()
        return np.empty(n, dtype=np.uint8)

    def give(self, array: np.ndarray) -> None:
        """Keep a released array for reuse (or let it go when small or the pool is full)."""
        n = array.nbytes
        if n < POOL_MIN:
            return
        with self._lock:
            if self._bytes + n <= POOL_LIMIT:
                self._free.setdefault(n, []).append(array)
                self._bytes += n

    def clear(self) -> None:
        """Let every kept array go."""
        with self._lock:
            self._free.clear()
            self._bytes = 0
