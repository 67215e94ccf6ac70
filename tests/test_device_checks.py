"""Index checks that depend on data: lazily and under fg.jit a bad index raises, it never returns a value.

Indices built lazily (`idx * 1`) or passed to a jitted function are checked by the kernel that computes
them; the first bad entry raises IndexOutOfRangeError at the next synchronization, naming the op, the
value and its position. Valid indices (negative ones where torch allows them) give torch's values.
"""
from typing import Callable

import numpy as np
import pytest
import torch

import fusegrad as fg
import fusegrad.nn.functional as F
from fusegrad.errors import IndexOutOfRangeError
from fusegrad.runtime import registry
from tests import helpers

X = helpers.random_array((5, 4))
W = helpers.random_array((7, 3))
SRC = helpers.random_array((5, 4))


def _lib(mod):  # the same call on either library
    return (mod.tensor if mod is fg else torch.tensor), (F if mod is fg else torch.nn.functional)


# name -> (valid index, index out of range, bad value, wraps negatives, op(module, index tensor))
CASES: dict[str, tuple[list, list, int, bool, Callable]] = {
    "index_select": ([4, 0, 2], [1, 5, 0], 5, False, lambda m, i: _lib(m)[0](X).index_select(0, i)),
    "gather": ([[0, 3]] * 5, [[0, 3]] * 4 + [[4, 0]], 4, False, lambda m, i: _lib(m)[0](X).gather(1, i)),
    "indexing": ([-1, 0, 3], [0, 9], 9, True, lambda m, i: _lib(m)[0](X)[i]),
    "take_along_dim": ([[-1, 0]] * 5, [[0, 1]] * 2 + [[7, 0]] * 3, 7, True,
                       lambda m, i: _lib(m)[0](X).take_along_dim(i, 1)),
    "scatter": ([[1, 2]] * 5, [[1, 2]] * 3 + [[6, 0]] * 2, 6, False,
                lambda m, i: _lib(m)[0](X).scatter(1, i, _lib(m)[0](SRC))),
    "index_add": ([0, 2, 4, 1, 3], [0, 2, 5, 1, 3], 5, False,
                  lambda m, i: _lib(m)[0](X).index_add(0, i, _lib(m)[0](SRC))),
    "index_fill": ([-1, 2], [2, 8], 8, True, lambda m, i: _lib(m)[0](X).index_fill(0, i, 1.5)),
    "embedding": ([[6, 0], [3, 3]], [[6, 0], [7, 3]], 7, False, lambda m, i: _lib(m)[1].embedding(i, _lib(m)[0](W))),
    "cross_entropy": ([3, 0, -100, 1, 2], [3, 0, 4, 1, 2], 4, False,
                      lambda m, i: _lib(m)[1].cross_entropy(_lib(m)[0](X), i)),
    "nll_loss": ([3, 0, 1, -100, 2], [3, 0, 1, 2, -3], -3, False,
                 lambda m, i: _lib(m)[1].nll_loss(_lib(m)[0](X), i)),
    "one_hot": ([[0, 2], [1, 1]], [[0, 2], [1, 3]], 3, False, lambda m, i: _lib(m)[1].one_hot(i, 3)),
}
# the bad entry's flat position in each case's out-of-range index
POSITIONS = {"index_select": 1, "gather": 8, "indexing": 1, "take_along_dim": 4, "scatter": 6, "index_add": 2,
             "index_fill": 1, "embedding": 2, "cross_entropy": 2, "nll_loss": 4, "one_hot": 3}
NAMES = {"indexing": "indexing", "cross_entropy": "target", "nll_loss": "target"}


def lazy(values: list) -> fg.Tensor:
    return fg.tensor(values) * 1  # computed by a kernel, never read on the host


