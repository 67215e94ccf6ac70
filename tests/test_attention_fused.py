"""The fused attention kernel (Op.ATTENTION): values and gradients against torch's SDPA, one kernel per
direction, memory linear in the sequence length, higher-order gradients, and fg.jit."""
import numpy as np
import pytest
import torch

import fusegrad as fg
from fusegrad import nn
from fusegrad.ops import attention
from fusegrad.runtime import cuda as cuda_rt
from tests.helpers import RNG

sdpa = nn.functional.scaled_dot_product_attention


@pytest.fixture(autouse=True)
def _fused_at_every_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """On the CPU small attention takes the composed form (prefers_fused); these tests check the kernel."""
    monkeypatch.setattr(attention, "CPU_FUSED_SCORES", 0)


def test_the_cpu_fuses_from_a_size_on_and_other_devices_always(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(attention, "CPU_FUSED_SCORES", 1 << 16)
    assert not attention.prefers_fused("cpu", 128, 128) and attention.prefers_fused("cpu", 256, 256)
    assert attention.prefers_fused("cuda:0", 1, 1) and attention.prefers_fused("opencl:0", 1, 1)
    q, k, v = (fg.randn(2, 16, 8, device="cpu") for _ in range(3))
    assert "ATTENTION" not in [kl.op for kl in _kernels(lambda: sdpa(q, k, v).realize())]

CASES = {  # q, k, v shapes
    "square": ((2, 3, 33, 16), (2, 3, 33, 16), (2, 3, 33, 16)),
    "more_keys": ((2, 2, 7, 8), (2, 2, 19, 8), (2, 2, 19, 5)),
    "more_queries": ((1, 2, 21, 4), (1, 2, 6, 4), (1, 2, 6, 9)),
    "unbatched": ((11, 6), (11, 6), (11, 3)),
    "broadcast_batch": ((3, 2, 9, 8), (1, 2, 9, 8), (3, 1, 9, 8)),
    "wide_heads": ((1, 2, 37, 160), (1, 2, 21, 160), (1, 2, 21, 40)),  # the CPU's blocks of 16 rows
    "widest_heads": ((1, 5, 300), (1, 6, 300), (1, 6, 3)),  # the CPU's row at a time
}


def _compare(shapes, dtype: str, atol: float, **kwargs) -> None:
    arrays = [RNG.standard_normal(s).astype(dtype) for s in shapes]
    batch = np.broadcast_shapes(*(s[:-2] for s in shapes))
    weights = RNG.standard_normal(batch + (shapes[0][-2], shapes[2][-1])).astype(dtype)
    ours = [fg.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = sdpa(*ours, **kwargs)
    ref = torch.nn.functional.scaled_dot_product_attention(*theirs, **kwargs)
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), atol=atol, rtol=atol)
    (out * fg.tensor(weights)).sum().backward()
    (ref * torch.tensor(weights)).sum().backward()
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), atol=10 * atol, rtol=10 * atol)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("case", sorted(CASES))
def test_fused_attention_matches_torch(case: str, causal: bool, dtype: str) -> None:
    _compare(CASES[case], dtype, 3e-5 if dtype == "float32" else 1e-12, is_causal=causal, scale=0.37)


def test_fused_attention_reads_heads_split_from_one_projection() -> None:
    """q, k and v as a GPT makes them: views of one (B, T, 3C) projection, heads moved forward."""
    b, t, h, d = 2, 24, 3, 8
    x = RNG.standard_normal((b, t, 3 * h * d)).astype(np.float32)

    def heads(lib, qkv):
        q, k, v = qkv.split(h * d, dim=2)
        return [y.reshape(b, t, h, d).transpose(1, 2) for y in (q, k, v)]
    ours = fg.tensor(x, requires_grad=True)
    theirs = torch.tensor(x, requires_grad=True)
    out = sdpa(*heads(fg, ours), is_causal=True)
    ref = torch.nn.functional.scaled_dot_product_attention(*heads(torch, theirs), is_causal=True)
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), atol=1e-5)
    out.square().sum().backward()
    ref.square().sum().backward()
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), atol=1e-4)


def _kernels(fn) -> list:
    with fg.profile() as p:
        fn()
    return p.kernels


