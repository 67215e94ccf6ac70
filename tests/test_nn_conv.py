"""nn/conv.py's convolution history: the input gradient as a transposed convolution (stride 1, strided over
many output positions, or few output channels per group), replayed by structure, differentiable again."""
import numpy as np
import pytest
import torch

import fusegrad as fg
import fusegrad.nn.functional as F
from fusegrad.nn import conv as conv_module


def _pair(shape_x, shape_w, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape_x).astype(np.float64), rng.standard_normal(shape_w).astype(np.float64)


@pytest.mark.parametrize("groups, cin_g, cout_g, stride, padding, dilation", [
    (6, 1, 1, 2, 1, 1), (3, 2, 4, 2, 0, 1), (2, 3, 20, 2, 1, 1), (4, 2, 2, 1, "same", 2), (1, 3, 5, 3, 2, 1)])
def test_gradients_of_gradients_match_torch(groups, cin_g, cout_g, stride, padding, dilation):
    """A gradient penalty: the input gradient, built with create_graph, differentiated again."""
    x, w = _pair((2, groups * cin_g, 9, 12), (groups * cout_g, cin_g, 3, 3), groups + stride)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    px, pw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    (pgx,) = torch.autograd.grad((torch.nn.functional.conv2d(px, pw, **kw) ** 2).sum(), px, create_graph=True)
    (pgx ** 2).sum().backward()
    tx, tw = fg.tensor(x, requires_grad=True), fg.tensor(w, requires_grad=True)
    (gx,) = fg.autograd.grad((F.conv2d(tx, tw, **kw) ** 2).sum(), tx, create_graph=True)
    (gx ** 2).sum().backward()
    np.testing.assert_allclose(gx.numpy(), pgx.detach().numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(tx.grad.numpy(), px.grad.numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(tw.grad.numpy(), pw.grad.numpy(), rtol=1e-9, atol=1e-9)


def _count_backward(monkeypatch) -> list:
    """_Convolution's backward, counting its calls in the list returned."""
    calls = []
    backward = conv_module._Convolution.backward

    def counted(ctx, g):
        calls.append(1)
        return backward(ctx, g)
    monkeypatch.setattr(conv_module._Convolution, "backward", staticmethod(counted))
    return calls


def test_a_second_backward_of_the_same_structure_replays_without_the_rule(monkeypatch):
    calls = _count_backward(monkeypatch)
    w = fg.randn(8, 1, 3, 3, dtype=fg.float64).realize().requires_grad_()
    grads = []
    for seed in range(3):
        x = fg.tensor(np.random.default_rng(seed).standard_normal((2, 8, 10, 10)), requires_grad=True)
        F.conv2d(x, w, padding=1, groups=8).square().sum().backward()
        grads.append((x.grad.numpy(), w.grad.numpy().copy()))
        w.grad = None
    assert len(calls) == 1
    for seed, (gx, gw) in enumerate(grads):
        px = torch.tensor(np.random.default_rng(seed).standard_normal((2, 8, 10, 10)), requires_grad=True)
        pw = torch.tensor(w.numpy(), requires_grad=True)
        torch.nn.functional.conv2d(px, pw, padding=1, groups=8).square().sum().backward()
        np.testing.assert_allclose(gx, px.grad.numpy(), rtol=1e-10)
        np.testing.assert_allclose(gw, pw.grad.numpy(), rtol=1e-10)


@pytest.mark.parametrize("stride, kernels", [(1, 1), (2, 6)])
def test_depthwise_input_gradient_is_a_transposed_convolution(stride, kernels):
    """Stride 1: one product of the output gradient's windows; stride 2: four phases (the one-tap phase's
    weights copied out first) and their interleave. The window-scatter form took a product into a
    taps x input buffer and a sum over it, which is two kernels for stride 1."""
    x = fg.randn(2, 6, 14, 14).realize().requires_grad_()
    w = fg.randn(6, 1, 3, 3).realize()
    y = F.conv2d(x, w, stride=stride, padding=1, groups=6)
    gy = fg.randn(*y.shape).realize()
    (gx,) = fg.autograd.grad(y, [x], gy)
    with fg.profile() as p:
        gx.realize()
    assert len(p.kernels) == kernels
    px, pw = torch.tensor(x.numpy(), requires_grad=True), torch.tensor(w.numpy())
    torch.nn.functional.conv2d(px, pw, stride=stride, padding=1, groups=6).backward(torch.tensor(gy.numpy()))
    np.testing.assert_allclose(gx.numpy(), px.grad.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("size, stride, padding, output_padding", [(7, 2, 1, 1), (6, 3, 2, 0), (5, 2, 3, 1),
                                                                    (4, 4, 0, 2)])
def test_transposed_convolution_phases_match_torch(size, stride, padding, output_padding):
    x, w = _pair((2, 4, size, size + 1), (4, 3, 5, 4), size + stride)
    kw = dict(stride=stride, padding=padding, output_padding=output_padding, groups=1)
    want = torch.nn.functional.conv_transpose2d(torch.tensor(x), torch.tensor(w), **kw)
    got = F.conv_transpose2d(fg.tensor(x), fg.tensor(w), **kw)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("padding, kernels", [(2, 1), (0, 3)])
def test_input_gradient_is_transposed_only_where_it_pads_no_more(padding, kernels):
    """A 5x5 convolution with 32 output channels: padded by 2 its input gradient is one product over the
    gradient's windows (padded by 2 too); unpadded the transposed one would pad the gradient by 4, so the
    windows' scatter (a product into taps x input, then a sum over each dim's taps) stays."""
    x = fg.randn(2, 8, 12, 12).realize().requires_grad_()
    w = fg.randn(32, 8, 5, 5).realize()
    y = F.conv2d(x, w, padding=padding)
    gy = fg.randn(*y.shape).realize()
    (gx,) = fg.autograd.grad(y, [x], gy)
    with fg.profile() as p:
        gx.realize()
    assert len(p.kernels) == kernels
    px = torch.tensor(x.numpy(), requires_grad=True)
    torch.nn.functional.conv2d(px, torch.tensor(w.numpy()), padding=padding).backward(torch.tensor(gy.numpy()))
    np.testing.assert_allclose(gx.numpy(), px.grad.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("batch, kernel, stride, padding, transposed", [
    (5, 3, 2, 1, True), (4, 3, 2, 1, False), (5, 5, 2, 2, True), (11, 5, 3, 2, True), (5, 3, 2, 0, False),
    (5, 1, 2, 0, False)])
def test_strided_input_gradient_is_transposed_from_many_output_positions(monkeypatch, batch, kernel, stride,
                                                                        padding, transposed):
    """Strided and padded alike, 16 output channels: from STRIDED_POSITIONS output positions (5 * 30 * 29 of
    a 59x57 map at stride 2, 11 * 20 * 19 at stride 3) the input gradient is the transposed convolution; with
    fewer (4 * 30 * 29), unpadded or a 1x1 kernel it stays the windows' scatter. Both match torch."""
    calls = _count_backward(monkeypatch)
    x, w = _pair((batch, 3, 59, 57), (16, 3, kernel, kernel), batch + kernel)
    gy = np.random.default_rng(kernel).standard_normal(
        torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), stride=stride, padding=padding).shape)
    tx, tw = fg.tensor(x, requires_grad=True), fg.tensor(w, requires_grad=True)
    F.conv2d(tx, tw, stride=stride, padding=padding).backward(fg.tensor(gy))
    assert len(calls) == transposed
    px, pw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    torch.nn.functional.conv2d(px, pw, stride=stride, padding=padding).backward(torch.tensor(gy))
    np.testing.assert_allclose(tx.grad.numpy(), px.grad.numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(tw.grad.numpy(), pw.grad.numpy(), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("stride, padding, output_padding, dilation, groups", [
    (2, 0, 0, 1, 1), (2, 1, 1, 1, 2), (3, 2, 2, 1, 1), (1, 1, 0, 2, 2), (2, 1, 1, 2, 1), (4, 0, 0, 1, 1)])
def test_transposed_convolution_gradients_of_gradients_match_torch(stride, padding, output_padding, dilation, groups):
    """The input gradient is conv2d of the output gradient, the weight gradient that convolution's with
    input and output gradient exchanged; a penalty on the input gradient differentiates both again."""
    x, w = _pair((2, 4, 5, 6), (4, 3, 3, 2), stride * 10 + padding)
    kw = dict(stride=stride, padding=padding, output_padding=output_padding, dilation=dilation, groups=groups)
    px, pw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    py = torch.nn.functional.conv_transpose2d(px, pw, **kw)
    gy = np.random.default_rng(0).standard_normal(tuple(py.shape))
    pgx, pgw = torch.autograd.grad(py, (px, pw), torch.tensor(gy), create_graph=True)
    ((pgx ** 2).sum() + (pgw ** 2).sum()).backward()
    tx, tw = fg.tensor(x, requires_grad=True), fg.tensor(w, requires_grad=True)
    y = F.conv_transpose2d(tx, tw, **kw)
    gx, gw = fg.autograd.grad(y, [tx, tw], fg.tensor(gy), create_graph=True)
    ((gx ** 2).sum() + (gw ** 2).sum()).backward()
    for ours, theirs in ((y, py), (gx, pgx), (gw, pgw), (tx.grad, px.grad), (tw.grad, pw.grad)):
        np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-9, atol=1e-9)


def test_strided_transposed_convolution_input_gradient_is_one_product():
    """U-Net's 2x2/2 up-convolution: its input gradient is one strided convolution of the output gradient
    (through its four phases' autograd it was a copy and a product per phase, then their sum)."""
    x = fg.randn(2, 16, 7, 7).realize().requires_grad_()
    w = fg.randn(16, 8, 2, 2).realize()
    y = F.conv_transpose2d(x, w, stride=2)
    (gx,) = fg.autograd.grad(y, [x], fg.randn(*y.shape).realize())
    with fg.profile() as p:
        gx.realize()
    assert len(p.kernels) == 1
