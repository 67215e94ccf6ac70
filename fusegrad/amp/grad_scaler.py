"""`fg.amp.GradScaler`: loss scaling for float16 training, with torch.amp.GradScaler's methods and
semantics.

`scale(loss)` multiplies by the scale; `unscale_(optimizer)` multiplies every gradient by the
inverse scale and checks them for inf and NaN; `step(optimizer)` unscales (unless done) and runs
`optimizer.step()` only if every gradient was finite; `update()` backs the scale off after a
skipped step and grows it after `growth_interval` finite ones.

The per-step work stays lazy: the check is one reduction over each device's gradients of one
dtype (over the packed gradients of a backward pass, read in place), and the unscaled gradients
are lazy products the optimizer's update kernels read. `step` reads the check's result once
(one device-to-host synchronization per step), since skipping the optimizer is a host decision;
`update` then works on host numbers, in float32 as torch's kernel does, and writes the scale into
its device scalar only when it changes. The scale lives in one device buffer across steps, so a
function captured by `fg.jit` that scales by it reads each new scale without being captured again.
`step` reads a value back, so it (and the optimizer step it decides) runs outside `fg.jit`.
"""
from __future__ import annotations

import math
import warnings
from collections import abc, defaultdict
from enum import Enum
from typing import Any

import numpy as np

from .. import dtypes
from ..autograd import no_grad
from ..creation import full
from ..flat import flat_of, store
from ..runtime import registry
from ..tensor import Tensor

__all__ = ["GradScaler", "OptState"]


class OptState(Enum):
    READY = 0
    UNSCALED = 1
    STEPPED = 2


def _fresh_state() -> dict[str, Any]:
    return {"stage": OptState.READY, "found_inf_per_device": {}, "found_inf": None}


