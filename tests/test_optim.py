"""Optimizers against torch.optim: parameter trajectories, param groups, state dicts, kernel counts, errors.

The optimizer is the unit under test, so torch's parameters receive the gradients fusegrad computed
(copied into `.grad` each step); both then step and the parameters are compared after every step.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest
import torch

import fusegrad as fg
from fusegrad.engine import realize as engine_realize

SHAPES = [(4, 3), (4,), (2, 4), (2,)]
DATA_RNG = np.random.default_rng(1234)
INIT = [DATA_RNG.standard_normal(s) for s in SHAPES]
X = DATA_RNG.standard_normal((8, 3))
Y = DATA_RNG.standard_normal((8, 2))
# parameters are O(1): atol is the same relative tolerance applied to the tensor's scale
TOL = {"float32": dict(rtol=1e-5, atol=1e-6), "float64": dict(rtol=1e-10, atol=1e-12)}
LR = {"SGD": 0.1, "Adam": 0.01, "AdamW": 0.01, "RMSprop": 0.01, "Adagrad": 0.1}


def fg_params(dtype: str = "float32", init: list[np.ndarray] | None = None) -> list[fg.Tensor]:
    return [fg.tensor(a.astype(dtype), requires_grad=True) for a in (INIT if init is None else init)]


def torch_params(dtype: str = "float32") -> list[torch.Tensor]:
    return [torch.tensor(a.astype(dtype), requires_grad=True) for a in INIT]


def mlp_loss(ps: list[fg.Tensor], sign: float = 1.0) -> fg.Tensor:
    """A tiny tanh MLP regression on fixed data; sign=-1 turns it into a maximization objective."""
    x, y = fg.tensor(X.astype(ps[0].dtype.name)), fg.tensor(Y.astype(ps[0].dtype.name))
    out = (x @ ps[0].T + ps[1]).tanh() @ ps[2].T + ps[3]
    return ((out - y) ** 2).mean() * sign


def backward(ps: list[fg.Tensor], tps: list[torch.Tensor], sign: float = 1.0) -> None:
    """Fusegrad computes the gradients; torch's parameters receive copies."""
    mlp_loss(ps, sign).backward()
    for p, tp in zip(ps, tps):
        tp.grad = None if p.grad is None else torch.tensor(p.grad.numpy())


def assert_params_close(ps: list[fg.Tensor], tps: list[torch.Tensor], dtype: str, step: int) -> None:
    for i, (p, tp) in enumerate(zip(ps, tps)):
        np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), **TOL[dtype],
                                   err_msg=f"parameter {i} after step {step}")


def check_same_trajectory(opt: fg.optim.Optimizer, topt: torch.optim.Optimizer, ps: list[fg.Tensor],
                          tps: list[torch.Tensor],
             dtype: str, steps: int = 20, sign: float = 1.0,
             between: Callable[[int], None] | None = None) -> None:
    """Step both optimizers `steps` times on the MLP problem, comparing parameters after each step."""
    for i in range(steps):
        opt.zero_grad()
        topt.zero_grad()
        backward(ps, tps, sign)
        opt.step()
        topt.step()
        assert_params_close(ps, tps, dtype, i)
        if between is not None:
            between(i)


