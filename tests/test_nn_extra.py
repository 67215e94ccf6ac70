"""nn extras against torch: activations, Bilinear and parameter containers, distance and resampling
functions, padding modes, fold/unfold, pooling, and losses (forward and gradients)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import fusegrad as fg
import fusegrad.nn.functional as F
from fusegrad import nn
from tests.helpers import check_op

RNG = np.random.default_rng(11)


def _arr(*shape, low=-4.0, high=4.0, dtype="float32"):
    return RNG.uniform(low, high, size=shape).astype(dtype)


ACTIVATIONS = [
    ("relu6", lambda m, x: m.relu6(x * 2)),
    ("selu", lambda m, x: m.selu(x)),
    ("celu", lambda m, x: m.celu(x, alpha=0.7)),
    ("softsign", lambda m, x: m.softsign(x)),
    ("hardsigmoid", lambda m, x: m.hardsigmoid(x)),
    ("hardswish", lambda m, x: m.hardswish(x)),
    ("hardtanh", lambda m, x: m.hardtanh(x, -0.5, 2.0)),
    ("logsigmoid", lambda m, x: m.logsigmoid(x * 10)),
    ("softmin", lambda m, x: m.softmin(x, dim=1)),
    ("mish", lambda m, x: m.mish(x)),
    ("softshrink", lambda m, x: m.softshrink(x, 0.7)),
    ("hardshrink", lambda m, x: m.hardshrink(x, 0.7)),
    ("tanhshrink", lambda m, x: m.tanhshrink(x)),
    ("softplus", lambda m, x: m.softplus(x, beta=2.0, threshold=3.0)),
    ("threshold", lambda m, x: m.threshold(x, 0.5, -2.0)),
    ("glu", lambda m, x: m.glu(x, dim=1)),
    ("gelu_tanh", lambda m, x: m.gelu(x, approximate="tanh")),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("fn", [a[1] for a in ACTIVATIONS], ids=[a[0] for a in ACTIVATIONS])
def test_activation_functions(fn, dtype):
    check_op([], lambda x: fn(F, x), lambda x: fn(TF, x), dtype=dtype, arrays=[_arr(3, 6, dtype=dtype)])


MODULES = [
    ("ReLU6", (), {}), ("SELU", (), {}), ("CELU", (0.5,), {}), ("Softsign", (), {}),
    ("Hardsigmoid", (), {}), ("Hardswish", (), {}), ("Hardtanh", (-2.0, 1.5), {}), ("LogSigmoid", (), {}),
    ("Softmin", (1,), {}), ("Mish", (), {}), ("Softshrink", (0.3,), {}), ("Hardshrink", (0.3,), {}),
    ("Tanhshrink", (), {}), ("Softplus", (), {"beta": 0.5}), ("GLU", (), {}), ("Threshold", (0.1, 20.0), {}),
]


@pytest.mark.parametrize("name,args,kwargs", MODULES, ids=[m[0] for m in MODULES])
def test_activation_modules(name, args, kwargs):
    ours, theirs = getattr(nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)
    check_op([], ours, theirs, arrays=[_arr(2, 4)])
    assert repr(ours) == repr(theirs)


@pytest.mark.parametrize("num", [1, 3])
def test_prelu_matches_torch(num):
    theirs = torch.nn.PReLU(num, init=0.1)
    ours = nn.PReLU(num, init=0.1)
    assert list(ours.state_dict()) == ["weight"] and ours.weight.shape == (num,)
    x = _arr(2, 3, 4)
    xf, xt = fg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    yf, yt = ours(xf), theirs(xt)
    np.testing.assert_allclose(yf.numpy(), yt.detach().numpy(), rtol=1e-6)
    (yf * yf).sum().backward()
    (yt * yt).sum().backward()
    np.testing.assert_allclose(xf.grad.numpy(), xt.grad.numpy(), rtol=1e-5)
    np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(), rtol=1e-5)


def test_activation_errors():
    with pytest.raises(fg.ShapeError):
        F.glu(fg.zeros(2, 3), dim=1)
    with pytest.raises(fg.ShapeError):
        F.prelu(fg.zeros(2, 3), fg.zeros(2))
    with pytest.raises(ValueError):
        nn.Hardtanh(2.0, 1.0)
    assert nn.SELU(inplace=True)(fg.tensor([1.0])).shape == (1,)


# ---- losses ----------------------------------------------------------------------------------


class Target(np.ndarray):
    """A float array that takes no gradient (torch refuses one for some losses' targets)."""


def _compare(arrays, fg_fn, torch_fn, tol=1e-5, grad=True):
    """Float arrays require grad in both frameworks; compare the loss and every input gradient."""
    wants = [grad and a.dtype.kind == "f" and not isinstance(a, Target) for a in arrays]
    fins = [fg.tensor(np.asarray(a), requires_grad=w) for a, w in zip(arrays, wants)]
    tins = [torch.tensor(np.asarray(a), requires_grad=w) for a, w in zip(arrays, wants)]
    out_f, out_t = fg_fn(*fins), torch_fn(*tins)
    assert out_f.shape == tuple(out_t.shape)
    np.testing.assert_allclose(out_f.numpy(), out_t.detach().numpy(), rtol=tol, atol=tol)
    if not grad:
        return
    w = RNG.uniform(0.5, 1.5, size=tuple(out_t.shape)).astype(np.asarray(arrays[0]).dtype)
    (out_f * fg.tensor(w)).sum().backward()
    (out_t * torch.tensor(w)).sum().backward()
    for f, t in zip(fins, tins):
        if t.grad is not None:
            np.testing.assert_allclose(f.grad.numpy(), t.grad.numpy(), rtol=10 * tol, atol=10 * tol)


def _sign(*shape):
    return np.where(RNG.random(shape) < 0.5, -1.0, 1.0).astype("float64").view(Target)


LOSSES = [
    ("margin_ranking", lambda: [_arr(6, dtype="float64"), _arr(6, dtype="float64"), _sign(6)],
     lambda m, a, b, y, r: m.margin_ranking_loss(a, b, y, margin=0.3, reduction=r)),
    ("triplet", lambda: [_arr(4, 5, dtype="float64") for _ in range(3)],
     lambda m, a, p, n, r: m.triplet_margin_loss(a, p, n, margin=2.0, reduction=r)),
    ("triplet_p1_swap", lambda: [_arr(4, 5, dtype="float64") for _ in range(3)],
     lambda m, a, p, n, r: m.triplet_margin_loss(a, p, n, p=1, swap=True, reduction=r)),
    ("cosine_embedding", lambda: [_arr(5, 4, dtype="float64"), _arr(5, 4, dtype="float64"),
                                  _sign(5).astype("int64")],
     lambda m, a, b, y, r: m.cosine_embedding_loss(a, b, y, margin=0.2, reduction=r)),
    ("hinge_embedding", lambda: [_arr(3, 4, dtype="float64"), _sign(3, 4)],
     lambda m, x, y, r: m.hinge_embedding_loss(x, y, margin=1.5, reduction=r)),
    ("soft_margin", lambda: [_arr(3, 4, dtype="float64"), _sign(3, 4)],
     lambda m, x, y, r: m.soft_margin_loss(x, y, reduction=r)),
    ("poisson_log", lambda: [_arr(3, 4, dtype="float64"), _arr(3, 4, low=0, high=5, dtype="float64")],
     lambda m, x, y, r: m.poisson_nll_loss(x, y, reduction=r)),
    ("poisson_full", lambda: [_arr(3, 4, low=0.1, high=3, dtype="float64"), _arr(3, 4, low=0, high=5,
                                                                                   dtype="float64")],
     lambda m, x, y, r: m.poisson_nll_loss(x, y, log_input=False, full=True, reduction=r)),
    ("gaussian_nll", lambda: [_arr(3, 4, dtype="float64"), _arr(3, 4, dtype="float64"),
                              _arr(3, 4, low=1e-7, high=2, dtype="float64")],
     lambda m, x, y, v, r: m.gaussian_nll_loss(x, y, v, full=True, reduction=r)),
    ("gaussian_nll_homosc", lambda: [_arr(3, 4, dtype="float64"), _arr(3, 4, dtype="float64"),
                                     _arr(3, 1, low=0.1, high=2, dtype="float64")],
     lambda m, x, y, v, r: m.gaussian_nll_loss(x, y, v, reduction=r)),
    ("multilabel_soft_margin", lambda: [_arr(3, 4, dtype="float64"), (RNG.random((3, 4)) < 0.5).astype("float64")
                                        .view(Target), _arr(4, low=0.5, high=2, dtype="float64").view(Target)],
     lambda m, x, y, w, r: m.multilabel_soft_margin_loss(x, y, weight=w, reduction=r)),
    ("multi_margin_p2_weight", lambda: [_arr(5, 4, dtype="float64"), RNG.integers(0, 4, 5),
                                        _arr(4, low=0.5, high=2, dtype="float64").view(Target)],
     lambda m, x, y, w, r: m.multi_margin_loss(x, y, p=2, margin=0.7, weight=w, reduction=r)),
    ("multi_margin", lambda: [_arr(5, 4, low=-0.5, high=0.5, dtype="float64"), RNG.integers(0, 4, 5)],
     lambda m, x, y, r: m.multi_margin_loss(x, y, reduction=r)),
    ("bce_logits_pos_weight", lambda: [_arr(3, 4, dtype="float64"), _arr(3, 4, low=0, high=1, dtype="float64"),
                                       _arr(4, low=0.5, high=2, dtype="float64").view(Target)],
     lambda m, x, y, pw, r: m.binary_cross_entropy_with_logits(x, y, pos_weight=pw, reduction=r)),
    ("ce_label_smoothing_weight", lambda: [_arr(5, 4, dtype="float64"), RNG.integers(0, 4, 5),
                                           _arr(4, low=0.5, high=2, dtype="float64").view(Target)],
     lambda m, x, y, w, r: m.cross_entropy(x, y, weight=w, label_smoothing=0.2, reduction=r)),
    ("ce_smoothing_ignore_index", lambda: [_arr(6, 4, dtype="float64"), np.array([0, 3, -100, 2, 1, -100]),
                                           _arr(4, low=0.5, high=2, dtype="float64").view(Target)],
     lambda m, x, y, w, r: m.cross_entropy(x, y, weight=w, label_smoothing=0.3, reduction=r)),
    ("ce_probabilities", lambda: [_arr(5, 4, 2, dtype="float64"),
                                  RNG.dirichlet(np.ones(4), size=(5, 2)).transpose(0, 2, 1).copy()],
     lambda m, x, y, r: m.cross_entropy(x, y, label_smoothing=0.1, reduction=r)),
    ("nll_weight_ignore", lambda: [_arr(6, 3, dtype="float64"), np.array([0, 2, 1, -100, 2, 0]),
                                   _arr(3, low=0.5, high=2, dtype="float64").view(Target)],
     lambda m, x, y, w, r: m.nll_loss(x, y, weight=w, reduction=r)),
    ("kl_div_log_target", lambda: [_arr(3, 4, dtype="float64"), _arr(3, 4, dtype="float64")],
     lambda m, x, y, r: m.kl_div(x, y, reduction=r, log_target=True)),
    ("huber", lambda: [_arr(3, 4, dtype="float64"), _arr(3, 4, dtype="float64")],
     lambda m, x, y, r: m.huber_loss(x, y, reduction=r, delta=0.7)),
    ("smooth_l1", lambda: [_arr(3, 4, dtype="float64"), _arr(3, 4, dtype="float64")],
     lambda m, x, y, r: m.smooth_l1_loss(x, y, reduction=r, beta=0.5)),
]


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("make,fn", [c[1:] for c in LOSSES], ids=[c[0] for c in LOSSES])
def test_losses_match_torch(make, fn, reduction):
    arrays = make()
    _compare(arrays, lambda *t: fn(F, *t, reduction), lambda *t: fn(TF, *t, reduction), tol=1e-9)


LOSS_MODULES = [
    ("MarginRankingLoss", {"margin": 0.5}, 3), ("TripletMarginLoss", {"margin": 0.5}, 3),
    ("CosineEmbeddingLoss", {}, 3), ("HingeEmbeddingLoss", {}, 2), ("SoftMarginLoss", {}, 2),
    ("PoissonNLLLoss", {"full": True}, 2), ("GaussianNLLLoss", {"eps": 1e-3}, 3),
    ("MultiLabelSoftMarginLoss", {}, 2),
]


@pytest.mark.parametrize("name,kwargs,n", LOSS_MODULES, ids=[m[0] for m in LOSS_MODULES])
def test_loss_modules(name, kwargs, n):
    if name == "CosineEmbeddingLoss":
        arrays = [_arr(4, 3), _arr(4, 3), _sign(4).astype("float32")]
    elif name in ("MarginRankingLoss", "HingeEmbeddingLoss", "SoftMarginLoss"):
        arrays = [_arr(4, 3), _sign(4, 3).astype("float32")] if n == 2 else [_arr(4), _arr(4), _sign(4)
                                                                                .astype("float32")]
    elif name == "GaussianNLLLoss":
        arrays = [_arr(4, 3), _arr(4, 3), _arr(4, 3, low=0, high=1)]
    else:
        arrays = [_arr(4, 3, low=0, high=3) for _ in range(n)]
    _compare(arrays, getattr(nn, name)(**kwargs), getattr(torch.nn, name)(**kwargs), tol=1e-5)


# each case compiles its own recursion kernels: one layout per reduction keeps the file fast
@pytest.mark.parametrize("layout,reduction", [("padded", "none"), ("padded", "mean"), ("concatenated", "sum"),
                                              ("unbatched", "mean")])
def test_ctc_loss_matches_torch(layout, reduction):
    steps, batch, classes = 7, 3, 5
    logits = RNG.standard_normal((steps, batch, classes))
    targets = RNG.integers(1, classes, size=(batch, 4))
    targets[0, 1] = targets[0, 0]  # a repeated label needs a blank between
    in_lens, tgt_lens = np.array([7, 6, 4]), np.array([4, 2, 0])
    args = {"blank": 0, "reduction": reduction}
    if layout == "concatenated":
        targets = np.concatenate([targets[i, :n] for i, n in enumerate(tgt_lens)])
    if layout == "unbatched":
        logits, targets, in_lens, tgt_lens = logits[:, 0], targets[0], in_lens[0], tgt_lens[0]
        cls = 1
    else:
        cls = 2

    def run(m, lib, x):
        tens = torch.tensor if lib is torch else fg.tensor
        return m.ctc_loss(x.log_softmax(cls), tens(targets), tens(in_lens), tens(tgt_lens), **args)
    _compare([logits], lambda x: run(F, fg, x), lambda x: run(TF, torch, x), tol=1e-9)


def test_ctc_empty_inputs_match_torch():
    logits = RNG.standard_normal((4, 3, 5))
    targets = np.array([[1, 2], [3, 3], [2, 1]])
    lens = ([4, 0, 0], [2, 0, 1])  # an empty input with an empty target costs 0, with labels inf
    got = F.ctc_loss(fg.tensor(logits).log_softmax(2), fg.tensor(targets), *lens, reduction="none").numpy()
    want = TF.ctc_loss(torch.tensor(logits).log_softmax(2), torch.tensor(targets), *map(torch.tensor, lens),
                       reduction="none").numpy()
    np.testing.assert_allclose(got, want, rtol=1e-9)


def test_ctc_zero_infinity_and_module():
    logits = RNG.standard_normal((2, 2, 4))
    targets = np.array([[1, 1, 2], [1, 2, 3]])  # three labels (one repeated) cannot fit in two steps
    lens = ([2, 2], [3, 1])
    for zero_inf in (False, True):
        ours = nn.CTCLoss(zero_infinity=zero_inf, reduction="none")
        theirs = torch.nn.CTCLoss(zero_infinity=zero_inf, reduction="none")
        got = ours(fg.tensor(logits).log_softmax(2), fg.tensor(targets), *lens).numpy()
        want = theirs(torch.tensor(logits).log_softmax(2), torch.tensor(targets), *lens).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-9)
    x = fg.tensor(logits, requires_grad=True)
    nn.CTCLoss(zero_infinity=True)(x.log_softmax(2), fg.tensor(targets), *lens).backward()
    xt = torch.tensor(logits, requires_grad=True)
    torch.nn.CTCLoss(zero_infinity=True)(xt.log_softmax(2), torch.tensor(targets), *lens).backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), atol=1e-9)