@pytest.mark.parametrize("name", sorted(CASES))
def test_lazy_valid_indices_match_torch(name: str) -> None:
    good, _, _, _, op = CASES[name]
    got = op(fg, lazy(good)).numpy()
    np.testing.assert_allclose(got, op(torch, torch.tensor(good)).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_lazy_bad_index_raises_at_the_next_read(name: str) -> None:
    _, bad, value, _, op = CASES[name]
    if name != "take_along_dim":  # torch's CPU take_along_dim reads past the end; fusegrad refuses
        with pytest.raises((IndexError, RuntimeError)):  # torch raises at the call
            op(torch, torch.tensor(bad))
    out = op(fg, lazy(bad))
    with pytest.raises(IndexOutOfRangeError) as info:
        out.numpy()
    text = str(info.value)
    assert NAMES.get(name, name) in text and f" {value} " in text, text
    assert f"at position {POSITIONS[name]} " in text, text
    # the error word is cleared: the next read of valid work returns values
    good = CASES[name][0]
    np.testing.assert_allclose(op(fg, lazy(good)).numpy(), op(torch, torch.tensor(good)).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", [n for n, case in sorted(CASES.items()) if not case[3]])
def test_negative_indices_are_refused_where_torch_refuses_them(name: str) -> None:
    good, _, _, _, op = CASES[name]
    flat = np.array(good)
    flat.reshape(-1)[0] = -1
    with pytest.raises((IndexError, RuntimeError)):
        op(torch, torch.tensor(flat))
    with pytest.raises(IndexOutOfRangeError, match="-1"):
        op(fg, lazy(flat.tolist())).numpy()


@pytest.mark.parametrize("name", sorted(CASES))
def test_jitted_op_checks_every_call(name: str) -> None:
    good, bad, value, _, op = CASES[name]
    f = fg.jit(lambda i: op(fg, i) * 1)
    want = op(torch, torch.tensor(good)).numpy()
    for _ in range(3):  # a capture, then replays
        np.testing.assert_allclose(f(fg.tensor(good)).numpy(), want, rtol=1e-5, atol=1e-6)
    with pytest.raises(IndexOutOfRangeError, match=f" {value} "):
        f(fg.tensor(bad))
    np.testing.assert_allclose(f(fg.tensor(good)).numpy(), want, rtol=1e-5, atol=1e-6)
    assert f.replays >= 2


def test_host_index_raises_at_the_call_where_reading_it_is_free() -> None:
    x, idx = fg.tensor(X), fg.tensor([0, 9])
    if registry.get(x.device).host_memory:
        with pytest.raises(IndexOutOfRangeError, match="index_select: index 9 is out of bounds"):
            x.index_select(0, idx)
    else:  # a GPU checks in the kernel: no synchronization at the call
        out = x.index_select(0, idx)
        with pytest.raises(IndexOutOfRangeError, match="index_select: index 9 is out of bounds"):
            out.numpy()


def _model() -> tuple[fg.nn.Module, fg.optim.Optimizer]:
    fg.manual_seed(3)
    model = fg.nn.Sequential(fg.nn.Embedding(11, 8), fg.nn.Flatten(), fg.nn.Linear(24, 6))
    return model, fg.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)


def test_jitted_training_step_with_embedding_matches_eager_and_refuses_bad_labels() -> None:
    rng = np.random.default_rng(5)
    batches = [(rng.integers(0, 11, (16, 3)), rng.integers(0, 6, 16)) for _ in range(5)]
    eager_model, eager_opt = _model()
    eager = helpers.training_step(eager_model, eager_opt)
    model, opt = _model()
    step = fg.jit(helpers.training_step(model, opt))
    for x, y in batches:
        want = eager(fg.tensor(x) * 1, fg.tensor(y) * 1).item()
        assert step(fg.tensor(x), fg.tensor(y)).item() == pytest.approx(want, rel=1e-5)
    assert step.replays >= 3
    before = [p.numpy().copy() for p in model.parameters()]
    x, y = batches[0]
    bad_y, bad_x = y.copy(), x.copy()
    bad_y[7], bad_x[2, 1] = 6, -1
    with pytest.raises(IndexOutOfRangeError, match="target 6 is out of bounds for 6 classes"):
        step(fg.tensor(x), fg.tensor(bad_y))
    with pytest.raises(IndexOutOfRangeError, match="embedding: index -1"):
        step(fg.tensor(bad_x), fg.tensor(y))
    for p, old in zip(model.parameters(), before):  # a refused step changes no parameter
        np.testing.assert_array_equal(p.numpy(), old)
    want = eager(fg.tensor(x), fg.tensor(y)).item()
    assert step(fg.tensor(x), fg.tensor(y)).item() == pytest.approx(want, rel=1e-5)


def test_a_lazy_index_check_adds_at_most_one_kernel() -> None:
    x, idx = fg.tensor(X).realize(), fg.tensor([3, 1, 4]).realize()
    x.index_select(0, idx * 1).numpy()  # compiled
    with fg.profile() as checked:
        x.index_select(0, idx * 1).realize()
    with fg.profile() as plain:
        (x[:3] * 1).realize()
    assert len(checked.kernels) <= len(plain.kernels) + 1


def test_multinomial_checks_lazy_weights_and_samples_under_jit():
    with pytest.raises(RuntimeError):
        torch.multinomial(torch.tensor([[1.0, float("nan")]]), 1)
    with pytest.raises(fg.InvalidValueError, match="finite and non-negative"):  # also a RuntimeError, as in torch
        (fg.tensor([[1.0, float("nan")]]) * 1).multinomial(1).numpy()
    with pytest.raises(RuntimeError, match="finite and non-negative"):
        (fg.tensor([[1.0, -0.5]]) * 1).multinomial(1).numpy()
    logits = fg.tensor(helpers.random_array((4, 9)))

    def sample(x):
        return x.softmax(-1).multinomial(2)

    fg.manual_seed(11)
    eager = [sample(logits).numpy() for _ in range(4)]
    fg.manual_seed(11)
    jitted = fg.jit(sample)
    assert all(np.array_equal(jitted(logits).numpy(), want) for want in eager)  # the same draws, replayed
    assert jitted.replays >= 2
    with pytest.raises(fg.InvalidValueError):
        jitted(logits * float("nan"))


def test_jit_can_leave_errors_to_the_next_synchronization() -> None:
    """check_errors="at_sync": a replay meeting a bad index returns without waiting for the device,
    and the error is raised at the next read of any value on that device, once."""
    table = fg.tensor(X)

    def look_up(idx: fg.Tensor) -> fg.Tensor:
        return fg.nn.functional.embedding(idx, table) * 2

    queued = fg.jit(look_up, check_errors="at_sync")
    for _ in range(3):
        np.testing.assert_array_equal(queued(fg.tensor([1, 2])).numpy(), X[[1, 2]] * 2)
    assert queued.replays >= 1
    out = queued(fg.tensor([1, 9]))  # row 9 does not exist: no error yet
    with pytest.raises(IndexOutOfRangeError, match="index 9"):
        out.numpy()
    np.testing.assert_array_equal(queued(fg.tensor([0, 1])).numpy(), X[[0, 1]] * 2)  # reported once
    with pytest.raises(ValueError, match="check_errors"):
        fg.jit(look_up, check_errors="never")
