"""The FFI plumbing of the CUDA device: cuda-python's driver and NVRTC modules, imported on first
use, and the status check every driver call goes through."""
from __future__ import annotations

import functools
from typing import Any

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
