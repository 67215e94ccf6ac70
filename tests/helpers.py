"""The one comparison helper: run the same expression in fusegrad and in PyTorch (or numpy)
on the same fresh random inputs, and compare forward values and gradients."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

import torch  # the reference: a test dependency, so a comparison can never pass without it

import fusegrad as fg

# reseeded before every test by tests/conftest.py (the seed is printed when a test fails)
RNG = np.random.default_rng(0)

TOL = {"float64": (1e-9, 1e-9), "float32": (1e-5, 1e-5), "float16": (2e-3, 2e-3), "bfloat16": (2e-2, 2e-2)}


def random_array(shape: Sequence[int], dtype: str = "float32", low: float = -2.0, high: float = 2.0) -> np.ndarray:
    if dtype == "bool":
        return RNG.random(shape) < 0.5
    if dtype in ("int8", "int16", "int32", "int64", "uint8"):
        lo = max(int(low), 0) if dtype == "uint8" else int(low)
        return RNG.integers(lo, max(int(high), lo + 1), size=shape).astype(dtype)
    return RNG.uniform(low, high, size=shape).astype("float32" if dtype == "bfloat16" else dtype)


def to_torch(arr: np.ndarray, dtype: str, requires_grad: bool) -> Any:
    t = torch.tensor(arr)
    if dtype == "bfloat16":
        t = t.to(torch.bfloat16)
    return t.requires_grad_(requires_grad)


def check_op(shapes: Sequence[Sequence[int]], fg_fn: Callable, torch_fn: Callable | None = None, *,
                   dtype: str = "float32", low: float = -2.0, high: float = 2.0, atol: float | None = None,
                   rtol: float | None = None, grad: bool = True, arrays: Sequence[np.ndarray] | None = None,
                   grad_atol: float | None = None) -> None:
    """fg_fn(*fusegrad tensors) must match torch_fn(*torch tensors) (default: the same function).

    Gradients are compared through a random-weighted sum of the output, so every element's
    gradient matters. Integer/bool inputs never require grad.
    """
    torch_fn = torch_fn or fg_fn
    arrays = list(arrays) if arrays is not None else [random_array(s, dtype, low, high) for s in shapes]
    floating = dtype in TOL
    want_grad = grad and floating
    fg_in = [fg.tensor(a, dtype=dtype, requires_grad=want_grad and a.dtype.kind == "f") for a in arrays]
    out = fg_fn(*fg_in)
    d_atol, d_rtol = TOL.get(dtype, (0, 0))
    atol = d_atol if atol is None else atol
    rtol = d_rtol if rtol is None else rtol
    t_in = [to_torch(a, dtype, want_grad and a.dtype.kind == "f") for a in arrays]
    t_out = torch_fn(*t_in)
    outs, t_outs = (out, t_out) if isinstance(out, tuple) else ((out,), (t_out,))
    for o, t in zip(outs, t_outs):
        ref = t.detach().float().numpy() if t.dtype == torch.bfloat16 else t.detach().numpy()
        got = o.numpy()
        assert got.shape == ref.shape, f"shape {got.shape} != torch {ref.shape}"
        assert str(o.dtype.name) == str(t.dtype).removeprefix("torch."), f"dtype {o.dtype} != torch {t.dtype}"
        np.testing.assert_allclose(got, ref, atol=atol, rtol=rtol, equal_nan=True)
    if not want_grad or not outs[0].requires_grad:
        return
    weights = RNG.uniform(-1, 1, size=outs[0].shape).astype("float32" if dtype == "bfloat16" else dtype)
    (outs[0] * fg.tensor(weights, dtype=dtype)).sum().backward()
    (t_outs[0] * to_torch(weights, dtype, False)).sum().backward()
    g_atol = grad_atol if grad_atol is not None else atol * 10
    for f, t in zip(fg_in, t_in):
        if t.grad is None:
            continue
        tg = t.grad.float().numpy() if t.grad.dtype == torch.bfloat16 else t.grad.numpy()
        assert f.grad is not None, "fusegrad produced no gradient where torch did"
        np.testing.assert_allclose(f.grad.numpy(), tg, atol=g_atol, rtol=rtol * 10, equal_nan=True)


def finite_difference_check(fn: Callable[[fg.Tensor], fg.Tensor], x: np.ndarray, eps: float = 1e-6,
                            tol: float = 1e-6) -> None:
    """The float64 gradient of sum(fn(x)) must match central finite differences."""
    xt = fg.tensor(x.astype(np.float64), requires_grad=True)
    fn(xt).sum().backward()
    numeric = np.zeros_like(x, dtype=np.float64)
    flat = x.astype(np.float64).reshape(-1)
    for i in range(flat.size):
        plus, minus = flat.copy(), flat.copy()
        plus[i] += eps
        minus[i] -= eps
        f_plus = fn(fg.tensor(plus.reshape(x.shape))).sum().item()
        f_minus = fn(fg.tensor(minus.reshape(x.shape))).sum().item()
        numeric.reshape(-1)[i] = (f_plus - f_minus) / (2 * eps)
    np.testing.assert_allclose(xt.grad.numpy(), numeric, atol=tol, rtol=tol)


def training_step(model: fg.nn.Module, opt: fg.optim.Optimizer) -> Callable[[fg.Tensor, fg.Tensor], fg.Tensor]:
    """One classification training step (zero the grads, cross-entropy, backward, update); the model
    and optimizer live in its closure, where fg.jit finds them."""
    def step(x: fg.Tensor, y: fg.Tensor) -> fg.Tensor:
        opt.zero_grad()
        loss = fg.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return step


def qkv_attention(lib: Any, x: Any, w: Any, heads: int) -> Any:
    """Causal attention through one fused q/k/v projection, written the usual way, in fusegrad or torch:
    the projection is split, the heads moved in front, and the output squared and summed (a loss)."""
    b, t, c = x.shape
    F = fg.nn.functional if lib is fg else torch.nn.functional
    q, k, v = (x @ w).split(c, -1)
    q, k, v = (z.reshape(b, t, heads, c // heads).transpose(1, 2) for z in (q, k, v))
    return F.scaled_dot_product_attention(q, k, v, is_causal=True).square().sum()


def checks_on_host() -> bool:
    """Does the default device check indices already in its memory at the call (host memory), rather
    than in the kernel that reads them (docs/trust.md)?"""
    from fusegrad.runtime import registry
    return registry.get(fg.zeros(1).device).host_memory


def raises_at_call_or_read(error: type[BaseException], build: Callable[[], Any]) -> None:
    """`build()` raises `error` at the call, or, on a device that checks data in its kernels, the call
    returns and reading its result raises (an error found from the shapes alone raises at the call
    everywhere)."""
    import pytest
    try:
        out = build()
    except error:
        return
    assert not checks_on_host(), f"{build} returned instead of raising {error.__name__} at the call"
    with pytest.raises(error):
        (out[0] if isinstance(out, tuple) else out).numpy()
