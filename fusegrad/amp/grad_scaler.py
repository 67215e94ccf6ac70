"""`fg.amp.GradScaler`: loss scaling for float16 training, with torch.amp.GradScaler's methods and
semantics.

`scale(loss)` multiplies by the scale; `unscale_(optimizer)` multiplies every gradient by the
inverse scale and checks them for inf and NaN; `step(optimizer)` unscales (unless done) and runs
`optimizer.step()` only if every gradient was finite; `update()` backs the scale off after a
skipped step and grows it after `growth_interval` finite ones.

The per-step work stays lazy and on the device: the check is one reduction over each device's
gradients of one dtype where they are packed (a backward pass's gradients, read in place), else one
per gradient; the unscaled gradients are lazy products the optimizer's update kernels read. `step`
runs a fusegrad optimizer's `step_unless(found_inf)`, whose every write keeps the old value where an
inf or NaN was found, and `update` computes the next scale and growth count with device ops (torch's
rule, in float32): nothing is read back, so a whole scaled training step (scale, backward,
`unscale_`, clipping, `step`, `update`) can be one `fg.jit` function. `update(new_scale)` and
`load_state_dict` write the scale into its device buffer, where a jitted function that reads it sees
it without being captured again; `get_scale()` reads it back, as torch's does.
"""
from __future__ import annotations

import warnings
from collections import abc, defaultdict
from enum import Enum
from typing import Any

import numpy as np

from .. import dtypes
from ..autograd import no_grad
from ..creation import full
from ..flat import flat_of, reads_in_place, store
from ..optim.optimizer import Optimizer
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
            self._growth_factor = growth_factor
            self._backoff_factor = backoff_factor
            self._growth_interval = growth_interval
            # the scale, its inverse and the count of finite steps since the scale last changed, as device
            # scalars (None until the first scale(); the host values stand in until then): update()
            # computes their next values on the device, so a step reads nothing back
            self._scale: Tensor | None = None
            self._inv_scale: Tensor | None = None
            self._tracker: Tensor | None = None
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
            self._inv_scale = full((), _inverse(float(self._host_scale)), dtype=dtypes.float32,
                                   device=device).realize()
            self._tracker = full((), float(self._growth_tracker), dtype=dtypes.float32, device=device).realize()
        return self._scale if self._scale.device == device else self._scale.to(device)

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
                # one reduction over the group's gradients read as one flat tensor where they are packed (no
                # copy), else one per gradient, added
                if reads_in_place(grads):
                    found = _any_nonfinite(flat_of(grads))
                else:
                    found = sum(map(_any_nonfinite, grads[1:]), _any_nonfinite(grads[0]))
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
        found = self._found_on_scale_device(optimizer_state["found_inf_per_device"].values())
        optimizer_state["found_inf"] = found
        if isinstance(optimizer, Optimizer) and not args and not kwargs:
            retval = optimizer.step_unless(found)  # skipped on the device: nothing read back
        else:  # another optimizer: whether to skip it is read back
            retval = None if found.item() else optimizer.step(*args, **kwargs)
        optimizer_state["stage"] = OptState.STEPPED
        return retval

    def _found_on_scale_device(self, found: Any) -> Tensor:
        """1.0 where any of the per-device checks found an inf or NaN, else 0.0, on the scale's device."""
        total = None
        for v in found:
            v = v if v.device == self._scale.device else v.to(self._scale.device)
            total = v if total is None else total + v
        return (total > 0).float()

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
                     else self._found_on_scale_device(state["found_inf_per_device"].values())
                     for state in self._per_optimizer_states.values() if state["found_inf_per_device"]]
            if not found:
                raise AssertionError("update() found no step or unscale_() in this iteration to take the inf/NaN "
                                     "check from")
            self._update_on_device(self._found_on_scale_device(found))
        self._per_optimizer_states = defaultdict(_fresh_state)

    def _update_on_device(self, found: Tensor) -> None:
        """torch's update rule in device ops: after an inf/NaN the scale backs off and the count restarts;
        after `growth_interval` finite steps in a row it grows (unless that overflows) and the count
        restarts; else the count goes up. The scale, its inverse and the count become these lazy values."""
        with no_grad():
            scale, counted = self._scale, self._tracker + 1
            inf = found != 0
            grow = inf.logical_not() & (counted == float(self._growth_interval))
            grown = scale * float(np.float32(self._growth_factor))
            grown = grown.where(grow & grown.isfinite(), scale)
            self._scale = (scale * float(np.float32(self._backoff_factor))).where(inf, grown)
            # float32's correctly rounded reciprocal: torch's float64 one rounded to float32 but for double
            # rounding, which never differs for the powers of two that scales are
            self._inv_scale = 1.0 / self._scale
            self._tracker = full((), 0.0, dtype=dtypes.float32, device=scale.device).where(inf | grow, counted)

    def _set_scale(self, scale: np.float32) -> None:
        """A scale set from the host: into the host value and the device scalars' own buffers (a jitted
        function reading the scale sees it without being captured again)."""
        self._host_scale = np.float32(scale)
        if self._scale is not None:
            self._scale, self._inv_scale = self._scale.realize(), self._inv_scale.realize()
            store(self._scale, float(self._host_scale))
            store(self._inv_scale, _inverse(float(self._host_scale)))

    # ---- settings and state --------------------------------------------------------------------
    def get_scale(self) -> float:
        """The current scale (1.0 when disabled); read from the device once scale() has run, as torch does."""
        if not self._enabled:
            return 1.0
        return float(self._host_scale) if self._scale is None else float(self._scale.item())

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
        if not self._enabled:
            return 0
        return self._growth_tracker if self._tracker is None else int(self._tracker.item())

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
        self._set_scale(np.float32(state_dict["scale"]))
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._growth_tracker = int(state_dict["_growth_tracker"])
        if self._tracker is not None:  # into its own buffer, as the scale
            self._tracker = self._tracker.realize()
            store(self._tracker, float(self._growth_tracker))


def _any_nonfinite(t: Tensor) -> Tensor:
    """1.0 if `t` holds an inf or NaN, else 0.0 (lazy)."""
    return t.isfinite().logical_not().any().float()


def _inverse(scale: float) -> float:
    """1 / scale in float64, rounded to float32, as torch computes it."""
    return float(np.float32(1.0 / scale))
