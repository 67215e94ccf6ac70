"""fg.amp.GradScaler against torch.amp.GradScaler("cpu") 2.13: the same scale sequence, growth tracker and
parameters over training steps that grow the scale and skip an optimizer step on injected inf/NaN
gradients; unscale_ before clipping; state dicts; torch's errors for misuse; and the work per step: the
unscaling lazy, one value read back per step, the scale read from one device buffer by jitted functions."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import fusegrad as fg
import fusegrad.nn.functional as FF
from fusegrad.runtime import registry
from tests.helpers import RNG


def _models():
    fm = fg.nn.Sequential(fg.nn.Linear(6, 8), fg.nn.Tanh(), fg.nn.Linear(8, 3))
    tm = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    tm.load_state_dict({k: torch.tensor(v.numpy()) for k, v in fm.state_dict().items()})
    return fm, tm


def _backward(lib, model, scaler, x, y, poison=None):
    logits = model(lib.tensor(x))
    loss = lib.nn.functional.cross_entropy(logits, lib.tensor(y))
    scaler.scale(loss).backward()
    if poison is not None:  # an overflowed gradient: one element of the first weight's
        grad = next(iter(model.parameters())).grad
        index = lib.zeros_like(grad)
        index[0, 0] = 1.0
        next(iter(model.parameters())).grad = lib.where(index > 0, lib.full_like(grad, poison), grad)
    return loss


@pytest.mark.parametrize("optimizer", ["SGD", "Adam"])
def test_training_matches_torch_scale_sequence_and_parameters(optimizer):
    fm, tm = _models()
    fopt = getattr(fg.optim, optimizer)(fm.parameters(), lr=0.05)
    topt = getattr(torch.optim, optimizer)(tm.parameters(), lr=0.05)
    kwargs = dict(init_scale=2.0 ** 10, growth_factor=2.0, backoff_factor=0.25, growth_interval=2)
    fs, ts = fg.amp.GradScaler("cpu", **kwargs), torch.amp.GradScaler("cpu", **kwargs)
    poisons = {3: math.inf, 6: -math.inf, 7: math.nan}
    for step in range(10):
        x, y = RNG.standard_normal((5, 6)).astype(np.float32), RNG.integers(0, 3, 5)
        before = [p.numpy().copy() for p in fm.parameters()]
        for lib, model, opt, scaler in ((fg, fm, fopt, fs), (torch, tm, topt, ts)):
            opt.zero_grad()
            _backward(lib, model, scaler, x, y, poisons.get(step))
            scaler.step(opt)
            scaler.update()
        assert fs.get_scale() == ts.get_scale(), step
        assert fs._get_growth_tracker() == ts._get_growth_tracker(), step
        for (name, p), tp, old in zip(fm.named_parameters(), tm.parameters(), before):
            np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-5, atol=1e-6, err_msg=f"{step} {name}")
            if step in poisons:  # the step was skipped: the parameters are as they were
                np.testing.assert_array_equal(p.numpy(), old)
    assert fs.get_scale() == 2.0 ** 10 * 2.0 ** 3 * 0.25 ** 3  # grown three times, backed off three times


def test_unscale_before_clipping_matches_torch():
    fm, tm = _models()
    fopt, topt = fg.optim.SGD(fm.parameters(), lr=0.1), torch.optim.SGD(tm.parameters(), lr=0.1)
    fs, ts = fg.amp.GradScaler("cpu"), torch.amp.GradScaler("cpu")
    for _ in range(3):
        x, y = RNG.standard_normal((5, 6)).astype(np.float32), RNG.integers(0, 3, 5)
        for lib, model, opt, scaler in ((fg, fm, fopt, fs), (torch, tm, topt, ts)):
            opt.zero_grad()
            _backward(lib, model, scaler, x, y)
            scaler.unscale_(opt)
            lib.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            scaler.step(opt)
            scaler.update()
        for p, tp in zip(fm.parameters(), tm.parameters()):
            np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert fs.state_dict() == ts.state_dict()


def test_unscale_is_lazy_and_a_step_reads_nothing_back(monkeypatch):
    fm, _ = _models()
    opt = fg.optim.SGD(fm.parameters(), lr=0.1)
    scaler = fg.amp.GradScaler("cpu")
    _backward(fg, fm, scaler, RNG.standard_normal((5, 6)).astype(np.float32), RNG.integers(0, 3, 5))
    with fg.profile() as prof:
        scaler.unscale_(opt)
    assert prof.kernels == []  # the check and the unscaled gradients are lazy: the step computes them
    reads = []
    item = fg.Tensor.item
    monkeypatch.setattr(fg.Tensor, "item", lambda self: reads.append(self) or item(self))
    scaler.step(opt)
    scaler.update()
    assert reads == []  # whether to skip and the next scale are decided on the device


def test_scaled_outputs_and_state_dict_round_trip():
    scaler = fg.amp.GradScaler("cpu", init_scale=8.0, growth_interval=3)
    a, b = fg.ones(2), fg.ones(3).half()
    assert scaler.scale(a).tolist() == [8.0, 8.0]
    pair = scaler.scale([a, (b,)])
    assert isinstance(pair, list) and isinstance(pair[1], tuple) and pair[1][0].dtype is fg.float16
    assert list(scaler.scale(iter([a])))[0].tolist() == [8.0, 8.0]
    with pytest.raises(ValueError):
        scaler.scale(3.0)
    scaler.update(new_scale=32.0)
    assert scaler.get_scale() == 32.0 and scaler.scale(a).tolist() == [32.0, 32.0]
    state = scaler.state_dict()
    assert state == {"scale": 32.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 3,
                     "_growth_tracker": 0}
    other = fg.amp.GradScaler("cpu")
    other.load_state_dict(state)
    assert other.state_dict() == state
    torch_scaler = torch.amp.GradScaler("cpu")
    torch_scaler.load_state_dict(state)
    assert torch_scaler.state_dict() == state
    scaler.set_growth_factor(4.0)
    scaler.set_backoff_factor(0.125)
    scaler.set_growth_interval(7)
    assert (scaler.get_growth_factor(), scaler.get_backoff_factor(), scaler.get_growth_interval()) == (4.0, 0.125, 7)
    with pytest.raises(RuntimeError):
        other.load_state_dict({})


def test_disabled_scaler_passes_through():
    fm, _ = _models()
    opt = fg.optim.SGD(fm.parameters(), lr=0.1)
    scaler = fg.amp.GradScaler("cpu", enabled=False)
    loss = fg.ones(())
    assert scaler.scale(loss) is loss and scaler.get_scale() == 1.0 and scaler.state_dict() == {}
    assert not scaler.is_enabled()
    _backward(fg, fm, scaler, RNG.standard_normal((5, 6)).astype(np.float32), RNG.integers(0, 3, 5))
    before = fm[0].weight.numpy().copy()
    scaler.step(opt)
    scaler.update()
    assert not np.array_equal(fm[0].weight.numpy(), before)


@pytest.mark.parametrize("lib", [torch, fg], ids=["torch", "fusegrad"])
def test_misuse_raises_as_torch(lib):
    amp = lib.amp
    with pytest.raises(AssertionError):
        amp.GradScaler("cpu", growth_factor=1.0)
    with pytest.raises(AssertionError):
        amp.GradScaler("cpu", backoff_factor=1.0)
    model = lib.nn.Linear(3, 1)
    opt = lib.optim.SGD(model.parameters(), lr=0.1)
    scaler = amp.GradScaler("cpu")
    with pytest.raises(AssertionError):  # nothing scaled yet
        scaler.step(opt)
    scaler.scale(model(lib.ones(2, 3)).sum()).backward()
    with pytest.raises(RuntimeError):
        scaler.step(opt, closure=lambda: None)
    scaler.unscale_(opt)
    with pytest.raises(RuntimeError):
        scaler.unscale_(opt)
    scaler.step(opt)
    with pytest.raises(RuntimeError):
        scaler.step(opt)
    with pytest.raises(RuntimeError):
        scaler.unscale_(opt)
    scaler.update()
    with pytest.raises(AssertionError):  # no step or unscale_ since the last update
        scaler.update()
    half = lib.nn.Linear(3, 1).half()
    half_opt = lib.optim.SGD(half.parameters(), lr=0.1)
    scaler.scale(half(lib.ones(2, 3).half()).sum()).backward()
    with pytest.raises(ValueError):
        scaler.unscale_(half_opt)


@pytest.mark.skipif("cuda" in registry.available(), reason="checks a machine without CUDA")
def test_cuda_scaler_without_cuda_warns_and_disables():
    for lib in (torch, fg):
        with pytest.warns(UserWarning):
            scaler = lib.amp.GradScaler("cuda")
        assert not scaler.is_enabled()
    with pytest.warns(FutureWarning), pytest.warns(UserWarning, match="not available"):
        assert not fg.cuda.amp.GradScaler().is_enabled()


def test_jitted_function_reads_each_new_scale():
    scaler = fg.amp.GradScaler("cpu", init_scale=4.0)
    x = fg.tensor([1.0, -2.0])

    @fg.jit
    def scaled(x):
        return scaler.scale(x) + 0.0

    first = scaled(x)  # creates the scale's buffer: captured again on the next call
    assert first.tolist() == [4.0, -8.0]
    for value in (4.0, 16.0, 0.5, 2.0 ** 20):
        scaler.update(new_scale=value)  # written into the scale's own buffer: the replays read it
        assert scaled(x).tolist() == [value, -2 * value]
    assert scaled.captures == 2 and scaled.replays == 3


def test_a_whole_scaled_step_under_jit_matches_eager_and_skips_on_the_device():
    """scale, backward, unscale_, clipping, step and update in one jitted function: replayed (the scale,
    its growth count and the skip live on the device), the same scales and parameters as the eager steps,
    overflowed steps skipped."""
    models = [_models()[0] for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    opts = [fg.optim.AdamW(m.parameters(), lr=0.05) for m in models]
    kwargs = dict(init_scale=2.0 ** 10, growth_factor=2.0, backoff_factor=0.25, growth_interval=2)
    scalers = [fg.amp.GradScaler("cpu", **kwargs) for _ in models]

    def step(model, opt, scaler, x, y, poison):
        opt.zero_grad()
        loss = fg.nn.functional.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        first = next(iter(model.parameters()))
        first.grad = first.grad + poison  # 0, or inf/nan in every element: an overflow
        scaler.unscale_(opt)
        fg.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(opt)
        scaler.update()
        return loss

    jitted = fg.jit(step)
    poisons = {4: math.inf, 7: math.nan}
    for i in range(10):
        x, y = fg.tensor(RNG.standard_normal((5, 6)).astype(np.float32)), fg.tensor(RNG.integers(0, 3, 5))
        poison = fg.tensor(poisons.get(i, 0.0))
        before = [p.numpy().copy() for p in models[1].parameters()]
        eager = step(models[0], opts[0], scalers[0], x, y, poison)
        replayed = jitted(models[1], opts[1], scalers[1], x, y, poison)
        np.testing.assert_allclose(replayed.item(), eager.item(), rtol=1e-5)
        assert scalers[1].get_scale() == scalers[0].get_scale(), i
        for p, q, old in zip(models[1].parameters(), models[0].parameters(), before):
            np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-5, atol=1e-6)
            if i in poisons:
                np.testing.assert_array_equal(p.numpy(), old)
    assert jitted.replays >= 7
    assert scalers[1].get_scale() == 2.0 ** 10 * 2.0 ** 4 * 0.25 ** 2  # grown four times, backed off twice
