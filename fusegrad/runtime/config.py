"""The optional device configuration file (like Zyx's DEVICE_CONFIG).

`~/.config/fusegrad/config.json`, or the file named by FUSEGRAD_CONFIG:

    {
      "default_device": "cuda:0",
      "backends": {
        "cuda":   {"enabled": true, "devices": [0, 1]},
        "opencl": {"enabled": false}
      }
    }

Every key is optional. A disabled backend is absent from `fg.devices()` (its reason says so);
`devices` limits which of a backend's devices are visible, in that order ("cuda:0" is the first
listed). `default_device` applies unless FUSEGRAD_DEVICE or `fg.set_default_device()` says otherwise.
A missing file means defaults; a malformed one raises DeviceError naming the file and the problem,
the first time devices are looked up. `runtime/registry.py` applies the file.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import flags
from ..errors import DeviceError

KNOWN_BACKENDS = ("cpu", "cuda", "opencl")


@dataclass(frozen=True)
class BackendConfig:
    enabled: bool = True
    devices: tuple[int, ...] | None = None  # None: all, in the driver's order


@dataclass(frozen=True)
class Config:
    path: Path | None = None  # the file read, if any
    default_device: str | None = None
    backends: dict[str, BackendConfig] = field(default_factory=dict)

    def backend(self, kind: str) -> BackendConfig:
        return self.backends.get(kind, BackendConfig())


def config_path() -> Path:
    """FUSEGRAD_CONFIG, else ~/.config/fusegrad/config.json."""
    override = flags.CONFIG.raw()
    return Path(override).expanduser() if override else Path.home() / ".config" / "fusegrad" / "config.json"


def load_config(path: Path | None = None) -> Config:
    """Read and validate the configuration file; defaults when it does not exist."""
    path = config_path() if path is None else path
    try:
        text = path.read_text()
    except FileNotFoundError:
        return Config()
    except OSError as e:
        raise DeviceError(f"cannot read the fusegrad config file {path}: {e}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise DeviceError(f"fusegrad config file {path} is not valid JSON: {e}") from None
    return Config(path, *_parse(raw, path))


def _parse(raw: Any, path: Path) -> tuple[str | None, dict[str, BackendConfig]]:
    def bad(what: str) -> DeviceError:
        return DeviceError(f"fusegrad config file {path}: {what}")

    if not isinstance(raw, dict):
        raise bad("the top level must be a JSON object")
    unknown = set(raw) - {"default_device", "backends"}
    if unknown:
        raise bad(f"unknown keys {sorted(unknown)} (expected 'default_device', 'backends')")
    default = raw.get("default_device")
    if default is not None and not isinstance(default, str):
        raise bad("'default_device' must be a string such as \"cuda:0\"")
    backends: dict[str, BackendConfig] = {}
    for kind, entry in (raw.get("backends") or {}).items():
        if kind not in KNOWN_BACKENDS:
            raise bad(f"unknown backend {kind!r} (known: {', '.join(KNOWN_BACKENDS)})")
        if not isinstance(entry, dict) or set(entry) - {"enabled", "devices"}:
            raise bad(f"backend {kind!r} must be an object with 'enabled' and/or 'devices'")
        enabled = entry.get("enabled", True)
        devices = entry.get("devices")
        if not isinstance(enabled, bool):
            raise bad(f"backends.{kind}.enabled must be true or false")
        if devices is not None and (not isinstance(devices, list) or
                                    not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                            for d in devices)):
            raise bad(f"backends.{kind}.devices must be a list of device indices (non-negative integers)")
        if devices is not None and len(set(devices)) != len(devices):  # two names for one device, two contexts
            raise bad(f"backends.{kind}.devices lists a device twice: {devices}")
        if kind == "cpu" and devices not in (None, [0]):
            raise bad("backends.cpu.devices can only be [0] (the CPU is one device)")
        if kind == "cpu" and not enabled:
            raise bad("the cpu backend cannot be disabled (it holds host data)")
        backends[kind] = BackendConfig(enabled, tuple(devices) if devices is not None else None)
    return default, backends
