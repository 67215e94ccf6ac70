"""`fg.accelerator`: torch.accelerator's queries. fusegrad's accelerator is CUDA where it is usable;
OpenCL devices (PoCL runs it on the CPU) are used by name only, so a program that picks
`current_accelerator() or "cpu"` never lands on a CPU emulation."""
from __future__ import annotations

from typing import Any

from . import cuda
from .device import device as _device


def is_available() -> bool:
    """Whether a GPU can run fusegrad's kernels here."""
    return cuda.is_available()


def current_accelerator(check_available: bool = False) -> _device | None:
    """The accelerator's device (`fg.device("cuda")`), or None without one."""
    return _device("cuda") if cuda.is_available() else None


def device_count() -> int:
    """How many accelerator devices there are (0 without one)."""
    return cuda.device_count()


def synchronize(device: Any = None) -> None:
    """Wait for the accelerator's queued kernels."""
    cuda.synchronize(device)
