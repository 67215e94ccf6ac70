"""`fg.autocast` and the autocast state queries (torch.autocast, torch.is_autocast_enabled, ...).

A region sets, for its device type, whether autocast is on, its dtype and whether weight casts are
cached, and restores them at its end; leaving the outermost region drops the cached casts. What an
op then does is its policy's business (`fusegrad/ops/autocast.py`); the state is per thread
(`fusegrad/autocast_state.py`).
"""
from __future__ import annotations

import copy
import functools
import warnings
from typing import Any, Callable

from .. import autocast_state as _state
from .. import dtypes
from ..dtypes import DType
from ..errors import DTypeError
from ..runtime import registry

__all__ = ["autocast", "autocast_decrement_nesting", "autocast_increment_nesting", "clear_autocast_cache",
           "get_autocast_dtype", "is_autocast_available", "is_autocast_cache_enabled", "is_autocast_enabled",
           "set_autocast_cache_enabled", "set_autocast_dtype", "set_autocast_enabled"]

SUPPORTED_DTYPES = (dtypes.bfloat16, dtypes.float16)


def is_autocast_available(device_type: str) -> bool:
    """Whether autocast has a policy for the device type ("cpu", "cuda", "opencl")."""
    return isinstance(device_type, str) and device_type.split(":")[0] in _state.DEVICE_TYPES


def is_autocast_enabled(device_type: str | None = None) -> bool:
    """Whether autocast is on for the device type here; without one, for CUDA (torch's older form)."""
    return _state.is_enabled("cuda" if device_type is None else device_type)


def set_autocast_enabled(device_type: Any, enabled: bool | None = None) -> None:
    """`set_autocast_enabled("cpu", True)`; `set_autocast_enabled(True)` sets CUDA's (torch's older form)."""
    if enabled is None:
        device_type, enabled = "cuda", device_type
    _state.set_enabled(device_type, enabled)


def get_autocast_dtype(device_type: str) -> DType:
    """The dtype autocast runs low-precision ops in (bfloat16 on the CPU, float16 on GPUs unless set)."""
    return _state.get_dtype(device_type)


def set_autocast_dtype(device_type: str, dtype: DType) -> None:
    _state.set_dtype(device_type, dtype)


def is_autocast_cache_enabled() -> bool:
    return _state.state.cache_enabled


def set_autocast_cache_enabled(enabled: bool) -> None:
    _state.set_cache_enabled(enabled)


def clear_autocast_cache() -> None:
    """Drop the cached casts of weights (leaving the outermost region does it)."""
    _state.clear_cache()


def autocast_increment_nesting() -> int:
    _state.state.nesting += 1
    return _state.state.nesting


def autocast_decrement_nesting() -> int:
    _state.state.nesting -= 1
    return _state.state.nesting


def _as_dtype(dtype: Any) -> Any:
    """fusegrad's dtype for a torch dtype too (as fusegrad takes them elsewhere); other values stay, and
    are refused as unsupported (a string, as torch refuses it)."""
    if isinstance(dtype, DType) or isinstance(dtype, str):
        return dtype
    try:
        return dtypes.to_dtype(dtype)
    except DTypeError:
        return dtype


class autocast:  # noqa: N801  (torch's name)
    """Context manager and decorator: ops inside run in the dtype autocast's policy gives them.

    `with fg.autocast("cpu"):` runs products, convolutions and attention in bfloat16 (float16 on
    "cuda" and "opencl"), losses, reductions and norms in float32, and some ops in their widest
    input type; float64 tensors and tensors on other device types are left alone. Regions nest
    (an inner one overrides, `enabled=False` switches autocast off) and are per thread.

    A dtype autocast cannot run in (float32, an integer type) disables the region with a
    UserWarning, as torch's CPU autocast does; so does a GPU device type fusegrad cannot use here.
    `cache_enabled` (default: the current setting, True unless set) casts each float32 leaf that
    requires grad once per outermost region. Backward passes run with autocast off, their
    gradients in the dtypes of the forward's values. docs/amp.md has the tables and decisions.
    """

    def __init__(self, device_type: str, dtype: Any = None, enabled: bool = True, cache_enabled: bool | None = None):
        if not isinstance(device_type, str):
            raise ValueError(f"autocast expects device_type as a str (\"cpu\", \"cuda\"), got {type(device_type)}")
        self.device = _state.device_type_of(device_type)
        self.fast_dtype = _state.get_dtype(self.device) if dtype is None else _as_dtype(dtype)
        self._cache_enabled = _state.state.cache_enabled if cache_enabled is None else cache_enabled
        if enabled:
            reason = None
            if self.device != "cpu" and self.device not in registry.available():
                reason = f"{self.device} is not available here"
            elif self.fast_dtype not in SUPPORTED_DTYPES:
                reason = (f"{self.device} autocast supports only "
                          f"{', '.join(d.name for d in SUPPORTED_DTYPES)}, not {self.fast_dtype!r}")
            if reason is not None:
                warnings.warn(f"{reason}: autocast disabled", UserWarning, stacklevel=2)
                enabled = False
        self._enabled = enabled
        self._prev: list[tuple[bool, DType, bool]] = []

    def __enter__(self) -> "autocast":
        # checked before anything changes, so a refused region leaves no trace
        _state.checked_bool(self._enabled, "autocast's enabled")
        _state.checked_bool(self._cache_enabled, "autocast's cache_enabled")
        st = _state.state
        self._prev.append((st.enabled[self.device], st.dtype[self.device], st.cache_enabled))
        _state.set_enabled(self.device, self._enabled)
        if isinstance(self.fast_dtype, DType):
            _state.set_dtype(self.device, self.fast_dtype)
        st.cache_enabled = self._cache_enabled
        st.nesting += 1
        return self

    def __exit__(self, *exc: object) -> None:
        st = _state.state
        st.nesting -= 1
        if st.nesting == 0:  # the outermost region ends: its cached casts must not outlive it
            _state.clear_cache()
        enabled, dtype, st.cache_enabled = self._prev.pop()
        st.dtype[self.device] = dtype
        _state.set_enabled(self.device, enabled)

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(func):
            raise TypeError(f"autocast()(func) needs a callable, got {type(func).__name__}; "
                            f"as a context manager: `with fg.autocast(device_type):`")

        @functools.wraps(func)
        def decorate_autocast(*args: Any, **kwargs: Any) -> Any:
            # one region object per call: threads calling the function at once keep their own saved states
            region = copy.copy(self)
            region._prev = []
            with region:
                return func(*args, **kwargs)
        return decorate_autocast
