"""fg.jit results stay valid after later calls (as in JAX), a loop that drops its results allocates
nothing per replay, and shape buckets serve many batch sizes with a few captures.

Values are compared against PyTorch running the same functions and training steps."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest
import torch

import fusegrad as fg
import fusegrad.nn.functional as F
from fusegrad import nn
from tests.helpers import training_step

RNG = np.random.default_rng(11)


def mlp(seed: int = 0) -> tuple[nn.Module, torch.nn.Module]:
    """A small MLP and the same network in torch, with equal weights."""
    fg.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 4))
    twin = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    with torch.no_grad():
        for p, q in zip(model.parameters(), twin.parameters()):
            q.copy_(torch.from_numpy(p.numpy()))
    return model, twin


def batch(n: int) -> tuple[np.ndarray, np.ndarray]:
    return RNG.standard_normal((n, 6)).astype(np.float32), RNG.integers(0, 4, n)


def torch_step(twin: torch.nn.Module, opt: torch.optim.Optimizer, x: np.ndarray, y: np.ndarray) -> float:
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(twin(torch.from_numpy(x)), torch.from_numpy(y))
    loss.backward()
    opt.step()
    return loss.item()


def assert_same_parameters(model: nn.Module, twin: torch.nn.Module) -> None:
    for p, q in zip(model.parameters(), twin.parameters()):
        np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=1e-4, atol=1e-5)


# ---- result lifetime ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_results_of_ten_calls_all_stay_correct(dtype: str) -> None:
    f = fg.jit(lambda x, w: (x @ w, (x * 2).sum(1), (x + 1).T))
    w = RNG.standard_normal((5, 3)).astype(dtype)
    inputs = [RNG.standard_normal((4, 5)).astype(dtype) for _ in range(10)]
    kept = [f(fg.tensor(x), fg.tensor(w)) for x in inputs]
    pending = [a * 10 for a, _, _ in kept]  # lazy: reads each result's memory only when realized
    assert f.replays == 9
    tw = torch.from_numpy(w)
    for x, (a, b, c), p in zip(inputs, kept, pending):
        tx = torch.from_numpy(x)
        np.testing.assert_allclose(a.numpy(), (tx @ tw).numpy(), rtol=1e-5)
        np.testing.assert_allclose(b.numpy(), (tx * 2).sum(1).numpy(), rtol=1e-5)
        np.testing.assert_array_equal(c.numpy(), (tx + 1).T.numpy())
        np.testing.assert_allclose(p.numpy(), (tx @ tw).numpy() * 10, rtol=1e-5)


def test_kept_results_move_where_replays_keep_their_pointers(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a device whose replays bake pointers in (CUDA graphs), results a loop keeps are copied out of
    the output pools, so the replays cycle through a few pointer tables instead of a new one per call."""
    from fusegrad.runtime import registry
    from fusegrad.runtime.cpu import CPUSequence
    device = registry.get("cpu")
    monkeypatch.setattr(type(device), "sequence_keeps_pointers", True)
    tables: list[tuple[int, ...]] = []
    run = CPUSequence.run
    monkeypatch.setattr(CPUSequence, "run", lambda self, slots: (tables.append(tuple(slots)), run(self, slots))[1])
    calls = fg.zeros((), device="cpu")

    @fg.jit
    def f(x: fg.Tensor, w: fg.Tensor) -> tuple[fg.Tensor, fg.Tensor]:
        calls.add_(1)  # carried state: each call's results differ, the input buffers stay the same
        return (x @ w).relu() * calls, x.sum(0) + calls

    x, w = RNG.standard_normal((4, 5)).astype(np.float32), RNG.standard_normal((5, 3)).astype(np.float32)
    tx, tw = fg.tensor(x, device="cpu"), fg.tensor(w, device="cpu")
    kept = [f(tx, tw) for _ in range(12)]
    pending = [a * 10 for a, _ in kept]
    assert f.replays == 11
    assert len(set(tables)) <= 6 < len(tables)  # two state parities by three pool buffers; else one per call
    for n, ((a, b), p) in enumerate(zip(kept, pending), 1):
        expected = np.maximum(x @ w, 0) * n
        np.testing.assert_allclose(a.numpy(), expected, rtol=1e-5)
        np.testing.assert_allclose(b.numpy(), x.sum(0) + n, rtol=1e-5)
        np.testing.assert_allclose(p.numpy(), expected * 10, rtol=1e-5)


