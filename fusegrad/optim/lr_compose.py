"""Schedulers made of schedulers: SequentialLR (one after another) and ChainedScheduler (all at once)."""
from __future__ import annotations

from bisect import bisect_right
from typing import Any, Sequence

from .lr_base import LRScheduler, _outside_capture
from .lr_plateau import ReduceLROnPlateau
from .optimizer import Optimizer


class _OfSchedulers(LRScheduler):
    """A scheduler wrapping others (`_schedulers`): its state holds theirs."""

    _schedulers: list[LRScheduler]

    def state_dict(self) -> dict[str, Any]:
        """Own attributes plus every wrapped scheduler's state dict."""
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "_schedulers")}
        state["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore own attributes and every wrapped scheduler's state."""
        self.__dict__.update({k: v for k, v in state_dict.items() if k != "_schedulers"})
        for sched, saved in zip(self._schedulers, state_dict["_schedulers"], strict=True):
            sched.load_state_dict(saved)


class SequentialLR(_OfSchedulers):
    """Run schedulers one after another, switching at the milestone epochs."""

    def __init__(self, optimizer: Optimizer, schedulers: Sequence[LRScheduler], milestones: Sequence[int],
                 last_epoch: int = -1):
        if not schedulers:
            raise ValueError("SequentialLR expects at least one scheduler")
        for i, sched in enumerate(schedulers):
            if isinstance(sched, ReduceLROnPlateau):
                raise ValueError(f"SequentialLR does not support ReduceLROnPlateau (scheduler {i}): its step() "
                                 "needs a metric")
            if getattr(sched, "optimizer", None) is not optimizer:
                raise ValueError(f"SequentialLR expects all schedulers to belong to the same optimizer, but "
                                 f"scheduler {i} ({type(sched).__name__}) has a different one")
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(f"SequentialLR expects one milestone fewer than schedulers, got {len(schedulers)} "
                             f"schedulers and {len(milestones)} milestones")
        self.optimizer = optimizer
        self._schedulers = list(schedulers)
        self._milestones = list(milestones)
        self.last_epoch = last_epoch + 1
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        # every scheduler already took its construction step; undo those, then redo only the first one's
        for sched in self._schedulers:
            _undo_initial_step(sched)
        first = self._schedulers[bisect_right(self._milestones, 0)]
        first._initial_step()
        self._last_lr = first.get_last_lr()

    def step(self) -> None:
        """Step the scheduler whose phase this epoch is in; at a milestone, restart it at epoch 0."""
        _outside_capture()
        self.last_epoch += 1
        idx = bisect_right(self._milestones, self.last_epoch)
        sched = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == self.last_epoch:
            sched._update_lr(0)
        else:
            sched.step()
        self._last_lr = sched.get_last_lr()


def _undo_initial_step(sched: LRScheduler) -> None:
    """Move a scheduler (or every scheduler nested in a SequentialLR) one epoch back."""
    stack = [sched]
    while stack:
        s = stack.pop()
        if isinstance(s, SequentialLR):
            stack.extend(s._schedulers)
        else:
            s.last_epoch -= 1


class ChainedScheduler(_OfSchedulers):
    """Step several schedulers of one optimizer together, so their changes to the lr compose."""

    def __init__(self, schedulers: Sequence[LRScheduler], optimizer: Optimizer | None = None):
        if len(schedulers) < 1:
            raise ValueError("ChainedScheduler expects at least one scheduler to be chained, but got no scheduler.")
        optimizer = optimizer or schedulers[0].optimizer
        for i, sched in enumerate(schedulers):
            if not hasattr(sched, "optimizer"):
                raise TypeError(f"ChainedScheduler at index {i} should have `optimizer` as its attribute.")
            if isinstance(sched, ReduceLROnPlateau):
                raise ValueError(f"ChainedScheduler does not support `ReduceLROnPlateau` (index {i}): its step() "
                                 "needs a metric")
            if sched.optimizer is not optimizer:
                raise ValueError(f"ChainedScheduler expects all schedulers to belong to the same optimizer, but "
                                 f"scheduler {i} ({type(sched).__name__}) has a different one")
        self._schedulers = list(schedulers)
        self.optimizer = optimizer
        self._last_lr = self._current_lrs()

    def step(self) -> None:
        """Step every scheduler, in order."""
        _outside_capture()
        for sched in self._schedulers:
            sched.step()
        self._last_lr = self._current_lrs()
