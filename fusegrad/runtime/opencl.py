"""The OpenCL device, through pyopencl: cl.Buffer memory, programs built from OpenCL C, one
in-order queue. "opencl:N" is the N-th device over all platforms. `fg.jit` replays through
`sequence` (opencl_sequence.py), with virtual addresses standing in for device pointers.

pyopencl is imported on first use, never at fusegrad's import: a machine without it (or without
an ICD loader or platform) simply has no "opencl" device, and `unavailable_reason()` says why.
"""
from __future__ import annotations

import functools
import threading
from typing import Any, Sequence

import numpy as np

from ..errors import CompileError, DeviceError
from . import cache
from .buffer import Buffer, CountingAllocator
from .opencl_sequence import AddressSpace, OpenCLSequence

WORK_ITEMS_PER_UNIT = 1024  # launch size per compute unit; kernels loop over the rest (grid stride)


@functools.cache
def _cl() -> Any:
    import pyopencl
    return pyopencl


@functools.cache
def _devices() -> tuple[Any, ...]:
    """Every OpenCL device of every platform, in a fixed order (what "opencl:N" indexes)."""
    cl = _cl()
    found = []
    for platform in cl.get_platforms():
        try:
            found.extend(platform.get_devices())
        except cl.Error:  # a platform with no devices reports DEVICE_NOT_FOUND
            continue
    return tuple(found)


@functools.cache
def unavailable_reason() -> str | None:
    """None when at least one OpenCL device can be used here, else a sentence saying why not."""
    try:
        cl = _cl()
    except (ImportError, OSError) as e:  # OSError: pyopencl present but libOpenCL.so is not
        return f"pyopencl cannot be imported ({e}); pip install pyopencl"
    try:
        devices = _devices()
    except cl.Error as e:
        return f"no OpenCL platform ({e}); install an ICD, e.g. apt-get install pocl-opencl-icd"
    return None if devices else "OpenCL platforms report no devices"


def cl_memory(buf: Buffer) -> Any:
    """The OpenCL memory object of a buffer. A handle that is not one is fg.jit's stand-in for a result
    that a later call overwrote; touching it raises the JitError that says so."""
    handle = buf.handle
    if not isinstance(handle, _cl().MemoryObjectHolder):
        getattr(handle, "int_ptr")
    return handle


class OpenCLProgram:
    """A built kernel: call with device buffers in parameter order; returns its seconds on the device."""

    __slots__ = ("name", "_program", "_kernel", "_device")

    def __init__(self, name: str, program: Any, device: "OpenCLDevice"):
        self.name = name
        self._program = program
        self._kernel = _cl().Kernel(program, name)
        self._device = device

    def new_kernel(self) -> Any:
        """Another kernel object of this program, with arguments of its own (for a captured sequence)."""
        return _cl().Kernel(self._program, self.name)

    def __call__(self, buffers: Sequence[Buffer]) -> float:
        return self._launch([cl_memory(b) for b in buffers])

    def call_pointers(self, pointers: Sequence[int]) -> float:
        """Run on virtual addresses (`OpenCLDevice.pointer`, plus offsets); returns its seconds on the device."""
        return self._launch([self._device.addresses.resolve(p) for p in pointers])

    def _launch(self, handles: Sequence[Any]) -> float:
        dev = self._device
        cl = _cl()
        with dev.lock:  # kernel arguments are state of the kernel object: set and enqueue together
            self._kernel.set_args(*handles)
            event = cl.enqueue_nd_range_kernel(dev.queue, self._kernel, (dev.global_size,), None)
        event.wait()  # the engine records each launch's time, so a launch completes before returning
        return (event.profile.end - event.profile.start) * 1e-9


