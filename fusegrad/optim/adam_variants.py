"""Adamax, NAdam and RAdam with torch's formulas, as fused flat updates like Adam's.

Step-dependent coefficients (bias corrections, NAdam's momentum schedule, RAdam's rectification) are
computed on the device in float64 from the step counter, as torch computes them in Python doubles,
so neither a changed learning rate nor a new step compiles anything.
"""
from __future__ import annotations

from typing import Any, Iterable

from .. import dtypes
from ..tensor import Tensor, tensor
from .optimizer import Optimizer


def _check_adam_like(name: str, lr: float, betas: tuple[float, float], eps: float, weight_decay: float) -> None:
    """torch's checks, with its messages."""
    if not 0.0 <= lr:
        raise ValueError(f"Invalid learning rate: {lr}")
    if not 0.0 <= eps:
        raise ValueError(f"Invalid epsilon value: {eps}")
    if not 0.0 <= betas[0] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
    if not 0.0 <= betas[1] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
    if not 0.0 <= weight_decay:
        raise ValueError(f"Invalid weight_decay value: {weight_decay}")


class _AdamFamily(Optimizer):
    """Shared pieces: the decayed gradient and the first moment."""

    def _decayed(self, group: dict[str, Any], p: Tensor, g: Tensor, lr64: Tensor) -> tuple[Tensor, Tensor]:
        """(parameter, gradient) after maximize and weight decay (decoupled where the group asks for it)."""
        if group["maximize"]:
            g = -g
        if group["weight_decay"]:
            if group.get("decoupled_weight_decay"):
                p = p * (1 - lr64 * group["weight_decay"]).to(p.dtype)
            else:
                g = g + p * group["weight_decay"]
        return p, g

    def _first_moment(self, index: int, group: dict[str, Any], p: Tensor, g: Tensor, m: Tensor) -> Tensor:
        # beta1 is a device scalar: OneCycleLR cycles it every step without recompiling
        beta1 = self._scalar(index, "beta1", group["betas"][0], p).to(p.dtype)
        return g + (m - g) * beta1  # m * beta1 + g * (1 - beta1), torch's lerp


