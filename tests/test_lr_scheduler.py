"""LR schedulers against torch.optim.lr_scheduler: the same LR (and momentum) sequences, step by step."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest
import torch

import fusegrad as fg
from fusegrad.engine import realize as engine_realize
from fusegrad.optim import lr_scheduler as fg_sched
from tests.test_optim import assert_params_close, backward, fg_params, torch_params

LRS = [0.1, 0.03]  # two param groups with different lrs, so per-group handling is exercised
STEPS = 30


def make_optimizers(name: str = "SGD", **options: Any) -> tuple[fg.optim.Optimizer, torch.optim.Optimizer]:
    """One-element parameters in two groups: schedulers only read and write the groups."""
    fg_groups = [dict(params=[fg.zeros(1, requires_grad=True)], lr=lr) for lr in LRS]
    t_groups = [dict(params=[torch.zeros(1, requires_grad=True)], lr=lr) for lr in LRS]
    return getattr(fg.optim, name)(fg_groups, **options), getattr(torch.optim, name)(t_groups, **options)


def snapshot(opt: Any, sched: Any) -> dict[str, Any]:
    """Everything a schedule controls: the groups' lr, momentum and beta1, and get_last_lr()."""
    groups = opt.param_groups
    return dict(lr=[g["lr"] for g in groups], last=list(sched.get_last_lr()),
                momentum=[g.get("momentum") for g in groups], beta1=[g.get("betas", (None,))[0] for g in groups])


def assert_same(ours: dict[str, Any], theirs: dict[str, Any], step: int) -> None:
    """Numbers within float rounding; entries a group lacks (None) must be absent on both sides."""
    for key in ours:
        assert len(ours[key]) == len(theirs[key]), f"{key} differs at step {step}"
        for mine, other in zip(ours[key], theirs[key]):
            if mine is None or other is None:
                assert mine is other, f"{key} differs at step {step}: {mine} vs {other}"
            else:
                assert mine == pytest.approx(other, rel=1e-12, abs=1e-15), f"{key} differs at step {step}"


def compare(build: Callable[[Any, Any], Any], opt_name: str = "SGD", steps: int = STEPS,
            metrics: list[float] | None = None, **opt_options: Any) -> list[list[float]]:
    """Build the same schedule with fusegrad's and torch's modules and compare them after every step."""
    opt, topt = make_optimizers(opt_name, **opt_options)
    sched, tsched = build(fg_sched, opt), build(torch.optim.lr_scheduler, topt)
    assert_same(snapshot(opt, sched), snapshot(topt, tsched), 0)
    seen = []
    for i in range(steps):
        opt.step()  # no gradients: a no-op, but keeps torch's call-order check quiet
        topt.step()
        if metrics is None:
            sched.step()
            tsched.step()
        else:
            sched.step(metrics[i])
            tsched.step(metrics[i])
        assert_same(snapshot(opt, sched), snapshot(topt, tsched), i + 1)
        seen.append(list(sched.get_last_lr()))
    return seen


class Warmup:
    """A callable object: LambdaLR's state dict keeps its attributes."""

    def __init__(self, steps: int):
        self.steps = steps

    def __call__(self, epoch: int) -> float:
        return min(1.0, (epoch + 1) / self.steps)


SCHEDULES: dict[str, Callable[[Any, Any], Any]] = {
    "StepLR": lambda m, o: m.StepLR(o, step_size=7, gamma=0.5),
    "MultiStepLR": lambda m, o: m.MultiStepLR(o, milestones=[3, 10, 10, 20], gamma=0.3),
    "ExponentialLR": lambda m, o: m.ExponentialLR(o, gamma=0.9),
    "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=10, eta_min=0.001),
    "CosineAnnealingLR-no-min": lambda m, o: m.CosineAnnealingLR(o, T_max=7),
    "LambdaLR": lambda m, o: m.LambdaLR(o, lambda e: 0.95 ** e),
    "LambdaLR-per-group": lambda m, o: m.LambdaLR(o, [lambda e: 1 / (e + 1), Warmup(5)]),
    "LinearLR": lambda m, o: m.LinearLR(o),
    "LinearLR-decay": lambda m, o: m.LinearLR(o, start_factor=0.9, end_factor=0.2, total_iters=12),
    "SequentialLR": lambda m, o: m.SequentialLR(
        o, [m.LinearLR(o, start_factor=0.1, total_iters=5), m.CosineAnnealingLR(o, T_max=10)], milestones=[5]),
    "SequentialLR-three": lambda m, o: m.SequentialLR(
        o, [m.ExponentialLR(o, gamma=0.8), m.StepLR(o, step_size=3, gamma=0.5), m.LambdaLR(o, lambda e: e + 1)],
        milestones=[4, 12]),
    "OneCycleLR": lambda m, o: m.OneCycleLR(o, max_lr=0.5, total_steps=STEPS),
    "OneCycleLR-linear-three-phase": lambda m, o: m.OneCycleLR(
        o, max_lr=[0.5, 0.2], epochs=3, steps_per_epoch=10, pct_start=0.25, anneal_strategy="linear",
        three_phase=True, div_factor=10.0, final_div_factor=100.0, base_momentum=0.8, max_momentum=[0.9, 0.99]),
    "OneCycleLR-no-momentum": lambda m, o: m.OneCycleLR(o, max_lr=0.3, total_steps=STEPS + 5, cycle_momentum=False),
}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_lr_sequence_matches_torch(name: str) -> None:
    compare(SCHEDULES[name], momentum=0.9)