def test_a_kept_result_passed_back_in_is_read_where_it_moved(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where replays keep their pointers, the pool buffer a replay writes may hold a kept result that is
    also this call's argument: the result moves first, and the replay reads it where it moved (read in
    place, a reversal would read values the replay had already overwritten)."""
    from fusegrad.runtime import registry
    monkeypatch.setattr(type(registry.get("cpu")), "sequence_keeps_pointers", True)
    f = fg.jit(lambda x: x.flip(0) * 2)
    x = RNG.standard_normal(64).astype(np.float32)
    kept = [f(fg.tensor(x, device="cpu"))]
    for _ in range(4):
        kept.append(f(kept[-3] if len(kept) >= 3 else fg.tensor(x, device="cpu")))
    want = [x[::-1] * 2] * 3
    want += [want[-3][::-1] * 2, want[-2][::-1] * 2]
    for got, expected in zip(kept, want):
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)


def test_arguments_die_with_the_callers_last_reference() -> None:
    """No reference cycle holds a call's argument tensors (or their memory) until the cyclic collector runs."""
    import gc
    import weakref
    f = fg.jit(lambda xs: [x * 2 for x in xs])
    f([fg.ones(4), fg.ones(4)])  # the capture: its buffers stay with the replay
    gc.disable()
    try:
        for _ in range(3):
            xs = [fg.tensor(RNG.standard_normal(4).astype(np.float32)).realize() for _ in range(2)]
            refs = [weakref.ref(x._node.buffer) for x in xs]
            out = f(xs)
            del xs
            assert all(r() is None for r in refs)
            assert out[0].shape == (4,)
    finally:
        gc.enable()


def test_kept_losses_of_a_training_loop_match_torch() -> None:
    model, twin = mlp()
    step = fg.jit(training_step(model, fg.optim.SGD(model.parameters(), lr=0.1)))
    topt = torch.optim.SGD(twin.parameters(), lr=0.1)
    batches = [batch(8) for _ in range(10)]
    losses = [step(fg.tensor(x), fg.tensor(y)) for x, y in batches]  # all kept, read at the end
    expected = [torch_step(twin, topt, x, y) for x, y in batches]
    np.testing.assert_allclose([loss.item() for loss in losses], expected, rtol=1e-5)
    assert_same_parameters(model, twin)


def test_a_loop_that_drops_its_results_allocates_nothing_after_warm_up() -> None:
    model, _ = mlp()
    opt = fg.optim.Adam(model.parameters(), lr=1e-3)

    @fg.jit
    def step(x: fg.Tensor, y: fg.Tensor) -> tuple[fg.Tensor, fg.Tensor]:
        opt.zero_grad()
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        opt.step()
        return loss, logits.argmax(1)

    data = [(fg.tensor(x), fg.tensor(y)) for x, y in (batch(16) for _ in range(4))]
    for i in range(5):  # warm-up: captures, optimizer state, the output pools fill
        loss, predicted = step(*data[i % 4])
    before = fg.memory_stats()
    memory = set()
    for i in range(200):
        loss, predicted = step(*data[i % 4])
        memory.add(loss._node.buffer.base.address)
    after = fg.memory_stats()
    assert after["allocations"] == before["allocations"] and after["current_bytes"] == before["current_bytes"]
    assert len(memory) <= 2  # the previous loss is still bound during a call: two buffers alternate
    assert step.replays >= 200 and np.isfinite(loss.item()) and predicted.shape == (16,)


def test_view_arguments_are_read_anew_on_every_replay() -> None:
    f = fg.jit(lambda x: x * 2)
    for i in range(3):
        base = RNG.standard_normal((3, 4)).astype(np.float32)
        t = fg.tensor(base)
        np.testing.assert_array_equal(f(t[1:]).numpy(), base[1:] * 2)
        np.testing.assert_array_equal(f(t.T).numpy(), base.T * 2)
    assert f.replays == 4


