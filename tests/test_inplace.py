"""In-place writes with torch's semantics: augmented assignment, views and their bases, .data and
.grad, version counters, and the errors torch raises. Each scenario runs the same code on fusegrad
and torch and compares every value and gradient it produces."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest
import torch

import fusegrad as fg
from tests.helpers import RNG


def run_both(scenario: Callable[[Any, Any], list[Any]], shapes: list[tuple[int, ...]],
             grad: tuple[bool, ...] | None = None) -> None:
    """scenario(lib, inputs) on fusegrad and torch: the tensors it returns, then the inputs' grads."""
    arrays = [RNG.standard_normal(s).astype(np.float32) for s in shapes]
    grad = grad or (False,) * len(shapes)
    ours_in = [fg.tensor(a, requires_grad=g) for a, g in zip(arrays, grad)]
    theirs_in = [torch.tensor(a, requires_grad=g) for a, g in zip(arrays, grad)]
    ours, theirs = scenario(fg, ours_in), scenario(torch, theirs_in)
    assert len(ours) == len(theirs)
    for k, (o, t) in enumerate(zip(ours, theirs)):
        np.testing.assert_allclose(o.numpy(), t.detach().numpy(), rtol=1e-5, atol=1e-6, err_msg=f"result {k}")
    for k, (o, t) in enumerate(zip(ours_in, theirs_in)):
        if t.grad is None:
            assert o.grad is None, f"input {k} has a gradient torch does not have"
        else:
            np.testing.assert_allclose(o.grad.numpy(), t.grad.numpy(), rtol=1e-5, atol=1e-6, err_msg=f"grad {k}")


def _tutorial_update(lib: Any, xs: list[Any]) -> list[Any]:
    w, x = xs
    for _ in range(3):
        loss = ((x @ w) ** 2).sum()
        loss.backward()
        with lib.no_grad():
            w -= 0.01 * w.grad
            w.grad = None
    assert w.is_leaf and w.requires_grad
    return [w]


def _grad_inplace(lib: Any, xs: list[Any]) -> list[Any]:
    w, x = xs
    (x @ w).sum().backward()
    g = w.grad
    g *= 2        # .grad updated in place
    w.grad += 1
    w.grad.data.mul_(3)
    return [w.grad, g]


def _view_writes_base(lib: Any, xs: list[Any]) -> list[Any]:
    (x,) = xs
    x = x.clone()
    row = x[1]
    row += 5           # a view written in place writes its base
    x[:, 2] *= 3       # __getitem__, __imul__, __setitem__
    col = x[:, 0]
    x.add_(1)          # a base written in place: its views follow
    t = x.t()
    t[0, 1] = 7.0
    flat = x.view(-1)
    flat[3:5] = 0.5
    x.data.clamp_(max=4.0)
    return [x, row, col, t, flat]


def _strided_and_negative_slices(lib: Any, xs: list[Any]) -> list[Any]:
    (x,) = xs
    x = x.clone()
    x[::2, 1::3] = -1.0
    x[-1] -= 10
    v = x[1:, ::2]
    v.mul_(2)
    x.unsqueeze(0)[0, 0].fill_(9)
    return [x, v]


def _gradient_through_view_writes(lib: Any, xs: list[Any]) -> list[Any]:
    a, b = xs
    c = a.clone()
    c[1:] *= b[:-1]          # a view of a non-leaf, written with a value that needs grad
    c[0] = b[-1] * 2
    d = c.view(2, -1)
    d[1] += a[:d.shape[1]]
    (c * c).sum().backward()
    return [c]


def _read_before_write(lib: Any, xs: list[Any]) -> list[Any]:
    a, b = xs
    h = a * 2
    y = h + b            # built lazily before the write, must see the old h
    s = h[0]             # a view taken before the write, must see the new h
    h.mul_(3)
    z = (y * s).sum()
    z.backward()
    return [y, s, h]


def _detach_shares_memory(lib: Any, xs: list[Any]) -> list[Any]:
    (a,) = xs
    b = a * 1
    d = b.detach()
    d.zero_()
    d += 2
    (b * a).sum().backward()
    return [b, d]


