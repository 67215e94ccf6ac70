"""Device registry: parse device strings and hand out one device object per name."""
from __future__ import annotations

from typing import Any

from .. import flags
from ..errors import DeviceError
from .cpu import CPUDevice

_FACTORIES: dict[str, Any] = {"cpu": CPUDevice}
_DEVICES: dict[str, Any] = {}
_default: list[str] = []


def canonical(device: Any) -> str:
    """'cpu', 'cpu:0' -> 'cpu'. Accepts strings and torch-style device objects."""
    name = str(device if device is not None else default_device()).lower().strip()
    kind, _, index = name.partition(":")
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


def available() -> list[str]:
    return sorted(_FACTORIES)
