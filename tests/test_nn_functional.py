"""nn.functional against torch.nn.functional: layers, activations, attention and every loss option."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import fusegrad as fg
from fusegrad import nn
from tests import helpers
from tests.helpers import RNG, check_op, random_array

FG = SimpleNamespace(F=nn.functional, t=fg.tensor, lib=fg)
TH = SimpleNamespace(F=torch.nn.functional, t=torch.tensor, lib=torch)


def check(shapes, fn, **kw):
    """fn(L, *inputs) with L.F the functional module, L.t the tensor constructor of fusegrad or torch."""
    check_op(shapes, lambda *x: fn(FG, *x), lambda *x: fn(TH, *x), **kw)


# ---- layers -----------------------------------------------------------------------------------------

LAYER_CASES = [
    ("linear", [(2, 3, 5), (4, 5), (4,)], lambda L, x, w, b: L.F.linear(x, w, b)),
    ("linear_nobias_T", [(5, 3), (4, 5)], lambda L, x, w: L.F.linear(x.T, w)),
    ("linear_empty", [(0, 5), (4, 5)], lambda L, x, w: L.F.linear(x, w)),
    ("conv1d", [(2, 4, 9), (6, 2, 3), (6,)], lambda L, x, w, b: L.F.conv1d(x, w, b, stride=2, padding=2, groups=2)),
    ("conv1d_same", [(2, 4, 9), (6, 4, 4)], lambda L, x, w: L.F.conv1d(x, w, padding="same")),
    ("conv2d", [(2, 3, 7, 7), (4, 3, 3, 3), (4,)], lambda L, x, w, b: L.F.conv2d(x, w, b)),
    ("conv2d_all", [(2, 4, 8, 7), (6, 2, 3, 2)],
     lambda L, x, w: L.F.conv2d(x, w, stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)),
    ("conv2d_same_even", [(2, 3, 7, 7), (4, 3, 4, 2)], lambda L, x, w: L.F.conv2d(x, w, padding="same")),
    ("conv2d_valid_permuted", [(2, 7, 7, 3), (4, 3, 3, 3)],
     lambda L, x, w: L.F.conv2d(x.permute(0, 3, 1, 2), w, padding="valid")),
    ("conv_transpose2d", [(2, 4, 5, 5), (4, 3, 3, 3), (3,)],
     lambda L, x, w, b: L.F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1)),
    ("conv_transpose2d_groups", [(2, 4, 5, 5), (4, 2, 2, 3)],
     lambda L, x, w: L.F.conv_transpose2d(x, w, stride=(1, 2), groups=2, dilation=2)),
    # strided ones run as one stride-1 product per output phase: phases of unequal taps, phases
    # without taps (stride above the kernel), crops, output padding past the phases, groups
    ("conv_transpose2d_phases", [(2, 4, 5, 6), (4, 2, 5, 3), (4,)],
     lambda L, x, w, b: L.F.conv_transpose2d(x, w, b, stride=(2, 3), padding=(2, 1), output_padding=(1, 2), groups=2)),
    ("conv_transpose2d_sparse_phases", [(2, 3, 4, 4), (3, 2, 2, 2)],
     lambda L, x, w: L.F.conv_transpose2d(x, w, stride=3, output_padding=2)),
    ("conv_transpose2d_dcgan", [(1, 4, 6, 5), (4, 3, 4, 4)],
     lambda L, x, w: L.F.conv_transpose2d(x, w, stride=2, padding=1)),
    ("max_pool2d", [(2, 3, 7, 7)], lambda L, x: L.F.max_pool2d(x, 3, 2, 1)),
    ("max_pool2d_rect_ceil", [(2, 3, 7, 7)], lambda L, x: L.F.max_pool2d(x, (2, 3), (2, 2), ceil_mode=True)),
    ("avg_pool2d", [(2, 3, 7, 7)], lambda L, x: L.F.avg_pool2d(x, 2)),
    ("avg_pool2d_opts", [(2, 3, 7, 7)],
     lambda L, x: L.F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False)),
    ("avg_pool2d_divisor", [(2, 3, 7, 7)], lambda L, x: L.F.avg_pool2d(x, 3, 2, 1, divisor_override=5)),
    ("adaptive_avg_pool2d", [(2, 3, 7, 5)], lambda L, x: L.F.adaptive_avg_pool2d(x, (4, 3))),
    ("adaptive_avg_pool2d_div", [(2, 3, 6, 6)], lambda L, x: L.F.adaptive_avg_pool2d(x, 2)),
    ("layer_norm", [(2, 4, 6), (6,), (6,)], lambda L, x, w, b: L.F.layer_norm(x, (6,), w, b)),
    ("layer_norm_2d_eps", [(2, 4, 6)], lambda L, x: L.F.layer_norm(x, (4, 6), eps=1e-2)),
    ("group_norm", [(2, 6, 5, 3), (6,), (6,)], lambda L, x, w, b: L.F.group_norm(x, 3, w, b)),
    ("rms_norm", [(2, 4, 6), (6,)], lambda L, x, w: L.F.rms_norm(x, (6,), w)),
    ("rms_norm_eps", [(2, 4, 6)], lambda L, x: L.F.rms_norm(x, (4, 6), eps=1e-2)),
    ("batch_norm_train", [(4, 3, 5), (3,), (3,)],
     lambda L, x, w, b: L.F.batch_norm(x, None, None, w, b, training=True)),
    ("batch_norm_eval", [(4, 3, 5), (3,), (3,)],
     lambda L, x, w, b: L.F.batch_norm(x, L.t(RUN_MEAN), L.t(RUN_VAR), w, b, training=False, eps=1e-3)),
    ("dropout_eval", [(3, 4)], lambda L, x: L.F.dropout(x, 0.5, training=False)),
    ("pad", [(2, 3, 4)], lambda L, x: L.F.pad(x, (1, 2, 0, 3))),
    ("pad_value", [(2, 3, 4)], lambda L, x: L.F.pad(x, (2, 1), value=-1.5)),
    ("pad_crop", [(2, 3, 4)], lambda L, x: L.F.pad(x, (-1, 2, 1, -2), value=0.5)),
    ("embedding", [(7, 4)], lambda L, w: L.F.embedding(L.t(IDX), w)),
    ("embedding_padding", [(7, 4)], lambda L, w: L.F.embedding(L.t(IDX), w, padding_idx=5)),
    # pools tiling the input exactly (a reshape instead of sliding windows), padded, rectangular
    ("max_pool2d_tiled", [(2, 3, 8, 6)], lambda L, x: L.F.max_pool2d(x, 2)),
    ("max_pool2d_tiled_pad", [(2, 3, 6, 4)], lambda L, x: L.F.max_pool2d(x, (2, 3), padding=1)),
    ("max_pool2d_tiled_ties", [(2, 3, 8, 6)], lambda L, x: L.F.max_pool2d(L.F.relu(x) * 0, 2)),
    ("avg_pool2d_tiled", [(2, 3, 6, 9)], lambda L, x: L.F.avg_pool2d(x, (2, 3))),
    ("max_pool2d_tiled_floor", [(2, 3, 7, 11)], lambda L, x: L.F.max_pool2d(L.F.relu(x), (2, 3))),
    # convolutions large enough for the GEMM path: odd sizes, stride, padding, dilation, groups
    ("conv2d_gemm", [(3, 8, 13, 11), (20, 8, 3, 3), (20,)], lambda L, x, w, b: L.F.conv2d(x, w, b)),
    ("conv2d_gemm_all", [(2, 6, 15, 14), (12, 3, 3, 2)],
     lambda L, x, w: L.F.conv2d(x, w, stride=(2, 1), padding=(1, 2), dilation=(2, 1), groups=2)),
    ("conv2d_gemm_1ch", [(5, 1, 20, 17), (33, 1, 3, 3)], lambda L, x, w: L.F.conv2d(x, w, padding=1)),
    ("conv_block", [(4, 3, 14, 14), (16, 3, 3, 3), (16,), (16,)],
     lambda L, x, w, g, b: L.F.max_pool2d(L.F.relu(L.F.batch_norm(L.F.conv2d(x, w), None, None, g, b,
                                                                   training=True)), 2)),
]
RUN_MEAN = random_array((3,))
RUN_VAR = random_array((3,), low=0.5, high=1.5)
IDX = np.array([[1, 5, 1], [6, 5, 0]])


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("name,shapes,fn", LAYER_CASES, ids=[c[0] for c in LAYER_CASES])
def test_functional_layers(name, shapes, fn):
    check(shapes, fn, atol=1e-5, grad_atol=1e-4)


@pytest.mark.parametrize("name,shapes,fn", [LAYER_CASES[5], LAYER_CASES[18], LAYER_CASES[23]],
                         ids=lambda c: c if isinstance(c, str) else "")
def test_functional_layers_float64(name, shapes, fn):
    check(shapes, fn, dtype="float64")


def test_batch_norm_updates_running_stats():
    x = random_array((4, 3, 5))
    means, varis = [fg.tensor(RUN_MEAN), torch.tensor(RUN_MEAN)], [fg.tensor(RUN_VAR), torch.tensor(RUN_VAR)]
    for (F, t), rm, rv in zip(((FG.F, fg.tensor), (TH.F, torch.tensor)), means, varis):
        F.batch_norm(t(x), rm, rv, training=True, momentum=0.25)
    np.testing.assert_allclose(means[0].numpy(), means[1].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(varis[0].numpy(), varis[1].numpy(), rtol=1e-5, atol=1e-6)


def test_dropout_functional_training():
    x = fg.ones(100, 100)
    out = nn.functional.dropout(x, 0.3).numpy()
    assert abs((out == 0).mean() - 0.3) < 0.025  # 5 standard errors
    np.testing.assert_allclose(out[out != 0], 1 / 0.7, rtol=1e-6)
    np.testing.assert_array_equal(nn.functional.dropout(x, 0.3, training=False).numpy(), x.numpy())


def test_one_hot():
    idx = np.array([[0, 3], [2, 1]])
    for n in (-1, 5):
        out = nn.functional.one_hot(fg.tensor(idx), n)
        assert out.dtype == fg.int64
        np.testing.assert_array_equal(out.numpy(), torch.nn.functional.one_hot(torch.tensor(idx), n).numpy())
    helpers.raises_at_call_or_read(fg.Error, lambda: nn.functional.one_hot(fg.tensor(idx), 3))


# ---- activations ------------------------------------------------------------------------------------

ACTIVATION_CASES = [
    ("relu", lambda L, x: L.F.relu(x)),
    ("gelu", lambda L, x: L.F.gelu(x)),
    ("gelu_tanh", lambda L, x: L.F.gelu(x, approximate="tanh")),
    ("silu", lambda L, x: L.F.silu(x)),
    ("leaky_relu", lambda L, x: L.F.leaky_relu(x, 0.1)),
    ("elu", lambda L, x: L.F.elu(x, 0.7)),
    ("tanh", lambda L, x: L.F.tanh(x)),
    ("sigmoid", lambda L, x: L.F.sigmoid(x)),
    ("softmax", lambda L, x: L.F.softmax(x, dim=0)),
    ("softmax_T", lambda L, x: L.F.softmax(x.T, dim=-1)),
    ("log_softmax", lambda L, x: L.F.log_softmax(x, dim=1)),
    ("log_softmax_dtype", lambda L, x: L.F.log_softmax(x, 1, dtype=L.lib.float64)),
]


@pytest.mark.parametrize("name,fn", ACTIVATION_CASES, ids=[c[0] for c in ACTIVATION_CASES])
def test_functional_activations(name, fn):
    check([(4, 5)], fn, low=-5, high=5)


@pytest.mark.parametrize("name,fn", [ACTIVATION_CASES[1], ACTIVATION_CASES[10]], ids=["gelu", "log_softmax"])
def test_functional_activations_float64_and_empty(name, fn):
    check([(4, 5)], fn, dtype="float64")
    check([(0, 5)], fn)


def test_softmax_extreme_inputs_stay_finite():
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]], np.float32)
    for fn in (ACTIVATION_CASES[8][1], ACTIVATION_CASES[10][1]):
        check([], fn, arrays=[x])


# ---- scaled dot-product attention ----------------------------------------------------------------------

SDPA_BOOL = np.array([[True, False, True, True], [True, True, False, True], [False, True, True, True]])


@pytest.mark.parametrize("kwargs", [
    {},
    {"is_causal": True},
    {"attn_mask": SDPA_BOOL},
    {"attn_mask": RNG.uniform(-2, 2, (3, 4)).astype(np.float32)},
    {"scale": 0.3},
], ids=["plain", "causal", "bool_mask", "float_mask", "scale"])
def test_scaled_dot_product_attention(kwargs):
    def fn(L, q, k, v):
        kw = {key: L.t(val) if isinstance(val, np.ndarray) else val for key, val in kwargs.items()}
        return L.F.scaled_dot_product_attention(q, k, v, **kw)
    check([(2, 2, 3, 8), (2, 2, 4, 8), (2, 2, 4, 6)], fn, atol=1e-5, grad_atol=1e-4)


def test_scaled_dot_product_attention_causal_square_float64():
    check([(2, 4, 5), (2, 4, 5), (2, 4, 5)],
          lambda L, q, k, v: L.F.scaled_dot_product_attention(q, k, v, is_causal=True), dtype="float64")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("causal", [False, True])
def test_scaled_dot_product_attention_half_types(dtype, causal):
    check([(2, 3, 5, 8), (2, 3, 7, 8), (2, 3, 7, 4)],
          lambda L, q, k, v: L.F.scaled_dot_product_attention(q, k, v, is_causal=causal), dtype=dtype,
          atol=3e-2, rtol=3e-2, grad_atol=8e-2)


@pytest.mark.parametrize("shapes", [[(7, 3), (5, 3), (5, 2)], [(1, 4, 1, 5), (1, 4, 9, 5), (1, 4, 9, 5)],
                                    [(3, 2, 13, 7), (3, 2, 13, 7), (3, 2, 13, 11)]],
                         ids=["unbatched_odd", "one_query", "odd_heads"])
def test_scaled_dot_product_attention_odd_sizes_causal_top_left(shapes):
    """Query and key lengths may differ: causal keeps key j for query i where j <= i (top left)."""
    check(shapes, lambda L, q, k, v: L.F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.7),
          atol=1e-5, grad_atol=1e-4)


def test_scaled_dot_product_attention_broadcast_mask_and_grouped_query_heads():
    mask = RNG.uniform(0, 1, (2, 1, 5, 7)) > 0.3
    mask[..., 0] = True  # every query sees a key
    check([(2, 6, 5, 8), (2, 2, 7, 8), (2, 2, 7, 4)],
          lambda L, q, k, v: L.F.scaled_dot_product_attention(q, k, v, attn_mask=L.t(mask), enable_gqa=True),
          atol=1e-5, grad_atol=1e-4)


def test_scaled_dot_product_attention_errors_match_torch():
    q, k, v = fg.randn(2, 4, 5, 8), fg.randn(2, 2, 7, 8), fg.randn(2, 2, 7, 6)
    with pytest.raises(RuntimeError):
        nn.functional.scaled_dot_product_attention(q, fg.randn(2, 4, 7, 8), fg.randn(2, 4, 7, 6),
                                       attn_mask=fg.ones(5, 7, dtype=fg.bool), is_causal=True)
    with pytest.raises(RuntimeError):
        nn.functional.scaled_dot_product_attention(q, fg.randn(2, 3, 7, 8), fg.randn(2, 3, 7, 6), enable_gqa=True)
    with pytest.raises(RuntimeError):
        nn.functional.scaled_dot_product_attention(q, k, v)  # 4 heads against 2 without enable_gqa: no broadcast
    with pytest.raises(RuntimeError):
        nn.functional.scaled_dot_product_attention(q, fg.randn(2, 4, 7, 6), fg.randn(2, 4, 7, 6))
    with pytest.raises(TypeError):
        nn.functional.scaled_dot_product_attention(q, k.half(), v, enable_gqa=True)


def test_scaled_dot_product_attention_dropout_keeps_expectation():
    """With value the identity, the output is the attention weights after dropout: a share dropout_p
    of them is zeroed and the rest scaled by 1 / (1 - p), so their mean over many draws is the weights."""
    fg.manual_seed(5)
    t, p = 16, 0.25
    q, k = (fg.tensor(RNG.standard_normal((64, t, 8)).astype(np.float32)) for _ in range(2))
    eye = fg.eye(t).expand(64, t, t)
    sdpa = nn.functional.scaled_dot_product_attention
    plain = sdpa(q, k, eye).numpy()
    dropped = sdpa(q, k, eye, dropout_p=p).numpy()
    zeroed = (dropped == 0).mean()
    assert abs(zeroed - p) < 0.01, zeroed
    kept = dropped != 0
    np.testing.assert_allclose(dropped[kept], plain[kept] / (1 - p), rtol=1e-5)
    mean = np.mean([sdpa(q, k, eye, dropout_p=p).numpy() for _ in range(40)], axis=0)
    assert abs(mean.mean() - plain.mean()) < 2e-3 and np.abs(mean - plain).mean() < 0.02


# ---- losses -------------------------------------------------------------------------------------------

TARGET = np.array([0, 3, 4, 1, 3, 2])
TARGET_IGN = np.array([0, -100, 4, 1, -100, 2])
TARGET_2D = np.array([[[0, 3], [1, 1], [2, 0]], [[4, 4], [3, 1], [0, 2]]])  # (N=2, d1=3, d2=2)
CLASS_W = np.array([0.5, 2.0, 1.0, 0.1, 3.0], np.float32)
PROBS = RNG.dirichlet(np.ones(5), size=6).astype(np.float32)
REDUCTIONS = ["mean", "sum", "none"]


def ce(L, x, target, reduction="mean", **kw):
    """L.F.cross_entropy with numpy targets/weights turned into L's tensors."""
    extra = {k: L.t(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
    return L.F.cross_entropy(x, L.t(target), reduction=reduction, **extra)


CE_CASES = {
    "plain": ((6, 5), TARGET, {}),
    "weight": ((6, 5), TARGET, {"weight": CLASS_W}),
    "ignore": ((6, 5), TARGET_IGN, {}),
    "ignore_custom": ((6, 5), TARGET, {"ignore_index": 3}),
    "smooth": ((6, 5), TARGET, {"label_smoothing": 0.2}),
    "smooth_weight_ignore": ((6, 5), TARGET_IGN, {"weight": CLASS_W, "label_smoothing": 0.1}),
    "kdim": ((2, 5, 3, 2), TARGET_2D, {}),
    "kdim_weight_smooth": ((2, 5, 3, 2), TARGET_2D, {"weight": CLASS_W, "label_smoothing": 0.3}),
    "probs": ((6, 5), PROBS, {}),
    "probs_weight_smooth": ((6, 5), PROBS, {"weight": CLASS_W, "label_smoothing": 0.25}),
    "unbatched": ((5,), np.array(2), {}),
}


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", CE_CASES)
def test_cross_entropy(name, reduction):
    shape, target, kw = CE_CASES[name]
    check([shape], lambda L, x: ce(L, x, target, reduction, **kw), atol=1e-5)


def test_cross_entropy_soft_target_gradient():
    check([(6, 5), (6, 5)], lambda L, x, p: L.F.cross_entropy(x, p.softmax(-1), label_smoothing=0.1))


@pytest.mark.parametrize("name", ["plain", "smooth_weight_ignore", "probs"])
def test_cross_entropy_extreme_logits(name):
    _, target, kw = CE_CASES[name]
    x = (RNG.choice([-1.0, 1.0], size=(6, 5)) * 1e4).astype(np.float32)
    x[0] = [1e4, 1e4, -1e4, 0, 1e4]
    for reduction in ("mean", "none"):
        assert np.all(np.isfinite(ce(FG, fg.tensor(x), target, reduction, **kw).numpy()))
        check([], lambda L, a: ce(L, a, target, reduction, **kw), arrays=[x], rtol=1e-5, atol=1e-3)


def test_cross_entropy_float64():
    check([(6, 5)], lambda L, x: ce(L, x, TARGET_IGN, weight=CLASS_W.astype(np.float64), label_smoothing=0.1),
          dtype="float64")


def test_cross_entropy_errors():
    x = fg.zeros(6, 5)
    with pytest.raises(fg.ShapeError):
        nn.functional.cross_entropy(x, fg.zeros(6, 4))
    with pytest.raises(ValueError):
        nn.functional.cross_entropy(x, fg.tensor(TARGET), label_smoothing=1.5)
    helpers.raises_at_call_or_read(IndexError, lambda: nn.functional.cross_entropy(x, fg.tensor(np.arange(6))))
    with pytest.raises(ValueError):
        nn.functional.cross_entropy(x, fg.tensor(TARGET), reduction="avg")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kw", [{}, {"weight": CLASS_W}, {"ignore_index": 1}, {"weight": CLASS_W, "ignore_index": 3}],
                         ids=["plain", "weight", "ignore", "weight_ignore"])
def test_nll_loss(kw, reduction):
    def fn(L, x):
        extra = {k: L.t(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
        return L.F.nll_loss(x.log_softmax(1), L.t(TARGET), reduction=reduction, **extra)
    check([(6, 5)], fn)


@pytest.mark.parametrize("target", [TARGET, TARGET_2D[:, 0, 0]], ids=["six", "two"])
def test_cross_entropy_mean_is_the_same_with_targets_read_or_lazy(target):
    """Realized targets are read (to check them), so the mean divides by their known count; lazy targets
    are counted by a kernel. Both give the same loss and gradient, bit for bit."""
    x = RNG.standard_normal((len(target), 5)).astype(np.float32)
    results = []
    for lazy in (False, True):
        xt = fg.tensor(x, requires_grad=True)
        t = fg.tensor(target) + 0 if lazy else fg.tensor(target)
        loss = nn.functional.cross_entropy(xt, t)
        loss.backward()
        results.append((loss.numpy(), xt.grad.numpy()))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_nll_loss_kdim():
    check([(2, 5, 3, 2)], lambda L, x: L.F.nll_loss(x, L.t(TARGET_2D), weight=L.t(CLASS_W)))


REGRESSION_CASES = [
    ("mse", lambda L, a, b, r: L.F.mse_loss(a, b, reduction=r)),
    ("l1", lambda L, a, b, r: L.F.l1_loss(a, b, reduction=r)),
    ("smooth_l1", lambda L, a, b, r: L.F.smooth_l1_loss(a, b, reduction=r)),
    ("smooth_l1_beta", lambda L, a, b, r: L.F.smooth_l1_loss(a, b, reduction=r, beta=0.5)),
    ("smooth_l1_beta0", lambda L, a, b, r: L.F.smooth_l1_loss(a, b, reduction=r, beta=0.0)),
    ("huber", lambda L, a, b, r: L.F.huber_loss(a, b, reduction=r)),
    ("huber_delta", lambda L, a, b, r: L.F.huber_loss(a, b, reduction=r, delta=2.0)),
]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name,fn", REGRESSION_CASES, ids=[c[0] for c in REGRESSION_CASES])
def test_regression_losses(name, fn, reduction):
    check([(4, 6), (4, 6)], lambda L, a, b: fn(L, a, b, reduction))


def test_regression_losses_broadcast_and_float64():
    check([(4, 6), (4, 6)], lambda L, a, b: L.F.huber_loss(a.T, b.T, delta=0.5), dtype="float64")
    check([(4, 6), (4, 6)], lambda L, a, b: L.F.smooth_l1_loss(a, b, beta=0.7), dtype="float64")


BCE_TARGET = RNG.uniform(0, 1, (4, 6)).astype(np.float32)
BCE_W = RNG.uniform(0.5, 2, (6,)).astype(np.float32)
POS_W = RNG.uniform(0.5, 3, (6,)).astype(np.float32)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_binary_cross_entropy(reduction, weighted):
    def fn(L, p, y):
        return L.F.binary_cross_entropy(p, y, weight=L.t(BCE_W) if weighted else None, reduction=reduction)
    check([(4, 6), (4, 6)], fn, low=0.02, high=0.98, atol=1e-5, grad_atol=1e-4)


def test_binary_cross_entropy_saturated_probabilities_clamp_logs():
    p = np.array([0.0, 1.0, 0.5, 1e-30], np.float32)
    y = np.array([1.0, 0.0, 0.3, 1.0], np.float32)
    check([], lambda L, a: L.F.binary_cross_entropy(a, L.t(y), reduction="none"), arrays=[p], grad=False)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kw", [{}, {"weight": BCE_W}, {"pos_weight": POS_W}, {"weight": BCE_W, "pos_weight": POS_W}],
                         ids=["plain", "weight", "pos_weight", "both"])
def test_binary_cross_entropy_with_logits(kw, reduction):
    def fn(L, x, y):
        extra = {k: L.t(v) for k, v in kw.items()}
        return L.F.binary_cross_entropy_with_logits(x, y, reduction=reduction, **extra)
    check([(4, 6), (4, 6)], fn, low=-5, high=5, atol=1e-5, grad_atol=1e-4)


def test_binary_cross_entropy_with_logits_extreme():
    x = (RNG.choice([-1.0, 1.0], size=(4, 6)) * 1e4).astype(np.float32)
    x[0, :3] = [0.0, 50.0, -50.0]

    def fn(L, a):
        return L.F.binary_cross_entropy_with_logits(a, L.t(BCE_TARGET), pos_weight=L.t(POS_W), reduction="none")
    out = fn(FG, fg.tensor(x)).numpy()
    assert np.all(np.isfinite(out))
    # the losses are differences of terms of size 1e4, where float32 values are 1e-3 apart
    check([], fn, arrays=[x], rtol=1e-5, atol=4e-3)


KL_TARGET = RNG.dirichlet(np.ones(6), size=4).astype(np.float32)
KL_TARGET[0, :2] = 0.0  # zero target probabilities contribute nothing (0 * log 0 = 0)


@pytest.mark.parametrize("reduction", ["batchmean", "mean", "sum", "none"])
@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.filterwarnings("ignore:reduction")
def test_kl_div(reduction, log_target):
    target = np.log(np.maximum(KL_TARGET, 1e-3)) if log_target else KL_TARGET

    def fn(L, x):
        return L.F.kl_div(x.log_softmax(-1), L.t(target), reduction=reduction, log_target=log_target)
    check([(4, 6)], fn)


def test_kl_div_target_gradient_float64():
    check([(4, 6), (4, 6)], lambda L, x, t: L.F.kl_div(x.log_softmax(-1), t.softmax(-1), reduction="batchmean"),
          dtype="float64")


# ---- loss modules -------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls,kwargs,low,high", [
    ("MSELoss", {"reduction": "sum"}, -2, 2), ("L1Loss", {}, -2, 2), ("SmoothL1Loss", {"beta": 0.5}, -2, 2),
    ("HuberLoss", {"delta": 0.5, "reduction": "none"}, -2, 2), ("BCELoss", {}, 0.05, 0.95),
    ("BCEWithLogitsLoss", {"reduction": "sum"}, -3, 3), ("KLDivLoss", {"reduction": "batchmean"}, -3, -0.1),
])
def test_loss_modules(cls, kwargs, low, high):
    m, tm = getattr(nn, cls)(**kwargs), getattr(torch.nn, cls)(**kwargs)
    check_op([(4, 6)], lambda x: m(x, fg.tensor(BCE_TARGET)), lambda x: tm(x, torch.tensor(BCE_TARGET)),
                   low=low, high=high)
    assert repr(m) == repr(tm)


