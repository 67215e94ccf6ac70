"""Optimizer.load_state_dict checks everything before changing anything: a corrupt state dict raises
StateDictError (a ValueError) naming what is wrong, the optimizer stays exactly as it was, and a step
still works afterwards. Good state dicts still round-trip."""
from __future__ import annotations

import copy
from typing import Any, Callable

import numpy as np
import pytest
import torch

import fusegrad as fg
from tests.test_optim import LR, assert_state_dict_round_trip, fg_params, mlp_loss


@pytest.mark.parametrize("name,options", [("SGD", dict(momentum=0.9)), ("Adam", {}), ("AdamW", {}),
                                          ("RMSprop", dict(momentum=0.5)), ("NAdam", {})],
                         ids=["sgd_momentum", "adam", "adamw", "rmsprop_momentum", "nadam_group_scalar"])
def test_good_round_trip(name: str, options: dict[str, Any]) -> None:
    assert_state_dict_round_trip(name, LR.get(name, 0.01), 2, **options)


def test_group_scalar_must_be_one_number() -> None:
    """NAdam keeps its mu_product beside the first parameter's state: one number, not a tensor like it."""
    ps = fg_params()
    opt = fg.optim.NAdam(ps, lr=0.01)
    opt.zero_grad()
    mlp_loss(ps).backward()
    opt.step()
    bad = _host(opt.state_dict())
    bad["state"][0]["mu_product"] = np.ones((4, 3), np.float32)
    before = _snapshot(opt)
    with pytest.raises(ValueError, match="key 'mu_product': expected one number"):
        opt.load_state_dict(bad)
    assert _snapshot(opt) == before


def _trained(name: str = "Adam") -> tuple[list[fg.Tensor], fg.optim.Optimizer]:
    ps = fg_params()
    opt = getattr(fg.optim, name)([dict(params=ps[:1]), dict(params=ps[1:], lr=0.5)], lr=0.01)
    opt.zero_grad()
    mlp_loss(ps).backward()
    opt.step()
    return ps, opt


def _host(sd: dict[str, Any]) -> dict[str, Any]:
    """The state dict as a checkpoint holds it: host arrays and plain values."""
    sd = dict(sd)
    sd["state"] = {k: {n: v.numpy() for n, v in st.items()} for k, st in sd["state"].items()}
    return copy.deepcopy(sd)


def _snapshot(opt: fg.optim.Optimizer) -> Any:
    """Everything load_state_dict may change, as plain values."""
    groups = [{k: (v.item() if isinstance(v, fg.Tensor) else [id(p) for p in v] if k == "params" else v)
               for k, v in g.items()} for g in opt.param_groups]
    state = {pid: {k: v.numpy().tolist() for k, v in st.items()} for pid, st in opt.state.items()}
    return groups, state


def _set(path: tuple, value: Any) -> Callable[[dict[str, Any]], None]:
    def corrupt(sd: dict[str, Any]) -> None:
        target = sd
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return corrupt


def _pop(path: tuple) -> Callable[[dict[str, Any]], None]:
    def corrupt(sd: dict[str, Any]) -> None:
        target = sd
        for key in path[:-1]:
            target = target[key]
        target.pop(path[-1])
    return corrupt


# (id, corruption, a fragment the message must hold); parameter 0 is (4, 3), parameter 1 is (4,)
CORRUPTIONS: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("missing_state", _pop(("state",)), "no 'state' entry"),
    ("missing_groups", _pop(("param_groups",)), "no 'param_groups' entry"),
    ("extra_group", lambda sd: sd["param_groups"].append(dict(sd["param_groups"][0])), "number of parameter groups"),
    ("fewer_params", _pop(("param_groups", 1, "params", 2)), "parameter group 1 has 2 parameters"),
    ("state_shape", _set(("state", 2, "exp_avg"), np.zeros(5, np.float32)), "parameter 2, key 'exp_avg'"),
    ("state_transposed", _set(("state", 0, "exp_avg_sq"), np.zeros((3, 4), np.float32)), "expected shape (4, 3)"),
    ("state_int_dtype", _set(("state", 1, "exp_avg"), np.zeros(4, np.int64)), "floating point dtype"),
    ("state_not_numbers", _set(("state", 1, "exp_avg"), "zeros"), "expected a tensor or numbers"),
    ("state_index", _set(("state", 9), {}), "parameter index 9"),
    ("state_entry_type", _set(("state", 0), 5), "state of parameter 0 must be a dict"),
    ("step_not_scalar", _set(("state", 0, "step"), np.zeros(3, np.float32)), "expected one number"),
    ("lr_string", _set(("param_groups", 1, "lr"), "fast"), "group 1, hyperparameter 'lr'"),
    ("betas_length", _set(("param_groups", 0, "betas"), (0.9,)), "hyperparameter 'betas': expected a pair"),
    ("betas_strings", _set(("param_groups", 0, "betas"), ("a", 0.9)), "'betas'"),
    ("amsgrad_int", _set(("param_groups", 0, "amsgrad"), 1), "'amsgrad': expected a bool"),
    ("missing_eps", _pop(("param_groups", 1, "eps")), "group 1 lacks the hyperparameter 'eps'"),
    ("group_step", _set(("param_groups", 0, "step"), "one"), "'step' must be a number"),
]


