"""The OpenCL device, through pyopencl: cl.Buffer memory, programs built from OpenCL C, one
in-order queue. "opencl:N" is the N-th device over all platforms. `fg.jit` replays through
`sequence` (opencl_sequence.py), with virtual addresses standing in for device pointers.

A kernel planned with lanes (several work-items sharing one output's reduction) comes in its
source twice, chosen by `-D FG_LANES`: with it the launch gives whole work-groups of lanes; without
it the kernel is plain. `OpenCLDevice.lanes` says which runs (GPUs: lanes); each build is made
when first needed and cached on disk like any other.

pyopencl is imported on first use, never at fusegrad's import: a machine without it (or without
an ICD loader or platform) simply has no "opencl" device, and `unavailable_reason()` says why.
"""
from __future__ import annotations

import functools
import re
import threading
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import CompileError, DeviceError
from . import cache
from .buffer import Buffer, CountingAllocator
from .opencl_sequence import AddressSpace, OpenCLSequence

WORK_ITEMS_PER_UNIT = 1024  # launch size per compute unit; kernels loop over the rest (grid stride)
LANES_MACRO = "FG_LANES"  # defined in the builds whose kernels share reductions among lanes
_KERNEL = re.compile(r"__kernel\s+void\s+(\w+)")  # the kernels a program's source defines
_LANES = re.compile(r"^// fusegrad lanes (\w+) (\d+) (\d+)$", re.MULTILINE)


def lanes_comment(name: str, lanes: int, outputs: int) -> str:
    """The line a renderer puts before a kernel whose outputs are shared by up to `lanes` lanes each."""
    return f"// fusegrad lanes {name} {lanes} {outputs}"


def parse_lanes(source: str) -> dict[str, tuple[int, int]]:
    """(lanes, outputs) of every kernel with lanes in a program's source, from its lanes comments."""
    return {m[1]: (int(m[2]), int(m[3])) for m in _LANES.finditer(source)}


@functools.cache
def _cl() -> Any:
    import pyopencl
    # a driver's notes on a build that succeeded (NVIDIA's) are not news. One filter for the process:
    # catch_warnings around each build is not thread-safe (units build in parallel), and a thread
    # leaving it restored the filters another thread was building under
    warnings.filterwarnings("ignore", message="Non-empty compiler output", category=pyopencl.CompilerWarning)
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


class _Unit:
    """A program's source, built as it is needed: without `-D FG_LANES` (kernels planned with lanes
    are then plain, one work-item per output) and with it."""

    __slots__ = ("source", "plans", "_device", "_built")

    def __init__(self, source: str, device: "OpenCLDevice"):
        self.source = source
        self.plans = parse_lanes(source)
        self._device = device
        self._built: dict[bool, Any] = {}

    def program(self, lanes: bool | None) -> Any:
        """The build with or without lanes; with None, or in a unit without lanes, whichever exists."""
        if (lanes is None or not self.plans) and self._built:
            return next(iter(self._built.values()))
        lanes = bool(lanes)
        if lanes not in self._built:  # two threads may both build it: either program serves
            self._built.setdefault(lanes, self._device.build(self.source, lanes))
        return self._built[lanes]


