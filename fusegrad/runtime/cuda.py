"""The CUDA device, through NVIDIA's cuda-python: NVRTC compiles CUDA C for the GPU's architecture,
the driver API loads it and launches it on one stream. "cuda:N" is the N-th GPU.

cuda-python is imported on first use, never at fusegrad's import: without the package, the driver
or NVRTC library, or a GPU, there is simply no "cuda" device, and `unavailable_reason()` says why.
"""
from __future__ import annotations

import functools
import json
import re
import threading
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from ..errors import CompileError, DeviceError
from . import cache, cublas, cuda_tma
from .buffer import Buffer, CountingAllocator
from .cuda_driver import bindings as _bindings
from .cuda_driver import CUDAProgram, LoadedModule
from .cuda_driver import check as _check
from .cuda_graph import CUDASequence

ALIGN = 256  # allocation granularity: sizes are rounded up so the free lists reuse more blocks
_LAUNCH = re.compile(r"^// fusegrad launch (\w+) (\d+) (\d+)(?: (\d+))?$", re.MULTILINE)
# the newest PTX ISA each CUDA driver version loads (driver version // 10 -> (major, minor))
_PTX_ISA = {1200: (8, 0), 1210: (8, 1), 1220: (8, 2), 1230: (8, 3), 1240: (8, 4), 1250: (8, 5), 1260: (8, 5),
            1270: (8, 6), 1280: (8, 7), 1290: (8, 8), 1300: (9, 0)}


def launch_comment(name: str, blocks: int, threads: int, smem: int = 0) -> str:
    """The line a renderer puts before a kernel to say how it is launched (a 1-D grid, and the bytes
    of dynamic shared memory a block takes where it declares any)."""
    return f"// fusegrad launch {name} {blocks} {threads}" + (f" {smem}" if smem else "")


def parse_launches(source: str) -> dict[str, tuple[int, int]]:
    """(blocks, threads per block) of every kernel in a translation unit, from its launch comments."""
    return {m[1]: (int(m[2]), int(m[3])) for m in _LAUNCH.finditer(source)}


def parse_shared_bytes(source: str) -> dict[str, int]:
    """The dynamic shared memory of the kernels whose launch comments give it."""
    return {m[1]: int(m[4]) for m in _LAUNCH.finditer(source) if m[4]}


def nvrtc_version() -> tuple[int, int]:
    """NVRTC's (major, minor); raises when the package or its library cannot be loaded."""
    _, major, minor = _bindings()[1].nvrtcVersion()
    return major, minor


def compile_cuda(source: str, arch: int | str, ptx: bool = False) -> bytes:
    """NVRTC: CUDA C -> CUBIN for sm_<arch> (or PTX for compute_<arch>; arch e.g. 80, 90 or "90a"). Needs no GPU."""
    nvrtc = _bindings()[1]
    ok = nvrtc.nvrtcResult.NVRTC_SUCCESS
    status, prog = nvrtc.nvrtcCreateProgram(source.encode(), b"fusegrad.cu", 0, [], [])
    if status != ok:
        raise CompileError(f"nvrtcCreateProgram failed: {status}", source)
    try:
        target = f"--gpu-architecture={'compute' if ptx else 'sm'}_{arch}".encode()
        status, = nvrtc.nvrtcCompileProgram(prog, 1, [target])
        if status != ok:
            size = nvrtc.nvrtcGetProgramLogSize(prog)[1]
            log = b" " * size
            nvrtc.nvrtcGetProgramLog(prog, log)
            raise CompileError(f"NVRTC failed to compile generated kernels for {target.decode()[2:]}", source,
                               log.decode(errors="replace").rstrip("\0 "))
        size_fn, get_fn = (nvrtc.nvrtcGetPTXSize, nvrtc.nvrtcGetPTX) if ptx else \
            (nvrtc.nvrtcGetCUBINSize, nvrtc.nvrtcGetCUBIN)
        image = b" " * size_fn(prog)[1]
        get_fn(prog, image)
        return image
    finally:
        nvrtc.nvrtcDestroyProgram(prog)


@functools.cache
def unavailable_reason() -> str | None:
    """None when a GPU can be used here, else a sentence saying why not."""
    try:
        driver, _ = _bindings()
    except ImportError as e:
        return f"cuda-python cannot be imported ({e}); pip install cuda-python"
    try:
        status, = driver.cuInit(0)
    except Exception as e:  # noqa: BLE001  (the bindings raise their own types when libcuda.so is missing)
        return f"no CUDA driver library ({e})"
    if status != driver.CUresult.CUDA_SUCCESS:
        return f"cuInit failed ({status.name}): no usable NVIDIA GPU or driver"
    try:
        nvrtc_version()
    except Exception as e:  # noqa: BLE001
        return f"NVRTC cannot be loaded ({e}); pip install nvidia-cuda-nvrtc"
    return None if _check(driver.cuDeviceGetCount(), "cuDeviceGetCount") else "the driver reports no GPU"


