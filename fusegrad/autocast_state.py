"""Autocast's state, per thread as in torch: for which device types autocast is on and in which
low-precision dtype, whether casts of weights are cached, how deeply autocast regions nest, and a
switch that holds autocast off while an op's own body or a backward pass runs.

It sits with the foundation so that the ops that apply the policy (`ops/autocast.py`) and the
autograd engine, which runs derivative rules with autocast off, can both read it.
"""
from __future__ import annotations

import threading
from typing import Any

from . import dtypes
from .dtypes import DType

DEVICE_TYPES = ("cpu", "cuda", "opencl")
# torch's defaults; OpenCL GPUs take CUDA's
DEFAULT_DTYPES = {"cpu": dtypes.bfloat16, "cuda": dtypes.float16, "opencl": dtypes.float16}


class _State(threading.local):
    def __init__(self) -> None:
        self.enabled = dict.fromkeys(DEVICE_TYPES, False)
        self.dtype = dict(DEFAULT_DTYPES)
        self.cache_enabled = True
        self.nesting = 0
        self.suspended = 0
        # casts of weights made in the outermost region: id(source) -> (weakref, node, capture, grad mode, cast)
        self.cache: dict[int, tuple[Any, ...]] = {}
        # the one flag an op reads when autocast is off: some device type enabled and nothing suspending it
        self.active = False


state = _State()


def _refresh() -> None:
    state.active = not state.suspended and any(state.enabled.values())


def device_type_of(device_type: Any) -> str:
    """The device type named by `device_type` ("cuda" or "cuda:1"); TypeError or RuntimeError as torch's."""
    if not isinstance(device_type, str):
        raise TypeError(f"device_type must be str, not {type(device_type).__name__}")
    kind = device_type.split(":")[0]
    if kind not in DEVICE_TYPES:
        raise RuntimeError(f"unknown device type for autocast: {device_type!r} (fusegrad autocasts on "
                           f"{', '.join(DEVICE_TYPES)})")
    return kind


def checked_bool(value: Any, what: str) -> bool:
    """`value`, refused with TypeError unless a bool (torch refuses 1 and "yes" too)."""
    if not isinstance(value, bool):
        raise TypeError(f"{what} must be a bool, got {type(value).__name__}")
    return value


def is_enabled(device_type: str) -> bool:
    return state.enabled[device_type_of(device_type)]


def set_enabled(device_type: str, enabled: bool) -> None:
    state.enabled[device_type_of(device_type)] = checked_bool(enabled, "enabled")
    _refresh()


def get_dtype(device_type: str) -> DType:
    return state.dtype[device_type_of(device_type)]


def set_dtype(device_type: str, dtype: DType) -> None:
    if not isinstance(dtype, DType):
        raise TypeError(f"dtype must be a fusegrad dtype, not {type(dtype).__name__}")
    state.dtype[device_type_of(device_type)] = dtype


def set_cache_enabled(enabled: bool) -> None:
    state.cache_enabled = checked_bool(enabled, "enabled")


def clear_cache() -> None:
    state.cache.clear()


def key() -> tuple[tuple[str, DType], ...]:
    """What of the state decides the casts ops make: the enabled device types and their dtypes."""
    return tuple((d, state.dtype[d]) for d in DEVICE_TYPES if state.enabled[d])


class suspended:  # noqa: N801  (a context manager used like a function)
    """Autocast off inside (an op's body, a backward pass), back as it was after."""

    __slots__ = ()

    def __enter__(self) -> None:
        state.suspended += 1
        state.active = False

    def __exit__(self, *exc: object) -> None:
        state.suspended -= 1
        _refresh()
