"""Device registry: parse device strings, apply the configuration file, list the usable devices and
hand out one device object per name.

Names are logical: with `backends.<kind>.devices` in the config file, "cuda:0" is the first GPU
listed there. The backends number physical devices; the registry maps one to the other when it
creates a device, so graph nodes, buffers and messages only ever see the logical name.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any, Callable

from .. import flags
from ..errors import DeviceError
from . import cuda, inventory, opencl
from .config import Config, config_path, load_config
from .cpu import CPUDevice

_FACTORIES: dict[str, Any] = {"cpu": CPUDevice}
# backends whose driver may be missing: probed when first named (not at import), absent with a reason
_OPTIONAL: dict[str, tuple[Any, Callable[[], str | None]]] = {
    "cuda": (cuda.CUDADevice, cuda.unavailable_reason),
    "opencl": (opencl.OpenCLDevice, opencl.unavailable_reason)}
_INVENTORY: dict[str, Callable[[], tuple[inventory.PhysicalDevice, ...]]] = {
    "cpu": inventory.cpu, "cuda": inventory.cuda, "opencl": inventory.opencl}
_MISSING: dict[str, str] = {}
_PHYSICAL: dict[str, tuple[inventory.PhysicalDevice, ...]] = {}  # kind -> every device its driver lists
_VISIBLE: dict[str, tuple[int, ...]] = {}  # kind -> physical ids, in the order of the logical names
_DEVICES: dict[str, Any] = {}
_making = threading.RLock()  # threads naming a device first at once get one object (one allocator, one context)
_CONFIG: list[Config] = []  # read once: device objects already made must keep meaning the same hardware
_default: list[str] = []
_NAME = re.compile(r"([a-z]+)(?::([0-9]+))?")


@dataclass(frozen=True)
class DeviceInfo:
    """One usable device, as `fg.devices()` lists it."""

    name: str  # what `device=` takes: "cpu", "cuda:0", "opencl:1"
    kind: str  # the backend: "cpu", "cuda" or "opencl"
    description: str  # CPU model and threads, GPU name, or OpenCL device (platform)
    memory: int  # total bytes: physical RAM for the CPU, device memory otherwise
    physical_id: int  # the driver's index; differs from the name's when the config file reorders devices


def config() -> Config:
    """The configuration file in effect; a malformed file raises DeviceError (naming it) at every lookup."""
    if not _CONFIG:
        _CONFIG.append(load_config())
    return _CONFIG[0]


def canonical(device: Any) -> str:
    """'cpu', 'cpu:0' -> 'cpu'; 'cuda' -> 'cuda:0'; None -> the default device. Accepts device objects
    (fg.device, torch.device: their str is the name) and, as torch does, an int n for 'cuda:n'."""
    if device is not None:
        return _canonical(device)
    name, source = _default_choice()
    try:
        return _canonical(name)
    except DeviceError as e:
        raise DeviceError(f"{e} (the default device, set by {source})") from None


def _canonical(device: Any) -> str:
    if isinstance(device, int) and not isinstance(device, bool) and device >= 0:
        device = f"cuda:{device}"
    device = str(device)  # a device object: messages then quote its name
    match = _NAME.fullmatch(device.lower().strip())
    if match is None:
        raise DeviceError(f"invalid device {device!r}: expected a kind and an optional index, like 'cpu' or 'cuda:0'")
    kind, index = match[1], int(match[2] or 0)
    config()
    if kind in _OPTIONAL:
        _probe(kind)
    if kind in _MISSING:
        raise DeviceError(f"device {device!r} is not available: {_MISSING[kind]}")
    if kind not in _FACTORIES:
        raise DeviceError(f"unknown device {device!r}; available: {', '.join(sorted(_FACTORIES))}")
    if kind == "cpu":
        if index:
            raise DeviceError(f"invalid device {device!r}: the CPU is one device, 'cpu' (or 'cpu:0')")
        return "cpu"
    visible = _VISIBLE[kind]
    if index >= len(visible) or visible[index] >= len(_PHYSICAL[kind]):
        raise DeviceError(f"device {device!r} does not exist: {_visible_summary(kind)}")
    return f"{kind}:{index}"


def _visible_summary(kind: str) -> str:
    physical, visible = _PHYSICAL[kind], _VISIBLE[kind]
    text = f"this machine has {len(physical)} {kind} device(s)"
    if config().backend(kind).devices is not None:
        text += f"; backends.{kind}.devices in {config().path} lists physical ids {list(visible)}"
    usable = [f"{kind}:{i} ({physical[p].description})" for i, p in enumerate(visible) if p < len(physical)]
    return f"{text}; usable: {', '.join(usable) or 'none'}"


def get(device: Any) -> Any:
    """The device object for a name: created on first use, then shared."""
    made = _DEVICES.get(device) if type(device) is str else None
    if made is not None and _CONFIG:  # a canonical name in use (every node's device), config read: no parsing
        return made
    with _making:
        name = canonical(device)
        if name not in _DEVICES:
            _DEVICES[name] = _create(name)
        return _DEVICES[name]


def _create(name: str) -> Any:
    kind, _, index = name.partition(":")
    if not index:  # the cpu
        return _FACTORIES[kind](name)
    physical = f"{kind}:{_VISIBLE[kind][int(index)]}"
    device = _FACTORIES[kind](physical)  # the backends index physical devices
    if physical != name:  # everything above the registry knows the device by its configured name
        device.name = device.allocator.device = name
    return device


def default_device() -> str:
    """The default device's name as given (validated by `canonical(None)`)."""
    return _default_choice()[0]


