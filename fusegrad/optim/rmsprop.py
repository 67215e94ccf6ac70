"""RMSprop (momentum, centered), Adagrad and Adadelta, with torch's formulas."""
from __future__ import annotations

from typing import Any, Iterable

from ..tensor import Tensor
from .optimizer import Optimizer


class RMSprop(Optimizer):
    def __init__(self, params: Iterable[Any], lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False, maximize: bool = False):
        if lr < 0 or eps < 0 or momentum < 0 or alpha < 0 or weight_decay < 0:
            raise ValueError("invalid RMSprop hyperparameters")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, maximize=maximize))

    @property
    def state_names(self) -> tuple[str, ...]:  # type: ignore[override]
        names = ("square_avg",)
        if any(g["momentum"] for g in self.param_groups):
            names += ("momentum_buffer",)
        if any(g["centered"] for g in self.param_groups):
            names += ("grad_avg",)
        return names

    def update(self, group: dict[str, Any], index: int, p: Tensor, g: Tensor, state: dict[str, Tensor],
               step: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        lr = self._scalar(index, "lr", group["lr"], p).to(p.dtype)
        alpha = group["alpha"]
        g = self._direction(group, p, g)
        sq = state["square_avg"] * alpha + g * g * (1 - alpha)
        new_state = {"square_avg": sq}
        if group["centered"]:
            ga = state["grad_avg"] * alpha + g * (1 - alpha)
            new_state["grad_avg"] = ga
            avg = (sq - ga * ga).sqrt() + group["eps"]
        else:
            avg = sq.sqrt() + group["eps"]
        if "grad_avg" in state and not group["centered"]:
            new_state["grad_avg"] = state["grad_avg"]
        if group["momentum"] > 0:
            momentum = self._scalar(index, "momentum", group["momentum"], p).to(p.dtype)
            buf = state["momentum_buffer"] * momentum + g / avg
            new_state["momentum_buffer"] = buf
            return p - lr * buf, new_state
        if "momentum_buffer" in state:
            new_state["momentum_buffer"] = state["momentum_buffer"]
        return p - lr * g / avg, new_state


class Adagrad(Optimizer):
    state_names = ("sum",)

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10, maximize: bool = False):
        if lr < 0 or lr_decay < 0 or weight_decay < 0 or initial_accumulator_value < 0 or eps < 0:
            raise ValueError("invalid Adagrad hyperparameters")
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps, maximize=maximize))

    def init_state(self, group: dict[str, Any], p: Tensor) -> dict[str, Tensor]:
        return {"sum": p._const(group["initial_accumulator_value"])}

    def update(self, group: dict[str, Any], index: int, p: Tensor, g: Tensor, state: dict[str, Tensor],
               step: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        lr = self._scalar(index, "lr", group["lr"], p).to(p.dtype)
        g = self._direction(group, p, g)
        clr = lr / (1 + (step.to(p.dtype) - 1) * group["lr_decay"])
        s = state["sum"] + g * g
        return p - clr * g / (s.sqrt() + group["eps"]), {"sum": s}


class Adadelta(Optimizer):
    """Adadelta: steps scaled by the ratio of running RMS of past updates and of gradients."""

    state_names = ("square_avg", "acc_delta")

    def __init__(self, params: Iterable[Any], lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0.0, maximize: bool = False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize))

    def counts_steps(self, group: dict[str, Any]) -> bool:
        return False  # the update does not depend on the step

    def update(self, group: dict[str, Any], index: int, p: Tensor, g: Tensor, state: dict[str, Tensor],
               step: Tensor | None) -> tuple[Tensor, dict[str, Tensor]]:
        lr = self._scalar(index, "lr", group["lr"], p).to(p.dtype)
        rho, eps = group["rho"], group["eps"]
        g = self._direction(group, p, g)
        square_avg = state["square_avg"] * rho + g * g * (1 - rho)
        delta = (state["acc_delta"] + eps).sqrt() / (square_avg + eps).sqrt() * g
        acc_delta = state["acc_delta"] * rho + delta * delta * (1 - rho)
        return p - lr * delta, {"square_avg": square_avg, "acc_delta": acc_delta}
