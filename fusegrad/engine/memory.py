"""Memory planning for a captured kernel sequence (fg.jit): when each allocation is written and
last used, an arena layout in which allocations alive at the same time never overlap, and the
pools of buffers that outputs rotate through."""
from __future__ import annotations

import weakref
from typing import Any, Callable

from ..runtime.buffer import Buffer
from . import capture

ALIGN = 64  # bytes: arena offsets keep kernels' vector loads aligned
POOL_SIZE = 3  # buffers kept per output allocation; a result held longer keeps its own buffer alive


def lifetimes(launches: list[capture.Launch], place: Callable[[Buffer], tuple[Buffer, int]]
              ) -> tuple[dict[int, int], dict[int, int], set[int], dict[int, Buffer]]:
    """Per root: the launch that first writes it, the last launch that uses it, whether it is read
    before any launch writes it (inputs, state, constants), and the root itself."""
    first_write: dict[int, int] = {}
    last_use: dict[int, int] = {}
    read_first: set[int] = set()
    roots: dict[int, Buffer] = {}
    for i, launch in enumerate(launches):
        for b in launch.inputs:
            root = place(b)[0]
            roots[id(root)] = root
            if id(root) not in first_write:
                read_first.add(id(root))
            last_use[id(root)] = i
        for b in [launch.out, *launch.scratch]:
            root = place(b)[0]
            roots[id(root)] = root
            first_write.setdefault(id(root), i)
            last_use[id(root)] = max(last_use.get(id(root), i), i)
    return first_write, last_use, read_first, roots


def plan_arena(sizes: list[int], lifetimes: list[tuple[int, int]],
               align: int = ALIGN) -> tuple[list[int], int, int]:
    """Offsets (multiples of `align` bytes) for buffers with [first, last] launch lifetimes so that
    buffers alive at the same time never overlap: largest first, each at the lowest gap that fits.
    Returns the offsets, the arena size and the most bytes simultaneously live (the lower bound)."""
    offsets = [0] * len(sizes)
    placed: list[int] = []
    for i in sorted(range(len(sizes)), key=lambda k: -sizes[k]):
        size = -(-sizes[i] // align) * align
        first, last = lifetimes[i]
        busy = sorted((offsets[j], offsets[j] + sizes[j]) for j in placed
                      if lifetimes[j][0] <= last and first <= lifetimes[j][1])
        offset = 0
        for lo, hi in busy:
            if offset + size <= lo:
                break
            offset = max(offset, -(-hi // align) * align)
        offsets[i] = offset
        placed.append(i)
    total = max((offsets[i] + sizes[i] for i in placed), default=0)
    events = sorted({t for lt in lifetimes for t in lt})
    live = max((sum(s for s, (a, b) in zip(sizes, lifetimes) if a <= t <= b) for t in events), default=0)
    return offsets, total, live


class OutputPool:
    """The buffers of one output allocation: a replay writes into one that no live result still uses."""

    __slots__ = ("slot", "ranges", "buffers", "users", "current")

    def __init__(self, slot: int | None, root: Buffer, ranges: list[tuple[int, tuple[int, ...], Any, int, int]]):
        self.slot = slot  # the allocation's entry in the pointer tables (None: no kernel writes it)
        self.ranges = ranges  # (leaf index, shape, dtype, byte offset, bytes) of each result it holds
        self.buffers = [root]
        self.users: list[list[weakref.ref]] = [[]]  # per buffer: the result buffers it last handed out
        self.current = 0

    def choose(self, device: Any) -> Buffer:
        """The buffer the next replay writes: a pooled one whose results all died, else a fresh one."""
        if self.slot is None:
            return self.buffers[0]
        for i, users in enumerate(self.users):
            if all(user() is None for user in users):
                break
        else:
            if len(self.buffers) < POOL_SIZE:
                i = len(self.buffers)
                self.buffers.append(device.alloc(self.buffers[0].nbytes))
                self.users.append([])
            elif device.sequence_keeps_pointers:  # results kept across many calls move, the pointers stay
                i = (self.current + 1) % POOL_SIZE
                self._relocate(device, i)
            else:  # results kept across many calls: the replaced buffer lives on in them
                i = (self.current + 1) % POOL_SIZE
                self.buffers[i] = device.alloc(self.buffers[0].nbytes)
        self.current = i
        return self.buffers[i]

    def _relocate(self, device: Any, i: int) -> None:
        """Copy the live results in buffer i to memory of their own (each result's buffer object is
        repointed, so every tensor over it follows), freeing buffer i for the next replay: where a
        replay is a graph with its pointers baked in, a loop that keeps every result (tokens, losses)
        then replays the same few graphs instead of capturing a new one each call."""
        for ref in self.users[i]:
            result = ref()
            if result is not None:
                own = device.alloc(result.nbytes)
                device.copy_within(own, result, result.nbytes)
                result.handle, result.base, result.offset, result.address = own.handle, own, 0, None
        self.users[i] = []

    def hand_out(self, device: Any) -> list[Buffer]:
        """Buffers for the results (one per range) over the memory the last call wrote; each keeps
        that memory alive, and while one lives no replay writes there."""
        root = self.buffers[self.current]
        results = [device.sub_buffer(root, offset, nbytes) for _, _, _, offset, nbytes in self.ranges]
        self.users[self.current] = [weakref.ref(buf) for buf in results]
        return results