@pytest.mark.parametrize("opt_name", ["Adam", "RMSprop"])
def test_one_cycle_cycles_beta1_or_momentum(opt_name: str) -> None:
    compare(SCHEDULES["OneCycleLR-linear-three-phase"], opt_name)


def test_one_cycle_turns_momentum_on_for_plain_sgd() -> None:
    opt, _ = make_optimizers("SGD")
    fg_sched.OneCycleLR(opt, max_lr=0.5, total_steps=10)
    assert [g["momentum"] for g in opt.param_groups] == [0.95, 0.95]


def test_one_cycle_rejects_extra_steps_and_bad_arguments() -> None:
    opt, _ = make_optimizers("SGD", momentum=0.9)
    sched = fg_sched.OneCycleLR(opt, max_lr=0.5, total_steps=3)
    for _ in range(3):
        sched.step()
    with pytest.raises(ValueError, match="total steps"):
        sched.step()
    with pytest.raises(ValueError):
        fg_sched.OneCycleLR(opt, max_lr=0.5)
    with pytest.raises(ValueError):
        fg_sched.OneCycleLR(opt, max_lr=0.5, total_steps=10, anneal_strategy="exp")
    with pytest.raises(ValueError):
        fg_sched.OneCycleLR(opt, max_lr=[0.5], total_steps=10)
    with pytest.raises(ValueError):
        fg_sched.OneCycleLR(fg.optim.Adagrad([fg.zeros(1, requires_grad=True)]), max_lr=0.5, total_steps=10)


METRICS = [1.0, 0.9, 0.9, 0.95, 0.91, 0.8999, 0.85, 0.86, 0.86, 0.86, 0.84, 0.849, 0.85, 0.9, 0.7, 0.7, 0.71,
           0.72, 0.69, 0.69, 0.69, 0.5, 0.5, 0.5, 0.5, 0.5, 0.49999, 0.6, 0.6, 0.6]
PLATEAU = [
    dict(),
    dict(mode="min", factor=0.5, patience=2),
    dict(mode="max", factor=0.3, patience=1, threshold=0.05, threshold_mode="abs", cooldown=2, min_lr=0.02),
    dict(mode="min", factor=0.5, patience=0, threshold=0.1, min_lr=[0.01, 0.005], eps=1e-3),
    dict(mode="min", factor=0.7, patience=1, threshold=0.01, threshold_mode="abs", cooldown=3),
]


@pytest.mark.parametrize("options", PLATEAU, ids=[str(i) for i in range(len(PLATEAU))])
def test_reduce_lr_on_plateau_matches_torch(options: dict[str, Any]) -> None:
    seen = compare(lambda m, o: m.ReduceLROnPlateau(o, **options), metrics=METRICS)
    if options:  # the scripted metrics really trigger reductions (the default patience of 10 never fires)
        assert seen[-1] != LRS


def test_reduce_lr_on_plateau_accepts_a_tensor_metric_and_validates() -> None:
    opt, _ = make_optimizers()
    sched = fg_sched.ReduceLROnPlateau(opt, patience=0, factor=0.5)
    sched.step(fg.tensor(1.0))
    sched.step(fg.tensor(2.0))
    assert sched.get_last_lr() == [0.05, 0.015]
    with pytest.raises(ValueError):
        fg_sched.ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError):
        fg_sched.ReduceLROnPlateau(opt, mode="best")
    with pytest.raises(ValueError):
        fg_sched.ReduceLROnPlateau(opt, threshold_mode="pct")
    with pytest.raises(ValueError):
        fg_sched.ReduceLROnPlateau(opt, min_lr=[0.1])