class GradScaler:
    """Scales the loss so float16 gradients do not underflow; skips steps whose gradients overflowed.

    `device` is the device type of the gradients ("cuda" as torch's default, "cpu", "opencl"); a
    GPU device type unusable here disables the scaler with a warning, as torch does.
    """

    def __init__(self, device: str = "cuda", init_scale: float = 2.0 ** 16, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000, enabled: bool = True) -> None:
        self._device = device
        self._enabled = enabled
        kind = device.split(":")[0] if isinstance(device, str) else device
        if enabled and kind != "cpu" and kind not in registry.available():
            warnings.warn(f"GradScaler is enabled, but {kind} is not available here: disabling it", UserWarning,
                          stacklevel=2)
            self._enabled = False
        if self._enabled:
            if growth_factor <= 1.0:
                raise AssertionError(f"growth_factor must be above 1.0, got {growth_factor}")
            if backoff_factor >= 1.0:
                raise AssertionError(f"backoff_factor must be below 1.0, got {backoff_factor}")
            self._init_scale = float(init_scale)
            self._growth_factor = growth_factor
            self._backoff_factor = backoff_factor
            self._growth_interval = growth_interval
            self._init_growth_tracker = 0
            # the scale and its inverse as device scalars (None until the first scale()); host copies of
            # the scale and the count of finite steps since the last change, which update() computes with
            self._scale: Tensor | None = None
            self._inv_scale: Tensor | None = None
            self._host_scale = np.float32(init_scale)
            self._growth_tracker = 0
            self._per_optimizer_states: dict[int, dict[str, Any]] = defaultdict(_fresh_state)

    # ---- scaling -------------------------------------------------------------------------------
    def _check_scale(self, funcname: str) -> Tensor:
        if self._scale is None:
            raise AssertionError(f"Attempted {funcname} but the scale was never used: call scaler.scale(loss) "
                                 f"earlier in the iteration")
        return self._scale

    def _scale_on(self, device: str) -> Tensor:
        if self._scale is None:
            self._scale = full((), float(self._host_scale), dtype=dtypes.float32, device=device).realize()
            self._inv_scale = full((), self._inverse(), dtype=dtypes.float32, device=device).realize()
        return self._scale if self._scale.device == device else self._scale.to(device)

    def _inverse(self) -> float:
        # the reciprocal in float64, then rounded to float32, as torch computes it
        return float(np.float32(1.0 / float(self._host_scale)))

    def scale(self, outputs: Any) -> Any:
        """The outputs (a tensor, or tensors in lists, tuples and iterables) times the scale."""
        if not self._enabled:
            return outputs
        if isinstance(outputs, Tensor):
            return outputs * self._scale_on(outputs.device)
        if isinstance(outputs, abc.Iterable):
            scaled = map(self.scale, outputs)
            return type(outputs)(scaled) if isinstance(outputs, (list, tuple)) else scaled
        raise ValueError("outputs must be a Tensor or an iterable of Tensors")

    # ---- unscaling and stepping ----------------------------------------------------------------
    def unscale_(self, optimizer: Any) -> None:
        """Divide the optimizer's gradients by the scale (in place) and record whether any is inf or NaN.

        Optional before `step` (to clip the unscaled gradients, say); once per optimizer per step."""
        if not self._enabled:
            return
        self._check_scale("unscale_")
        optimizer_state = self._per_optimizer_states[id(optimizer)]
        if optimizer_state["stage"] is OptState.UNSCALED:
            raise RuntimeError("unscale_() was already called for this optimizer in this iteration (since update())")
        if optimizer_state["stage"] is OptState.STEPPED:
            raise RuntimeError("unscale_() called after step() in the same iteration; call it before step()")
        optimizer_state["found_inf_per_device"] = self._unscale_grads_(optimizer)
        optimizer_state["stage"] = OptState.UNSCALED

    def _unscale_grads_(self, optimizer: Any) -> dict[str, Tensor]:
        """Per device: 1.0 where a gradient holds inf or NaN, else 0.0 (lazy); the gradients multiplied by
        the inverse scale in place (lazy)."""
        groups: dict[tuple[str, str], list[Tensor]] = defaultdict(list)
        for group in optimizer.param_groups:
            for param in group["params"]:
                if not isinstance(param, Tensor):
                    raise TypeError(f"expected the optimizer's params to be Tensors, got {type(param).__name__}")
                if param.grad is None:
                    continue
                if param.grad.dtype is dtypes.float16:
                    raise ValueError("float16 gradients cannot be unscaled: keep the parameters in float32 (autocast "
                                     "casts them for the ops that run in float16)")
                groups[(param.grad.device, param.grad.dtype.name)].append(param.grad)
        found_per_device: dict[str, Tensor] = {}
        with no_grad():
            for (device, _), grads in groups.items():
                # one reduction over the group's gradients, read as one flat tensor (packed: no copy)
                found = flat_of(grads).isfinite().logical_not().any().float()
                found_per_device[device] = found_per_device[device] + found if device in found_per_device else found
                inv_scale = self._inv_scale if self._inv_scale.device == device else self._inv_scale.to(device)
                for g in grads:
                    g.mul_(inv_scale)
        return found_per_device

    def step(self, optimizer: Any, *args: Any, **kwargs: Any) -> Any:
        """Unscale (unless `unscale_` did) and run `optimizer.step(*args, **kwargs)` if the gradients are
        finite; returns what it returned (None when skipped)."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("an enabled GradScaler cannot step with a closure")
        self._check_scale("step")
        optimizer_state = self._per_optimizer_states[id(optimizer)]
        if optimizer_state["stage"] is OptState.STEPPED:
            raise RuntimeError("step() was already called for this optimizer in this iteration (since update())")
        if optimizer_state["stage"] is OptState.READY:
            self.unscale_(optimizer)
        if not optimizer_state["found_inf_per_device"]:
            raise AssertionError("no gradient of this optimizer was checked for inf/NaN: none has a gradient")
        # the one value a step reads back: whether to skip the optimizer
        optimizer_state["found_inf"] = sum(v.item() for v in optimizer_state["found_inf_per_device"].values())
        retval = None if optimizer_state["found_inf"] else optimizer.step(*args, **kwargs)
        optimizer_state["stage"] = OptState.STEPPED
        return retval

    def update(self, new_scale: float | Tensor | None = None) -> None:
        """Back the scale off after a skipped step, grow it after `growth_interval` finite steps in a row;
        or set it to `new_scale`."""
        if not self._enabled:
            return
        self._check_scale("update")
        if new_scale is not None:
            if not isinstance(new_scale, float):
                reason = ("new_scale must be a float, or a one-element tensor on the scaler's device type that "
                          "does not require grad")
                if not isinstance(new_scale, Tensor) or new_scale.numel() != 1 or new_scale.requires_grad \
                        or new_scale.device.split(":")[0] != self._device.split(":")[0]:
                    raise AssertionError(reason)
                new_scale = float(new_scale.item())
            self._set_scale(np.float32(new_scale))
        else:
            found = [state["found_inf"] if state["found_inf"] is not None
                     else sum(v.item() for v in state["found_inf_per_device"].values())
                     for state in self._per_optimizer_states.values() if state["found_inf_per_device"]]
            if not found:
                raise AssertionError("update() found no step or unscale_() in this iteration to take the inf/NaN "
                                     "check from")
            scale = self._host_scale
            if sum(found):
                scale = np.float32(scale * np.float32(self._backoff_factor))
                self._growth_tracker = 0
            elif self._growth_tracker + 1 == self._growth_interval:
                grown = np.float32(scale * np.float32(self._growth_factor))
                scale = grown if math.isfinite(grown) else scale
                self._growth_tracker = 0
            else:
                self._growth_tracker += 1
            self._set_scale(scale)
        self._per_optimizer_states = defaultdict(_fresh_state)

    def _set_scale(self, scale: np.float32) -> None:
        """The new scale in the host copy and, when it changed, into the device scalars' own buffers."""
        changed = scale != self._host_scale
        self._host_scale = np.float32(scale)
        if changed and self._scale is not None:
            store(self._scale, float(self._host_scale))
            store(self._inv_scale, self._inverse())

    # ---- settings and state --------------------------------------------------------------------
    def get_scale(self) -> float:
        """The current scale (1.0 when disabled); no synchronization."""
        return float(self._host_scale) if self._enabled else 1.0

    def get_growth_factor(self) -> float:
        return self._growth_factor

    def set_growth_factor(self, new_factor: float) -> None:
        self._growth_factor = new_factor

    def get_backoff_factor(self) -> float:
        return self._backoff_factor

    def set_backoff_factor(self, new_factor: float) -> None:
        self._backoff_factor = new_factor

    def get_growth_interval(self) -> int:
        return self._growth_interval

    def set_growth_interval(self, new_interval: int) -> None:
        self._growth_interval = new_interval

    def _get_growth_tracker(self) -> int:
        return self._growth_tracker if self._enabled else 0

    def is_enabled(self) -> bool:
        return self._enabled

    def state_dict(self) -> dict[str, Any]:
        """scale, growth_factor, backoff_factor, growth_interval and _growth_tracker ({} when disabled)."""
        if not self._enabled:
            return {}
        return {"scale": self.get_scale(), "growth_factor": self._growth_factor,
                "backoff_factor": self._backoff_factor, "growth_interval": self._growth_interval,
                "_growth_tracker": self._get_growth_tracker()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError("the state dict is empty (a disabled GradScaler saves an empty one)")
        self._init_scale = float(state_dict["scale"])
        self._set_scale(np.float32(state_dict["scale"]))
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._growth_tracker = self._init_growth_tracker = int(state_dict["_growth_tracker"])
