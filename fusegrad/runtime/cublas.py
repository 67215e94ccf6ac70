"""cuBLAS as a competitor of the generated CUDA kernels for plain matrix products.

The CUDA renderer marks a kernel that is one strided product with a `// fusegrad cublas <kernel>
<json>` line (codegen/cuda_blas.py). For such a kernel the device times the generated kernel and
the equivalent cuBLAS call on scratch buffers the first time the shape is seen, and launches the
faster from then on (the choice is remembered per shape in the process). cuBLAS is loaded with
ctypes from NVIDIA's wheel (through cuda-pathfinder) or the system; without it only the generated
kernels run. Calls go on the device's stream, so they order with the kernels and are captured
into fg.jit's CUDA graphs like them. float32/float64 products call cublas{S,D}gemmStridedBatched;
float16/bfloat16 products call cublasGemmStridedBatchedEx with float32 accumulation (no TF32, no
half-precision accumulation), the generated kernels' arithmetic.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import json
import re
import warnings
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..errors import DeviceError
from .buffer import Buffer

if TYPE_CHECKING:
    from .cuda import CUDADevice

_DESCRIPTOR = re.compile(r"^// fusegrad cublas (\w+) (\{.*\})$", re.MULTILINE)
WORKSPACE = 32 << 20  # bytes: cuBLAS's own workspace, given at creation so graph capture never allocates
MARGIN = 0.9  # cuBLAS is kept when it takes under this fraction of the generated kernel's time
_OP_N, _OP_T = 0, 1
# cudaDataType_t of the operands, cublasComputeType_t CUBLAS_COMPUTE_32F(_FAST_TF32), CUBLAS_GEMM_DEFAULT
_CUDA_TYPES = {"float16": 2, "bfloat16": 14, "float32": 0}
_COMPUTE_32F, _COMPUTE_32F_FAST_TF32, _GEMM_DEFAULT = 68, 77, -1


def descriptor_comment(name: str, descriptor: dict) -> str:
    """The line telling the runtime that cuBLAS can compute kernel `name`."""
    return f"// fusegrad cublas {name} {json.dumps(descriptor, separators=(',', ':'))}"


def parse_descriptors(source: str) -> dict[str, dict]:
    """Every kernel's cuBLAS descriptor in a translation unit."""
    return {m[1]: json.loads(m[2]) for m in _DESCRIPTOR.finditer(source)}