# ---- shape buckets ------------------------------------------------------------------------------
def test_buckets_serve_every_batch_size_with_a_few_captures() -> None:
    model, twin = mlp()
    f = fg.jit(lambda x: model(x).softmax(-1), buckets=(4, 8, 16))
    for n in [1, 3, 4, 5, 8, 11, 16, 17, 20, 2, 13, 32]:
        x, _ = batch(n)
        out = f(fg.tensor(x))
        assert out.shape == (n, 4)
        np.testing.assert_allclose(out.numpy(), twin(torch.from_numpy(x)).softmax(-1).detach().numpy(),
                                   rtol=1e-5, atol=1e-6)
    assert len(f.memory_plan()) == 4  # buckets 4, 8, 16 and 32 (two of the largest)
    assert f.replays == 12 - f.captures and f.captures == 4


def test_bucketed_masked_mean_training_matches_torch() -> None:
    model, twin = mlp(seed=3)
    opt, topt = fg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), \
        torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)

    @fg.jit(buckets=True)
    def step(x: fg.Tensor, y: fg.Tensor, valid: fg.Tensor) -> fg.Tensor:
        opt.zero_grad()
        weight = valid.float()
        loss = (F.cross_entropy(model(x), y, reduction="none") * weight).sum() / weight.sum()
        loss.backward()
        opt.step()
        return loss

    for n in [5, 7, 3, 8, 6, 2, 9, 5, 7, 6]:
        x, y = batch(n)
        np.testing.assert_allclose(step(fg.tensor(x), fg.tensor(y)).item(), torch_step(twin, topt, x, y), rtol=1e-5)
    assert_same_parameters(model, twin)
    assert len(step.memory_plan()) == 4  # buckets 2, 4, 8 and 16


def test_bucket_sizes() -> None:
    from fusegrad.jit_buckets import Buckets
    pow2, listed = Buckets(abs, True, 0), Buckets(abs, (3, 10), 0)
    assert [pow2.size_for(n) for n in (1, 2, 3, 5, 64, 65)] == [1, 2, 4, 8, 64, 128]
    assert [listed.size_for(n) for n in (1, 3, 4, 10, 11, 25)] == [3, 3, 10, 10, 20, 30]


def test_buckets_pad_along_batch_dim_and_keep_other_results_whole() -> None:
    f = fg.jit(lambda x: (x * 3, x.sum(1)), buckets=(8,), batch_dim=1)
    x = RNG.standard_normal((2, 5)).astype(np.float32)
    tripled, sums = f(fg.tensor(x))
    np.testing.assert_allclose(tripled.numpy(), x * 3, rtol=1e-6)
    np.testing.assert_allclose(sums.numpy(), x.sum(1), rtol=1e-5)  # padded zeros add nothing; not sliced


@pytest.mark.parametrize("call, error", [
    (lambda: fg.jit(abs, buckets=(8, 4)), ValueError),
    (lambda: fg.jit(abs, buckets="pow2"), TypeError),
    (lambda: fg.jit(abs, buckets=(0, 4)), TypeError),
    (lambda: fg.jit(abs, buckets=True, batch_dim=1.0), TypeError),
    (lambda: fg.jit(lambda x, y: x + y, buckets=True)(fg.ones(3, 2), fg.ones(4, 2)), fg.ShapeError),
    (lambda: fg.jit(lambda x: x, buckets=True, batch_dim=2)(fg.ones(3, 2)), fg.ShapeError),
    (lambda: fg.jit(lambda x: x, buckets=True)(3), TypeError),
    (lambda: fg.jit(lambda x, valid: x, buckets=True)(fg.ones(3), valid=fg.ones(3)), TypeError),
], ids=["decreasing", "string", "zero-size", "float-dim", "sizes-disagree", "dim-out-of-range", "no-tensor",
        "valid-passed"])
def test_bucket_errors(call: Callable[[], Any], error: type) -> None:
    with pytest.raises(error):
        call()
