"""MultiplicativeLR, ConstantLR, PolynomialLR, CosineAnnealingWarmRestarts, CyclicLR and ChainedScheduler
against torch, step by step (alone and inside SequentialLR / ChainedScheduler), plus argument errors and
state dicts."""
from __future__ import annotations

from typing import Any, Callable

import pytest
import torch

import fusegrad as fg
from fusegrad.optim import lr_scheduler as fg_sched
from tests.test_lr_scheduler import METRICS, _run, compare, make_optimizers


class Scale:
    """A callable object: its attributes survive a state dict round trip."""

    def __init__(self, factor: float):
        self.factor = factor

    def __call__(self, x: float) -> float:
        return self.factor ** x


SCHEDULES: dict[str, Callable[[Any, Any], Any]] = {
    "MultiplicativeLR": lambda m, o: m.MultiplicativeLR(o, lambda e: 0.95),
    "MultiplicativeLR-per-group": lambda m, o: m.MultiplicativeLR(o, [lambda e: 0.9, lambda e: 1.0 + 0.01 * e]),
    "PolynomialLR": lambda m, o: m.PolynomialLR(o),
    "PolynomialLR-power": lambda m, o: m.PolynomialLR(o, total_iters=12, power=2.5),
    "ConstantLR": lambda m, o: m.ConstantLR(o),
    "ConstantLR-half": lambda m, o: m.ConstantLR(o, factor=0.5, total_iters=8),
    "SequentialLR-constant-exponential": lambda m, o: m.SequentialLR(
        o, [m.ConstantLR(o, factor=0.2, total_iters=3), m.ExponentialLR(o, gamma=0.9)], milestones=[5]),
    "CosineAnnealingWarmRestarts": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=7),
    "CosineAnnealingWarmRestarts-mult": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2,
                                                                                   eta_min=0.001),
    "CyclicLR": lambda m, o: m.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=4),
    "CyclicLR-triangular2": lambda m, o: m.CyclicLR(o, base_lr=[0.01, 0.02], max_lr=[0.1, 0.05], step_size_up=3,
                                                    step_size_down=5, mode="triangular2", base_momentum=0.7),
    "CyclicLR-exp-range": lambda m, o: m.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=5, mode="exp_range",
                                                  gamma=0.97, max_momentum=[0.95, 0.9]),
    "CyclicLR-scale-fn": lambda m, o: m.CyclicLR(o, 0.01, 0.1, step_size_up=2, scale_fn=Scale(0.8),
                                                 scale_mode="iterations", cycle_momentum=False),
    "ChainedScheduler": lambda m, o: m.ChainedScheduler([m.ExponentialLR(o, gamma=0.9),
                                                         m.MultiplicativeLR(o, lambda e: 0.98)]),
    "ChainedScheduler-poly-step": lambda m, o: m.ChainedScheduler([m.PolynomialLR(o, total_iters=20, power=0.5),
                                                                   m.StepLR(o, step_size=4, gamma=0.5)],
                                                                  optimizer=o),
    "SequentialLR-poly-multiplicative": lambda m, o: m.SequentialLR(
        o, [m.PolynomialLR(o, total_iters=6), m.MultiplicativeLR(o, lambda e: 0.9)], milestones=[8]),
    "SequentialLR-warmup-restarts": lambda m, o: m.SequentialLR(
        o, [m.LinearLR(o, start_factor=0.1, total_iters=4), m.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2)],
        milestones=[4]),
    "ChainedScheduler-restarts": lambda m, o: m.ChainedScheduler([m.CosineAnnealingWarmRestarts(o, T_0=6),
                                                                  m.ExponentialLR(o, gamma=0.97)]),
}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_lr_sequence_matches_torch(name: str) -> None:
    compare(SCHEDULES[name], momentum=0.9)


@pytest.mark.parametrize("opt_name", ["Adam", "RMSprop", "NAdam"])
def test_cyclic_lr_cycles_beta1_or_momentum(opt_name: str) -> None:
    compare(SCHEDULES["CyclicLR-triangular2"], opt_name)