CASES = [
    ("SGD", {}),
    ("SGD", dict(momentum=0.9)),
    ("SGD", dict(momentum=0.9, dampening=0.5)),
    ("SGD", dict(momentum=0.9, nesterov=True)),
    ("SGD", dict(weight_decay=0.1)),
    ("SGD", dict(maximize=True)),
    ("SGD", dict(momentum=0.8, dampening=0.1, weight_decay=0.05, maximize=True)),
    ("SGD", dict(momentum=0.9, nesterov=True, weight_decay=0.1, maximize=True)),
    ("Adam", {}),
    ("Adam", dict(betas=(0.8, 0.99), eps=1e-6)),
    ("Adam", dict(weight_decay=0.1)),
    ("Adam", dict(amsgrad=True)),
    ("Adam", dict(maximize=True)),
    ("Adam", dict(betas=(0.5, 0.9), weight_decay=0.05, amsgrad=True, maximize=True)),
    ("AdamW", {}),
    ("AdamW", dict(weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict(betas=(0.7, 0.95), eps=1e-6, maximize=True)),
    ("RMSprop", {}),
    ("RMSprop", dict(alpha=0.9, eps=1e-6)),
    ("RMSprop", dict(momentum=0.5)),
    ("RMSprop", dict(centered=True)),
    ("RMSprop", dict(centered=True, momentum=0.7, weight_decay=0.1, maximize=True)),
    ("Adagrad", {}),
    ("Adagrad", dict(lr_decay=0.05)),
    ("Adagrad", dict(weight_decay=0.1, initial_accumulator_value=0.5)),
    ("Adagrad", dict(eps=1e-3, lr_decay=0.01, maximize=True)),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,options", CASES, ids=[f"{n}-{'-'.join(o) or 'default'}" for n, o in CASES])
def test_trajectory_matches_torch(name: str, options: dict[str, Any], dtype: str) -> None:
    ps, tps = fg_params(dtype), torch_params(dtype)
    opt = getattr(fg.optim, name)(ps, lr=LR[name], **options)
    topt = getattr(torch.optim, name)(tps, lr=LR[name], **options)
    # maximizing -loss walks the same well-behaved path as minimizing loss
    check_same_trajectory(opt, topt, ps, tps, dtype, sign=-1.0 if options.get("maximize") else 1.0)


GROUP_CASES = [
    ("SGD", dict(momentum=0.9), [dict(lr=0.05, weight_decay=0.1, nesterov=True), dict(momentum=0.0)]),
    ("Adam", {}, [dict(lr=0.02, weight_decay=0.1, amsgrad=True), dict(betas=(0.8, 0.9))]),
    ("RMSprop", dict(momentum=0.3), [dict(centered=True), dict(lr=0.003, momentum=0.0, weight_decay=0.2)]),
    ("Adagrad", {}, [dict(lr_decay=0.1), dict(lr=0.3, weight_decay=0.1)]),
]


@pytest.mark.parametrize("name,defaults,groups", GROUP_CASES, ids=[c[0] for c in GROUP_CASES])
def test_param_groups_with_own_options(name: str, defaults: dict[str, Any], groups: list[dict[str, Any]]) -> None:
    ps, tps = fg_params(), torch_params()
    opt = getattr(fg.optim, name)([dict(params=ps[:2], **groups[0]), dict(params=ps[2:], **groups[1])],
                                  lr=LR[name], **defaults)
    topt = getattr(torch.optim, name)([dict(params=tps[:2], **groups[0]), dict(params=tps[2:], **groups[1])],
                                      lr=LR[name], **defaults)
    assert [g.get("lr") for g in opt.param_groups] == [g["lr"] for g in topt.param_groups]
    check_same_trajectory(opt, topt, ps, tps, "float32")


def test_many_parameters_span_several_flat_chunks() -> None:
    init = [DATA_RNG.standard_normal((3,)) for _ in range(fg.optim.optimizer.CHUNK + 3)]
    ps = fg_params(init=init)
    tps = [torch.tensor(a.astype("float32"), requires_grad=True) for a in init]
    opt, topt = fg.optim.SGD(ps, lr=0.1, momentum=0.9), torch.optim.SGD(tps, lr=0.1, momentum=0.9)
    for i in range(3):
        for p, tp in zip(ps, tps):
            grad = DATA_RNG.standard_normal(3).astype("float32")
            p.grad, tp.grad = fg.tensor(grad), torch.tensor(grad)
        opt.step()
        topt.step()
        assert_params_close(ps, tps, "float32", i)


@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_changing_hyperparameters_matches_torch_without_new_kernels(name: str) -> None:
    """lr (and momentum / beta1, which OneCycleLR cycles) live in device scalars: no recompiles."""
    ps, tps = fg_params(), torch_params()
    options = dict(momentum=0.9) if name == "SGD" else {}
    opt = getattr(fg.optim, name)(ps, lr=LR[name], **options)
    topt = getattr(torch.optim, name)(tps, lr=LR[name], **options)
    compiled: list[int] = []

    def change(i: int) -> None:
        for group in (*opt.param_groups, *topt.param_groups):
            group["lr"] *= 0.8
            if name == "SGD":
                group["momentum"] = 0.9 - 0.02 * i
            else:
                group["betas"] = (0.9 - 0.02 * i, group["betas"][1])
        compiled.append(len(engine_realize._programs))

    check_same_trajectory(opt, topt, ps, tps, "float32", steps=8, between=change)
    assert compiled[1:] == [compiled[1]] * len(compiled[1:]), "a changed hyperparameter compiled new kernels"


@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_parameter_without_grad_is_skipped(name: str) -> None:
    ps, tps = fg_params(), torch_params()
    unused = fg.tensor(np.ones((4, 3), np.float32), requires_grad=True)
    t_unused = torch.ones((4, 3), requires_grad=True)
    opt = getattr(fg.optim, name)([*ps, unused], lr=LR[name], weight_decay=0.1)
    topt = getattr(torch.optim, name)([*tps, t_unused], lr=LR[name], weight_decay=0.1)
    check_same_trajectory(opt, topt, ps, tps, "float32", steps=3)
    assert unused.grad is None
    np.testing.assert_array_equal(unused.numpy(), np.ones((4, 3), np.float32))
    assert id(unused) not in opt.state


def test_zero_grad() -> None:
    ps = fg_params()
    opt = fg.optim.SGD(ps, lr=0.1)
    mlp_loss(ps).backward()
    opt.zero_grad(set_to_none=False)
    for p in ps:
        assert p.grad is not None and p.grad.shape == p.shape
        np.testing.assert_array_equal(p.grad.numpy(), np.zeros(p.shape, np.float32))
    opt.zero_grad()
    assert all(p.grad is None for p in ps)
    opt.zero_grad(set_to_none=False)  # grads that are None stay None, like torch
    assert all(p.grad is None for p in ps)


def test_step_closure_returns_the_loss() -> None:
    ps, tps = fg_params(), torch_params()
    opt, topt = fg.optim.SGD(ps, lr=0.1), torch.optim.SGD(tps, lr=0.1)

    def closure() -> fg.Tensor:
        opt.zero_grad()
        loss = mlp_loss(ps)
        loss.backward()
        return loss

    loss = opt.step(closure)
    backward(fg_params(), tps)  # the closure saw the initial parameters too
    topt.step()
    assert isinstance(loss, fg.Tensor) and loss.requires_grad
    assert_params_close(ps, tps, "float32", 0)


ROUND_TRIP = [
    ("SGD", dict(momentum=0.9, nesterov=True)),
    ("Adam", dict(amsgrad=True)),
    ("AdamW", {}),
    ("RMSprop", dict(momentum=0.5, centered=True)),
    ("Adagrad", dict(lr_decay=0.01, initial_accumulator_value=0.1)),
]


@pytest.mark.parametrize("name,options", ROUND_TRIP, ids=[c[0] for c in ROUND_TRIP])
def test_state_dict_round_trip(name: str, options: dict[str, Any]) -> None:
    """5 steps, save, load into a fresh optimizer over fresh parameters: the next 5 steps are identical."""
    assert_state_dict_round_trip(name, LR[name], 5, **options)


def assert_state_dict_round_trip(name: str, lr: float, steps: int, **options: Any) -> None:
    """`steps` steps of optimizer `name`, save (state as host arrays), load into a fresh optimizer over
    fresh parameters: the next `steps` steps are identical."""
    ps = fg_params()
    opt = getattr(fg.optim, name)(ps, lr=lr, **options)

    def train(params: list[fg.Tensor], optimizer: fg.optim.Optimizer, steps: int) -> None:
        for _ in range(steps):
            optimizer.zero_grad()
            mlp_loss(params).backward()
            optimizer.step()

    train(ps, opt, steps)
    saved = opt.state_dict()
    # what a checkpoint holds: host arrays and plain numbers
    saved["state"] = {k: {n: v.numpy() for n, v in st.items()} for k, st in saved["state"].items()}
    fresh_ps = fg_params(init=[p.numpy() for p in ps])
    fresh = getattr(fg.optim, name)(fresh_ps, lr=123.0)
    fresh.load_state_dict(saved)
    assert fresh.param_groups[0]["lr"] == lr
    train(ps, opt, steps)
    train(fresh_ps, fresh, steps)
    for p, q in zip(ps, fresh_ps):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


def test_state_dict_layout_and_mismatch() -> None:
    ps = fg_params()
    opt = fg.optim.Adam([dict(params=ps[:1]), dict(params=ps[1:], lr=0.5)])
    opt.zero_grad()
    mlp_loss(ps).backward()
    opt.step()
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0], [1, 2, 3]]
    assert [g["lr"] for g in sd["param_groups"]] == [1e-3, 0.5]
    assert sorted(sd["state"]) == [0, 1, 2, 3]
    assert set(sd["state"][0]) == {"exp_avg", "exp_avg_sq"} and sd["state"][0]["exp_avg"].shape == (4, 3)
    with pytest.raises(fg.Error):
        fg.optim.Adam(fg_params()).load_state_dict(sd)


