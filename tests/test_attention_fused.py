"""The fused attention kernel (Op.ATTENTION): values and gradients against torch's SDPA, one kernel per
direction, memory linear in the sequence length, higher-order gradients, and fg.jit."""
import numpy as np
import pytest
import torch

import fusegrad as fg
from fusegrad import nn
from fusegrad.ops import attention
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


HALF_CASES = {  # q, k, v shapes: tiles of 64 rows with tails, head dims padded to 16, wide heads
    "tails": ((2, 3, 70, 64),) * 3,
    "heads_of_128": ((2, 2, 130, 128),) * 3,
    "padded_heads": ((1, 3, 50, 24), (1, 3, 75, 24), (1, 3, 75, 40)),
    "more_queries": ((1, 1, 90, 8), (1, 1, 20, 8), (1, 1, 20, 16)),
    "unbatched": ((33, 32), (33, 32), (33, 32)),
    "broadcast_batch": ((3, 2, 40, 32), (1, 2, 40, 32), (3, 1, 40, 32)),
    "wide_heads": ((1, 2, 37, 160), (1, 2, 21, 160), (1, 2, 21, 40)),  # past the tensor-core kernel's heads
}
HALF_TOLERANCE = {"bfloat16": 2e-2, "float16": 4e-3}  # relative errors, as norms


def _float64_copies(tensors: list) -> list:
    """torch float64 leaves holding the values of fusegrad tensors (half values widened exactly)."""
    return [torch.tensor(x.float().numpy().astype(np.float64), requires_grad=True) for x in tensors]


def _backward_both(out, ref, weights: np.ndarray) -> None:
    """Backpropagate the same weighted sum of fusegrad's `out` and torch's float64 `ref`."""
    (out.float() * fg.tensor(weights)).sum().backward()
    (ref * torch.tensor(weights, dtype=torch.float64)).sum().backward()


def _relative_errors(pairs) -> list[float]:
    """Relative norm errors of fusegrad tensors against torch float64 tensors, pair by pair."""
    errors = []
    for got, want in pairs:
        want = want.detach().numpy()
        errors.append(float(np.linalg.norm(got.float().numpy() - want) / np.linalg.norm(want)))
    return errors


def _gpt_heads(qkv, shape: tuple) -> list:
    """q, k and v (B, H, T, D) as views of one (B, T, 3 H D) projection."""
    b, h, t, d = shape
    return [y.reshape(b, t, h, d).transpose(1, 2) for y in qkv.split(h * d, dim=2)]


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("case", sorted(HALF_CASES))
def test_half_attention_matches_float64(case: str, causal: bool, dtype: str) -> None:
    """bfloat16/float16 attention (on CUDA the tensor-core kernel, float32 accumulation; elsewhere in
    float32), forward and the three gradients against float64 on the same rounded inputs."""
    shapes = HALF_CASES[case]
    ours = [fg.tensor(RNG.standard_normal(s).astype(np.float32), dtype=dtype, requires_grad=True) for s in shapes]
    batch = np.broadcast_shapes(*(s[:-2] for s in shapes))
    weights = RNG.standard_normal(batch + (shapes[0][-2], shapes[2][-1])).astype(np.float32)
    exact = _float64_copies(ours)
    out = sdpa(*ours, is_causal=causal)
    ref = torch.nn.functional.scaled_dot_product_attention(*exact, is_causal=causal)
    _backward_both(out, ref, weights)
    got = [out, *(x.grad for x in ours)]
    assert all(x.dtype == getattr(fg, dtype) for x in got)
    errors = _relative_errors(zip(got, [ref, *(x.grad for x in exact)]))
    assert max(errors) < HALF_TOLERANCE[dtype], errors


def test_half_attention_with_grouped_key_heads() -> None:
    """enable_gqa: four query heads share each key/value head, read in place (no repeated copy)."""
    shapes = ((2, 8, 70, 32), (2, 2, 70, 32), (2, 2, 70, 32))
    ours = [fg.tensor(RNG.standard_normal(s).astype(np.float32), dtype="bfloat16", requires_grad=True) for s in shapes]
    exact = _float64_copies(ours)
    weights = RNG.standard_normal((2, 8, 70, 32)).astype(np.float32)
    out = sdpa(*ours, is_causal=True, enable_gqa=True)
    ref = torch.nn.functional.scaled_dot_product_attention(*exact, is_causal=True, enable_gqa=True)
    _backward_both(out, ref, weights)
    errors = _relative_errors([(out, ref), *((a.grad, b.grad) for a, b in zip(ours, exact))])
    assert max(errors) < HALF_TOLERANCE["bfloat16"], errors


@pytest.mark.parametrize("offset", [0, 1], ids=["aligned", "misaligned"])
def test_half_attention_reads_heads_split_from_one_projection(offset: int) -> None:
    """bfloat16 q, k and v as views of one projection, as a GPT makes them; with `offset` the views start
    one element into their buffer (rows no longer 16-byte aligned: element copies)."""
    b, t, h, d = 2, 80, 3, 32
    x = fg.tensor(RNG.standard_normal((b, t, 3 * h * d + offset)).astype(np.float32), dtype="bfloat16",
                  requires_grad=True)
    qkv = x[..., offset:]
    weights = RNG.standard_normal((b, h, t, d)).astype(np.float32)
    ours = _gpt_heads(qkv, (b, h, t, d))
    (exact,) = _float64_copies([qkv])
    out = sdpa(*ours, is_causal=True)
    ref = torch.nn.functional.scaled_dot_product_attention(*_gpt_heads(exact, (b, h, t, d)), is_causal=True)
    _backward_both(out, ref, weights)
    errors = _relative_errors([(out, ref), (x.grad[..., offset:], exact.grad)])
    assert max(errors) < HALF_TOLERANCE["bfloat16"], errors


def test_half_attention_is_one_kernel_a_direction_with_float32_statistics() -> None:
    """The forward of bfloat16 operands writes float32 rows and log-sum-exp (one ATTENTION kernel); the
    backward runs the two gradient kernels."""
    q, k, v = (fg.tensor(RNG.standard_normal((1, 2, 96, 32)).astype(np.float32), dtype="bfloat16",
                         requires_grad=True) for _ in range(3))
    forward = _kernels(lambda: sdpa(q, k, v, is_causal=True).realize())
    assert [kl.op for kl in forward].count("ATTENTION") == 1
    out = sdpa(q, k, v, is_causal=True)
    assert out.dtype == fg.bfloat16 and out._node.srcs[0].srcs[0].dtype == fg.float32
    backward = _kernels(lambda: out.float().sum().backward())
    assert [kl.op for kl in backward].count("ATTENTION") == 3