def test_classification_loss_modules():
    ce = nn.CrossEntropyLoss(weight=fg.tensor(CLASS_W), ignore_index=1, label_smoothing=0.1)
    tce = torch.nn.CrossEntropyLoss(weight=torch.tensor(CLASS_W), ignore_index=1, label_smoothing=0.1)
    check_op([(6, 5)], lambda x: ce(x, fg.tensor(TARGET)), lambda x: tce(x, torch.tensor(TARGET)))
    nll, tnll = nn.NLLLoss(reduction="sum"), torch.nn.NLLLoss(reduction="sum")
    check_op([(6, 5)], lambda x: nll(x, fg.tensor(TARGET)), lambda x: tnll(x, torch.tensor(TARGET)))


def test_batch_norm_training_second_derivative_matches_torch():
    """The mean's per-channel gradient path keeps higher derivatives exact, not only the first."""
    x, w, b = random_array((4, 3, 5), "float64"), random_array((3,), "float64"), random_array((3,), "float64")
    r = random_array((4, 3, 5), "float64")

    def f(xx, ww, L):
        return (L.F.batch_norm(xx, None, None, ww, L.t(b), training=True) ** 2 * L.t(r)).sum()

    d2 = fg.grad(lambda xx, ww: (fg.grad(lambda a: f(a, ww, FG))(xx) ** 2).sum(), argnums=(0, 1))(
        fg.tensor(x), fg.tensor(w))
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    (gx,) = torch.autograd.grad(f(tx, tw, TH), tx, create_graph=True)
    want = torch.autograd.grad((gx ** 2).sum(), (tx, tw))
    for got, ref in zip(d2, want):
        np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("kernel,stride,padding,dilation", [(2, 2, 0, 1), (3, 2, 1, 1), (3, 1, 1, 1), (2, 1, 0, 2)])
def test_max_pool_gradient_goes_to_the_first_maximum(kernel, stride, padding, dilation):
    """After a ReLU most windows tie at zero: torch gives each window's gradient whole to its first
    maximum (row-major in the window), not shared among the ties."""
    x = np.maximum(RNG.standard_normal((2, 3, 9, 8)).astype(np.float32), 0)
    x[0, 0, :3, :3] = 1.5  # ties above zero too
    tx, px = fg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y = fg.nn.functional.max_pool2d(tx, kernel, stride, padding, dilation)
    g = RNG.standard_normal(y.shape).astype(np.float32)
    (y * fg.tensor(g)).sum().backward()
    py = torch.nn.functional.max_pool2d(px, kernel, stride, padding, dilation)
    (py * torch.tensor(g)).sum().backward()
    np.testing.assert_array_equal(y.numpy(), py.detach().numpy())
    np.testing.assert_allclose(tx.grad.numpy(), px.grad.numpy(), rtol=1e-6, atol=1e-6)