@pytest.mark.parametrize("name,options,limit", [("SGD", dict(momentum=0.9), 8), ("Adam", {}, 8), ("AdamW", {}, 8),
                                                ("RMSprop", dict(centered=True), 8), ("Adagrad", {}, 8)])
def test_one_step_runs_a_handful_of_kernels(name: str, options: dict[str, Any], limit: int) -> None:
    fg.manual_seed(0)
    model = fg.nn.Sequential(fg.nn.Linear(3, 8), fg.nn.Tanh(), fg.nn.Linear(8, 8), fg.nn.Tanh(), fg.nn.Linear(8, 2))
    params = list(model.parameters())
    assert len(params) == 6
    opt = getattr(fg.optim, name)(params, lr=0.01, **options)
    for _ in range(2):  # the second step is the steady state (state buffers exist)
        opt.zero_grad()
        ((model(fg.tensor(X.astype("float32"))) - fg.tensor(Y.astype("float32"))) ** 2).mean().backward()
        fg.realize(*[p.grad for p in params])
        with fg.profile() as prof:
            opt.step()
    assert 1 <= len(prof.kernels) <= limit, [k.name for k in prof.kernels]


def test_plain_sgd_step_is_one_kernel_and_keeps_no_step_count() -> None:
    """Only momentum reads SGD's step count: without it the step is the update alone (the counter
    was a kernel of its own), and a momentum turned on later takes the gradient as its first buffer,
    like torch."""
    fg.manual_seed(0)
    model = fg.nn.Sequential(fg.nn.Linear(3, 8), fg.nn.Tanh(), fg.nn.Linear(8, 2))
    twin = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    with torch.no_grad():
        for ours, theirs in zip(model.parameters(), twin.parameters()):
            theirs.copy_(torch.tensor(ours.numpy()))
    opt = fg.optim.SGD(model.parameters(), lr=0.1)
    topt = torch.optim.SGD(twin.parameters(), lr=0.1)
    x, y = X.astype("float32"), Y.astype("float32")
    for i in range(4):
        if i == 2:  # momentum from the third step on
            opt.param_groups[0]["momentum"] = topt.param_groups[0]["momentum"] = 0.9
        opt.zero_grad()
        ((model(fg.tensor(x)) - fg.tensor(y)) ** 2).mean().backward()
        fg.realize(*[p.grad for p in model.parameters()])
        with fg.profile() as prof:
            opt.step()
        topt.zero_grad()
        ((twin(torch.tensor(x)) - torch.tensor(y)) ** 2).mean().backward()
        topt.step()
        if i < 2:
            assert len(prof.kernels) == 1 and "_step" not in opt.param_groups[0]
    for ours, theirs in zip(model.parameters(), twin.parameters()):
        np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-5, atol=1e-6)


