"""Threads, with torch's semantics: captures and grad modes are per thread, the caches are shared and locked.

Every test forces the threads to overlap with barriers or events (no sleeps) and compares against the same
work run alone on one thread.
"""
from __future__ import annotations

import threading
from typing import Any, Callable

import numpy as np
import pytest

import fusegrad as fg
import fusegrad.nn.functional as F
from fusegrad import nn
from fusegrad.capturing import is_capturing
from tests.helpers import training_step

RNG = np.random.default_rng(11)
BATCHES = [(RNG.standard_normal((16, 12)).astype(np.float32), RNG.integers(0, 4, 16)) for _ in range(4)]
TIMEOUT = 60  # seconds a barrier waits before the test fails instead of hanging


def run_threads(work: Callable[[int], Any], n: int) -> list[Any]:
    """work(k) on n threads at once; their results in order, the first exception re-raised."""
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def target(k: int) -> None:
        try:
            results[k] = work(k)
        except BaseException as e:  # noqa: BLE001  (re-raised on the test's thread)
            errors.append(e)

    threads = [threading.Thread(target=target, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]
    return results


def make_model(seed: int) -> tuple[nn.Module, fg.optim.Optimizer]:
    fg.manual_seed(seed)
    model = nn.Sequential(nn.Linear(12, 24), nn.ReLU(), nn.Linear(24, 4))
    return model, fg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


def train(seed: int, steps: int, jit: bool, barrier: threading.Barrier | None = None) -> list[float]:
    """Losses of a small MLP trained from `seed`; with a barrier, every step starts with the other threads'."""
    model, opt = make_model(seed)
    step = training_step(model, opt)
    if jit:
        step = fg.jit(step)
    losses = []
    for i in range(steps):
        if barrier is not None:
            barrier.wait(TIMEOUT)
        x, y = BATCHES[(i + seed) % len(BATCHES)]
        losses.append(step(fg.tensor(x), fg.tensor(y)).item())
    if jit:
        assert step.replays >= steps - 2, "later calls must replay"
    return losses


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_threads_training_their_own_models_match_running_alone(jit: bool) -> None:
    n = 4 if not jit else 2
    alone = [train(k, 5, jit) for k in range(n)]
    barrier = threading.Barrier(n)
    assert run_threads(lambda k: train(k, 5, jit, barrier), n) == alone


def test_threads_realizing_one_lazy_graph_with_new_kernels_at_once_agree() -> None:
    data = RNG.standard_normal((37, 53)).astype(np.float32)  # a shape no other test compiles kernels for
    x = fg.tensor(data)
    shared = (x * 1.5 + 0.25).exp()  # lazy, read by every thread
    barrier = threading.Barrier(4)

    def work(k: int) -> np.ndarray:
        barrier.wait(TIMEOUT)  # thread 0 realizes the shared node while the others plan graphs that read it
        return shared.numpy() if k == 0 else (shared.sum(k % 2, keepdim=True) * k).numpy()

    want = np.exp(data * 1.5 + 0.25)
    for k, got in enumerate(run_threads(work, 4)):
        np.testing.assert_allclose(got, want if k == 0 else want.sum(k % 2, keepdims=True) * k, rtol=1e-5)


def test_eager_work_runs_while_another_thread_compiles(monkeypatch: pytest.MonkeyPatch) -> None:
    from fusegrad.engine import realize as engine_realize
    compiling, done = threading.Event(), threading.Event()
    compiler: list[int] = []
    build = engine_realize._build

    def held_build(missing: Any, found: Any) -> None:
        if threading.get_ident() in compiler:  # stays in the compile step until the other thread is done
            compiling.set()
            assert done.wait(TIMEOUT), "the other thread was blocked by this compile"
        build(missing, found)
    monkeypatch.setattr(engine_realize, "_build", held_build)

    def work(k: int) -> np.ndarray:
        if k == 0:
            compiler.append(threading.get_ident())
            return (fg.ones(29, 31) * 3).sum(0).numpy()  # shapes no other test compiles kernels for
        assert compiling.wait(TIMEOUT)
        value = (fg.ones(31, 29) * 2).sum(1).numpy()
        done.set()
        return value

    first, second = run_threads(work, 2)
    np.testing.assert_array_equal(first, np.full(31, 87.0))
    np.testing.assert_array_equal(second, np.full(31, 58.0))


def test_eager_work_on_another_thread_during_a_capture_is_neither_recorded_nor_blocked() -> None:
    capturing, done = threading.Event(), threading.Event()
    first = [True]

    def f(x: fg.Tensor) -> fg.Tensor:
        y = (x * 2 + 1).sum()
        if first[0]:  # the first capture waits here until the other thread has run and read its work
            first[0] = False
            capturing.set()
            assert done.wait(TIMEOUT)
        return y

    def other() -> np.ndarray:
        assert capturing.wait(TIMEOUT)
        assert not is_capturing()
        a = fg.tensor(np.arange(6.0, dtype=np.float32)).reshape(2, 3)
        value = (a.exp() @ a.T).numpy()  # an eager realization and a read while the capture runs
        done.set()
        return value

    jitted = fg.jit(f)
    x = fg.tensor([1.0, 2.0, 3.0])
    got = run_threads(lambda k: jitted(x).item() if k == 0 else other(), 2)
    a = np.arange(6.0, dtype=np.float32).reshape(2, 3)
    np.testing.assert_allclose(got[1], np.exp(a) @ a.T, rtol=1e-6)
    assert got[0] == 15.0
    alone = fg.jit(lambda x: (x * 2 + 1).sum())
    for v in [1.0, 2.0, 3.0]:
        assert jitted(fg.tensor([v, v, v])).item() == alone(fg.tensor([v, v, v])).item() == 6 * v + 3
    # the replay runs the capturing thread's kernels only
    assert [p["kernels"] for p in jitted.memory_plan()] == [p["kernels"] for p in alone.memory_plan()]
    assert jitted.replays >= 2


def test_one_jitted_function_called_from_threads_at_once_stays_consistent() -> None:
    total = fg.zeros(3)

    def bump(x: fg.Tensor) -> None:
        total.add_(x)
    f = fg.jit(bump)
    barrier = threading.Barrier(4)

    def work(k: int) -> None:
        for _ in range(5):
            barrier.wait(TIMEOUT)
            f(fg.ones(3))
    run_threads(work, 4)
    assert total.numpy().tolist() == [20.0] * 3
    assert f.captures + f.replays == 20 and f.replays >= 17


def test_grad_mode_is_per_thread() -> None:
    entered, checked = threading.Event(), threading.Event()
    w = fg.tensor([1.0, 2.0], requires_grad=True)

    def under_no_grad() -> bool:
        with fg.no_grad():
            entered.set()
            assert checked.wait(TIMEOUT)
            return (w * 2).requires_grad

    def beside() -> bool:
        assert entered.wait(TIMEOUT)
        y = (w * 3).sum()
        checked.set()
        y.backward()
        return fg.is_grad_enabled() and y.requires_grad

    assert run_threads(lambda k: beside() if k else under_no_grad(), 2) == [False, True]
    np.testing.assert_array_equal(w.grad.numpy(), [3.0, 3.0])
    with fg.no_grad():  # a new thread starts with gradients on, as in torch
        assert run_threads(lambda k: fg.is_grad_enabled(), 1) == [True]
        assert not fg.is_grad_enabled()


def test_a_grad_mode_decorator_called_from_two_threads_restores_each_threads_mode() -> None:
    inside = [threading.Event(), threading.Event()]
    left = threading.Event()

    @fg.enable_grad()
    def decorated(k: int) -> None:
        inside[k].set()
        if k == 0:  # leaves while thread 1 is still inside
            assert inside[1].wait(TIMEOUT)
        else:
            assert left.wait(TIMEOUT)

    def work(k: int) -> bool:
        if k == 0:
            decorated(0)
            left.set()
            return fg.is_grad_enabled()
        assert inside[0].wait(TIMEOUT)
        with fg.no_grad():
            decorated(1)
            return fg.is_grad_enabled()

    assert run_threads(work, 2) == [True, False]


def test_a_generator_shared_by_threads_hands_out_each_number_once() -> None:
    def draws(gen: fg.Generator, count: int, barrier: threading.Barrier | None = None) -> list[bytes]:
        out = []
        for _ in range(count):
            if barrier is not None:
                barrier.wait(TIMEOUT)
            out.append(fg.rand(64, generator=gen).numpy().tobytes())
        return out

    sequential = draws(fg.Generator().manual_seed(5), 10)
    gen, barrier = fg.Generator().manual_seed(5), threading.Barrier(2)
    threaded = sum(run_threads(lambda k: draws(gen, 5, barrier), 2), [])
    assert sorted(threaded) == sorted(sequential)  # the ten draws of the one stream, in some order


def test_shared_model_trained_from_four_threads_hogwild() -> None:
    model, _ = make_model(3)
    x_all, y_all = (fg.tensor(np.concatenate(parts)) for parts in zip(*BATCHES))
    before = F.cross_entropy(model(x_all), y_all).item()
    barrier = threading.Barrier(4)

    def work(k: int) -> list[float]:
        opt = fg.optim.SGD(model.parameters(), lr=0.02)  # each thread its own optimizer, as in Hogwild
        losses = []
        for i in range(8):
            if i < 3:
                barrier.wait(TIMEOUT)
            x, y = BATCHES[(i + k) % len(BATCHES)]
            opt.zero_grad()
            loss = F.cross_entropy(model(fg.tensor(x)), fg.tensor(y))
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return losses

    losses = run_threads(work, 4)
    assert np.isfinite(losses).all()
    after = F.cross_entropy(model(x_all), y_all).item()
    assert np.isfinite(after) and after < before
