"""Replaying captured kernel sequences on the OpenCL device (what `fg.jit` needs from a device).

OpenCL has no device pointers to do arithmetic on, but the jit fills its slot tables with
`device.pointer(buffer)` and `pointer + byte offset`. `AddressSpace` gives every buffer a
virtual address (a multiple of `SPAN`, so an offset can never reach the next buffer) and
resolves an address back to the buffer's memory and the byte offset into it, the two kernel
arguments the OpenCL renderer gives each buffer (no sub-buffers: they must start at the device's
base-address alignment, and NVIDIA's driver segfaulted releasing them). A table (`SlotTable`)
owns its own copy of the sequence's kernel objects and sets their arguments as entries are
written, so a run only enqueues: one call per kernel, no waits.
"""
from __future__ import annotations

import itertools
import weakref
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from ..errors import JitError
from .buffer import Buffer

if TYPE_CHECKING:
    from .opencl import OpenCLDevice, OpenCLProgram

SPAN = 1 << 40  # virtual bytes per buffer: more than any device allocation


class AddressSpace:
    """Virtual addresses for one device's buffers."""

    def __init__(self, memory: Callable[[Buffer], Any]):
        self._memory = memory  # a Buffer's OpenCL memory object
        # address // SPAN -> (memory, bytes the device allocated), until the Buffer dies
        self._live: dict[int, tuple[Any, int]] = {}
        self._indices = itertools.count(1)  # 0 stays free, so no address is 0 (a null pointer)

    def pointer(self, buf: Buffer) -> int:
        """The virtual address of `buf` (made on first use and cached on the buffer)."""
        address = buf.address
        if address is None:
            index = next(self._indices)
            self._live[index] = (self._memory(buf), max(buf.nbytes, 1))  # the device rejects 0-byte buffers
            weakref.finalize(buf, self._live.pop, index, None)
            address = buf.address = index * SPAN
        return address

    def resolve(self, address: int) -> tuple[Any, np.uint64]:
        """The OpenCL memory object that holds a virtual address, and the byte offset into it."""
        index, offset = divmod(address, SPAN)
        memory, nbytes = self._live.get(index, (None, 0))
        if memory is None or offset >= nbytes:
            raise JitError(f"{address:#x} is not an address inside a live OpenCL buffer")
        return memory, np.uint64(offset)


class SlotTable:
    """One slot table of a sequence: the virtual address in each slot, readable and writable by
    index like the CPU's pointer array. Writing a slot sets the argument of every launch of this
    table's kernels that uses it."""

    __slots__ = ("kernels", "_addresses", "_uses", "_resolve")

    def __init__(self, kernels: list[Any], uses: list[list[tuple[int, int, int]]], resolve: Callable[[int], Any]):
        self.kernels = kernels
        self._addresses = [0] * len(uses)
        self._uses = uses
        self._resolve = resolve

    def __len__(self) -> int:
        return len(self._addresses)

    def __getitem__(self, slot: int) -> int:
        return self._addresses[slot]

    def __setitem__(self, slot: int, address: int) -> None:
        if self._addresses[slot] == address:
            return
        for launch, arg, offset in self._uses[slot]:
            memory, at = self._resolve(address + offset)
            self.kernels[launch].set_arg(2 * arg, memory)
            self.kernels[launch].set_arg(2 * arg + 1, at)
        self._addresses[slot] = address


class OpenCLSequence:
    """A captured list of kernel launches; `run(table)` enqueues them in order on the device's queue."""

    def __init__(self, device: "OpenCLDevice", launches: Sequence[tuple["OpenCLProgram", Sequence[tuple[int, int]]]],
                 nslots: int):
        import pyopencl  # loaded already: the device exists
        self._device = device
        self._programs = [program for program, _ in launches]
        self._uses: list[list[tuple[int, int, int]]] = [[] for _ in range(max(nslots, 1))]
        for i, (_, args) in enumerate(launches):
            for arg, (slot, offset) in enumerate(args):
                self._uses[slot].append((i, arg, offset))
        self._enqueue = pyopencl.enqueue_nd_range_kernel
        self._plans = [program.launch_plan() for program in self._programs]  # builds and sizes as eager launches

    def new_slots(self) -> SlotTable:
        """A table with kernel objects of its own, so tables that alternate keep their arguments set."""
        kernels = [program.new_kernel(lanes) for program, (lanes, _, _) in zip(self._programs, self._plans)]
        return SlotTable(kernels, self._uses, self._device.addresses.resolve)

    def run(self, table: SlotTable) -> None:
        """Enqueue every kernel without waiting; reading a result waits for them (the queue is in order)."""
        enqueue, queue = self._enqueue, self._device.queue
        for kernel, (_, global_size, local_size) in zip(table.kernels, self._plans):
            enqueue(queue, kernel, global_size, local_size)