class OpenCLDevice:
    """One OpenCL device with its own context and in-order queue."""

    kind = "opencl"

    def __init__(self, name: str = "opencl:0"):
        reason = unavailable_reason()
        if reason is not None:
            raise DeviceError(f"{name} is not available: {reason}")
        cl = _cl()
        index = int(name.partition(":")[2] or 0)
        devices = _devices()
        if not 0 <= index < len(devices):
            listing = ", ".join(f"opencl:{i} ({d.name})" for i, d in enumerate(devices))
            raise DeviceError(f"no OpenCL device {name}; found {listing}")
        self.name = name
        self.cl_device = devices[index]
        self.context = cl.Context([self.cl_device])
        self.queue = cl.CommandQueue(self.context, self.cl_device,
                                     properties=cl.command_queue_properties.PROFILING_ENABLE)
        self.global_size = self.cl_device.max_compute_units * WORK_ITEMS_PER_UNIT
        self.lock = threading.Lock()
        # the kernel cache keys binaries by everything that changes what the driver produces
        d = self.cl_device
        self.identity = f"{d.platform.name}|{d.platform.version}|{d.name}|{d.version}|{d.driver_version}"
        self.allocator = CountingAllocator(name, self._raw_alloc)
        self.alignment = d.mem_base_addr_align // 8  # bytes; where sub-buffers may start (reported in bits)
        self.addresses = AddressSpace(self.alignment, self.alloc, cl_memory)

    def _raw_alloc(self, nbytes: int) -> Any:
        # OpenCL rejects 0-byte buffers; the buffer is released when its handle is collected
        cl = _cl()
        return cl.Buffer(self.context, cl.mem_flags.READ_WRITE, max(nbytes, 1))

    # memory
    def alloc(self, nbytes: int) -> Buffer:
        return self.allocator.alloc(nbytes)

    def pointer(self, buf: Buffer) -> int:
        """A virtual address standing for the buffer in a sequence's slot table (OpenCL has no pointers)."""
        return self.addresses.pointer(buf)

    def copy_in(self, buf: Buffer, data: np.ndarray) -> None:
        raw = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
        if raw.size > buf.nbytes:
            raise DeviceError(f"copy of {raw.size} bytes into a {buf.nbytes}-byte buffer on {self.name}")
        if raw.size:  # blocking: `data` may be freed as soon as this returns
            _cl().enqueue_copy(self.queue, cl_memory(buf), raw, is_blocking=True)

    def copy_out(self, buf: Buffer, np_dtype: np.dtype, count: int) -> np.ndarray:
        out = np.empty(count, dtype=np_dtype)
        if out.nbytes:  # blocking, and the queue is in order: the read waits for every kernel before it
            _cl().enqueue_copy(self.queue, out, cl_memory(buf), is_blocking=True)
        return out

    # compilation
    def compile(self, source: str, names: Sequence[str], nargs: Sequence[int], support: str = ""
                ) -> list[OpenCLProgram]:
        """Build one program holding every named kernel; its binary is cached on disk by source,
        device and driver. `nargs` is unused: OpenCL kernels know their own parameters."""
        if support:
            raise CompileError("the OpenCL device cannot link a support library", support)
        program = self._program(source)
        return [OpenCLProgram(name, program, self) for name in names]

    def sequence(self, launches: Sequence[tuple[OpenCLProgram, Sequence[tuple[int, int]]]], nslots: int
                 ) -> OpenCLSequence:
        """Kernels that `run(table)` enqueues in order, none waited for; each argument is a (slot, byte offset)."""
        return OpenCLSequence(self, launches, nslots)

    def _program(self, source: str) -> Any:
        cl = _cl()
        key = cache.cache_key(source, self.identity)
        path = cache.lookup(key, "clbin")
        if path is not None:
            try:
                return cl.Program(self.context, [self.cl_device], [path.read_bytes()]).build()
            except (cl.Error, OSError):  # a binary this driver no longer accepts: build from source
                cache.invalidate(key, "clbin")
        program = self._build_source(source)
        binary = program.get_info(cl.program_info.BINARIES)[0]
        if binary:  # some drivers do not export binaries; they are then rebuilt each process
            cache.store(key, "clbin", lambda out: out.write_bytes(binary))
        return program

    def _build_source(self, source: str) -> Any:
        cl = _cl()
        try:
            return cl.Program(self.context, source).build()
        except cl.Error as e:  # pyopencl's message carries the driver's build log
            raise CompileError(f"OpenCL failed to build generated kernels for {self.name} "
                               f"({self.cl_device.name})", source, str(e)) from None

    def synchronize(self) -> None:
        """Wait for every queued command."""
        self.queue.finish()
