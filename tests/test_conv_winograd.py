"""Winograd F(2x2, 3x3) and F(4x4, 3x3) convolutions on the CPU (nn/conv.py `_winograd`): forward, input and
weight gradients against torch in float64, float32 within Winograd's rounding, and which convolutions take it."""
import numpy as np
import pytest
import torch

import fusegrad as fg
import fusegrad.nn.functional as F
from fusegrad.nn import conv as conv_module

WIDE = 16  # the channels from which the tests below take Winograd (the rule's own thresholds are larger)
FLOAT32_BOUND = {2: 1e-5, 4: 3e-5}  # relative norm error of float32 results per output tile m


@pytest.fixture(autouse=True)
def small_rule(request, monkeypatch):
    """Small convolutions take Winograd, except in the test of the rule itself."""
    if request.function.__name__ != "test_the_rule":
        monkeypatch.setattr(conv_module, "WINOGRAD_CHANNELS", WIDE)
        monkeypatch.setattr(conv_module, "WINOGRAD_WORK", 0)


def _arrays(n, cin, cout, size, padding, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, cin, *size))
    w = rng.standard_normal((cout, cin, 3, 3)) / np.sqrt(9 * cin)
    out = [s + 2 * padding - 2 for s in size]
    return x, w, rng.standard_normal((n, cout, *out))


def _torch(x, w, gy, padding):
    px, pw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    y = torch.nn.functional.conv2d(px, pw, padding=padding)
    y.backward(torch.tensor(gy))
    return y.detach().numpy(), px.grad.numpy(), pw.grad.numpy()


def _fusegrad(x, w, gy, padding, dtype):
    tx, tw = fg.tensor(x, dtype=dtype, requires_grad=True), fg.tensor(w, dtype=dtype, requires_grad=True)
    y = F.conv2d(tx, tw, padding=padding)
    y.backward(fg.tensor(gy, dtype=dtype))
    return y.numpy(), tx.grad.numpy(), tw.grad.numpy()


