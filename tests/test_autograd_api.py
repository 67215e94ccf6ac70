"""torch's autograd extension points, run side by side with torch: custom Functions, hooks,
retain_grad, torch.autograd.grad's signature, retain_graph, and the function transforms in fg.func."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import fusegrad as fg
from tests.helpers import RNG


def pair(*shapes: tuple[int, ...]) -> tuple[list[fg.Tensor], list[torch.Tensor]]:
    arrays = [RNG.standard_normal(s).astype(np.float64) for s in shapes]
    return ([fg.tensor(a, requires_grad=True) for a in arrays], [torch.tensor(a, requires_grad=True) for a in arrays])


def close(ours: Any, theirs: Any) -> None:
    np.testing.assert_allclose(np.asarray(ours.tolist()), theirs.detach().numpy(), rtol=1e-10, atol=1e-12)


def make_functions(lib: Any) -> dict[str, type]:
    class ScaledExp(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x, scale):
            y = x.exp() * scale
            ctx.save_for_backward(y)
            ctx.scale = scale
            return y

        @staticmethod
        def backward(ctx, grad):
            (y,) = ctx.saved_tensors
            return grad * y, None

    class MulAndSum(lib.autograd.Function):  # two tensor inputs, two outputs
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            return a * b, (a + b).sum()

        @staticmethod
        def backward(ctx, g_prod, g_sum):
            a, b = ctx.saved_tensors
            ga = g_prod * b + g_sum if ctx.needs_input_grad[0] else None
            gb = g_prod * a + g_sum if ctx.needs_input_grad[1] else None
            return ga, gb

    class Cube(lib.autograd.Function):  # torch 2's style: forward without ctx, setup_context
        @staticmethod
        def forward(x):
            return x ** 3

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(inputs[0])

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * 3 * x ** 2

    class Clip(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x.clamp(-1, 1)

        @staticmethod
        @lib.autograd.function.once_differentiable if lib is torch else fg.autograd.once_differentiable
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * (x.abs() <= 1).to(grad.dtype)

    return dict(ScaledExp=ScaledExp, MulAndSum=MulAndSum, Cube=Cube, Clip=Clip)


@pytest.mark.parametrize("name", ["ScaledExp", "MulAndSum", "Cube", "Clip"])
def test_custom_function_matches_torch(name: str) -> None:
    (a, b), (ta, tb) = pair((3, 4), (3, 4))
    outs = []
    for lib, x, y in ((fg, a, b), (torch, ta, tb)):
        fn = make_functions(lib)[name]
        if name == "ScaledExp":
            out = fn.apply(x, 2.5)
            loss = (out * y).sum()
        elif name == "MulAndSum":
            prod, total = fn.apply(x, y)
            loss = (prod * prod).sum() + total * 3
        else:
            loss = (fn.apply(x * 2) * y).sum()
        loss.backward()
        outs.append((loss, x.grad, y.grad))
    (loss, ga, gb), (tloss, tga, tgb) = outs
    close(loss, tloss)
    close(ga, tga)
    close(gb, tgb)


def test_custom_function_differentiates_twice_with_create_graph() -> None:
    (x,), (tx,) = pair((5,))
    results = []
    for lib, t in ((fg, x), (torch, tx)):
        cube = make_functions(lib)["Cube"]
        (g,) = lib.autograd.grad(cube.apply(t).sum(), t, create_graph=True)
        (gg,) = lib.autograd.grad((g * g).sum(), t)
        results.append((g, gg))
    close(results[0][0], results[1][0])
    close(results[0][1], results[1][1])


def test_custom_function_errors() -> None:
    class WrongCount(fg.autograd.Function):
        @staticmethod
        def forward(ctx, x, y):
            return x * y

        @staticmethod
        def backward(ctx, grad):
            return grad

    class WrongShape(fg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.sum()

        @staticmethod
        def backward(ctx, grad):
            return grad.expand(7)

    x = fg.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="incorrect number of gradients"):
        WrongCount.apply(x, x).sum().backward()
    with pytest.raises(RuntimeError, match="invalid gradient"):
        WrongShape.apply(x).backward()


def test_hooks_and_retain_grad_match_torch() -> None:
    (a,), (ta,) = pair((4,))
    records = []
    for lib, x in ((fg, a), (torch, ta)):
        seen: list[float] = []
        h = x * 3
        h.retain_grad()
        handle = h.register_hook(lambda g: g * 2)
        x.register_hook(lambda g, seen=seen: seen.append(float(g.sum())))
        removed = h.register_hook(lambda g: g * 100)
        removed.remove()
        (h * h).sum().backward()
        handle.remove()
        records.append((x.grad, h.grad, seen, h.retains_grad, x.retains_grad))
    (ga, gh, seen, r1, r2), (tga, tgh, tseen, tr1, tr2) = records
    close(ga, tga)
    close(gh, tgh)
    assert seen == pytest.approx(tseen) and (r1, r2) == (tr1, tr2)
    with pytest.raises(RuntimeError):
        fg.ones(2).register_hook(lambda g: g)


def test_autograd_grad_signature_matches_torch() -> None:
    (a, b), (ta, tb) = pair((3,), (3,))
    res = []
    for lib, x, y in ((fg, a, b), (torch, ta, tb)):
        out1, out2 = x * y, (x * x).sum()
        weights = lib.tensor(np.array([1.0, -2.0, 0.5]), dtype=lib.float64)
        g = lib.autograd.grad([out1, out2], [x, y], grad_outputs=[weights, None], retain_graph=True)
        unused = lib.autograd.grad(out2, [x, y], allow_unused=True, retain_graph=True)
        zeros = lib.autograd.grad(out2, [x, y], materialize_grads=True)
        res.append((g, unused, zeros, x.grad))
    (g, unused, zeros, xg), (tg, tunused, tzeros, txg) = res
    for o, t in zip(g, tg):
        close(o, t)
    close(unused[0], tunused[0])
    assert unused[1] is None and tunused[1] is None
    close(zeros[1], tzeros[1])
    assert xg is None and txg is None  # autograd.grad leaves .grad alone


@pytest.mark.parametrize("lib", [fg, torch], ids=["fusegrad", "torch"])
def test_second_backward_through_a_freed_graph_raises(lib: Any) -> None:
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()  # the graph was retained
    np.testing.assert_allclose(np.asarray(x.grad.tolist()), [4.0, 8.0])
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()
    s = (x + 1).sum()  # ops that keep no values can be walked again, in torch too
    s.backward()
    s.backward()
    with pytest.raises(RuntimeError, match="not have been used"):
        lib.autograd.grad((x * 2).sum(), [x, lib.ones(1, requires_grad=True)])


def test_func_transforms() -> None:
    x = fg.tensor([1.0, 2.0])
    g, aux = fg.func.grad(lambda t: ((t ** 3).sum(), t.mean()), has_aux=True)(x)
    np.testing.assert_allclose(g.numpy(), [3.0, 12.0])
    assert aux.item() == pytest.approx(1.5)
    g, value = fg.func.grad_and_value(lambda t: (t * t).sum())(x)
    assert value.item() == pytest.approx(5.0)
    np.testing.assert_allclose(g.numpy(), [2.0, 4.0])
    d2 = fg.func.grad(fg.func.grad(lambda t: t.sin()))(fg.tensor(0.3))
    assert d2.item() == pytest.approx(-np.sin(0.3), rel=1e-6)


@pytest.mark.parametrize("replayable", [False, True])
def test_replayable_function_backward_runs_once_per_structure(replayable):
    """A replayable Function's backward builds the plan once; later backwards of that structure replay it
    (with the new inputs' values), where an ordinary Function's backward runs every time."""
    calls = []

    class Scale(fg.autograd.Function):
        @staticmethod
        def forward(ctx, x, w, k):
            ctx.save_for_backward(x, w)
            ctx.k = k
            return x * w * k

        @staticmethod
        def backward(ctx, g):
            calls.append(1)
            x, w = ctx.saved_tensors
            return g * w * ctx.k, (g * x * ctx.k).sum(0), None

    Scale.replayable = replayable
    rng = np.random.default_rng(7)
    for _ in range(3):
        x_np, w_np = rng.standard_normal((4, 3)), rng.standard_normal(3)
        x, w = fg.tensor(x_np, requires_grad=True), fg.tensor(w_np, requires_grad=True)
        Scale.apply(x, w, 2.5).square().sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), 2 * (x_np * w_np * 2.5) * w_np * 2.5, rtol=1e-12)
        np.testing.assert_allclose(w.grad.numpy(), (2 * (x_np * w_np * 2.5) * x_np * 2.5).sum(0), rtol=1e-12)
    assert len(calls) == (1 if replayable else 3)
    Scale.apply(x, w, 3.0).sum().backward()  # another argument is another structure
    assert len(calls) == (2 if replayable else 4)
