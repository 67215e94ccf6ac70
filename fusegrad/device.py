"""`fg.device`: a device name as an object, like torch.device.

It subclasses `str` ("cuda:0", "cpu"), so it goes wherever fusegrad takes a device name and
compares equal to that name. Making one checks only the spelling (as torch does); whether the
device exists is decided when a tensor is put on it, which raises `DeviceError`.
"""
from __future__ import annotations

import re
from typing import Any

from .errors import DeviceError
from .runtime import registry

_NAME = re.compile(r"([a-z]+)(?::([0-9]+))?")


class device(str):  # noqa: N801  (torch's name)
    """A device type and an optional index: `fg.device("cuda", 0)`, `fg.device("cuda:0")`, `fg.device("cpu")`."""

    __slots__ = ()

    def __new__(cls, type: Any, index: int | None = None) -> "device":  # noqa: A002  (torch's argument name)
        if isinstance(type, device) and index is None:
            return type
        if not isinstance(type, str):
            raise DeviceError(f"fg.device expects a device string like 'cuda:0', got {type!r}")
        match = _NAME.fullmatch(type.strip())
        if match is None:
            raise DeviceError(f"invalid device string: {type!r} (expected a kind and an optional index, like 'cuda:0')")
        kind, text = match[1], match[2]
        if kind not in registry.known():
            raise DeviceError(f"expected one of {', '.join(registry.known())} device type at the start of the "
                              f"device string: {type!r}")
        if text is not None and index is not None:
            raise DeviceError(f"device {type!r} must not include an index because index={index} was passed")
        if text is not None:
            index = int(text)
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, int):
                raise TypeError(f"device index must be an int, got {index!r}")
            if index < 0:
                raise DeviceError(f"device index must not be negative, got {index}")
        return str.__new__(cls, kind if index is None else f"{kind}:{index}")

    @property
    def type(self) -> str:  # noqa: A003
        """The kind: "cpu", "cuda" or "opencl"."""
        return self.partition(":")[0]

    @property
    def index(self) -> int | None:
        """The device number, or None when the name has none (torch's "current device")."""
        _, sep, number = self.partition(":")
        return int(number) if sep else None

    def __repr__(self) -> str:
        if self.index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self.index})"

    def __str__(self) -> str:
        return str.__str__(self)

    def __reduce__(self) -> tuple:
        return (device, (str(self),))