def _relative(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


CASES = [  # n, cin, cout, spatial size, padding
    (1, WIDE, WIDE, (7, 7), 1), (2, WIDE + 3, WIDE, (9, 13), 0), (3, 24, WIDE + 1, (13, 8), 2),
    (2, 64, 32, (8, 8), 1), (1, WIDE, 40, (5, 5), 0), (2, WIDE, WIDE, (3, 4), 0), (1, WIDE, WIDE, (1, 1), 1),
    (4, 32, 48, (14, 11), 1)]


@pytest.fixture(params=[2, 4])
def tile(request, monkeypatch):
    """The output tile m of F(m x m, 3x3) that every convolution of the test takes."""
    monkeypatch.setattr(conv_module, "WINOGRAD_F4_SIZE", 0 if request.param == 4 else 1 << 30)
    return request.param


@pytest.mark.parametrize("n, cin, cout, size, padding", CASES)
def test_float64_matches_torch(n, cin, cout, size, padding, tile):
    x, w, gy = _arrays(n, cin, cout, size, padding, sum(size) + padding)
    assert conv_module.winograd_applies(fg.tensor(x), fg.tensor(w), (1, 1), (1, 1), 1)
    for got, want in zip(_fusegrad(x, w, gy, padding, fg.float64), _torch(x, w, gy, padding)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("n, cin, cout, size, padding", CASES)
def test_float32_within_winograd_rounding(n, cin, cout, size, padding, tile):
    x, w, gy = _arrays(n, cin, cout, size, padding, sum(size) + padding + 1)
    for got, want in zip(_fusegrad(x, w, gy, padding, fg.float32), _torch(x, w, gy, padding)):
        assert _relative(got, want) < FLOAT32_BOUND[tile]


def test_float32_of_a_wide_layer(tile):
    """Many channels: F(4x4)'s larger transform coefficients round more over long sums than F(2x2)'s."""
    x, w, gy = _arrays(2, 256, 256, (14, 14), 1, 7)
    x, w, gy = (a.astype(np.float32) for a in (x, w, gy))
    for got, want in zip(_fusegrad(x, w, gy, 1, fg.float32), _torch(*(a.astype(np.float64) for a in (x, w, gy)), 1)):
        assert _relative(got, want) < FLOAT32_BOUND[tile]


def test_padding_same_and_conv_transpose_take_it_too(tile):
    """'same' pads like 1; conv_transpose2d of stride 1 is a convolution of the padded input."""
    x, w, gy = _arrays(2, 20, 18, (10, 9), 1, 3)
    for got, want in zip(_fusegrad(x, w, gy, "same", fg.float64), _torch(x, w, gy, 1)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    got = F.conv_transpose2d(fg.tensor(gy), fg.tensor(w), padding=1).numpy()
    want = torch.nn.functional.conv_transpose2d(torch.tensor(gy), torch.tensor(w), padding=1).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_gradient_of_the_input_gradient(tile):
    x, w, _ = _arrays(2, WIDE, WIDE, (6, 7), 1, 5)
    px, pw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    (pgx,) = torch.autograd.grad((torch.nn.functional.conv2d(px, pw, padding=1) ** 2).sum(), px, create_graph=True)
    (pgx ** 2).sum().backward()
    tx, tw = fg.tensor(x, requires_grad=True), fg.tensor(w, requires_grad=True)
    (gx,) = fg.autograd.grad((F.conv2d(tx, tw, padding=1) ** 2).sum(), tx, create_graph=True)
    (gx ** 2).sum().backward()
    np.testing.assert_allclose(gx.numpy(), pgx.detach().numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(tx.grad.numpy(), px.grad.numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(tw.grad.numpy(), pw.grad.numpy(), rtol=1e-9, atol=1e-9)


def test_the_rule():
    """Channels from WINOGRAD_CHANNELS and work N*H*W*Cin*Cout from WINOGRAD_WORK, on the CPU."""
    def applies(n, cin, cout, size):
        return conv_module.winograd_applies(fg.empty(n, cin, size, size), fg.empty(cout, cin, 3, 3), (1, 1), (1, 1), 1)
    assert applies(8, 64, 64, 56) and applies(8, 512, 512, 7) and applies(8, 128, 128, 56)
    assert not applies(64, 32, 64, 13)  # the MNIST net's second layer: too few channels
    assert not applies(1, 64, 64, 56) and not applies(8, 256, 256, 7) and not applies(64, 64, 64, 13)  # little work
    assert not conv_module.winograd_applies(fg.empty(8, 64, 56, 56, dtype=fg.bfloat16),
                                            fg.empty(64, 64, 3, 3, dtype=fg.bfloat16), (1, 1), (1, 1), 1)
    # F(4x4) for outputs from 28 x 28 on, whatever the channels
    assert [conv_module.winograd_tile(outs) for outs in ((56, 56), (28, 28), (28, 27), (14, 14), (7, 7))] == \
        [4, 4, 2, 2, 2]


def _products(fn):
    """The shapes of the matrix products among the kernels fn's result runs."""
    with fg.profile() as prof:
        fn().realize()
    return [k.shape for k in prof.kernels if "MUL SUM" in k.op]


@pytest.mark.parametrize("cin, cout, kernel, stride, dilation, groups, dtype, taken", [
    (WIDE, WIDE, 3, 1, 1, 1, fg.float32, True),
    (64, WIDE, 3, 1, 1, 1, fg.float64, True),
    (WIDE - 1, 64, 3, 1, 1, 1, fg.float32, False),
    (64, WIDE - 1, 3, 1, 1, 1, fg.float32, False),
    (32, 32, 3, 2, 1, 1, fg.float32, False),
    (32, 32, 3, 1, 2, 1, fg.float32, False),
    (32, 32, 3, 1, 1, 2, fg.float32, False),
    (32, 32, 5, 1, 1, 1, fg.float32, False),
    (32, 32, 3, 1, 1, 1, fg.float16, False)])
def test_which_convolutions_take_it(cin, cout, kernel, stride, dilation, groups, dtype, taken):
    """Winograd's product is 16 GEMMs over the tile positions, batched; the direct one writes (N, Cout, O...)."""
    x = fg.randn(2, cin, 10, 10, dtype=dtype).realize()
    w = fg.randn(cout, cin // groups, kernel, kernel, dtype=dtype).realize()
    assert conv_module.winograd_applies(x, w, (stride, stride), (dilation, dilation), groups) is taken
    kw = dict(stride=stride, dilation=dilation, groups=groups, padding=1)
    products = _products(lambda: F.conv2d(x, w, **kw))
    assert len(products) == 1 and (products[0][0] == 16) is taken
    xg = x.detach().requires_grad_()
    y = F.conv2d(xg, w, **kw)
    products = _products(lambda: fg.autograd.grad(y, [xg], fg.ones_like(y))[0])
    assert len(products) == 1 and (products[0][0] == 16) is (taken and stride == 1)