@pytest.mark.parametrize("corrupt,fragment", [c[1:] for c in CORRUPTIONS], ids=[c[0] for c in CORRUPTIONS])
def test_corrupt_state_raises_and_changes_nothing(corrupt: Callable, fragment: str) -> None:
    ps, opt = _trained()
    bad = _host(opt.state_dict())
    bad["param_groups"][1]["lr"] = 0.25  # a valid change listed before the bad one: it must not land either
    corrupt(bad)
    before = _snapshot(opt)
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(")", r"\)")) as err:
        opt.load_state_dict(bad)
    assert isinstance(err.value, fg.errors.StateDictError)
    assert _snapshot(opt) == before
    opt.zero_grad()
    mlp_loss(ps).backward()
    opt.step()
    assert all(np.isfinite(p.numpy()).all() for p in ps)


def test_missing_key_is_also_a_key_error() -> None:
    _, opt = _trained()
    with pytest.raises(KeyError, match="no 'state' entry"):
        opt.load_state_dict({"param_groups": []})


def test_tensor_lr_is_taken_as_a_number() -> None:
    ps, opt = _trained("SGD")
    sd = _host(opt.state_dict())
    sd["param_groups"][0]["lr"] = fg.tensor(0.05)
    opt.load_state_dict(sd)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05) and isinstance(opt.param_groups[0]["lr"], float)
    opt.zero_grad()
    mlp_loss(ps).backward()
    opt.step()


@pytest.mark.parametrize("name,options", [("Adam", {}), ("SGD", dict(momentum=0.9))], ids=["adam", "sgd_momentum"])
def test_torch_checkpoint_continues_like_torch(name: str, options: dict[str, Any]) -> None:
    """torch's state dict (a 'step' per parameter, no group step) loads with its step count."""
    theirs = [torch.nn.Parameter(torch.tensor(a)) for a in fg_params_init()]
    topt = getattr(torch.optim, name)(theirs, lr=0.05, **options)
    for _ in range(3):
        topt.zero_grad()
        _torch_loss(theirs).backward()
        topt.step()
    sd = topt.state_dict()
    sd["state"] = {k: {n: v.numpy() for n, v in st.items()} for k, st in sd["state"].items()}
    ours = [fg.tensor(p.detach().numpy(), requires_grad=True) for p in theirs]
    opt = getattr(fg.optim, name)(ours, lr=1.0, **options)
    opt.load_state_dict(sd)
    opt.zero_grad()
    _torch_loss(ours).backward()
    opt.step()
    topt.zero_grad()
    _torch_loss(theirs).backward()
    topt.step()
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-5, atol=1e-6)


def fg_params_init() -> list[np.ndarray]:
    return [p.numpy() for p in fg_params()]


def _torch_loss(ps: list[Any]) -> Any:
    """The same small objective for torch and fusegrad parameters."""
    return sum(((p * p).sin() * (i + 1)).sum() for i, p in enumerate(ps))


def _loss_with_gradients(opt: fg.optim.Optimizer, ps: list[fg.Tensor]) -> fg.Tensor:
    opt.zero_grad()
    loss = mlp_loss(ps)
    loss.backward()
    return loss


def test_lbfgs_checks_before_loading() -> None:
    ps = fg_params()
    opt = fg.optim.LBFGS(ps, lr=0.5, max_iter=2)
    opt.step(lambda: _loss_with_gradients(opt, ps))
    good = opt.state_dict()
    before = (dict(opt.param_groups[0]), {k: dict(v) for k, v in opt.state.items()})
    bad = dict(good, state={0: dict(good["state"][0], d=fg.zeros(3))})
    with pytest.raises(ValueError, match="key 'd': expected floating vectors of shape"):
        opt.load_state_dict(bad)
    with pytest.raises(ValueError, match="has 3 parameters in the state dict, 4"):
        opt.load_state_dict(dict(good, param_groups=[dict(good["param_groups"][0], params=[0, 1, 2])]))
    assert (dict(opt.param_groups[0]), {k: dict(v) for k, v in opt.state.items()}) == before
    opt.load_state_dict(good)
    opt.step(lambda: _loss_with_gradients(opt, ps))