def test_loss_errors():
    with pytest.raises(ValueError):
        F.triplet_margin_loss(fg.zeros(2, 3), fg.zeros(2, 3), fg.zeros(2, 3), margin=0)
    with pytest.raises(ValueError):
        F.gaussian_nll_loss(fg.zeros(2, 3), fg.zeros(2, 3), fg.ones(3, 2))
    with pytest.raises(ValueError):
        F.soft_margin_loss(fg.zeros(2), fg.zeros(2), reduction="avg")
    with pytest.raises(fg.ShapeError):
        F.ctc_loss(fg.zeros(4, 2, 3), fg.zeros(2, 2).long(), [5, 4], [2, 2])


# ---- Bilinear and parameter containers ---------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False])
def test_bilinear_matches_torch(bias):
    torch.manual_seed(4)
    theirs, ours = torch.nn.Bilinear(3, 4, 5, bias=bias), nn.Bilinear(3, 4, 5, bias=bias)
    assert list(ours.state_dict()) == list(theirs.state_dict()) and ours.weight.shape == (5, 3, 4)
    assert np.abs(ours.weight.numpy()).max() <= 1 / np.sqrt(3)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    _compare([_arr(2, 6, 3), _arr(2, 6, 4)], ours, theirs)
    grads = dict(ours.named_parameters())
    for name, p in theirs.named_parameters():
        np.testing.assert_allclose(grads[name].grad.numpy(), p.grad.numpy(), rtol=1e-4, atol=1e-4)
    assert repr(ours) == repr(theirs)