def test_construction_records_initial_lr_and_resume_needs_it() -> None:
    opt, _ = make_optimizers()
    sched = fg_sched.StepLR(opt, step_size=2)
    assert [g["initial_lr"] for g in opt.param_groups] == LRS
    assert sched.base_lrs == LRS and sched.last_epoch == 0
    fresh, _ = make_optimizers()
    with pytest.raises(KeyError, match="initial_lr"):
        fg_sched.StepLR(fresh, step_size=2, last_epoch=3)
    with pytest.raises(TypeError):
        fg_sched.StepLR(object(), step_size=2)  # type: ignore[arg-type]


def test_sequential_lr_validation() -> None:
    opt, _ = make_optimizers()
    other, _ = make_optimizers()
    first = fg_sched.ExponentialLR(opt, gamma=0.9)
    with pytest.raises(ValueError):
        fg_sched.SequentialLR(opt, [], milestones=[])
    with pytest.raises(ValueError):
        fg_sched.SequentialLR(opt, [first, fg_sched.ExponentialLR(opt, gamma=0.5)], milestones=[])
    with pytest.raises(ValueError):
        fg_sched.SequentialLR(opt, [first, fg_sched.ExponentialLR(other, gamma=0.5)], milestones=[3])
    with pytest.raises(ValueError):
        fg_sched.SequentialLR(opt, [first, fg_sched.ReduceLROnPlateau(opt)], milestones=[3])


def _run(opt: fg.optim.Optimizer, sched: Any, steps: int, metrics: list[float]) -> list[list[float]]:
    out = []
    for i in range(steps):
        opt.step()
        if isinstance(sched, fg_sched.ReduceLROnPlateau):
            sched.step(metrics[i])
        else:
            sched.step()
        out.append(list(sched.get_last_lr()) + [g.get("momentum") for g in opt.param_groups])
    return out


ROUND_TRIP = ["StepLR", "CosineAnnealingLR", "LambdaLR-per-group", "SequentialLR", "OneCycleLR", "Plateau"]


@pytest.mark.parametrize("name", ROUND_TRIP)
def test_state_dict_round_trip(name: str) -> None:
    """10 steps, save optimizer + scheduler, restore both into fresh objects: the next 10 steps agree."""
    def build(opt: fg.optim.Optimizer) -> Any:
        if name == "Plateau":
            return fg_sched.ReduceLROnPlateau(opt, patience=1, factor=0.5, cooldown=1)
        return SCHEDULES[name](fg_sched, opt)

    opt, _ = make_optimizers(momentum=0.9)
    sched = build(opt)
    _run(opt, sched, 10, METRICS)
    opt_state, sched_state = opt.state_dict(), sched.state_dict()
    assert "optimizer" not in sched_state
    expected = _run(opt, sched, 10, METRICS[10:])

    fresh, _ = make_optimizers(momentum=0.9)
    restored = build(fresh)  # construct before loading the optimizer state, as torch recommends
    fresh.load_state_dict(opt_state)
    restored.load_state_dict(sched_state)
    assert _run(fresh, restored, 10, METRICS[10:]) == expected


@pytest.mark.parametrize("opt_name", ["SGD", "Adam"])
def test_scheduled_training_matches_torch_without_recompiling(opt_name: str) -> None:
    """OneCycleLR drives a real optimizer: the trajectory matches torch and no step compiles new kernels."""
    ps, tps = fg_params(), torch_params()
    options = dict(momentum=0.9) if opt_name == "SGD" else {}
    opt, topt = getattr(fg.optim, opt_name)(ps, **options), getattr(torch.optim, opt_name)(tps, **options)
    sched = fg_sched.OneCycleLR(opt, max_lr=0.05, total_steps=12)
    tsched = torch.optim.lr_scheduler.OneCycleLR(topt, max_lr=0.05, total_steps=12)
    train_scheduled(ps, tps, opt, topt, sched, tsched, 12)
    assert np.isfinite(ps[0].numpy()).all()


def train_scheduled(ps: list, tps: list, opt: Any, topt: Any, sched: Any, tsched: Any, steps: int) -> None:
    """Steps of both optimizers and schedulers: the trajectories match, and after the first steps no step
    compiles new kernels (scheduled hyperparameters are device scalars)."""
    compiled = []
    for i in range(steps):
        opt.zero_grad()
        topt.zero_grad()
        backward(ps, tps)
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
        assert_params_close(ps, tps, "float32", i)
        compiled.append(len(engine_realize._programs))
    assert compiled[2:] == [compiled[1]] * len(compiled[2:]), "a scheduled hyperparameter compiled new kernels"