INVALID = [
    ("SGD", dict(lr=-0.1)),
    ("SGD", dict(momentum=-0.5)),
    ("SGD", dict(weight_decay=-1.0)),
    ("SGD", dict(nesterov=True)),
    ("SGD", dict(nesterov=True, momentum=0.9, dampening=0.1)),
    ("Adam", dict(lr=-1e-3)),
    ("Adam", dict(eps=-1e-8)),
    ("Adam", dict(betas=(1.0, 0.999))),
    ("Adam", dict(betas=(0.9, -0.1))),
    ("Adam", dict(weight_decay=-0.1)),
    ("AdamW", dict(betas=(0.9, 1.5))),
    ("RMSprop", dict(lr=-0.1)),
    ("RMSprop", dict(alpha=-0.1)),
    ("RMSprop", dict(eps=-1.0)),
    ("RMSprop", dict(momentum=-0.1)),
    ("RMSprop", dict(weight_decay=-0.1)),
    ("Adagrad", dict(lr=-0.1)),
    ("Adagrad", dict(lr_decay=-0.1)),
    ("Adagrad", dict(weight_decay=-0.1)),
    ("Adagrad", dict(initial_accumulator_value=-0.1)),
    ("Adagrad", dict(eps=-1.0)),
]


@pytest.mark.parametrize("name,options", INVALID, ids=[f"{n}-{'-'.join(o)}" for n, o in INVALID])
def test_invalid_hyperparameters_raise_value_error(name: str, options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        getattr(torch.optim, name)(torch_params(), **options)  # the oracle agrees the value is invalid
    with pytest.raises(ValueError):
        getattr(fg.optim, name)(fg_params(), **options)


@pytest.mark.parametrize("name", list(LR))
def test_parameter_errors(name: str) -> None:
    cls = getattr(fg.optim, name)
    with pytest.raises(fg.DTypeError, match="int32"):
        cls([fg.tensor([1, 2, 3], dtype=fg.int32)])
    ps = fg_params()
    with pytest.raises(ValueError, match="more than one parameter group"):
        cls([dict(params=ps[:2]), dict(params=ps[1:])])
    with pytest.raises(ValueError):
        cls([])
    with pytest.raises(TypeError):
        cls([np.ones(3)])