@functools.cache
def _library() -> ctypes.CDLL | str:
    """libcublas, or the reason it cannot be loaded."""
    paths = []
    try:
        from cuda.pathfinder import load_nvidia_dynamic_lib
        paths.append(load_nvidia_dynamic_lib("cublas").abs_path)
    except Exception:  # noqa: BLE001  (no pathfinder, or no wheel with the library: try the system)
        pass
    paths.append(ctypes.util.find_library("cublas"))
    for path in filter(None, paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        p, i, ll = ctypes.c_void_p, ctypes.c_int, ctypes.c_longlong
        for name, real in (("s", ctypes.c_float), ("d", ctypes.c_double)):
            fn = getattr(lib, f"cublas{name.upper()}gemmStridedBatched")
            fn.argtypes = [p, i, i, i, i, i, ctypes.POINTER(real), p, i, ll, p, i, ll, ctypes.POINTER(real),
                           p, i, ll, i]
        lib.cublasGemmStridedBatchedEx.argtypes = [p, i, i, i, i, i, p, p, i, i, ll, p, i, i, ll, p, p, i, i, ll,
                                                   i, i, i]
        lib.cublasCreate_v2.argtypes = [ctypes.POINTER(p)]
        lib.cublasSetStream_v2.argtypes = [p, p]
        lib.cublasSetWorkspace_v2.argtypes = [p, p, ctypes.c_size_t]
        return lib
    return "libcublas not found (pip install nvidia-cublas)"


def unavailable_reason() -> str | None:
    lib = _library()
    return lib if isinstance(lib, str) else None


class CublasProgram:
    """One strided-batched GEMM through cuBLAS, with a generated kernel's calling convention."""

    def __init__(self, name: str, device: "CUDADevice", descriptor: dict):
        self.name = f"{name}_cublas"
        self._device = device
        self._d = descriptor
        lib = _library()
        assert not isinstance(lib, str)
        dtype = descriptor["dtype"]
        self._itemsize = np.dtype(_host_dtype(dtype)).itemsize
        real = ctypes.c_double if dtype == "float64" else ctypes.c_float  # halves scale by float32 alpha/beta
        self._one, self._zero = real(1.0), real(0.0)
        if descriptor.get("tf32"):  # float32 operands on the TF32 tensor cores
            self._gemm = functools.partial(_gemm_ex, lib.cublasGemmStridedBatchedEx, _CUDA_TYPES[dtype],
                                           _COMPUTE_32F_FAST_TF32)
        elif dtype in _CUDA_TYPES and dtype != "float32":
            self._gemm = functools.partial(_gemm_ex, lib.cublasGemmStridedBatchedEx, _CUDA_TYPES[dtype], _COMPUTE_32F)
        else:
            self._gemm = lib.cublasDgemmStridedBatched if dtype == "float64" else lib.cublasSgemmStridedBatched
        self._handle = device.cublas_handle()

    def launch(self, buffers: Sequence[Buffer]) -> None:
        self.launch_pointers([b.handle.ptr for b in buffers])

    def launch_pointers(self, pointers: Sequence[int]) -> None:
        """Row-major C = A @ B as column-major C^T = B^T A^T (cuBLAS is column-major)."""
        d, size = self._d, self._itemsize
        a_param, a_off, a_stride = d["a"]
        b_param, b_off, b_stride = d["b"]
        c_off, c_stride = d["c"]
        self._device.make_current()
        with self._device.enqueue_lock:  # one cuBLAS handle, shared by threads
            status = self._gemm(self._handle, _OP_T if d["tb"] else _OP_N, _OP_T if d["ta"] else _OP_N,
                                d["n"], d["m"], d["k"], ctypes.byref(self._one),
                                pointers[b_param] + size * b_off, d["ldb"], b_stride,
                                pointers[a_param] + size * a_off, d["lda"], a_stride, ctypes.byref(self._zero),
                                pointers[0] + size * c_off, d["n"], c_stride, d["batch"])
        if status != 0:
            raise DeviceError(f"cuBLAS gemm for {self.name} failed (status {status})")

    def __call__(self, buffers: Sequence[Buffer]) -> float:
        return self.call_pointers([b.handle.ptr for b in buffers])

    def call_pointers(self, pointers: Sequence[int]) -> float:
        return self._device.timed(lambda: self.launch_pointers(pointers))


def _gemm_ex(fn: Any, cuda_type: int, compute: int, handle: Any, op_b: int, op_a: int, n: int, m: int, k: int,
             alpha: Any, b: int, ldb: int, b_stride: int, a: int, lda: int, a_stride: int, beta: Any, c: int,
             ldc: int, c_stride: int, batch: int) -> int:
    """cublasGemmStridedBatchedEx in the argument order of cublas{S,D}gemmStridedBatched: every
    matrix of one type, float32 scalars, the given compute type."""
    return fn(handle, op_b, op_a, n, m, k, alpha, b, cuda_type, ldb, b_stride, a, cuda_type, lda, a_stride, beta,
              c, cuda_type, ldc, c_stride, batch, compute, _GEMM_DEFAULT)


def _host_dtype(name: str) -> np.dtype:
    """The numpy type holding one element on the host (bfloat16 is its 16 bits)."""
    return np.dtype(np.uint16 if name == "bfloat16" else name)


def _host_values(values: np.ndarray, name: str) -> np.ndarray:
    """float32 `values` (exact in the type) as host storage of type `name`."""
    if name == "bfloat16":  # the top half of a float32 is its bfloat16 when the value is exact
        return (values.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    return values.astype(name)


def _as_float(stored: np.ndarray, name: str) -> np.ndarray:
    return (stored.astype(np.uint32) << 16).view(np.float32) if name == "bfloat16" else stored.astype(np.float64)


def create_handle(device: "CUDADevice") -> tuple[Any, Buffer]:
    """(a cuBLAS handle on the device's stream, its workspace: ours, counted like every allocation)."""
    lib = _library()
    assert not isinstance(lib, str)
    device.make_current()
    handle = ctypes.c_void_p()
    for status, what in ((lib.cublasCreate_v2(ctypes.byref(handle)), "cublasCreate"),
                         (lib.cublasSetStream_v2(handle, int(device.stream)), "cublasSetStream")):
        if status != 0:
            raise DeviceError(f"{what} failed (status {status})")
    workspace = device.alloc(WORKSPACE)
    if lib.cublasSetWorkspace_v2(handle, workspace.handle.ptr, WORKSPACE) != 0:
        raise DeviceError("cublasSetWorkspace failed")
    return handle, workspace


def race(device: "CUDADevice", generated: Any, descriptor: dict, repeats: int = 5) -> tuple[Any, dict[str, float]]:
    """(the generated kernel or its cuBLAS twin, whichever is faster on scratch buffers of its sizes,
    the median seconds of each). cuBLAS wins only when it also computed the same product there (a
    wrong call never wins)."""
    vendor = CublasProgram(generated.name, device, descriptor)
    buffers = [device.alloc(n) for n in descriptor["bytes"]]
    vendor_out = device.alloc(descriptor["bytes"][0])
    name = descriptor["dtype"]
    size = _host_dtype(name).itemsize
    for i, b in enumerate(buffers[1:]):  # small integers repeating with a prime period: no transpose
        block = ((np.arange(97) * (i + 3)) % 7 - 3).astype(np.float32)  # preserves them, and sums stay exact
        device.copy_in(b, _host_values(np.resize(block, b.nbytes // size), name))
    times: dict[str, list[float]] = {"generated": [], "cublas": []}
    for _ in range(repeats):
        times["generated"].append(generated(buffers))
        times["cublas"].append(vendor([vendor_out, *buffers[1:]]))
    medians = {who: sorted(seconds)[repeats // 2] for who, seconds in times.items()}
    count = descriptor["bytes"][0] // size
    want, got = (_as_float(device.copy_out(b, _host_dtype(name), count), name) for b in (buffers[0], vendor_out))
    # exact sums in float32 on both sides; a half-precision output rounds them (a few ulps of margin)
    rtol = {"float16": 2.0 ** -9, "bfloat16": 2.0 ** -6}.get(name, 1e-4)
    if not np.allclose(got, want, rtol=rtol, atol=1e-4):
        warnings.warn(f"cuBLAS disagrees with the generated kernel {generated.name} (descriptor {descriptor}); "
                      "keeping the generated kernel", RuntimeWarning, stacklevel=2)
        return generated, medians
    return (vendor if medians["cublas"] < MARGIN * medians["generated"] else generated), medians
