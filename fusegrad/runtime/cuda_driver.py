"""The FFI plumbing of the CUDA device: cuda-python's driver and NVRTC modules, imported on first
use, the status check every driver call goes through, and the lifetime of loaded modules."""
from __future__ import annotations

import functools
from typing import Any, Callable

from ..errors import DeviceError


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
