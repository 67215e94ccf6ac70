"""Replaying captured kernel sequences on the OpenCL device (what `fg.jit` needs from a device).

OpenCL has no device pointers to do arithmetic on, but the jit fills its slot tables with
`device.pointer(buffer)` and `pointer + byte offset`. `AddressSpace` gives every buffer a
virtual address (a multiple of `SPAN`, so an offset can never reach the next buffer) and
resolves an address back to OpenCL memory: the buffer itself, or a cached sub-buffer for an
address inside it. A table (`SlotTable`) owns its own copy of the sequence's kernel objects and
sets their arguments as entries are written, so a run only enqueues: one call per kernel, no
waits.
"""
from __future__ import annotations

import itertools
import weakref
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..errors import JitError
from .buffer import Buffer

if TYPE_CHECKING:
    from .opencl import OpenCLDevice, OpenCLProgram

SPAN = 1 << 40  # virtual bytes per buffer: more than any device allocation


class _Memory:
    """A registered buffer: its OpenCL memory and the sub-buffers made of it."""

    __slots__ = ("handle", "nbytes", "ranges")

    def __init__(self, handle: Any, nbytes: int):
        self.handle = handle
        self.nbytes = max(nbytes, 1)  # what the device allocated: it rejects 0-byte buffers
        self.ranges: dict[int, Any] = {}  # byte offset -> sub-buffer, made once per offset


class AddressSpace:
    """Virtual addresses for one device's buffers.

    OpenCL sub-buffers must start at a multiple of the device's base-address alignment (128 bytes
    on PoCL); the jit lays its arena out at that alignment (`device.alignment`), so every range it
    addresses can be a sub-buffer, and any other offset is an error.
    """

    def __init__(self, alignment: int, memory: Callable[[Buffer], Any]):
        self.alignment = alignment
        self._memory = memory  # a Buffer's OpenCL memory object
        self._live: dict[int, _Memory] = {}  # address // SPAN -> memory, until the Buffer dies
        self._indices = itertools.count(1)  # 0 stays free, so no address is 0 (a null pointer)

    def pointer(self, buf: Buffer) -> int:
        """The virtual address of `buf` (made on first use and cached on the buffer)."""
        address = buf.address
        if address is None:
            index = next(self._indices)
            self._live[index] = _Memory(self._memory(buf), buf.nbytes)
            weakref.finalize(buf, self._forget, index)
            address = buf.address = index * SPAN
        return address

    def _forget(self, index: int) -> None:
        """Drop a dead buffer's memory: its sub-buffers first, then the buffer (in one collection
        the buffer could go first). NVIDIA's driver still segfaults releasing a collected jit
        arena's sub-buffer here; docs/gpu.md has what was tried."""
        memory = self._live.pop(index, None)
        if memory is not None:
            memory.ranges.clear()

    def resolve(self, address: int) -> Any:
        """The OpenCL memory object that starts at a virtual address."""
        index, offset = divmod(address, SPAN)
        memory = self._live.get(index)
        if memory is None or offset >= memory.nbytes:
            raise JitError(f"{address:#x} is not an address inside a live OpenCL buffer")
        if offset == 0:
            return memory.handle
        sub = memory.ranges.get(offset)
        if sub is None:
            if offset % self.alignment:
                raise JitError(f"byte offset {offset} into an OpenCL buffer is not a multiple of the device's "
                               f"sub-buffer alignment ({self.alignment} bytes)")
            sub = memory.ranges[offset] = memory.handle.get_sub_region(offset, memory.nbytes - offset)
        return sub


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
            self.kernels[launch].set_arg(arg, self._resolve(address + offset))
        self._addresses[slot] = address


class OpenCLSequence:
    """A captured list of kernel launches; `run(table)` enqueues them in order on the device's queue."""

    def __init__(self, device: "OpenCLDevice", launches: Sequence[tuple["OpenCLProgram", Sequence[tuple[int, int]]]],
                 nslots: int):
        import pyopencl  # loaded already: the device exists
        misaligned = sorted({offset for _, args in launches for _, offset in args if offset % device.alignment})
        if misaligned:  # e.g. packed buffers at byte offsets: OpenCL cannot address them
            raise JitError(f"fg.jit cannot replay kernels reading packed buffers at byte offsets {misaligned} on "
                           f"{device.name}: OpenCL sub-buffers start at multiples of {device.alignment} bytes")
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