class Adamax(_AdamFamily):
    """Adam with the infinity norm: the second moment is a decayed running maximum of |grad|."""

    state_names = ("exp_avg", "exp_inf")

    def __init__(self, params: Iterable[Any], lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, maximize: bool = False):
        _check_adam_like("Adamax", lr, betas, eps, weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      maximize=maximize))

    def update(self, group: dict[str, Any], index: int, p: Tensor, g: Tensor, state: dict[str, Tensor],
               step: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        lr64 = self._scalar(index, "lr", group["lr"], p, dtypes.float64)
        beta1_64 = self._scalar(index, "beta1", group["betas"][0], p, dtypes.float64)
        p, g = self._decayed(group, p, g, lr64)
        m = self._first_moment(index, group, p, g, state["exp_avg"])
        u = (state["exp_inf"] * group["betas"][1]).maximum(g.abs() + group["eps"])
        clr = (lr64 / (1 - beta1_64 ** step.to(dtypes.float64))).to(p.dtype)
        return p - clr * (m / u), {"exp_avg": m, "exp_inf": u}


class NAdam(_AdamFamily):
    """Adam with Nesterov momentum, whose coefficient warms up with `momentum_decay` (torch's NAdam)."""

    state_names = ("exp_avg", "exp_avg_sq")
    group_scalars = ("mu_product",)

    def __init__(self, params: Iterable[Any], lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum_decay: float = 4e-3,
                 decoupled_weight_decay: bool = False, maximize: bool = False):
        _check_adam_like("NAdam", lr, betas, eps, weight_decay)
        if not 0.0 <= momentum_decay:
            raise ValueError(f"Invalid momentum_decay value: {momentum_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      momentum_decay=momentum_decay, decoupled_weight_decay=decoupled_weight_decay,
                                      maximize=maximize))

    def _mu(self, index: int, group: dict[str, Any], like: Tensor, t: Tensor) -> Tensor:
        """The momentum coefficient of step t (float64): beta1 * (1 - 0.96 ** (t * momentum_decay) / 2)."""
        beta1_64 = self._scalar(index, "beta1", group["betas"][0], like, dtypes.float64)
        return beta1_64 * (1.0 - 0.5 * (0.96 ** (t * group["momentum_decay"])))

    def advance_group(self, group: dict[str, Any], index: int, like: Tensor, step: Tensor | None) -> None:
        # the product of all mu so far, kept in float32 like torch's (a float32 0-d tensor per parameter)
        scalars = self.group_state(group)
        product = scalars.get("mu_product")
        if product is None or product.device != like.device:
            product = tensor(1.0, dtype=dtypes.float32, device=like.device)
        assert step is not None  # every NAdam group counts steps
        mu = self._mu(index, group, like, step.to(dtypes.float64))
        scalars["mu_product"] = product * mu.to(dtypes.float32)

    def update(self, group: dict[str, Any], index: int, p: Tensor, g: Tensor, state: dict[str, Tensor],
               step: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        lr64 = self._scalar(index, "lr", group["lr"], p, dtypes.float64)
        t = step.to(dtypes.float64)
        p, g = self._decayed(group, p, g, lr64)
        mu, mu_next = self._mu(index, group, p, t), self._mu(index, group, p, t + 1)
        product = self.group_state(group)["mu_product"].to(dtypes.float64)
        grad_coef = (lr64 * (1.0 - mu) / (1.0 - product)).to(p.dtype)
        avg_coef = (lr64 * mu_next / (1.0 - product * mu_next)).to(p.dtype)
        m = self._first_moment(index, group, p, g, state["exp_avg"])
        v = state["exp_avg_sq"] * group["betas"][1] + g * g * (1 - group["betas"][1])
        bias2 = (1 - group["betas"][1] ** t).to(p.dtype)
        denom = (v / bias2).sqrt() + group["eps"]
        return p - grad_coef * g / denom - avg_coef * m / denom, {"exp_avg": m, "exp_avg_sq": v}


class RAdam(_AdamFamily):
    """Rectified Adam: plain momentum SGD while the variance estimate is unreliable, rectified Adam after."""

    state_names = ("exp_avg", "exp_avg_sq")

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, decoupled_weight_decay: bool = False,
                 maximize: bool = False):
        _check_adam_like("RAdam", lr, betas, eps, weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      decoupled_weight_decay=decoupled_weight_decay, maximize=maximize))

    def update(self, group: dict[str, Any], index: int, p: Tensor, g: Tensor, state: dict[str, Tensor],
               step: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        lr64 = self._scalar(index, "lr", group["lr"], p, dtypes.float64)
        beta1_64 = self._scalar(index, "beta1", group["betas"][0], p, dtypes.float64)
        beta2 = group["betas"][1]
        t = step.to(dtypes.float64)
        p, g = self._decayed(group, p, g, lr64)
        m = self._first_moment(index, group, p, g, state["exp_avg"])
        v = state["exp_avg_sq"] * beta2 + g * g * (1 - beta2)
        bias2 = 1 - beta2 ** t
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * t * (beta2 ** t) / bias2
        # where the variance is tractable (rho_t > 5) the step is rectified; elsewhere the clamp keeps the
        # unused branch finite
        tractable = rho_t > 5.0
        rho_safe = rho_t.where(tractable, 5.5)
        rect = ((rho_safe - 4) * (rho_safe - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_safe)).sqrt()
        scale = (rect * bias2.sqrt()).to(p.dtype)
        adaptive = scale / (v.sqrt() + group["eps"])
        corrected = m * (lr64 / (1 - beta1_64 ** t)).to(p.dtype)
        rectified = tractable.expand(p.shape)
        return p - (corrected * adaptive).where(rectified, corrected), {"exp_avg": m, "exp_avg_sq": v}