def test_one_kernel_per_direction_and_no_score_matrix() -> None:
    b, h, t, d = 1, 2, 384, 16
    q, k, v = (fg.tensor(RNG.standard_normal((b, h, t, d)).astype(np.float32), requires_grad=True)
               for _ in range(3))
    dout = fg.tensor(RNG.standard_normal((b, h, t, d)).astype(np.float32))
    for x in (q, k, v, dout):
        x.realize()
    before = fg.memory_stats()["current_bytes"]
    forward = _kernels(lambda: sdpa(q, k, v, is_causal=True).realize())
    assert [kl.op for kl in forward].count("ATTENTION") == 1
    out = sdpa(q, k, v, is_causal=True)
    backward = _kernels(lambda: (out * dout).sum().backward())
    assert [kl.op for kl in backward].count("ATTENTION") == 3  # the forward again, and both gradients
    scores = b * h * t * t * 4
    assert max(kl.bytes_moved for kl in forward + backward) < scores
    assert fg.memory_stats()["current_bytes"] - before < scores


@pytest.mark.parametrize("kwargs", [{"attn_mask": "bool"}, {"dropout_p": 0.5}], ids=["mask", "dropout"])
def test_masks_and_dropout_take_the_composed_path(kwargs: dict) -> None:
    q, k, v = (fg.randn(2, 5, 8) for _ in range(3))
    if "attn_mask" in kwargs:
        kwargs = {"attn_mask": fg.tensor(RNG.uniform(0, 1, (5, 5)) > 0.2)}
    assert "ATTENTION" not in [kl.op for kl in _kernels(lambda: sdpa(q, k, v, **kwargs).realize())]


def test_second_order_gradients_match_torch() -> None:
    arrays = [RNG.standard_normal((2, 6, 4)) for _ in range(3)]
    ours = [fg.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    results = []
    for lib, f, inputs in ((fg, sdpa, ours), (torch, torch.nn.functional.scaled_dot_product_attention, theirs)):
        out = f(*inputs, is_causal=True)
        grads = lib.autograd.grad(out.square().sum(), inputs, create_graph=True)
        second = lib.autograd.grad(sum((g * g).sum() for g in grads), inputs)
        results.append([x.detach().numpy() if lib is torch else x.numpy() for x in (*grads, *second)])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, atol=1e-10)


def test_jitted_attention_step_equals_eager() -> None:
    q, k, v = (fg.tensor(RNG.standard_normal((2, 3, 20, 8)).astype(np.float32), requires_grad=True)
               for _ in range(3))

    def step(q, k, v):
        q.grad = k.grad = v.grad = None
        out = sdpa(q, k, v, is_causal=True)
        out.square().sum().backward()
        return out, q.grad, k.grad, v.grad
    eager = [x.numpy() for x in step(q, k, v)]
    jitted = fg.jit(step)
    for _ in range(3):
        for a, b in zip(jitted(q, k, v), eager):
            np.testing.assert_allclose(a.numpy(), b, atol=1e-6)


@pytest.mark.skipif(cuda_rt.unavailable_reason() is not None, reason=f"no CUDA GPU: {cuda_rt.unavailable_reason()}")
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("shapes", [((2, 3, 70, 64),) * 3, ((1, 2, 37, 160), (1, 2, 21, 160), (1, 2, 21, 40))])
def test_half_attention_on_cuda_matches_float64(dtype: str, shapes: tuple) -> None:
    """bfloat16/float16 attention on the GPU's tiled kernel (float32 inside, rounded once at the
    store), causal, forward and the three gradients against float64 on the same rounded inputs."""
    arrays = [RNG.standard_normal(s).astype(np.float32) for s in shapes]
    ours = [fg.tensor(a, dtype=dtype, device="cuda", requires_grad=True) for a in arrays]
    exact = [torch.tensor(t.float().numpy().astype(np.float64), requires_grad=True) for t in ours]
    weights = RNG.standard_normal(shapes[0][:-1] + (shapes[2][-1],)).astype(np.float32)
    out = sdpa(*ours, is_causal=True)
    ref = torch.nn.functional.scaled_dot_product_attention(*exact, is_causal=True)
    (out.float() * fg.tensor(weights, device="cuda")).sum().backward()
    (ref * torch.tensor(weights, dtype=torch.float64)).sum().backward()
    tol = {"bfloat16": 2e-2, "float16": 4e-3}[dtype]
    for got, want in [(out, ref), *((a.grad, b.grad) for a, b in zip(ours, exact))]:
        assert got.dtype == getattr(fg, dtype)
        want = want.detach().numpy()
        error = np.linalg.norm(got.float().numpy() - want) / np.linalg.norm(want)
        assert error < tol, error