@pytest.mark.parametrize("scenario,shapes,grad", [
    (_tutorial_update, [(4, 3), (5, 4)], (True, False)),
    (_grad_inplace, [(4, 3), (5, 4)], (True, False)),
    (_view_writes_base, [(4, 6)], None),
    (_strided_and_negative_slices, [(5, 7)], None),
    (_gradient_through_view_writes, [(8,), (8,)], (True, True)),
    (_read_before_write, [(3,), (3,)], (True, True)),
    (_detach_shares_memory, [(4,)], (True,)),
], ids=lambda v: v.__name__.strip("_") if callable(v) else None)
def test_matches_torch(scenario: Callable, shapes: list, grad: tuple | None) -> None:
    run_both(scenario, shapes, grad)


def test_augmented_assignment_keeps_the_object_and_counts_versions():
    x = fg.zeros(3)
    same = x
    x += 1
    x *= 4
    x -= fg.tensor([1.0, 2.0, 3.0])
    x /= 2
    assert x is same and x._version == 4
    np.testing.assert_allclose(x.numpy(), [1.5, 1.0, 0.5])
    i = fg.tensor([7, 8, 9])
    i //= 2
    i %= 3
    i **= 2
    assert i.tolist() == [0, 1, 1] and i.dtype is fg.int64
    b = fg.tensor([True, False])
    b |= fg.tensor([False, False])
    b ^= fg.tensor([True, True])
    b &= fg.tensor([True, True])
    assert b.tolist() == [False, True]


@pytest.mark.parametrize("case", ["leaf_add", "leaf_iadd", "leaf_view", "saved_input", "saved_output",
                                  "expanded", "int_true_divide", "version_shared_by_views"])
def test_raises_where_torch_raises(case: str) -> None:
    """Each case raises a RuntimeError in torch; fusegrad raises one too (a typed fusegrad error)."""
    def build(lib: Any) -> None:
        w = lib.ones(3, requires_grad=True)
        if case == "leaf_add":
            w.add_(1)
        elif case == "leaf_iadd":
            w += 1
        elif case == "leaf_view":
            w[0] = 2.0
        elif case == "saved_input":
            h = w * 1
            y = h * h
            h.add_(1)
            y.sum().backward()
        elif case == "saved_output":
            y = w.exp()
            y.mul_(2)
            y.sum().backward()
        elif case == "expanded":
            lib.zeros(1, 3).expand(2, 3).add_(1)
        elif case == "int_true_divide":
            t = lib.tensor([1, 2])
            t /= 2
        elif case == "version_shared_by_views":
            h = w * 1
            v = h[:2]
            y = (v * v).sum()
            h[2] = 0.0  # writes another element, but the version is per memory, as in torch
            y.backward()
    with pytest.raises(RuntimeError):
        build(torch)
    with pytest.raises(RuntimeError) as info:
        build(fg)
    assert isinstance(info.value, fg.Error)


def test_no_raise_where_the_op_kept_nothing():
    """An op that saves nothing (add) still differentiates after its input is written, in both."""
    for lib in (fg, torch):
        w = lib.tensor([1.0, 2.0], requires_grad=True)
        h = w * 3
        y = h + 1
        h.mul_(5)
        (y.sum() + h.sum()).backward()
        np.testing.assert_allclose(np.asarray(w.grad.tolist()), [18.0, 18.0])


def test_version_counter_matches_torch():
    ours, theirs = fg.zeros(4), torch.zeros(4)
    for lib_x in (ours, theirs):
        v = lib_x[1:]
        v.add_(1)
        lib_x.mul_(2)
        lib_x[0] = 3
    assert ours._version == theirs._version
    assert ours[1:]._version == theirs[1:]._version


def test_no_grad_write_keeps_history():
    """Under no_grad a write changes the value only; torch keeps the tensor's grad_fn too."""
    w = fg.tensor([1.0, 2.0], requires_grad=True)
    h = w * 2
    with fg.no_grad():
        h.add_(10)
    assert h.requires_grad and not h.is_leaf
    h.sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), [2.0, 2.0])
    np.testing.assert_allclose(h.numpy(), [12.0, 14.0])


