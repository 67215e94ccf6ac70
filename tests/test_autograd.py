"""Autograd: backward/.grad, GradientTape, fg.grad, higher order, deep graphs."""
import math

import numpy as np
import pytest

import fusegrad as fg
from tests.helpers import RNG, finite_difference_check


@pytest.mark.parametrize("fn", [
    lambda x: (x * x.sin()).exp(),
    lambda x: (x.exp() + 1).log() / (x * x + 1).sqrt(),
    lambda x: (x.reshape(6) ** 3).sum() * x.permute(1, 0).sum(0).max(),
    lambda x: fg.where(x > 0, x * 2, x.cos()),
    lambda x: x.erf() * x.expand(4, 3, 2).sum(0),
])
def test_gradients_match_finite_differences(fn):
    finite_difference_check(fn, RNG.uniform(-1.5, 1.5, size=(3, 2)))


def test_backward_accumulates_into_leaves():
    x = fg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * x).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.array([1, 2, 3]) + 3)


def test_backward_with_gradient_argument():
    x = fg.tensor([[1.0, -2.0], [3.0, 4.0]], requires_grad=True)
    y = x * x
    y.backward(gradient=fg.tensor([[1.0, 0.0], [2.0, -1.0]]))
    np.testing.assert_allclose(x.grad.numpy(), [[2.0, 0.0], [12.0, -8.0]])


def test_non_scalar_backward_without_gradient_raises():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(fg.GradError, match="scalar"):
        (x * 2).backward()


def test_no_grad_records_nothing():
    x = fg.tensor([1.0], requires_grad=True)
    with fg.no_grad():
        y = x * 2
    assert not y.requires_grad and y.grad_fn is None
    with pytest.raises(fg.GradError):
        y.backward()


def test_detach_cuts_the_graph():
    x = fg.tensor([2.0], requires_grad=True)
    y = x * x.detach()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0])


def test_bool_and_integer_results_carry_no_history():
    """Like torch: a comparison or an integer cast of a tensor that requires grad has no grad_fn, so a
    loss built only through one cannot be differentiated, and masks do not lengthen the tape."""
    x = fg.tensor([-1.0, 0.5, 2.0], requires_grad=True)
    mask, index = x > 0, x.long()
    assert mask.grad_fn is None and not mask.requires_grad
    assert index.grad_fn is None and not index.requires_grad
    with pytest.raises(fg.GradError):
        mask.float().sum().backward()
    x.where(mask, 0.0).sum().backward()  # a mask still selects which elements get the gradient
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 1.0, 1.0])


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(fg.DTypeError):
        fg.tensor([1, 2]).requires_grad_()


def test_gradient_tape_needs_no_flags():
    x = fg.tensor(1.5)
    with fg.GradientTape() as tape:
        y = x.sin() * x
    g = tape.gradient(y, x)
    np.testing.assert_allclose(g.item(), math.cos(1.5) * 1.5 + math.sin(1.5), rtol=1e-6)


def test_gradient_tape_multiple_sources_and_unconnected():
    a, b, c = fg.tensor(2.0), fg.tensor(3.0), fg.tensor(5.0)
    with fg.GradientTape() as tape:
        y = a * a * b
    ga, gb, gc = tape.gradient(y, [a, b, c])
    assert ga.item() == pytest.approx(12.0) and gb.item() == pytest.approx(4.0) and gc is None


def test_non_persistent_tape_answers_once_persistent_many_times():
    x = fg.tensor(2.0)
    with fg.GradientTape() as tape:
        y = x * x
    tape.gradient(y, x)
    with pytest.raises(fg.GradError, match="persistent"):
        tape.gradient(y, x)
    with fg.GradientTape(persistent=True) as tape:
        y = x * x
        z = y * x
    assert tape.gradient(y, x).item() == pytest.approx(4.0)
    assert tape.gradient(z, x).item() == pytest.approx(12.0)


def test_nested_tapes_second_derivative():
    x = fg.tensor(0.7, dtype=fg.float64)
    with fg.GradientTape() as outer:
        with fg.GradientTape() as inner:
            y = x * x * x
        dy = inner.gradient(y, x)
    d2y = outer.gradient(dy, x)
    assert dy.item() == pytest.approx(3 * 0.49) and d2y.item() == pytest.approx(6 * 0.7)


def test_third_derivatives_through_grad():
    x = fg.tensor(0.3, dtype=fg.float64)
    d3_sin = fg.grad(fg.grad(fg.grad(lambda t: t.sin())))
    assert d3_sin(x).item() == pytest.approx(-math.cos(0.3), rel=1e-9)
    # d^3/dx^3 of x*exp(x) = (x + 3) exp(x)
    d3 = fg.grad(fg.grad(fg.grad(lambda t: t * t.exp())))
    assert d3(x).item() == pytest.approx((0.3 + 3) * math.exp(0.3), rel=1e-9)


def test_backward_create_graph_gives_higher_order():
    x = fg.tensor([0.5, -1.0], dtype=fg.float64, requires_grad=True)
    (x.sin() * x).sum().backward(create_graph=True)
    first = x.grad
    assert first.requires_grad
    x.grad = None
    first.sum().backward()
    xs = np.array([0.5, -1.0])
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.cos(xs) - xs * np.sin(xs), rtol=1e-9)


