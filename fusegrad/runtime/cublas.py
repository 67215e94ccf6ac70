"""cuBLAS as a competitor of the generated CUDA kernels for plain matrix products.

The CUDA renderer marks a kernel that is one strided product with a `// fusegrad cublas <kernel>
<json>` line (codegen/cuda_blas.py). For such a kernel the device times the generated kernel and
the equivalent cuBLAS call on scratch buffers the first time the shape is seen, and launches the
faster from then on (the choice is remembered per shape in the process). cuBLAS is loaded with
ctypes from NVIDIA's wheel (through cuda-pathfinder) or the system; without it only the generated
kernels run. Calls go on the device's stream, so they order with the kernels and are captured
into fg.jit's CUDA graphs like them.
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
        double = descriptor["dtype"] == "float64"
        self._real = ctypes.c_double if double else ctypes.c_float
        self._itemsize = 8 if double else 4
        self._gemm = lib.cublasDgemmStridedBatched if double else lib.cublasSgemmStridedBatched
        self._one, self._zero = self._real(1.0), self._real(0.0)
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


def race(device: "CUDADevice", generated: Any, descriptor: dict, repeats: int = 5) -> Any:
    """The generated kernel or its cuBLAS twin, whichever is faster on scratch buffers of its sizes;
    cuBLAS only when it also computed the same product there (a wrong call never wins)."""
    vendor = CublasProgram(generated.name, device, descriptor)
    buffers = [device.alloc(n) for n in descriptor["bytes"]]
    vendor_out = device.alloc(descriptor["bytes"][0])
    dtype = np.dtype(descriptor["dtype"])
    for i, b in enumerate(buffers[1:]):  # small integers repeating with a prime period: no transpose
        block = ((np.arange(97) * (i + 3)) % 7 - 3).astype(dtype)  # preserves them, and sums stay exact
        device.copy_in(b, np.resize(block, b.nbytes // dtype.itemsize))
    times: dict[int, list[float]] = {id(generated): [], id(vendor): []}
    for _ in range(repeats):
        times[id(generated)].append(generated(buffers))
        times[id(vendor)].append(vendor([vendor_out, *buffers[1:]]))
    count = descriptor["bytes"][0] // dtype.itemsize
    want, got = device.copy_out(buffers[0], dtype, count), device.copy_out(vendor_out, dtype, count)
    if not np.allclose(got, want, rtol=1e-4, atol=1e-4):
        warnings.warn(f"cuBLAS disagrees with the generated kernel {generated.name} (descriptor {descriptor}); "
                      "keeping the generated kernel", RuntimeWarning, stacklevel=2)
        return generated
    best = {key: sorted(values)[len(values) // 2] for key, values in times.items()}
    return vendor if best[id(vendor)] < MARGIN * best[id(generated)] else generated