def test_parameter_list_and_dict_register_parameters():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.ws = nn.ParameterList([fg.zeros(2), nn.Parameter(fg.ones(3))])
            self.ws.append(fg.ones(1))
            self.named = nn.ParameterDict({"a": fg.zeros(2, 2)})
            self.named["b"] = fg.ones(4)

    net = Net()
    assert list(net.state_dict()) == ["ws.0", "ws.1", "ws.2", "named.a", "named.b"]
    assert len(list(net.parameters())) == 5 and all(p.requires_grad for p in net.parameters())
    assert isinstance(net.ws[0], nn.Parameter) and len(net.ws) == 3 and net.named["b"].shape == (4,)
    assert "a" in net.named and list(net.named.keys()) == ["a", "b"]
    (net.ws[1].sum() * 2 + net.named["a"].sum()).backward()
    np.testing.assert_array_equal(net.ws[1].grad.numpy(), np.full(3, 2.0))
    net.load_state_dict({k: np.full(v.shape, 7.0, dtype="float32") for k, v in net.state_dict().items()})
    assert float(net.named["b"].sum().item()) == 28.0


def test_identity_and_unflatten():
    x = fg.tensor(_arr(2, 6))
    assert nn.Identity(3, key=1)(x) is x
    assert nn.Unflatten(1, (2, 3))(x).shape == (2, 2, 3)


