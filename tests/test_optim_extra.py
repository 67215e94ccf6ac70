"""Adadelta, Adamax, NAdam, RAdam and LBFGS against torch.optim: trajectories, state dicts, argument errors."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import fusegrad as fg
from tests.test_optim import (X, Y, assert_state_dict_round_trip, check_same_trajectory, fg_params, mlp_loss,
                              torch_params)

LR = {"Adadelta": 0.5, "Adamax": 0.01, "NAdam": 0.01, "RAdam": 0.01}
CASES = [
    ("Adadelta", {}),
    ("Adadelta", dict(rho=0.8, eps=1e-4, weight_decay=0.1)),
    ("Adadelta", dict(maximize=True)),
    ("Adamax", {}),
    ("Adamax", dict(betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)),
    ("Adamax", dict(maximize=True)),
    ("NAdam", {}),
    ("NAdam", dict(momentum_decay=0.01, weight_decay=0.1)),
    ("NAdam", dict(weight_decay=0.1, decoupled_weight_decay=True, betas=(0.8, 0.99))),
    ("NAdam", dict(maximize=True, eps=1e-6)),
    ("RAdam", {}),
    ("RAdam", dict(weight_decay=0.1)),
    ("RAdam", dict(weight_decay=0.1, decoupled_weight_decay=True)),
    ("RAdam", dict(betas=(0.7, 0.9), maximize=True)),  # beta2=0.9: rectification starts at step 6
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,options", CASES, ids=[f"{n}-{'-'.join(o) or 'default'}" for n, o in CASES])
def test_trajectory_matches_torch(name: str, options: dict[str, Any], dtype: str) -> None:
    ps, tps = fg_params(dtype), torch_params(dtype)
    opt = getattr(fg.optim, name)(ps, lr=LR[name], **options)
    topt = getattr(torch.optim, name)(tps, lr=LR[name], **options)
    check_same_trajectory(opt, topt, ps, tps, dtype, steps=12, sign=-1.0 if options.get("maximize") else 1.0)


@pytest.mark.parametrize("name", list(LR))
def test_defaults_match_torch(name: str) -> None:
    ours = getattr(fg.optim, name)(fg_params()).defaults
    theirs = getattr(torch.optim, name)(torch_params()).defaults
    for key, value in ours.items():
        assert theirs[key] == value, key


@pytest.mark.parametrize("name", list(LR))
def test_param_groups_and_changing_lr_match_torch(name: str) -> None:
    ps, tps = fg_params(), torch_params()
    opt = getattr(fg.optim, name)([dict(params=ps[:2], lr=LR[name] / 2), dict(params=ps[2:], weight_decay=0.1)],
                                  lr=LR[name])
    topt = getattr(torch.optim, name)([dict(params=tps[:2], lr=LR[name] / 2), dict(params=tps[2:],
                                                                                   weight_decay=0.1)], lr=LR[name])

    def decay(_: int) -> None:
        for group in (*opt.param_groups, *topt.param_groups):
            group["lr"] *= 0.9

    check_same_trajectory(opt, topt, ps, tps, "float32", steps=6, between=decay)


@pytest.mark.parametrize("name", list(LR))
def test_state_dict_round_trip(name: str) -> None:
    """4 steps, save (state as host arrays), load into a fresh optimizer: the next 4 steps are identical."""
    assert_state_dict_round_trip(name, LR[name], 4)


def test_nadam_state_dict_keeps_mu_product() -> None:
    ps = fg_params()
    opt = fg.optim.NAdam(ps)
    mlp_loss(ps).backward()
    opt.step()
    saved = opt.state_dict()
    beta1, decay = 0.9, 4e-3
    product = saved["state"][0]["mu_product"]
    assert product.shape == () and product.dtype == fg.float32
    assert float(product.item()) == pytest.approx(beta1 * (1 - 0.5 * 0.96 ** decay), rel=1e-6)
    assert "mu_product" not in saved["state"][1] and saved["param_groups"][0]["step"] == 1.0


INVALID = [
    ("Adadelta", dict(lr=-1.0)), ("Adadelta", dict(rho=1.5)), ("Adadelta", dict(eps=-1.0)),
    ("Adadelta", dict(weight_decay=-0.1)),
    ("Adamax", dict(lr=-1.0)), ("Adamax", dict(betas=(1.0, 0.9))), ("Adamax", dict(betas=(0.9, -0.1))),
    ("Adamax", dict(eps=-1.0)), ("Adamax", dict(weight_decay=-0.1)),
    ("NAdam", dict(lr=-1.0)), ("NAdam", dict(momentum_decay=-0.1)), ("NAdam", dict(betas=(0.9, 1.0))),
    ("RAdam", dict(lr=-1.0)), ("RAdam", dict(eps=-1.0)), ("RAdam", dict(betas=(-0.1, 0.9))),
    ("LBFGS", dict(lr=-1.0)),
]


@pytest.mark.parametrize("name,options", INVALID, ids=[f"{n}-{'-'.join(o)}" for n, o in INVALID])
def test_invalid_hyperparameters_raise_value_error(name: str, options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        getattr(torch.optim, name)(torch_params(), **options)
    with pytest.raises(ValueError):
        getattr(fg.optim, name)(fg_params(), **options)


# ---- LBFGS ----------------------------------------------------------------------------------------------------
# float32 cases iterate less: L-BFGS amplifies the last-bit differences of float32 losses and dot products
LBFGS_CASES = [
    ("float64", dict()),
    ("float64", dict(history_size=3, max_iter=6)),
    ("float64", dict(line_search_fn="strong_wolfe")),
    ("float64", dict(line_search_fn="strong_wolfe", history_size=4, max_iter=8, lr=0.5)),
    ("float64", dict(max_iter=3, max_eval=2, tolerance_change=1e-5)),
    ("float32", dict(max_iter=4)),
    ("float32", dict(line_search_fn="strong_wolfe", max_iter=4)),
]
LBFGS_TOL = {"float32": dict(rtol=1e-4, atol=1e-5), "float64": dict(rtol=1e-8, atol=1e-10)}


def lbfgs_run(options: dict[str, Any], dtype: str, steps: int) -> tuple[list[np.ndarray], list[np.ndarray],
                                                                          list[float], list[float]]:
    ps, tps = fg_params(dtype), torch_params(dtype)
    opt, topt = fg.optim.LBFGS(ps, **options), torch.optim.LBFGS(tps, **options)
    data = [torch.tensor(a.astype(dtype)) for a in (X, Y)]

    def closure() -> fg.Tensor:
        opt.zero_grad()
        loss = mlp_loss(ps)
        loss.backward()
        return loss

    def tclosure() -> torch.Tensor:
        topt.zero_grad()
        out = torch.tanh(data[0] @ tps[0].T + tps[1]) @ tps[2].T + tps[3]
        loss = ((out - data[1]) ** 2).mean()
        loss.backward()
        return loss

    losses, tlosses = [], []
    for _ in range(steps):
        losses.append(float(opt.step(closure)))
        tlosses.append(float(topt.step(tclosure).detach()))
    return [p.numpy() for p in ps], [p.detach().numpy() for p in tps], losses, tlosses


@pytest.mark.parametrize("dtype,options", LBFGS_CASES,
                         ids=["-".join([d] + [f"{k}={v}" for k, v in o.items()]) for d, o in LBFGS_CASES])
def test_lbfgs_matches_torch(dtype: str, options: dict[str, Any]) -> None:
    ours, theirs, losses, tlosses = lbfgs_run(options, dtype, steps=3)
    np.testing.assert_allclose(losses, tlosses, **LBFGS_TOL[dtype])
    for i, (a, b) in enumerate(zip(ours, theirs)):
        np.testing.assert_allclose(a, b, **LBFGS_TOL[dtype], err_msg=f"parameter {i}")
    assert losses[-1] < losses[0]


def test_lbfgs_state_and_errors() -> None:
    ps = fg_params("float64")
    opt = fg.optim.LBFGS(ps, history_size=2, max_iter=5)

    def closure() -> fg.Tensor:
        opt.zero_grad()
        loss = mlp_loss(ps)
        loss.backward()
        return loss

    opt.step(closure)
    state = opt.state_dict()
    assert state["state"][0]["n_iter"] == 5 and len(state["state"][0]["old_dirs"]) <= 2
    twin = fg_params("float64", init=[p.numpy() for p in ps])
    other = fg.optim.LBFGS(twin, history_size=2, max_iter=5)
    other.load_state_dict(state)

    def twin_closure() -> fg.Tensor:
        other.zero_grad()
        loss = mlp_loss(twin)
        loss.backward()
        return loss

    opt.step(closure)
    other.step(twin_closure)
    for p, q in zip(ps, twin):
        np.testing.assert_array_equal(p.numpy(), q.numpy())
    with pytest.raises(ValueError):
        fg.optim.LBFGS([dict(params=ps[:1]), dict(params=ps[1:])])
    with pytest.raises(RuntimeError):
        fg.optim.LBFGS(ps, line_search_fn="armijo")
    with pytest.raises(fg.JitError):
        fg.jit(lambda: opt.step(closure))()
    tps = torch_params()
    with pytest.raises(ValueError):
        torch.optim.LBFGS([dict(params=tps[:1]), dict(params=tps[1:])])
    assert fg.optim.LBFGS(ps).defaults == {k: v for k, v in torch.optim.LBFGS(tps).defaults.items()
                                           if k in fg.optim.LBFGS(ps).defaults}


@pytest.mark.parametrize("name", list(LR))
def test_jitted_step_matches_eager(name: str) -> None:
    """fg.jit carries every piece of state (NAdam's mu_product too): replays follow the eager trajectory."""
    x = fg.tensor(X.astype("float32"))
    y = fg.tensor(Y.astype("float32"))

    def run(jit: bool) -> list[np.ndarray]:
        fg.manual_seed(0)
        model = fg.nn.Sequential(fg.nn.Linear(3, 4), fg.nn.Tanh(), fg.nn.Linear(4, 2))
        opt = getattr(fg.optim, name)(model.parameters(), lr=LR[name])

        def step(x: fg.Tensor, y: fg.Tensor) -> fg.Tensor:
            opt.zero_grad()
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            opt.step()
            return loss

        fn = fg.jit(step) if jit else step
        for _ in range(5):
            fn(x, y)
        return [p.numpy() for p in model.parameters()]

    for eager, replayed in zip(run(False), run(True)):
        np.testing.assert_allclose(replayed, eager, rtol=1e-6, atol=1e-7)
