"""Adam and AdamW (amsgrad, weight decay, maximize), with torch's formulas."""
from __future__ import annotations

from typing import Any, Iterable

from .. import dtypes
from ..tensor import Tensor
from .optimizer import Optimizer


class Adam(Optimizer):
    decoupled = False

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, maximize: bool = False):
        if lr < 0 or eps < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1) or weight_decay < 0:
            raise ValueError(f"invalid {type(self).__name__} hyperparameters lr={lr}, betas={betas}, eps={eps}, "
                             f"weight_decay={weight_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize))

    @property
    def state_names(self) -> tuple[str, ...]:  # type: ignore[override]
        extra = ("max_exp_avg_sq",) if any(g["amsgrad"] for g in self.param_groups) else ()
        return ("exp_avg", "exp_avg_sq") + extra

    def update(self, group: dict[str, Any], index: int, p: Tensor, g: Tensor, state: dict[str, Tensor],
               step: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        # beta1 is a device scalar too: OneCycleLR cycles it every step without recompiling
        beta1 = self._scalar(index, "beta1", group["betas"][0], p).to(p.dtype)
        beta2 = group["betas"][1]
        # the step size and bias corrections are computed in float64 (torch computes them in Python
        # doubles): 1 - 0.999 ** t in float32 is off by ~1e-5 relative
        lr64 = self._scalar(index, "lr", group["lr"], p, dtypes.float64)
        beta1_64 = self._scalar(index, "beta1", group["betas"][0], p, dtypes.float64)
        t = step.to(dtypes.float64)
        step_size = (lr64 / (1 - beta1_64 ** t)).to(p.dtype)
        bias2_sqrt = (1 - beta2 ** t).sqrt().to(p.dtype)
        if group["maximize"]:
            g = -g
        if group["weight_decay"]:
            if self.decoupled:
                p = p * (1 - lr64 * group["weight_decay"]).to(p.dtype)
            else:
                g = g + p * group["weight_decay"]
        # g + (m - g) * beta1 == m * beta1 + g * (1 - beta1), without a separate kernel for 1 - beta1
        m = g + (state["exp_avg"] - g) * beta1
        v = state["exp_avg_sq"] * beta2 + g * g * (1 - beta2)
        new_state = {"exp_avg": m, "exp_avg_sq": v}
        second = v
        if group["amsgrad"]:
            second = state["max_exp_avg_sq"].maximum(v)
            new_state["max_exp_avg_sq"] = second
        denom = second.sqrt() / bias2_sqrt + group["eps"]
        return p - step_size * m / denom, new_state


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.01, like torch)."""

    decoupled = True

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, maximize: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize)