# ---- distances, padding, resampling, fold/unfold, pooling ---------------------------------------------


FUNCTIONS = [
    ("normalize_p2", [(3, 4, 2)], lambda m, x: m.normalize(x, dim=1)),
    ("normalize_p1_tiny_eps", [(3, 4)], lambda m, x: m.normalize(x * 1e-3, p=1, dim=0, eps=1e-2)),
    ("cosine_similarity_broadcast", [(3, 4), (1, 4)], lambda m, a, b: m.cosine_similarity(a, b, dim=1)),
    ("cosine_similarity_eps", [(2, 3, 4), (2, 3, 4)], lambda m, a, b: m.cosine_similarity(a * 0.1, b, 2, eps=0.5)),
    ("pairwise_distance", [(4, 5), (4, 5)], lambda m, a, b: m.pairwise_distance(a, b)),
    ("pairwise_distance_p3_keepdim", [(4, 5), (4, 5)], lambda m, a, b: m.pairwise_distance(a, b, 3.0, keepdim=True)),
    ("pad_reflect_2d", [(2, 2, 4, 5)], lambda m, x: m.pad(x, (2, 1, 3, 0), mode="reflect")),
    ("pad_replicate_1d", [(2, 3, 4)], lambda m, x: m.pad(x, (3, 2), mode="replicate")),
    ("pad_circular_2d", [(1, 2, 3, 4)], lambda m, x: m.pad(x, (1, 4, 3, 2), mode="circular")),
    ("interp_nearest_scale", [(1, 2, 3, 4)], lambda m, x: m.interpolate(x, scale_factor=2)),
    ("interp_nearest_size_1d", [(2, 2, 5)], lambda m, x: m.interpolate(x, size=8)),
    ("interp_linear_align", [(2, 2, 5)], lambda m, x: m.interpolate(x, size=9, mode="linear", align_corners=True)),
    ("interp_bilinear", [(1, 2, 4, 5)], lambda m, x: m.interpolate(x, size=(7, 3), mode="bilinear")),
    ("interp_bilinear_scale", [(1, 2, 4, 5)], lambda m, x: m.interpolate(x, scale_factor=(1.5, 2.5),
                                                                           mode="bilinear")),
    ("interp_bilinear_same_height", [(1, 2, 3, 5)], lambda m, x: m.interpolate(x, scale_factor=(1.3, 2.0),
                                                                                 mode="bilinear")),
    ("interp_bicubic", [(2, 2, 5, 7)], lambda m, x: m.interpolate(x, size=(9, 4), mode="bicubic")),
    ("interp_bicubic_align", [(1, 2, 5, 6)], lambda m, x: m.interpolate(x, size=(8, 11), mode="bicubic",
                                                                        align_corners=True)),
    ("interp_bicubic_scale", [(1, 2, 6, 5)], lambda m, x: m.interpolate(x, scale_factor=(0.6, 2.5),
                                                                        mode="bicubic")),
    ("interp_nearest_exact", [(2, 2, 7, 9)], lambda m, x: m.interpolate(x, scale_factor=1.5, mode="nearest-exact")),
    ("interp_nearest_exact_1d", [(2, 2, 7)], lambda m, x: m.interpolate(x, size=12, mode="nearest-exact")),
    ("interp_area", [(2, 2, 10, 9)], lambda m, x: m.interpolate(x, size=(4, 3), mode="area")),
    ("interp_area_3d", [(1, 2, 5, 6, 7)], lambda m, x: m.interpolate(x, size=(3, 4, 9), mode="area")),
    ("unfold", [(2, 3, 5, 6)], lambda m, x: m.unfold(x, (2, 3), dilation=(1, 2), padding=1, stride=(2, 1))),
    ("fold", [(2, 12, 9)], lambda m, x: m.fold(x, (4, 5), (2, 3), padding=(0, 1), stride=(1, 2))),
    ("max_pool1d_ceil", [(2, 3, 9)], lambda m, x: m.max_pool1d(x, 3, 2, padding=1, ceil_mode=True)),
    ("avg_pool1d_ceil", [(2, 3, 9)], lambda m, x: m.avg_pool1d(x, 4, 3, padding=2, ceil_mode=True,
                                                               count_include_pad=False)),
    ("avg_pool1d_ceil_counting_pad", [(1, 2, 5)], lambda m, x: m.avg_pool1d(x, 3, 3, padding=1, ceil_mode=True)),
    ("adaptive_avg_pool1d", [(2, 3, 10)], lambda m, x: m.adaptive_avg_pool1d(x, 4)),
    ("max_pool2d_ceil_dilation", [(1, 2, 7, 8)], lambda m, x: m.max_pool2d(x, 3, 2, 1, dilation=2, ceil_mode=True)),
    ("avg_pool2d_ceil", [(1, 2, 7, 8)], lambda m, x: m.avg_pool2d(x, 3, 2, 1, ceil_mode=True)),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shapes,fn", [f[1:] for f in FUNCTIONS], ids=[f[0] for f in FUNCTIONS])
def test_functions_match_torch(shapes, fn, dtype):
    check_op([], lambda *t: fn(F, *t), lambda *t: fn(TF, *t), dtype=dtype,
             arrays=[_arr(*s, low=-2, high=2, dtype=dtype) for s in shapes])


MODULE_LAYERS = [
    ("Upsample", {"scale_factor": 2, "mode": "bilinear", "align_corners": False}, (1, 2, 3, 4)),
    ("UpsamplingBilinear2d", {"size": (5, 5)}, (1, 2, 3, 4)),
    ("UpsamplingNearest2d", {"scale_factor": 3}, (1, 2, 3, 4)),
    ("Unfold", {"kernel_size": 2, "stride": 2}, (1, 2, 4, 4)),
    ("Fold", {"output_size": (4, 4), "kernel_size": 2, "stride": 2}, (1, 8, 4)),
    ("ReflectionPad2d", {"padding": (1, 2, 2, 1)}, (1, 2, 3, 4)),
    ("ReplicationPad1d", {"padding": 3}, (2, 2, 3)),
    ("CircularPad2d", {"padding": 1}, (1, 2, 3, 4)),
    ("ConstantPad1d", {"padding": (1, 2), "value": 3.5}, (2, 3)),
    ("ZeroPad2d", {"padding": (1, 0, 2, 1)}, (1, 1, 2, 2)),
    ("MaxPool1d", {"kernel_size": 3, "stride": 2}, (2, 3, 8)),
    ("AvgPool1d", {"kernel_size": 3, "padding": 1}, (2, 3, 8)),
    ("AdaptiveAvgPool1d", {"output_size": 3}, (2, 3, 8)),
]


@pytest.mark.parametrize("name,kwargs,shape", MODULE_LAYERS, ids=[m[0] for m in MODULE_LAYERS])
def test_layer_modules_match_torch(name, kwargs, shape):
    ours, theirs = getattr(nn, name)(**kwargs), getattr(torch.nn, name)(**kwargs)
    check_op([], ours, theirs, arrays=[_arr(*shape)])


def test_sampling_and_pool_errors():
    x = fg.zeros(1, 1, 4, 4)
    with pytest.raises(fg.ShapeError, match="at most half"):
        F.max_pool2d(x, 2, padding=2)
    with pytest.raises(fg.ShapeError, match="at most half"):
        F.avg_pool1d(fg.zeros(1, 1, 8), 3, padding=2)
    F.max_pool2d(x, 2, padding=1, dilation=2)  # the effective kernel (3) allows it, as in torch
    with pytest.raises(fg.ShapeError):
        F.pad(fg.zeros(1, 4), (4, 0), mode="reflect")
    with pytest.raises(NotImplementedError):
        F.pad(x, (1, 0), mode="reflect")
    with pytest.raises(ValueError):
        F.interpolate(x, size=3, scale_factor=2)
    with pytest.raises(ValueError):
        F.interpolate(x, size=3, align_corners=True)
    with pytest.raises(NotImplementedError):
        F.interpolate(x, size=3, mode="linear")
    with pytest.raises(NotImplementedError):
        F.interpolate(fg.zeros(1, 1, 4), size=3, mode="bicubic")
    with pytest.raises(ValueError):
        F.interpolate(x, size=3, mode="area", align_corners=False)
    with pytest.raises(fg.ShapeError):
        F.fold(fg.zeros(1, 7, 4), (4, 4), 2, stride=2)