def test_setitem_on_a_view_of_a_leaf_under_no_grad():
    w = fg.zeros(2, 3, requires_grad=True)
    with fg.no_grad():
        w[0] = 1.0
        w[:, 1] += 2.0
    assert w.is_leaf and w.requires_grad
    np.testing.assert_allclose(w.numpy(), [[1, 3, 1], [0, 2, 0]])


def test_optimizer_step_counts_as_a_write():
    """A graph that read a parameter before an optimizer step cannot be differentiated after it."""
    lin = fg.nn.Linear(3, 2)
    opt = fg.optim.SGD(lin.parameters(), lr=0.1)
    y = (lin.weight * lin.weight).sum()
    y.backward(retain_graph=True)
    opt.step()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


@pytest.mark.parametrize("op", ["flip", "roll", "repeat", "pad", "clone", "contiguous_of_view"])
def test_copies_are_not_views(op: str) -> None:
    """Writing the result of an op that copies in torch leaves its source alone, in both libraries."""
    def build(lib: Any) -> Any:
        x = lib.arange(6.0).reshape(2, 3)
        y = {"flip": lambda: x.flip(1), "roll": lambda: x.roll(1, 0), "repeat": lambda: x.repeat(2, 1),
             "pad": lambda: (lib.nn.functional.pad(x, (1, 1))), "clone": lambda: x.clone(),
             "contiguous_of_view": lambda: x.t().contiguous()}[op]()
        y.add_(100)
        return x
    np.testing.assert_array_equal(build(fg).numpy(), build(torch).numpy())


def test_jit_replays_an_in_place_update():
    """A step updating parameters with `p -= lr * p.grad` gives the same losses jitted and eager."""
    def train(jitted: bool) -> list[float]:
        fg.manual_seed(3)
        model = fg.nn.Linear(4, 3)
        x, y = fg.randn(8, 4).realize(), fg.randint(0, 3, (8,)).realize()

        def step(x: fg.Tensor, y: fg.Tensor) -> fg.Tensor:
            loss = fg.nn.functional.cross_entropy(model(x), y)
            model.zero_grad()
            loss.backward()
            with fg.no_grad():
                for p in model.parameters():
                    p -= 0.1 * p.grad
            return loss
        run = fg.jit(step) if jitted else step
        return [run(x, y).item() for _ in range(4)]
    eager, jitted = train(False), train(True)
    np.testing.assert_allclose(jitted, eager, rtol=1e-6)
    assert eager[-1] < eager[0]


@pytest.mark.parametrize("lib", [fg, torch], ids=["fusegrad", "torch"])
def test_a_value_read_only_for_a_constants_gradient_may_be_written(lib: Any) -> None:
    """h * 3 reads h only for the gradient of the constant, which nobody needs: torch keeps nothing."""
    w = lib.tensor([1.0, 2.0], requires_grad=True)
    h = w * 1
    y = (h * 3).sum()
    h.add_(1)
    y.backward(retain_graph=True)
    y.backward()  # nothing saved, nothing freed
    np.testing.assert_allclose(np.asarray(w.grad.tolist()), [6.0, 6.0])


def test_the_history_a_write_replaced_keeps_its_value():
    """An op that used a tensor before a write differentiates through the value it read: the shape
    and value of its input are the old ones (here a sum, whose rule reads no value)."""
    a = fg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    h = a * 2
    s = h.sum()
    h.mul_(fg.tensor([10.0, 10.0, 10.0], requires_grad=True))  # history replaced under grad mode
    s.backward()
    np.testing.assert_allclose(a.grad.numpy(), [2.0, 2.0, 2.0])
    was = s._ctx.inputs[0]._ctx.inputs[0]  # sum() is SUM then RESHAPE; SUM read h
    assert was is not h and was._node is not h._node
    np.testing.assert_allclose(was.numpy(), [2.0, 4.0, 6.0])