def test_value_and_grad_and_argnums():
    f = lambda a, b: (a * b * b).sum()  # noqa: E731
    a, b = fg.tensor([1.0, 2.0]), fg.tensor([3.0, 4.0])
    value, (ga, gb) = fg.value_and_grad(f, argnums=(0, 1))(a, b)
    assert value.item() == pytest.approx(41.0)
    np.testing.assert_allclose(ga.numpy(), [9.0, 16.0])
    np.testing.assert_allclose(gb.numpy(), [6.0, 16.0])
    assert fg.grad(lambda t: t * t)(3.0).item() == pytest.approx(6.0)


def test_chain_of_100k_ops_has_no_recursion_limit():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    y = x
    for _ in range(50_000):
        y = y * 1.0 + 1.0
    assert y.sum().item() == pytest.approx(100_003.0)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 1.0])


def test_grad_dtype_matches_leaf():
    x = fg.tensor([1.0, 2.0], dtype=fg.float16, requires_grad=True)
    (x.float() * 2).sum().backward()
    assert x.grad.dtype == fg.float16
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])


def test_backward_of_a_structure_seen_before_rebuilds_its_gradient_graph(monkeypatch):
    """The second backward of a graph of the same structure runs no derivative rule (it rebuilds the
    recorded gradient nodes), and gives the gradients the rules give on the new values."""
    from fusegrad.autograd import engine

    w = fg.tensor(RNG.standard_normal((4, 3)).astype(np.float32), requires_grad=True)

    def loss_of(x):
        return ((x @ w).relu() * 2 - x.sum(1, keepdim=True)).exp().mean()

    xs = [RNG.standard_normal((5, 4)).astype(np.float32) for _ in range(2)]
    loss_of(fg.tensor(xs[0])).backward()
    first = w.grad.numpy()
    calls = []
    monkeypatch.setattr(engine, "_propagate", lambda *a: calls.append(a))
    w.grad = None
    loss = loss_of(fg.tensor(xs[1]))
    loss.backward()
    assert not calls
    monkeypatch.undo()
    fresh = fg.tensor(w.numpy(), requires_grad=True)
    (((fg.tensor(xs[1]) @ fresh).relu() * 2 - fg.tensor(xs[1]).sum(1, keepdim=True)).exp().mean()).backward()
    np.testing.assert_allclose(w.grad.numpy(), fresh.grad.numpy(), rtol=1e-6)
    assert not np.allclose(first, w.grad.numpy())
    assert loss.item() > 0


@pytest.mark.parametrize("variant", ["constant", "held_grad", "realized_forward", "inputs"])
def test_backward_plans_tell_apart_what_the_rules_read(variant):
    """Graphs that differ only in a constant, a gradient already held, an intermediate realized
    before backward, or the tensors asked for get their own gradients (not a plan of the other)."""
    x = fg.tensor([1.0, -2.0, 3.0], requires_grad=True)
    b = fg.tensor([0.5, 0.5, 0.5], requires_grad=True)

    def run(scale, realize_first=False, inputs=None):
        y = (x * scale + b) * x
        if realize_first:
            y.realize()
        y.sum().backward(inputs=inputs)
        return x.grad.numpy() if x.grad is not None else None, b.grad.numpy() if b.grad is not None else None

    xv = np.array([1.0, -2.0, 3.0])
    run(2.0)
    x.grad = b.grad = None
    if variant == "constant":
        gx, gb = run(3.0)
        np.testing.assert_allclose(gx, 6 * xv + 0.5)
    elif variant == "held_grad":
        gx, gb = run(2.0)
        np.testing.assert_allclose(gx, 4 * xv + 0.5)
        gx, gb = run(2.0)
        np.testing.assert_allclose(gx, 2 * (4 * xv + 0.5))
        np.testing.assert_allclose(gb, 2 * xv)
    elif variant == "realized_forward":
        gx, gb = run(2.0, realize_first=True)
        np.testing.assert_allclose(gx, 4 * xv + 0.5)
    else:
        gx, gb = run(2.0, inputs=[b])
        assert gx is None
        np.testing.assert_allclose(gb, xv)


@pytest.mark.parametrize("batch", [1, 6])
def test_gradients_of_one_backward_are_packed_back_to_back(batch):
    """Every parameter's gradient lies in one allocation (an optimizer reads them as one flat
    tensor), including those that alias a sum another kernel reads: batch norm's bias, and at
    batch 1 a linear bias (its gradient is the output gradient, reshaped)."""
    torch = pytest.importorskip("torch")
    fg.manual_seed(0)
    model = fg.nn.Sequential(fg.nn.Linear(5, 8), fg.nn.BatchNorm1d(8) if batch > 1 else fg.nn.Identity(),
                             fg.nn.ReLU(), fg.nn.Linear(8, 3))
    x = RNG.standard_normal((batch, 5)).astype(np.float32)
    y = RNG.integers(0, 3, batch)
    fg.nn.functional.cross_entropy(model(fg.tensor(x)), fg.tensor(y)).backward()
    params = list(model.parameters())
    buffers = [p.grad._node.buffer for p in params]
    (base,) = {b.base for b in buffers}
    assert base is not None and sum(b.nbytes for b in buffers) == base.nbytes
    assert len({b.offset for b in buffers}) == len(buffers)
    norm = torch.nn.BatchNorm1d(8) if batch > 1 else torch.nn.Identity()
    reference = torch.nn.Sequential(torch.nn.Linear(5, 8), norm, torch.nn.ReLU(), torch.nn.Linear(8, 3))
    with torch.no_grad():
        for p, q in zip(params, reference.parameters()):
            q.copy_(torch.from_numpy(p.numpy()))
    torch.nn.functional.cross_entropy(reference(torch.from_numpy(x)), torch.from_numpy(y)).backward()
    for p, q in zip(params, reference.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-4, atol=1e-6)