def test_warm_restarts_with_explicit_epochs_matches_torch() -> None:
    opt, topt = make_optimizers()
    ours = fg_sched.CosineAnnealingWarmRestarts(opt, T_0=4, T_mult=2, eta_min=0.01)
    theirs = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(topt, T_0=4, T_mult=2, eta_min=0.01)
    for epoch in [0.5, 1.25, 3.9, 4.0, 7.5, 12.0, 13.3, 30.0, 2.0]:
        ours.step(epoch)
        theirs.step(epoch)
        assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr(), rel=1e-12)
        assert (ours.T_cur, ours.T_i, ours.last_epoch) == pytest.approx((theirs.T_cur, theirs.T_i, theirs.last_epoch))
    with pytest.raises(ValueError):
        ours.step(-1)


BAD = [
    lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=0),
    lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=2.5),
    lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=0),
    lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=3, eta_min="0"),
    lambda m, o: m.CyclicLR(o, 0.01, 0.1, mode="sawtooth"),
    lambda m, o: m.CyclicLR(o, [0.01], 0.1),
    lambda m, o: m.ChainedScheduler([]),
    lambda m, o: m.ChainedScheduler([m.ReduceLROnPlateau(o)]),
    lambda m, o: m.MultiplicativeLR(o, [lambda e: 1.0]),
    lambda m, o: m.MultiplicativeLR(o, 0.5),
    lambda m, o: m.ConstantLR(o, factor=1.5),
]
BAD_IDS = ["T0-zero", "T0-float", "Tmult-zero", "eta-str", "cyclic-mode", "cyclic-groups", "chained-empty",
           "chained-plateau", "mult-count", "mult-not-callable",
           "constant-factor"]


@pytest.mark.parametrize("build", BAD, ids=BAD_IDS)
def test_argument_errors_match_torch(build: Callable[[Any, Any], Any]) -> None:
    opt, topt = make_optimizers(momentum=0.9)
    with pytest.raises(Exception) as theirs:
        build(torch.optim.lr_scheduler, topt)
    with pytest.raises(theirs.type):
        build(fg_sched, opt)


def test_cyclic_lr_needs_momentum_and_chained_needs_one_optimizer() -> None:
    opt, _ = make_optimizers("Adagrad")
    with pytest.raises(ValueError):
        fg_sched.CyclicLR(opt, 0.01, 0.1)
    fg_sched.CyclicLR(opt, 0.01, 0.1, cycle_momentum=False)
    first, _ = make_optimizers(momentum=0.9)
    second, _ = make_optimizers(momentum=0.9)
    with pytest.raises(ValueError):
        fg_sched.ChainedScheduler([fg_sched.StepLR(first, 2), fg_sched.StepLR(second, 2)])


ROUND_TRIP = ["MultiplicativeLR", "PolynomialLR-power", "CosineAnnealingWarmRestarts-mult", "CyclicLR-scale-fn",
              "CyclicLR-exp-range", "ChainedScheduler"]


@pytest.mark.parametrize("name", ROUND_TRIP)
def test_state_dict_round_trip(name: str) -> None:
    """10 steps, save optimizer + scheduler, restore both into fresh objects: the next 10 steps agree."""
    opt, _ = make_optimizers(momentum=0.9)
    sched = SCHEDULES[name](fg_sched, opt)
    _run(opt, sched, 10, METRICS)
    opt_state, sched_state = opt.state_dict(), sched.state_dict()
    assert "optimizer" not in sched_state
    expected = _run(opt, sched, 10, METRICS[10:])
    fresh, _ = make_optimizers(momentum=0.9)
    restored = SCHEDULES[name](fg_sched, fresh)
    fresh.load_state_dict(opt_state)
    restored.load_state_dict(sched_state)
    assert _run(fresh, restored, 10, METRICS[10:]) == expected


def test_cyclic_lr_drives_training_without_recompiling() -> None:
    """CyclicLR moves lr and momentum every step: the SGD step runs the same kernels throughout."""
    from tests.test_lr_scheduler import train_scheduled
    from tests.test_optim import fg_params, torch_params
    ps, tps = fg_params(), torch_params()
    opt, topt = fg.optim.SGD(ps, lr=0.01, momentum=0.9), torch.optim.SGD(tps, lr=0.01, momentum=0.9)
    sched = fg_sched.CyclicLR(opt, 0.001, 0.05, step_size_up=3)
    tsched = torch.optim.lr_scheduler.CyclicLR(topt, 0.001, 0.05, step_size_up=3)
    train_scheduled(ps, tps, opt, topt, sched, tsched, 8)