def _default_choice() -> tuple[str, str]:
    """(device, where it came from): set_default_device, else FUSEGRAD_DEVICE, else the config file, else cpu."""
    if _default:
        return _default[-1], "fg.set_default_device"
    if flags.DEVICE.raw():
        return flags.DEVICE.raw(), flags.DEVICE.name
    if config().default_device:
        return config().default_device, f"default_device in {config().path}"
    return "cpu", "the built-in default"


def set_default_device(device: Any) -> None:
    """Device of new tensors from now on; None goes back to FUSEGRAD_DEVICE / the config file / cpu."""
    name = canonical(device) if device is not None else None
    _default.clear()
    if name is not None:
        _default.append(name)


def _probe(kind: str) -> None:
    """Decide once whether an optional backend is usable here, and which of its devices are visible."""
    if kind in _FACTORIES or kind in _MISSING:
        return
    settings = config().backend(kind)
    if not settings.enabled:  # decided before touching the driver, so a disabled backend is never initialized
        _MISSING[kind] = f"disabled in {config().path}"
        return
    factory, unavailable_reason = _OPTIONAL[kind]
    reason = unavailable_reason()  # cached by the backend: imports and initializes its driver once
    if reason is None:
        try:
            _PHYSICAL[kind] = _INVENTORY[kind]()
        except Exception as e:  # noqa: BLE001  (a driver failing to list its devices leaves the backend unusable)
            reason = f"listing its devices failed ({e})"
    if reason is None and settings.devices == ():
        reason = f"backends.{kind}.devices in {config().path} is empty"
    if reason is not None:
        _MISSING[kind] = reason
        return
    _VISIBLE[kind] = settings.devices if settings.devices is not None else tuple(range(len(_PHYSICAL[kind])))
    _FACTORIES[kind] = factory


def known() -> tuple[str, ...]:
    """Every device kind fusegrad has a backend for, usable here or not (probes nothing)."""
    return ("cpu", *_OPTIONAL)


def available() -> list[str]:
    """Device kinds usable on this machine (probes the optional backends once)."""
    config()
    for kind in _OPTIONAL:
        _probe(kind)
    return sorted(_FACTORIES)


def unavailable() -> dict[str, str]:
    """Backends fusegrad knows but cannot use here, with the reason."""
    available()
    return dict(_MISSING)


def devices(verbose: bool = False) -> list[DeviceInfo]:
    """Every usable device, cpu first; `verbose` also prints them, the absent backends and the default."""
    available()
    if "cpu" not in _PHYSICAL:
        _PHYSICAL["cpu"], _VISIBLE["cpu"] = _INVENTORY["cpu"](), (0,)
    found = []
    for kind in ("cpu", *_OPTIONAL):
        if kind not in _FACTORIES:
            continue
        physical = _PHYSICAL[kind]
        for i, p in enumerate(_VISIBLE[kind]):
            if p < len(physical):  # a configured id this machine lacks is left out (naming it raises)
                found.append(DeviceInfo("cpu" if kind == "cpu" else f"{kind}:{i}", kind, *physical[p], p))
    if verbose:
        print(_table(found))
    return found


def _table(found: list[DeviceInfo]) -> str:
    rows = []
    for d in found:
        remapped = d.kind != "cpu" and d.name != f"{d.kind}:{d.physical_id}"
        rows.append((d.name, f"{d.memory / 2**30:.1f} GiB" if d.memory else "?",
                     d.description + (f" [physical id {d.physical_id}]" if remapped else "")))
    rows += [(kind, "absent", reason) for kind, reason in _MISSING.items()]
    width = max(len(row[0]) for row in [("device",), *rows])
    lines = [f"{'device':<{width}}  {'memory':>9}  description"]
    lines += [f"{name:<{width}}  {memory:>9}  {text}" for name, memory, text in rows]
    name, source = _default_choice()
    path = config().path
    lines.append(f"default device: {name} (set by {source})")
    lines.append(f"config file: {path if path is not None else f'{config_path()} (not present)'}")
    return "\n".join(lines)
