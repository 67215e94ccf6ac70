"""`fg.cuda`: torch.cuda's queries, answered from fusegrad's device registry.

Without a usable CUDA backend `is_available()` is False and `device_count()` 0; the calls that
need a GPU raise the `DeviceError` that naming "cuda" raises anywhere in fusegrad (with the reason).
"""
from __future__ import annotations

import warnings
from types import SimpleNamespace
from typing import Any

from . import dtypes, random
from .amp import GradScaler as _GradScaler
from .amp import autocast as _autocast
from .device import device as _device
from .runtime import device_errors, registry


def is_available() -> bool:
    """Whether fusegrad can run kernels on an NVIDIA GPU here."""
    return "cuda" in registry.available()


def device_count() -> int:
    """How many CUDA devices fusegrad can use (after the config file's selection)."""
    return sum(1 for d in registry.devices() if d.kind == "cuda")


def _name(device: Any) -> str:
    """The canonical name of a CUDA device given as None (device 0), an index, a name or an fg.device."""
    if device is None:
        device = 0
    if isinstance(device, int) and not isinstance(device, bool):
        device = f"cuda:{device}"
    name = registry.canonical(device)
    if not name.startswith("cuda"):
        raise ValueError(f"expected a CUDA device, got {device!r}")
    return name


def current_device() -> int:
    """The index of the current CUDA device (fusegrad has no per-thread current device: always 0)."""
    return _device(_name(None)).index or 0


def get_device_name(device: Any = None) -> str:
    """The GPU's name as the driver reports it."""
    name = _name(device)
    return next(d.description for d in registry.devices() if d.name == name)


def synchronize(device: Any = None) -> None:
    """Wait until every kernel queued on the device has finished; raise what a kernel's data check found."""
    name = _name(device)
    registry.get(name).synchronize()
    device_errors.raise_pending(name)


def manual_seed(seed: int) -> None:
    """Seed the random stream. fusegrad has one default generator for every device (its Philox
    draws are the same numbers on each), so this seeds it where CUDA is usable; a no-op elsewhere, as in torch."""
    if is_available():
        random.manual_seed(seed)


def manual_seed_all(seed: int) -> None:
    """Like `manual_seed` (one generator serves every GPU)."""
    manual_seed(seed)


def memory_allocated(device: Any = None) -> int:
    """Bytes the device's allocator holds now."""
    return registry.get(_name(device)).allocator.stats.current_bytes


def max_memory_allocated(device: Any = None) -> int:
    """The most bytes the device's allocator has held (since the last reset)."""
    return registry.get(_name(device)).allocator.stats.peak_bytes


def reset_peak_memory_stats(device: Any = None) -> None:
    """Start the peak count again from the bytes held now."""
    registry.get(_name(device)).allocator.reset_peak()


class _CudaAutocast(_autocast):
    """`fg.cuda.amp.autocast(...)`: `fg.amp.autocast("cuda", ...)`, deprecated as torch's is."""

    def __init__(self, enabled: bool = True, dtype: Any = dtypes.float16, cache_enabled: bool = True):
        warnings.warn("fg.cuda.amp.autocast(args...) is deprecated (as in torch): use fg.amp.autocast('cuda', args...)",
                      FutureWarning, stacklevel=2)
        super().__init__("cuda", dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)


class _CudaGradScaler(_GradScaler):
    """`fg.cuda.amp.GradScaler(...)`: `fg.amp.GradScaler("cuda", ...)`, deprecated as torch's is."""

    def __init__(self, init_scale: float = 2.0 ** 16, growth_factor: float = 2.0, backoff_factor: float = 0.5,
                 growth_interval: int = 2000, enabled: bool = True):
        warnings.warn("fg.cuda.amp.GradScaler(args...) is deprecated (as in torch): use fg.amp.GradScaler('cuda', "
                      "args...)", FutureWarning, stacklevel=2)
        super().__init__("cuda", init_scale, growth_factor, backoff_factor, growth_interval, enabled)


amp = SimpleNamespace(autocast=_CudaAutocast, GradScaler=_CudaGradScaler)
