"""The LR scheduler base class: the construction step, stepping, state dicts (torch's LRScheduler).

A scheduler only writes Python floats into `group["lr"]` (and, for the cycling schedules, `group["momentum"]`
or `group["betas"]`); the optimizer uploads a changed value into the device scalar its kernels read, so a
schedule never causes a recompile.
"""
from __future__ import annotations

from typing import Any

from ..capturing import is_capturing
from ..errors import JitError
from .optimizer import Optimizer


def _outside_capture() -> None:
    if is_capturing():
        raise JitError("call scheduler.step() outside the function compiled by fg.jit: replays do not run "
                       "Python, so the schedule would stop advancing")


def _per_group(name: str, optimizer: Optimizer, value: Any) -> list[Any]:
    """One value per parameter group: a scalar is repeated, a list must match the group count."""
    if isinstance(value, (list, tuple)):
        if len(value) != len(optimizer.param_groups):
            raise ValueError(f"{name} has {len(value)} values but the optimizer has "
                             f"{len(optimizer.param_groups)} parameter groups")
        return list(value)
    return [value] * len(optimizer.param_groups)


class LRScheduler:
    """Base class: subclasses compute the next learning rates in `get_lr()`.

    Construction performs the first step (epoch 0), which records `group["initial_lr"]` and may
    already change `group["lr"]` (e.g. LinearLR's start factor), like torch.
    """

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            missing = [i for i, g in enumerate(optimizer.param_groups) if "initial_lr" not in g]
            if missing:
                raise KeyError(f"param 'initial_lr' is not set in param_groups {missing} when resuming a scheduler "
                               f"with last_epoch={last_epoch}; load the optimizer's state dict first")
        self.base_lrs: list[float] = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self) -> None:
        """Take the construction step that sets the epoch-0 learning rates."""
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self) -> list[float]:
        """The learning rate of every group at `last_epoch` (called by step())."""
        raise NotImplementedError

    def _closed_form_lr(self) -> list[float]:
        """The learning rates at `last_epoch` computed from `base_lrs` alone (SequentialLR's milestones)."""
        return self.get_lr()

    def get_last_lr(self) -> list[float]:
        """The learning rates the last step wrote, one per parameter group."""
        return list(self._last_lr)

    def step(self) -> None:
        """Advance one epoch (or batch) and write the new learning rates into the optimizer."""
        self._update_lr()

    def _update_lr(self, epoch: int | None = None) -> None:
        _outside_capture()
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            self.last_epoch = epoch
            values = self._closed_form_lr()
        for group, lr in zip(self.optimizer.param_groups, values, strict=True):
            group["lr"] = lr
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def _current_lrs(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """Every attribute except the optimizer, like torch."""
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore attributes saved by state_dict()."""
        self.__dict__.update(state_dict)
