"""Device registry: parse device strings and hand out one device object per name."""
from __future__ import annotations

from typing import Any, Callable

from .. import flags
from ..errors import DeviceError
from . import cuda, opencl
from .cpu import CPUDevice

_FACTORIES: dict[str, Any] = {"cpu": CPUDevice}
# backends whose driver may be missing: probed when first named (not at import), absent with a reason
_OPTIONAL: dict[str, tuple[Any, Callable[[], str | None]]] = {
    "opencl": (opencl.OpenCLDevice, opencl.unavailable_reason),
    "cuda": (cuda.CUDADevice, cuda.unavailable_reason)}
_MISSING: dict[str, str] = {}
_DEVICES: dict[str, Any] = {}
_default: list[str] = []


def canonical(device: Any) -> str:
    """'cpu', 'cpu:0' -> 'cpu'. Accepts strings and torch-style device objects."""
    name = str(device if device is not None else default_device()).lower().strip()
    kind, _, index = name.partition(":")
    if kind in _OPTIONAL:
        _probe(kind)
    if kind in _MISSING:
        raise DeviceError(f"device {device!r} is not available: {_MISSING[kind]}")
    if kind not in _FACTORIES:
        raise DeviceError(f"unknown device {device!r}; available: {', '.join(sorted(_FACTORIES))}")
    if kind == "cpu":
        return "cpu"
    return f"{kind}:{int(index or 0)}"


def get(device: str) -> Any:
    name = canonical(device)
    if name not in _DEVICES:
        kind = name.partition(":")[0]
        _DEVICES[name] = _FACTORIES[kind](name)
    return _DEVICES[name]


def default_device() -> str:
    return _default[-1] if _default else flags.DEVICE.raw()


def set_default_device(device: str) -> None:
    name = canonical(device)
    _default.clear()
    _default.append(name)


def _probe(kind: str) -> None:
    factory, unavailable_reason = _OPTIONAL[kind]
    reason = unavailable_reason()  # cached by the backend: only the first probe does work
    if reason is None:
        _FACTORIES[kind] = factory
    else:
        _MISSING[kind] = reason


def available() -> list[str]:
    """Device kinds usable on this machine (probes the optional backends once)."""
    for kind in _OPTIONAL:
        _probe(kind)
    return sorted(_FACTORIES)


def unavailable() -> dict[str, str]:
    """Backends fusegrad knows but cannot use here, with the reason."""
    available()
    return dict(_MISSING)
