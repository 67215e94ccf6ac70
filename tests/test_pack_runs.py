"""codegen/c_pack_runs.py: GEMM operands packed by runs with their padding as intervals, against torch."""
import numpy as np
import pytest
import torch

import fusegrad as fg
import fusegrad.nn.functional as F
from fusegrad import dtypes
from fusegrad.codegen import c_pack_runs
from fusegrad.codegen.c import CRenderer
from fusegrad.codegen.gemm import use_gemm
from fusegrad.codegen.ir import Load
from fusegrad.codegen.lower import lower
from fusegrad.engine.schedule import create_schedule
from fusegrad.graph.symbolic import Bound, Lin, Var


def sources(t: fg.Tensor) -> list[str]:
    return [CRenderer().render_kernel(use_gemm(lower(it.spec, "k"))) for it in create_schedule([t._node])]


def conv_directions(x: np.ndarray, w: np.ndarray, prepare=None, **kw) -> tuple[list, list]:
    """(fusegrad's, torch's) forward, input gradient and weight gradient of conv2d(prepare(x), w)."""
    prepare = prepare or (lambda v: v)
    gy_shape = torch.nn.functional.conv2d(prepare(torch.tensor(x)), torch.tensor(w), **kw).shape
    gy = np.random.default_rng(1).standard_normal(gy_shape).astype(x.dtype)
    tx, tw = torch.tensor(x, dtype=torch.float64, requires_grad=True), torch.tensor(w, dtype=torch.float64,
                                                                                 requires_grad=True)
    ty = torch.nn.functional.conv2d(prepare(tx), tw, **kw)
    ty.backward(torch.tensor(gy, dtype=torch.float64))
    fx, fw = fg.tensor(x, requires_grad=True), fg.tensor(w, requires_grad=True)
    fy = F.conv2d(prepare(fx), fw, **kw)
    gx, gw = fg.autograd.grad(fy, [fx, fw], fg.tensor(gy))
    return [fy, gx, gw], [ty.detach().numpy(), tx.grad.numpy(), tw.grad.numpy()]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n, cin, size, cout, kernel, stride, padding, dilation, groups", [
    (4, 1, 28, 6, 5, 1, 2, 1, 1),     # LeNet's first layer: one input channel, a long reduction
    (3, 3, 23, 16, 7, 2, 3, 1, 1),    # a 7x7/2 stem on an odd size
    (2, 16, 12, 32, 5, 1, 0, 1, 1),   # valid 5x5
    (3, 8, 15, 12, 3, 2, 1, 1, 1),    # 3x3/2 padded, odd size
    (2, 8, 14, 8, 3, 1, 2, 2, 1),     # dilated, padded like 'same'
    (2, 8, 11, 16, 3, 1, 1, 1, 2),    # grouped
    (2, 3, 37, 10, 11, 4, 2, 1, 1),   # AlexNet's 11x11/4
    (3, 4, 9, 40, 1, 2, 0, 1, 1),     # 1x1/2
    (2, 5, 17, 33, 3, 1, (2, 0), 1, 1),  # padded along rows only
    (2, 2, 10, 7, 5, 2, 3, 2, 1),     # dilated and strided, padded beyond half the window
])
def test_convolution_directions_match_torch(dtype, n, cin, size, cout, kernel, stride, padding, dilation, groups):
    rng = np.random.default_rng(kernel * 10 + stride)
    x = rng.standard_normal((n, cin, size, size + 3)).astype(dtype)
    w = rng.standard_normal((cout, cin // groups, kernel, kernel)).astype(dtype)
    ours, theirs = conv_directions(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    tol = dict(rtol=1e-4, atol=1e-3) if dtype == "float32" else dict(rtol=1e-9, atol=1e-9)
    for got, want in zip(ours, theirs):
        np.testing.assert_allclose(got.numpy(), want, **tol)


def test_a_padded_weight_gradient_packs_runs_along_the_reduction():
    """LeNet's weight gradient (6 x 25 outputs over a reduction of images x 28 x 28): the window operand
    is copied in runs along each output row into scratch rows, transposed into the panel by the support
    routine; no padding bound is tested per element."""
    rng = np.random.default_rng(2)
    x = fg.tensor(rng.standard_normal((4, 1, 28, 28)).astype(np.float32), requires_grad=True)
    w = fg.tensor(rng.standard_normal((6, 1, 5, 5)).astype(np.float32), requires_grad=True)
    gy = fg.tensor(rng.standard_normal((4, 6, 28, 28)).astype(np.float32))
    (gw,) = fg.autograd.grad(F.conv2d(x, w, padding=2), [w], gy)
    (source,) = [s for s in sources(gw) if "fg_micro" in s]
    assert "fg_pack_scratch(3" in source and "fg_pack_rows_f32(fg_" not in source
    assert "fg_pack_rows_f32(bp + blk * kc * 32, fg_rows" in source
    assert "? p1[" not in source and "? p2[" not in source  # no element read under a guard


def test_an_output_gradient_is_transposed_from_the_source_where_a_panel_lies_in_one_run():
    """The MNIST net's first weight gradient (32 x 9 outputs): the output gradient's rows are contiguous
    along each image's 26 x 26 positions, so a panel of k within one image is transposed straight from
    it and one crossing images goes through the scratch rows; both kinds occur here, values as torch."""
    rng = np.random.default_rng(6)
    x, w = rng.standard_normal((5, 1, 28, 28)).astype(np.float32), rng.standard_normal((32, 1, 3, 3))
    ours, theirs = conv_directions(x, w.astype(np.float32))
    (source,) = [s for s in sources(ours[2]) if "fg_micro" in s]
    assert "fg_pack_rows_f32(bp + blk * kc * 32, p1 + " in source and "fg_pack_rows_f32(bp + blk * kc * 32, fg_rows" \
        in source
    np.testing.assert_allclose(ours[2].numpy(), theirs[2], rtol=1e-4, atol=1e-3)


def test_a_padded_forward_packs_runs_along_output_rows():
    """The forward's window operand (im2col's panel) is copied in runs along each output row, which land
    contiguously in the panel."""
    rng = np.random.default_rng(4)
    x, w = (fg.tensor(rng.standard_normal(shape).astype(np.float32)) for shape in ((2, 8, 20, 20), (16, 8, 3, 3)))
    (source,) = sources(F.conv2d(x, w, padding=1))
    assert "dst[w + t] = src[1 * t]" in source and "? p1[" not in source and "? p2[" not in source


def test_reversed_strided_windows_narrow_their_runs_by_floor_division():
    """An input padded, then flipped and read with stride 2: the run's source steps by -2 and the padding
    bounds fall with the position, so the valid interval comes from floor divisions; values match torch."""
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((2, 3, 19, 21)), rng.standard_normal((8, 3, 5, 5))

    def pad_flip(v):
        pad = torch.nn.functional.pad if isinstance(v, torch.Tensor) else F.pad
        return pad(v, (3, 1, 2, 2)).flip(3)
    ours, theirs = conv_directions(x, w, prepare=pad_flip, stride=2)
    assert any("fg_floordiv(" in s and "src[-2 * t]" in s for s in sources(ours[2]))
    for got, want in zip(ours, theirs):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_convolution_weight_gradients_pack_runs(dtype):
    """A half-precision convolution's weight gradient sums float32 products of its half values: the window
    operand packs by runs into scratch rows, and the sums match float64 ones of the same half values to
    the output's rounding."""
    rng = np.random.default_rng(8)
    x = getattr(fg, dtype)
    xs, ws = (fg.tensor(rng.standard_normal(shape).astype(np.float32)).to(x) for shape in ((4, 16, 27, 29),
                                                                                            (32, 16, 5, 5)))
    gy = fg.tensor(rng.standard_normal((4, 32, 14, 15)).astype(np.float32)).to(x)
    fx, fw = xs.detach().requires_grad_(), ws.detach().requires_grad_()
    (gw,) = fg.autograd.grad(F.conv2d(fx, fw, padding=2, stride=2), [fw], gy)
    assert any("fg_rows" in s and "fg_micro" in s for s in sources(gw))
    tx = torch.tensor(xs.float().numpy(), dtype=torch.float64)
    tw = torch.tensor(ws.float().numpy(), dtype=torch.float64, requires_grad=True)
    torch.nn.functional.conv2d(tx, tw, padding=2, stride=2).backward(torch.tensor(gy.float().numpy(),
                                                                                   dtype=torch.float64))
    want = tw.grad.numpy()
    np.testing.assert_allclose(gw.float().numpy(), want, rtol=1e-2 if dtype == "bfloat16" else 2e-3,
                               atol=1e-2 * np.abs(want).max())


def test_runs_join_a_contiguous_unbounded_stretch_and_stop_at_a_bound():
    """An output gradient (n, c, 26, 26) read along (n, y, x): y and x are one run of 676; a window read
    along (n, y, x) under a bound on x runs along x alone, starting at the first bounded variable."""
    n, c, y, x = Var("n", 4), Var("c", 32), Var("y", 26), Var("x", 26)
    gy = Load(1, Lin(((n, 21632), (c, 676), (y, 26), (x, 1)), 0), (), dtypes.float32)
    run = c_pack_runs.find_run(gy, (n, y, x))
    assert run.prefix == (n,) and run.suffix == (y, x) and run.stride == 1 and run.extent == 676
    window = Load(1, Lin(((n, 784), (y, 28), (x, 2)), -1), (Bound(Lin(((x, 2),), -1), 0, 28),), dtypes.float32)
    run = c_pack_runs.find_run(window, (n, y, x))
    assert run.prefix == (n, y) and run.suffix == (x,) and run.stride == 2
    assert c_pack_runs.choose(window, (c,), (n, y, x), 32) == ("k", run)
    assert c_pack_runs.find_run(window, (n, y, Var("z", 3))) is None  # the last variable not read
