"""SGD with momentum, dampening, Nesterov, weight decay and maximize (torch's formulas)."""
from __future__ import annotations

from typing import Any, Iterable

from ..tensor import Tensor
from .optimizer import Optimizer


class SGD(Optimizer):
    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, maximize: bool = False):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"invalid SGD hyperparameters lr={lr}, momentum={momentum}, weight_decay={weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize))

    @property
    def state_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("momentum_buffer",) if any(g["momentum"] for g in self.param_groups) else ()

    def counts_steps(self, group: dict[str, Any]) -> bool:
        # only momentum reads it (its first step): plain SGD skips the counter's kernel. A group
        # whose momentum turns on later starts counting then, so its first momentum step takes
        # the gradient as the buffer, as torch's does when the buffer is missing
        return bool(group["momentum"])

    def update(self, group: dict[str, Any], index: int, p: Tensor, g: Tensor, state: dict[str, Tensor],
               step: Tensor | None) -> tuple[Tensor, dict[str, Tensor]]:
        lr = self._scalar(index, "lr", group["lr"], p).to(p.dtype)
        g = self._direction(group, p, g)
        new_state: dict[str, Tensor] = {}
        if group["momentum"]:
            # a device scalar: OneCycleLR cycles the momentum every step without recompiling
            momentum = self._scalar(index, "momentum", group["momentum"], p).to(p.dtype)
            buf = state["momentum_buffer"]
            # the first step takes the gradient as the buffer (torch), later ones blend
            assert step is not None  # counts_steps: momentum groups count
            first = step <= 1
            blended = buf * momentum + g * (1 - group["dampening"])
            buf = g.where(first.to(p.dtype).expand(g.shape) > 0, blended)
            new_state["momentum_buffer"] = buf
            g = g + buf * momentum if group["nesterov"] else buf
        return p - lr * g, new_state