class OpenCLProgram:
    """A built kernel: call with device buffers in parameter order; returns its seconds on the device."""

    __slots__ = ("name", "_unit", "_device", "_kernels", "_lanes", "_outputs", "_most", "_required")

    def __init__(self, name: str, unit: _Unit, device: "OpenCLDevice"):
        self.name = name
        self._unit = unit
        self._device = device
        self._kernels: dict[bool, Any] = {}  # kernel objects of the builds without and with lanes
        self._lanes, self._outputs = unit.plans.get(name, (0, 0))  # 0 lanes: planned without any
        self._most = 0  # the most work-items the device runs of the lanes kernel in one group (asked once)
        self._required: tuple[int] | None = None  # the group size the plain kernel requires, (0,) if none

    def launch_plan(self) -> tuple[bool, tuple[int], tuple[int] | None]:
        """(whether the lanes build runs, global size, local size) under the device's lanes setting now.
        A plain launch's size is the device's choice (a grid-stride loop covers any), its groups' size
        too unless the kernel requires one; with lanes, whole work-groups of a power of two of lanes,
        as many as planned and as the device allows."""
        dev = self._device
        if not self._lanes or dev.lanes < 2:
            if self._required is None:  # a fused row's private arrays bound its groups (codegen/opencl.py)
                info = _cl().kernel_work_group_info.COMPILE_WORK_GROUP_SIZE
                self._required = (int(self.kernel(False).get_work_group_info(info, dev.cl_device)[0]),)
            group = self._required[0]
            return False, (dev.global_size,), ((group,) if group else None)
        if not self._most:
            info = _cl().kernel_work_group_info.WORK_GROUP_SIZE
            self._most = self.kernel(True).get_work_group_info(info, dev.cl_device)
        lanes = 1 << (min(self._lanes, self._most, dev.lanes).bit_length() - 1)  # the combine halves its lanes
        groups = min(self._outputs, max(1, dev.global_size // lanes))
        return True, (groups * lanes,), (lanes,)

    def kernel(self, lanes: bool) -> Any:
        """This program's kernel object in the build with or without lanes (made on first use)."""
        if lanes not in self._kernels:
            self._kernels[lanes] = self.new_kernel(lanes)
        return self._kernels[lanes]

    def new_kernel(self, lanes: bool) -> Any:
        """Another kernel object of this program, with arguments of its own (for a captured sequence)."""
        return _cl().Kernel(self._unit.program(lanes if self._lanes else None), self.name)

    def __call__(self, buffers: Sequence[Buffer]) -> float:
        return self._launch([arg for b in buffers for arg in (cl_memory(b), np.uint64(b.offset))])

    def call_pointers(self, pointers: Sequence[int]) -> float:
        """Run on virtual addresses (`OpenCLDevice.pointer`, plus offsets); returns its seconds on the device."""
        return self._launch([arg for p in pointers for arg in self._device.addresses.resolve(p)])

    def _launch(self, args: Sequence[Any]) -> float:
        """Run with the kernel's arguments: each buffer's memory object and byte offset."""
        dev = self._device
        lanes, global_size, local_size = self.launch_plan()
        kernel = self.kernel(lanes)
        with dev.lock:  # kernel arguments are state of the kernel object: set and enqueue together
            kernel.set_args(*args)
            event = _cl().enqueue_nd_range_kernel(dev.queue, kernel, global_size, local_size)
        event.wait()  # the engine records each launch's time, so a launch completes before returning
        return (event.profile.end - event.profile.start) * 1e-9


class OpenCLDevice:
    """One OpenCL device with its own context and in-order queue."""

    kind = "opencl"
    host_memory = False  # whether buffers live in host memory (reading one back then needs no synchronization)
    sequence_keeps_pointers = False  # a replay reads its pointer table afresh every run

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
        # the most lanes a kernel planned with lanes gets per output (settable; tests force them on
        # PoCL): a GPU's largest work-group; 1 elsewhere, running the plain kernels, as on CPUs one
        # work-item per output fills the cores and barriers cost more than lanes gain (docs/gpu.md)
        gpu = self.cl_device.type & cl.device_type.GPU
        self.lanes = self.cl_device.max_work_group_size if gpu else 1
        self.lock = threading.Lock()
        # the kernel cache keys binaries by everything that changes what the driver produces
        d = self.cl_device
        self.identity = f"{d.platform.name}|{d.platform.version}|{d.name}|{d.version}|{d.driver_version}"
        self.allocator = CountingAllocator(name, self._raw_alloc)
        self.addresses = AddressSpace(cl_memory)
        # float32 division and sqrt rounded like the CPU and CUDA: OpenCL allows 2.5 ulp by default,
        # and NVIDIA's driver takes it (x / 3 differed from the CPU's in the last bit)
        exact = d.single_fp_config & cl.device_fp_config.CORRECTLY_ROUNDED_DIVIDE_SQRT
        self.exact_division = ["-cl-fp32-correctly-rounded-divide-sqrt"] if exact else []

    def _raw_alloc(self, nbytes: int) -> Any:
        # OpenCL rejects 0-byte buffers; the buffer is released when its handle is collected
        cl = _cl()
        return cl.Buffer(self.context, cl.mem_flags.READ_WRITE, max(nbytes, 1))

    # memory
    def alloc(self, nbytes: int) -> Buffer:
        return self.allocator.alloc(nbytes)

    def sub_buffer(self, base: Buffer, offset: int, nbytes: int) -> Buffer:
        """Bytes [offset, offset + nbytes) of `base`: the same memory object, which kernels and
        copies address at the byte offset (no OpenCL sub-buffer)."""
        return Buffer(self.name, nbytes, base.handle, base, offset)

    def pointer(self, buf: Buffer) -> int:
        """A virtual address standing for the buffer in a sequence's slot table (OpenCL has no pointers)."""
        if buf.base is not None:
            return self.addresses.pointer(buf.base) + buf.offset
        return self.addresses.pointer(buf)

    def copy_in(self, buf: Buffer, data: np.ndarray) -> None:
        raw = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
        if raw.size > buf.nbytes:
            raise DeviceError(f"copy of {raw.size} bytes into a {buf.nbytes}-byte buffer on {self.name}")
        if raw.size:  # blocking: `data` may be freed as soon as this returns
            _cl().enqueue_copy(self.queue, cl_memory(buf), raw, is_blocking=True, dst_offset=buf.offset)

    def copy_within(self, dst: Buffer, src: Buffer, nbytes: int) -> None:
        """Enqueue a copy of `nbytes` from `src` to `dst` (the queue is in order: after every kernel before it)."""
        if nbytes:
            _cl().enqueue_copy(self.queue, cl_memory(dst), cl_memory(src), byte_count=nbytes,
                               src_offset=src.offset, dst_offset=dst.offset)

    def copy_out(self, buf: Buffer, np_dtype: np.dtype, count: int) -> np.ndarray:
        out = np.empty(count, dtype=np_dtype)
        if out.nbytes:  # blocking, and the queue is in order: the read waits for every kernel before it
            _cl().enqueue_copy(self.queue, out, cl_memory(buf), is_blocking=True, src_offset=buf.offset)
        return out

    # compilation
    def compile(self, source: str, names: Sequence[str], nargs: Sequence[int], support: str = ""
                ) -> list[OpenCLProgram]:
        """Build one program holding every named kernel (with lanes where the device runs them; the
        other build follows if the setting changes); binaries are cached on disk by source, build,
        device and driver. `nargs` is unused: OpenCL kernels know their own parameters."""
        if support:
            raise CompileError("the OpenCL device cannot link a support library", support)
        unit = _Unit(source, self)
        unit.program(self.lanes > 1)
        return [OpenCLProgram(name, unit, self) for name in names]

    def sequence(self, launches: Sequence[tuple[OpenCLProgram, Sequence[tuple[int, int]]]], nslots: int
                 ) -> OpenCLSequence:
        """Kernels that `run(table)` enqueues in order, none waited for; each argument is a (slot, byte offset)."""
        return OpenCLSequence(self, launches, nslots)

    def build_options(self, lanes: bool) -> list[str]:
        """The compiler options of a build (part of its binary's cache key)."""
        return ([f"-D {LANES_MACRO}"] if lanes else []) + self.exact_division

    def build(self, source: str, lanes: bool = False) -> Any:
        """A program built from `source` (with `-D FG_LANES` when `lanes`), through the binary cache."""
        cl = _cl()
        options = self.build_options(lanes)
        key = cache.cache_key(source, self.identity, *options)
        program = cache.find(key, "clbin", lambda path: self._load_binary(path, options, _KERNEL.findall(source)))
        if program is not None:
            return program
        program = self._build_source(source, options)
        binary = program.get_info(cl.program_info.BINARIES)[0]
        if binary:  # some drivers do not export binaries; they are then rebuilt each process
            cache.store(key, "clbin", lambda out: out.write_bytes(binary))
        return program

    def _load_binary(self, path: Path, options: list[str], names: list[str]) -> Any:
        """A program from a cached binary, which must define the kernels `names`; raises cache.Unusable
        for one this driver rejects (corrupt, from another driver) or a foreign one (other kernels)."""
        cl = _cl()
        try:
            program = cl.Program(self.context, [self.cl_device], [cache.read(path)]).build(options)
            defined = set(program.get_info(cl.program_info.KERNEL_NAMES).split(";"))
        except cl.Error as e:
            raise cache.Unusable(f"{path.name}: {e}") from None
        if not defined.issuperset(names):
            raise cache.Unusable(f"{path.name} lacks {', '.join(sorted(set(names) - defined))}")
        return program

    def _build_source(self, source: str, options: list[str]) -> Any:
        cl = _cl()
        try:
            return cl.Program(self.context, source).build(options)
        except cl.Error as e:  # pyopencl's message carries the driver's build log
            raise CompileError(f"OpenCL failed to build generated kernels for {self.name} "
                               f"({self.cl_device.name})", source, str(e)) from None

    def synchronize(self) -> None:
        """Wait for every queued command."""
        self.queue.finish()
