"""The FFI plumbing of the CUDA device: cuda-python's driver and NVRTC modules, imported on first
use, the status check every driver call goes through, the lifetime of loaded modules, and a
loaded kernel's launch."""
from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import DeviceError
from .buffer import Buffer


@functools.cache
def bindings() -> tuple[Any, Any]:
    """(cuda.bindings.driver, cuda.bindings.nvrtc); ImportError without cuda-python."""
    from cuda.bindings import driver, nvrtc
    return driver, nvrtc


def check(result: tuple, what: str) -> Any:
    """The value(s) of a driver call, which returns (status, *values); DeviceError on failure."""
    driver = bindings()[0]
    status, *values = result
    if status != driver.CUresult.CUDA_SUCCESS:
        name = driver.cuGetErrorName(status)[1]
        raise DeviceError(f"CUDA {what} failed: {name.decode() if isinstance(name, bytes) else status}")
    return values[0] if len(values) == 1 else values


class LoadedModule:
    """A loaded unit of kernels, unloaded when the last program compiled in it dies (plans, the
    program cache and jit sequences hold programs). The stream is drained first: a kernel of the
    unit may still be queued."""

    __slots__ = ("_module", "_synchronize")

    def __init__(self, module: Any, synchronize: Callable[[], None]):
        self._module = module
        self._synchronize = synchronize

    def __del__(self) -> None:
        try:
            self._synchronize()
            bindings()[0].cuModuleUnload(self._module)
        except Exception:  # noqa: BLE001  (interpreter shutdown: the driver may be gone already)
            pass


class CUDAProgram:
    """A loaded kernel: call with device buffers in parameter order; returns its seconds on the GPU."""

    __slots__ = ("name", "_fn", "_device", "_grid", "_block", "_args", "_params", "_module", "_smem")

    def __init__(self, name: str, fn: Any, device: Any, grid: int, block: int, nargs: int,
                 module: LoadedModule | None = None, smem: int = 0):
        self.name = name
        self._fn, self._device, self._grid, self._block, self._smem = fn, device, grid, block, smem
        self._module = module  # keeps the code loaded while the program lives
        # the driver reads the arguments through an array of pointers to them, at launch time
        self._args = np.zeros(max(nargs, 1), dtype=np.uint64)
        self._params = self._args.ctypes.data + 8 * np.arange(max(nargs, 1), dtype=np.uint64)
        if smem > 48 * 1024:  # dynamic shared memory past the default limit must be asked for
            check(bindings()[0].cuFuncSetAttribute(
                fn, bindings()[0].CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem),
                f"shared memory size of {name}")

    def launch(self, buffers: Sequence[Buffer]) -> None:
        """Enqueue the kernel on the device's stream without waiting for it."""
        self.launch_pointers([b.handle.ptr for b in buffers])

    def launch_pointers(self, pointers: Sequence[int]) -> None:
        """Enqueue the kernel on raw device addresses (the driver copies the arguments at the call)."""
        self._device.make_current()
        with self._device.enqueue_lock:  # the argument array is the program's, shared by threads
            self._args[:len(pointers)] = pointers
            self._launch()

    def _launch(self) -> None:
        """cuLaunchKernel with the argument table as it stands (the enqueue lock held)."""
        check(bindings()[0].cuLaunchKernel(self._fn, self._grid, 1, 1, self._block, 1, 1, self._smem,
                                           self._device.stream, self._params.ctypes.data, 0), f"launch of {self.name}")

    def __call__(self, buffers: Sequence[Buffer]) -> float:
        return self.call_pointers([b.handle.ptr for b in buffers])

    def call_pointers(self, pointers: Sequence[int]) -> float:
        """Run on raw device addresses and wait; returns the kernel's seconds (from two events)."""
        return self._device.timed(lambda: self.launch_pointers(pointers))