class DeviceMemory(NamedTuple):
    """A device allocation: its address and its (rounded) size."""

    ptr: int
    size: int


class CUDADevice:
    """One GPU: its primary context, one stream, a caching allocator and NVRTC-built programs."""

    kind = "cuda"
    host_memory = False  # whether buffers live in host memory (reading one back then needs no synchronization)
    # a replayed sequence is a CUDA graph with its pointers baked in: a new pointer costs a new graph
    sequence_keeps_pointers = True

    def __init__(self, name: str = "cuda:0"):
        reason = unavailable_reason()
        if reason is not None:
            raise DeviceError(f"{name} is not available: {reason}")
        driver = _bindings()[0]
        index = int(name.partition(":")[2] or 0)
        count = _check(driver.cuDeviceGetCount(), "cuDeviceGetCount")
        if index >= count:
            raise DeviceError(f"{name} does not exist: this machine has {count} CUDA GPU(s)")
        self.name = name
        self._dev = _check(driver.cuDeviceGet(index), "cuDeviceGet")
        self._ctx = _check(driver.cuDevicePrimaryCtxRetain(self._dev), "cuDevicePrimaryCtxRetain")
        self._local = threading.local()
        self.make_current()
        attr = driver.CUdevice_attribute
        capability = (attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                      attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)
        major, minor = (_check(driver.cuDeviceGetAttribute(a, self._dev), "cuDeviceGetAttribute") for a in capability)
        self.arch = major * 10 + minor  # e.g. 90 on Hopper
        # sm_90a: Hopper with its architecture-specific instructions (wgmma), which
        # cuda_wgmma.py's kernels use; their tensor-map programs exist only there
        self.target = "90a" if self.arch == 90 else str(self.arch)
        self.device_name = _check(driver.cuDeviceGetName(256, self._dev), "cuDeviceGetName").split(b"\0")[0].decode()
        self.memory = _check(driver.cuDeviceTotalMem(self._dev), "cuDeviceTotalMem")
        self.driver_version = _check(driver.cuDriverGetVersion(), "cuDriverGetVersion")
        self.stream = _check(driver.cuStreamCreate(0), "cuStreamCreate")
        self.events = tuple(_check(driver.cuEventCreate(0), "cuEventCreate") for _ in range(2))
        self._free: dict[int, list[int]] = {}  # size -> addresses of released blocks, reused before cuMemAlloc
        self._lock = threading.Lock()
        self._timing = threading.Lock()  # the two events are shared: compile threads time cuBLAS races
        # the stream is shared by threads: a launch (its argument array), a copy and a graph capture
        # (which would take in other threads' launches) each hold it alone while they enqueue
        self.enqueue_lock = threading.RLock()
        # PTX (JIT-compiled by the driver) instead of CUBIN: NVRTC older than the GPU, or a CUBIN the driver rejected
        self.use_ptx = self.arch not in _bindings()[1].nvrtcGetSupportedArchs()[1]
        self.allocator = CountingAllocator(name, self._raw_alloc, self._raw_free)
        self._cublas: tuple[Any, Buffer] | None = None  # (handle, workspace)
        self.gemm_choice = "race"  # products cuBLAS can compute: "race" (timed once per shape), "generated", "cublas"
        self._gemm_choices: dict[str, bool] = {}  # descriptor -> cuBLAS won
        self.gemm_races: dict[str, dict[str, float]] = {}  # descriptor -> each contestant's median seconds

    def timed(self, enqueue: Callable[[], None]) -> float:
        """Seconds the GPU spends on what `enqueue` puts on the stream (two events around it; waits)."""
        driver = _bindings()[0]
        self.make_current()
        start, end = self.events
        elapsed = getattr(driver, "cuEventElapsedTime", None) or driver.cuEventElapsedTime_v2  # renamed in CUDA 13
        with self._timing, self.enqueue_lock:  # nothing of another thread between the events
            _check(driver.cuEventRecord(start, self.stream), "cuEventRecord")
            enqueue()
            _check(driver.cuEventRecord(end, self.stream), "cuEventRecord")
            _check(driver.cuEventSynchronize(end), "a timed launch")
            return _check(elapsed(start, end), "cuEventElapsedTime") / 1e3

    def cublas_handle(self) -> Any:
        """This GPU's cuBLAS handle (created on first use, with its workspace)."""
        if self._cublas is None:
            self._cublas = cublas.create_handle(self)  # the workspace lives as long as the handle
        return self._cublas[0]

    def make_current(self) -> None:
        """Make this GPU's context current on the calling thread (compiles run on worker threads)."""
        if getattr(self._local, "ctx", None) is not self._ctx:
            _check(_bindings()[0].cuCtxSetCurrent(self._ctx), "cuCtxSetCurrent")
            self._local.ctx = self._ctx

    # memory
    def _raw_alloc(self, nbytes: int) -> DeviceMemory:
        if nbytes == 0:
            return DeviceMemory(0, 0)
        size = -(-nbytes // ALIGN) * ALIGN
        with self._lock:
            blocks = self._free.get(size)
            if blocks:
                return DeviceMemory(blocks.pop(), size)
        driver = _bindings()[0]
        self.make_current()
        status, ptr = driver.cuMemAlloc(size)
        if status == driver.CUresult.CUDA_ERROR_OUT_OF_MEMORY:  # give the cached blocks back and retry once
            self.empty_cache()
            status, ptr = driver.cuMemAlloc(size)
        _check((status, ptr), f"cuMemAlloc of {size} bytes on {self.name}")
        return DeviceMemory(int(ptr), size)

    def _raw_free(self, memory: DeviceMemory) -> None:
        if memory.size:  # kept for reuse: later work on the one stream runs after earlier readers
            with self._lock:
                self._free.setdefault(memory.size, []).append(memory.ptr)

    def empty_cache(self) -> None:
        """Return every cached (unused) block to the driver."""
        driver = _bindings()[0]
        self.make_current()
        self.synchronize()
        with self._lock:
            blocks = [ptr for ptrs in self._free.values() for ptr in ptrs]
            self._free.clear()
        for ptr in blocks:
            _check(driver.cuMemFree(ptr), "cuMemFree")

    def alloc(self, nbytes: int) -> Buffer:
        return self.allocator.alloc(nbytes)

    def sub_buffer(self, base: Buffer, offset: int, nbytes: int) -> Buffer:
        """Bytes [offset, offset + nbytes) of `base`: its address plus the offset. The range keeps
        `base` alive and frees nothing itself. Generated kernels need only element alignment (the
        tensor-core kernel checks its pointers before 16-byte copies), and so does cuBLAS."""
        return Buffer(self.name, nbytes, DeviceMemory(base.handle.ptr + offset, nbytes), base, offset)

    @staticmethod
    def pointer(buf: Buffer) -> int:
        """The buffer's device address (what kernels and captured sequences take)."""
        return buf.handle.ptr

    def copy_in(self, buf: Buffer, data: np.ndarray) -> None:
        raw = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
        if raw.size:
            self.make_current()  # pageable host memory is staged before the call returns
            with self.enqueue_lock:
                _check(_bindings()[0].cuMemcpyHtoDAsync(buf.handle.ptr, raw.ctypes.data, raw.size, self.stream),
                       "copy to the GPU")

    def copy_within(self, dst: Buffer, src: Buffer, nbytes: int) -> None:
        """Enqueue a copy of `nbytes` from `src` to `dst` on the stream (ordered with the kernels)."""
        if nbytes:
            self.make_current()
            with self.enqueue_lock:
                _check(_bindings()[0].cuMemcpyDtoDAsync(dst.handle.ptr, src.handle.ptr, nbytes, self.stream),
                       "copy on the GPU")

    def copy_out(self, buf: Buffer, np_dtype: np.dtype, count: int) -> np.ndarray:
        out = np.empty(count, dtype=np_dtype)
        if out.nbytes:
            self.make_current()
            with self.enqueue_lock:
                _check(_bindings()[0].cuMemcpyDtoHAsync(out.ctypes.data, buf.handle.ptr, out.nbytes, self.stream),
                       "copy from the GPU")
        self.synchronize()
        return out

    # compilation
    def _image(self, source: str, ptx: bool, cached: bool = True) -> tuple[bytes, bool]:
        """The unit compiled for this GPU, and whether it came from the disk cache (when built before by
        the same NVRTC and `cached`: with False it is compiled again and replaces the cached one)."""
        ext = "ptx" if ptx else "cubin"
        key = cache.cache_key(source, f"sm_{self.target}", ext, "nvrtc %d.%d" % nvrtc_version())
        image = cache.find(key, ext, cache.read) if cached else None
        if image is not None:
            return image, True
        image = compile_cuda(source, self.target, ptx)
        cache.store(key, ext, lambda out: out.write_bytes(image))
        return image, False

    def _load(self, source: str) -> Any:
        """A module of the unit: CUBIN first; PTX when the driver rejects that (NVRTC newer than the
        driver), with its ISA version lowered to the driver's when it rejects the PTX's version too.
        A cached image the driver rejects (corrupt, foreign) is compiled again once before that."""
        driver = _bindings()[0]
        rejected = (driver.CUresult.CUDA_ERROR_INVALID_IMAGE, driver.CUresult.CUDA_ERROR_NO_BINARY_FOR_GPU,
                    driver.CUresult.CUDA_ERROR_UNSUPPORTED_PTX_VERSION, driver.CUresult.CUDA_ERROR_INVALID_PTX)
        self.make_current()
        status = None
        for ptx in ((True,) if self.use_ptx else (False, True)):
            for cached in (True, False):
                image, from_cache = self._image(source, ptx, cached)
                status, module = driver.cuModuleLoadData(image)
                if status == driver.CUresult.CUDA_ERROR_UNSUPPORTED_PTX_VERSION and ptx:
                    status, module = driver.cuModuleLoadData(self._lower_ptx_version(image))
                if status == driver.CUresult.CUDA_SUCCESS:
                    self.use_ptx = ptx
                    return module
                if status not in rejected or not from_cache:
                    break
            if status not in rejected:
                break
        _check((status, None), f"loading kernels for sm_{self.target}")

    def _lower_ptx_version(self, ptx: bytes) -> bytes:
        isa = _PTX_ISA.get(self.driver_version // 10 * 10, (8, 0))
        return re.sub(rb"^\.version \d+\.\d+", b".version %d.%d" % isa, ptx, count=1, flags=re.MULTILINE)

    def compile(self, source: str, names: Sequence[str], nargs: Sequence[int], support: str = "") -> list[CUDAProgram]:
        """Compile one translation unit holding every named kernel (launch sizes from its comments)."""
        if support:
            raise CompileError("the CUDA device has no support library", support)
        launches, shared = parse_launches(source), parse_shared_bytes(source)
        vendor = cublas.parse_descriptors(source) if cublas.unavailable_reason() is None else {}
        tensor_maps = cuda_tma.parse(source)
        module = self._load(source)
        owner = LoadedModule(module, self.synchronize)

        def function(name: str) -> Any:
            return _check(_bindings()[0].cuModuleGetFunction(module, name.encode()), f"cuModuleGetFunction({name})")

        def program_of(name: str, n: int) -> CUDAProgram:
            # a kernel without a launch comment still runs right, as one thread looping over its grid
            return CUDAProgram(name, function(name), self, *launches.get(name, (1, 1)), n, owner, shared.get(name, 0))
        programs: list[Any] = []
        for name, n in zip(names, nargs):
            if name in tensor_maps:  # the Hopper kernel, or on other GPUs the kernel it falls back to
                program: Any = program_of(f"{name}_fallback", n)
                if self.target == "90a":
                    program = cuda_tma.TensorMapProgram(name, function(name), self, *launches[name], n, owner,
                                                        tensor_maps[name], program)
            else:
                program = program_of(name, n)
            if name in vendor and self.gemm_choice != "generated":
                program = self._gemm_program(program, vendor[name])
            programs.append(program)
        return programs

    def _gemm_program(self, generated: CUDAProgram, descriptor: dict) -> Any:
        """The generated product or cuBLAS's, as measured the first time this shape is seen."""
        key = json.dumps({k: v for k, v in descriptor.items() if k != "bytes"}, sort_keys=True)
        if self.gemm_choice == "cublas" or self._gemm_choices.get(key):
            return cublas.CublasProgram(generated.name, self, descriptor)
        if key in self._gemm_choices:
            return generated
        winner, self.gemm_races[key] = cublas.race(self, generated, descriptor)  # two compiling threads may both race
        self._gemm_choices[key] = winner is not generated
        return winner

    def sequence(self, launches: Sequence[tuple[CUDAProgram, Sequence[tuple[int, int]]]], nslots: int) -> Any:
        """fg.jit's replay: the launches as CUDA graphs, one per distinct pointer table."""
        return CUDASequence(self, launches, nslots)

    def synchronize(self) -> None:
        """Wait for every kernel and copy queued on this GPU."""
        self.make_current()
        _check(_bindings()[0].cuStreamSynchronize(self.stream), "cuStreamSynchronize")
