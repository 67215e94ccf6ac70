"""fg.jit: replays equal eager runs, and the traps of capture/replay JITs are guarded, not silent.

Every test runs the same function eagerly (a plain Python function over its own copy of the
state) and through fg.jit, and compares values after each call; the replay counters show that
calls were replayed rather than re-run.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest

import fusegrad as fg
import fusegrad.nn.functional as F
from fusegrad import nn
from tests.helpers import training_step

RNG = np.random.default_rng(7)
BATCHES = [(RNG.standard_normal((16, 20)).astype(np.float32), RNG.integers(0, 5, 16)) for _ in range(6)]


def make_model(seed: int = 0, norm: bool = False, dropout: float = 0.0) -> nn.Module:
    fg.manual_seed(seed)
    layers: list[nn.Module] = [nn.Linear(20, 32)]
    if norm:
        layers.append(nn.BatchNorm1d(32))
    layers += [nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(32, 5))
    return nn.Sequential(*layers)


def pair(make_opt: Callable[[Any], fg.optim.Optimizer], **model_options: Any) -> tuple:
    """(eager step, jitted step, eager model, jitted model, eager optimizer, jitted optimizer)."""
    m1, m2 = make_model(**model_options), make_model(**model_options)
    o1, o2 = make_opt(m1.parameters()), make_opt(m2.parameters())
    return training_step(m1, o1), fg.jit(training_step(m2, o2)), m1, m2, o1, o2


def batch(i: int) -> tuple[fg.Tensor, fg.Tensor]:
    x, y = BATCHES[i % len(BATCHES)]
    return fg.tensor(x), fg.tensor(y)


def assert_same_parameters(m1: nn.Module, m2: nn.Module) -> None:
    for (name, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)


OPTIMIZERS = {
    "sgd": lambda ps: fg.optim.SGD(ps, lr=0.1),
    "sgd-momentum-nesterov": lambda ps: fg.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam": lambda ps: fg.optim.Adam(ps, lr=1e-2),
    "adamw-amsgrad": lambda ps: fg.optim.AdamW(ps, lr=1e-2, amsgrad=True),
    "rmsprop-centered": lambda ps: fg.optim.RMSprop(ps, lr=1e-2, momentum=0.5, centered=True),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_training_step_replays_match_eager(name: str) -> None:
    eager, jitted, m1, m2, _, _ = pair(OPTIMIZERS[name])
    for i in range(8):
        a, b = eager(*batch(i)), jitted(*batch(i))
        assert a.item() == b.item(), f"loss of call {i}"
        assert_same_parameters(m1, m2)
    assert jitted.replays >= 5, "later calls must replay, not capture again"


def test_batchnorm_running_statistics_and_dropout_are_carried() -> None:
    eager, jitted, m1, m2, _, _ = pair(OPTIMIZERS["adam"], norm=True, dropout=0.3)
    for i in range(6):
        fg.manual_seed(100 + i)
        a = eager(*batch(i)).item()
        fg.manual_seed(100 + i)
        b = jitted(*batch(i)).item()
        assert a == b, f"call {i}: dropout masks or statistics differ"
    assert_same_parameters(m1, m2)  # includes running_mean, running_var, num_batches_tracked
    assert jitted.replays >= 3


def test_dropout_masks_differ_between_replays() -> None:
    fg.manual_seed(0)
    drop = fg.jit(lambda x: F.dropout(x, 0.5, training=True))
    x = fg.ones(1000)
    masks = [drop(x).numpy() != 0 for _ in range(4)]
    assert drop.replays >= 2
    assert not np.array_equal(masks[2], masks[3])
    assert 0.4 < masks[3].mean() < 0.6


def test_replays_allocate_nothing() -> None:
    _, jitted, _, _, _, _ = pair(OPTIMIZERS["adam"])
    inputs = [batch(i) for i in range(6)]
    for x, y in inputs[:3]:
        jitted(x, y)
    before = fg.memory_stats()["allocations"]
    for x, y in inputs[3:]:
        jitted(x, y)
    assert fg.memory_stats()["allocations"] == before
    (plan,) = jitted.memory_plan()
    assert plan["live_bytes"] <= plan["arena_bytes"]
    assert plan["arena_bytes"] < 2 * plan["live_bytes"] + 4096


def test_new_shapes_and_dtypes_capture_again_and_variants_are_kept() -> None:
    f = fg.jit(lambda a, b: (a * b).sum(1) + 1)
    shapes = [(3, 4), (5, 2), (3, 4), (5, 2), (3, 4)]
    for i, shape in enumerate(shapes * 2):
        a, b = RNG.standard_normal(shape).astype(np.float32), RNG.standard_normal(shape).astype(np.float32)
        np.testing.assert_allclose(f(fg.tensor(a), fg.tensor(b)).numpy(), (a * b).sum(1) + 1, rtol=1e-5)
    assert f.captures == 2 and f.replays == 8
    out = f(fg.tensor(np.ones((3, 4))), fg.tensor(np.ones((3, 4))))  # float64: a new variant
    assert out.dtype == fg.float64 and f.captures == 3
    np.testing.assert_array_equal(out.numpy(), [5.0, 5.0, 5.0])


def test_kernels_with_many_parameters_replay() -> None:
    """A fused sum of 40 inputs is one kernel of 41 buffers: more than the CPU's table-driven
    runner passes (RUNNER_MAX_ARGS), so its replay takes the generated runner."""
    f = fg.jit(lambda *xs: sum(xs[1:], xs[0]) * 0.5)
    for _ in range(3):
        arrays = [RNG.standard_normal(7).astype(np.float32) for _ in range(40)]
        want = np.sum(arrays, axis=0, dtype=np.float64) * 0.5
        np.testing.assert_allclose(f(*[fg.tensor(a) for a in arrays]).numpy(), want, rtol=1e-5, atol=1e-5)
    assert f.captures == 1 and f.replays == 2


def test_python_scalars_are_inputs_not_frozen() -> None:
    f = fg.jit(lambda x, scale: x * scale)
    x = fg.tensor([1.0, 2.0])
    for scale in [2.0, 3.0, 2.0, 3.0, 5.0]:
        np.testing.assert_array_equal(f(x, scale).numpy(), [scale, 2 * scale])


def test_tensor_inputs_are_swapped_in_on_replay() -> None:
    f = fg.jit(lambda x: (x.exp() * 2).sum())
    for i in range(5):
        x = RNG.standard_normal(10).astype(np.float32)
        np.testing.assert_allclose(f(fg.tensor(x)).item(), (np.exp(x) * 2).sum(), rtol=1e-5)
    assert f.replays == 4


def test_results_of_earlier_calls_stay_valid() -> None:
    f = fg.jit(lambda x: x + 1)
    first = f(fg.tensor([1.0]))
    pending = first * 10  # lazy: reads first's memory when realized
    second = f(fg.tensor([5.0]))
    np.testing.assert_array_equal(second.numpy(), [6.0])
    np.testing.assert_array_equal(first.numpy(), [2.0])
    np.testing.assert_array_equal(pending.numpy(), [20.0])


@pytest.mark.parametrize("read", [lambda t: t.item(), lambda t: t.numpy(), lambda t: float(t), lambda t: t.tolist()])
def test_reading_values_inside_the_function_raises_during_capture(read: Callable) -> None:
    def f(x: fg.Tensor) -> fg.Tensor:
        y = x * 2
        read(y.sum())
        return y
    with pytest.raises(fg.JitError, match="fg.jit"):
        fg.jit(f)(fg.tensor([1.0, 2.0]))


def test_nested_jit_is_part_of_the_outer_recording() -> None:
    inner = fg.jit(lambda x: x * 3)
    outer = fg.jit(lambda x: inner(x) + inner(x + 1))
    for v in [1.0, 2.0, 4.0, 8.0]:
        assert outer(fg.tensor(v)).item() == 3 * v + 3 * (v + 1)
    assert outer.replays == 3
    assert inner.captures == 0  # only ever ran inside the outer capture
    assert inner(fg.tensor(2.0)).item() == 6.0


def test_return_values_must_be_tensors() -> None:
    with pytest.raises(fg.JitError, match="return"):
        fg.jit(lambda x: (x + 1, "label"))(fg.tensor(1.0))
    f = fg.jit(lambda x: {"double": x * 2, "none": None, "pair": [x, x + 1]})
    for v in [1.0, 2.0, 3.0]:
        out = f(fg.tensor(v))
        assert out["none"] is None
        assert out["double"].item() == 2 * v and [t.item() for t in out["pair"]] == [v, v + 1]


def test_returned_inputs_and_state_are_copies() -> None:
    w = fg.tensor([1.0, 2.0])

    def f(x: fg.Tensor) -> tuple:
        return x, w
    g = fg.jit(f)
    for v in [1.0, 2.0, 3.0]:
        x = fg.tensor([v, v])
        a, b = g(x)
        np.testing.assert_array_equal(a.numpy(), [v, v])
        np.testing.assert_array_equal(b.numpy(), [1.0, 2.0])


def test_state_reached_through_default_arguments_is_carried() -> None:
    """`def step(x, y, model=m, opt=o)`: the model and optimizer are found through the defaults."""
    m1, m2 = make_model(), make_model()
    o1, o2 = fg.optim.SGD(m1.parameters(), lr=0.1, momentum=0.9), fg.optim.SGD(m2.parameters(), lr=0.1, momentum=0.9)

    def step(x: fg.Tensor, y: fg.Tensor, model: nn.Module = m2, opt: fg.optim.Optimizer = o2) -> fg.Tensor:
        return training_step(model, opt)(x, y)

    def keyword_step(x: fg.Tensor, y: fg.Tensor, *, model: nn.Module = m2, opt: fg.optim.Optimizer = o2) -> fg.Tensor:
        return training_step(model, opt)(x, y)

    eager = training_step(m1, o1)
    for jitted in (fg.jit(step), fg.jit(keyword_step)):
        for i in range(6):
            assert eager(*batch(i)).item() == jitted(*batch(i)).item(), f"loss of call {i}"
            assert_same_parameters(m1, m2)
        assert jitted.replays >= 3


def test_global_state_updated_in_place_is_carried() -> None:
    counter = fg.zeros(3)

    def bump(x: fg.Tensor) -> fg.Tensor:
        counter.add_(x)
        return counter * 1
    f = fg.jit(bump)
    for i in range(1, 6):
        assert f(fg.ones(3)).numpy().tolist() == [float(i)] * 3
        assert counter.numpy().tolist() == [float(i)] * 3
    assert f.replays >= 3


def test_learning_rate_schedule_outside_is_honoured_and_inside_raises() -> None:
    eager, jitted, m1, m2, o1, o2 = pair(OPTIMIZERS["sgd-momentum-nesterov"])
    s1 = fg.optim.lr_scheduler.StepLR(o1, step_size=2, gamma=0.5)
    s2 = fg.optim.lr_scheduler.StepLR(o2, step_size=2, gamma=0.5)
    for i in range(7):
        assert eager(*batch(i)).item() == jitted(*batch(i)).item()
        s1.step()
        s2.step()
    assert_same_parameters(m1, m2)
    assert jitted.replays >= 4

    def bad(x: fg.Tensor, y: fg.Tensor) -> fg.Tensor:
        s2.step()
        return x.sum()
    with pytest.raises(fg.JitError, match="scheduler.step"):
        fg.jit(bad)(*batch(0))


def test_changed_constants_and_replaced_state_capture_again() -> None:
    eager, jitted, m1, m2, o1, o2 = pair(OPTIMIZERS["adam"])
    for i in range(3):
        eager(*batch(i)), jitted(*batch(i))
    captures = jitted.captures
    for o in (o1, o2):  # compiled into the kernels as a constant: must not be replayed stale
        o.param_groups[0]["weight_decay"] = 0.1
    for i in range(3, 5):
        assert eager(*batch(i)).item() == jitted(*batch(i)).item()
    assert jitted.captures == captures + 1
    # parameters replaced from outside (a checkpoint load): the recording's buffers are stale
    state = {k: v.numpy() * 0.5 for k, v in m1.state_dict().items()}
    m1.load_state_dict({k: fg.tensor(v) for k, v in state.items()})
    m2.load_state_dict({k: fg.tensor(v) for k, v in state.items()})
    for i in range(5, 9):
        assert eager(*batch(i)).item() == jitted(*batch(i)).item()
    assert_same_parameters(m1, m2)


def test_train_eval_switch_captures_again() -> None:
    model = make_model(norm=True)
    f = fg.jit(lambda x: model(x))
    x = batch(0)[0]
    train_out = [f(x).numpy() for _ in range(3)]
    model.eval()
    eval_out = f(x).numpy()
    expected = make_model(norm=True)
    expected.load_state_dict(model.state_dict())
    expected.eval()
    np.testing.assert_allclose(eval_out, expected(x).numpy(), rtol=1e-6)
    assert not np.allclose(train_out[-1], eval_out)


def test_gradients_zeroed_outside_and_accumulated() -> None:
    """zero_grad outside the function, and accumulation over two calls, as eager code does."""
    m1, m2 = make_model(), make_model()

    def backward_only(model: nn.Module) -> Callable:
        def f(x: fg.Tensor, y: fg.Tensor) -> fg.Tensor:
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            return loss
        return f
    e, j = backward_only(m1), fg.jit(backward_only(m2))
    for i in range(4):
        for p in list(m1.parameters()) + list(m2.parameters()):
            p.grad = None
        for k in range(2):  # two micro-batches accumulate
            assert e(*batch(i + k)).item() == j(*batch(i + k)).item()
        for p, q in zip(m1.parameters(), m2.parameters()):
            np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy())


def test_jit_usage_errors() -> None:
    with pytest.raises(TypeError):
        fg.jit(3)
    f = fg.jit(lambda x: None)  # nothing on the device: a replay would silently skip the Python
    assert f(fg.tensor([1.0])) is None
    with pytest.raises(fg.JitError, match="no kernels"):
        f(fg.tensor([1.0]))
    same = fg.jit(lambda x: x)  # a returned input is copied, so even this replays
    for v in [1.0, 2.0, 3.0]:
        assert same(fg.tensor([v])).item() == v
    assert same.replays == 2
