"""Adam and AdamW (amsgrad, weight decay, maximize), with torch's formulas."""
from __future__ import annotations

from typing import Any, Iterable

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
        lr = self._scalar(index, "lr", group["lr"], p).to(p.dtype)
        beta1, beta2 = group["betas"]
        if group["maximize"]:
            g = -g
        if group["weight_decay"]:
            if self.decoupled:
                p = p * (1 - lr * group["weight_decay"])
            else:
                g = g + p * group["weight_decay"]
        m = state["exp_avg"] * beta1 + g * (1 - beta1)
        v = state["exp_avg_sq"] * beta2 + g * g * (1 - beta2)
        t = step.to(p.dtype)
        bias1 = 1 - beta1 ** t
        bias2 = 1 - beta2 ** t
        new_state = {"exp_avg": m, "exp_avg_sq": v}
        second = v
        if "max_exp_avg_sq" in state:
            second = state["max_exp_avg_sq"].maximum(v)
            new_state["max_exp_avg_sq"] = second
        denom = (second / bias2).sqrt() + group["eps"]
        return p - (lr / bias1) * m / denom, new_state


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.01, like torch)."""

    decoupled = True

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, maximize: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize)
