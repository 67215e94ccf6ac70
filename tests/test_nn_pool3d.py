"""3-D convolutions, transposed 1-D and 3-D convolutions, pooling over 1, 2 and 3 spatial dims (max with
indices, average, adaptive, max-unpooling) and 3-D padding, against torch: forward values, indices and
gradients, batched and unbatched, and the errors torch raises."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import fusegrad as fg
import fusegrad.nn.functional as F
from tests.helpers import RNG, check_op, raises_at_call_or_read


def _check(call, *shapes, dtype="float32", arrays=None, **tolerance):
    """call(F, *inputs) in fusegrad and in torch, forward (every output) and gradient of the first output."""
    check_op(shapes, lambda *xs: call(F, *xs), lambda *xs: call(TF, *xs), dtype=dtype, arrays=arrays, **tolerance)


DTYPES = ["float32", "float64"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, shape, kw", [
    (1, (2, 3, 11), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    (1, (3, 13), dict(kernel_size=4, stride=3, dilation=2, padding=2)),
    (2, (2, 3, 9, 11), dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), ceil_mode=True)),
    (2, (3, 7, 8), dict(kernel_size=2)),
    (3, (2, 2, 7, 8, 9), dict(kernel_size=3, stride=2, padding=1)),
    (3, (2, 2, 7, 8, 9), dict(kernel_size=(3, 2, 3), stride=(2, 3, 1), padding=(1, 1, 0), ceil_mode=True)),
    (3, (2, 5, 6, 7), dict(kernel_size=2, dilation=(2, 1, 2))),
    (3, (1, 2, 6, 8, 5), dict(kernel_size=2)),
])
def test_max_pool_values_indices_and_gradient(n, shape, kw, dtype):
    _check(lambda M, x: getattr(M, f"max_pool{n}d")(x, **kw), shape, dtype=dtype)
    _check(lambda M, x: getattr(M, f"max_pool{n}d")(x, return_indices=True, **kw), shape, dtype=dtype)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_with_indices_variants_return_values_and_indices(n):
    shape = (2, 3) + (7, 6, 5)[:n]
    _check(lambda M, x: getattr(M, f"max_pool{n}d_with_indices")(x, 3, 2, 1, ceil_mode=True), shape)
    _check(lambda M, x: getattr(M, f"adaptive_max_pool{n}d_with_indices")(x, 4), shape)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_max_pool_indices_and_gradient_go_to_the_first_maximum_of_ties(n):
    x = RNG.integers(0, 3, size=(2, 3) + (7,) * n).astype("float32")
    _check(lambda M, x: getattr(M, f"max_pool{n}d")(x, 3, 2, 1, return_indices=True), arrays=[x])
    _check(lambda M, x: getattr(M, f"adaptive_max_pool{n}d")(x, 3, return_indices=True), arrays=[x])
    # windows all -inf, some over the padding: torch's index is the window's first input element (its gradient
    # goes there too, where here it goes to the padding: values and indices only)
    x[(slice(None), slice(None)) + (slice(0, 3),) * n] = -np.inf
    _check(lambda M, x: getattr(M, f"max_pool{n}d")(x, 3, 2, 1, return_indices=True), arrays=[x], grad=False)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, shape, kw", [
    (1, (2, 3, 11), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)),
    (1, (3, 10), dict(kernel_size=4, stride=3, padding=2, ceil_mode=True)),
    (2, (2, 3, 9, 11), dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), divisor_override=5)),
    (3, (2, 2, 7, 8, 9), dict(kernel_size=3, stride=2, padding=1)),
    (3, (2, 2, 7, 8, 9), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    (3, (2, 2, 7, 8, 9), dict(kernel_size=(3, 2, 3), stride=(2, 3, 1), padding=(1, 1, 0), ceil_mode=True,
                             count_include_pad=False)),
    (3, (2, 6, 7, 5), dict(kernel_size=2, divisor_override=3)),
])
def test_avg_pool_values_and_gradient(n, shape, kw, dtype):
    _check(lambda M, x: getattr(M, f"avg_pool{n}d")(x, **kw), shape, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, shape, size", [
    (1, (2, 3, 11), 4), (1, (3, 12), 5), (2, (2, 3, 9, 7), (4, None)), (2, (3, 8, 6), 3),
    (3, (2, 2, 7, 9, 10), (3, 4, None)), (3, (2, 6, 8, 4), (3, 4, 2)), (3, (1, 2, 5, 6, 7), 1),
])
def test_adaptive_pools_values_indices_and_gradient(n, shape, size, dtype):
    _check(lambda M, x: getattr(M, f"adaptive_avg_pool{n}d")(x, size), shape, dtype=dtype)
    _check(lambda M, x: getattr(M, f"adaptive_max_pool{n}d")(x, size), shape, dtype=dtype)
    _check(lambda M, x: getattr(M, f"adaptive_max_pool{n}d")(x, size, return_indices=True), shape, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, shape, kw, output_size", [
    (1, (2, 3, 11), dict(kernel_size=3, stride=2, padding=1), None),
    (1, (3, 12), dict(kernel_size=2), [13]),
    (2, (2, 3, 9, 11), dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0)), None),
    (2, (2, 3, 9, 11), dict(kernel_size=2), (2, 3, 9, 11)),
    (3, (2, 2, 7, 8, 9), dict(kernel_size=3, stride=2, padding=1), (7, 8, 9)),
    (3, (2, 6, 7, 5), dict(kernel_size=2), (6, 7, 5)),
])
def test_max_unpool_values_and_gradient(n, shape, kw, output_size, dtype):
    """Unpooling the pooled values at their indices: differentiable in the values."""
    x = RNG.standard_normal(shape)
    _, indices = TF.__dict__[f"max_pool{n}d"](torch.tensor(x), return_indices=True, **kw)
    pooled = RNG.standard_normal(indices.shape).astype(dtype)

    def unpool(M, v):
        idx = fg.tensor(indices.numpy()) if M is F else indices
        return getattr(M, f"max_unpool{n}d")(v, idx, output_size=output_size, **kw)
    _check(unpool, arrays=[pooled], dtype=dtype)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_pooling_modules_match_torch(n):
    shape = (2, 3) + (7, 9, 8)[:n]
    x = RNG.standard_normal(shape).astype("float32")
    pairs = [(f"MaxPool{n}d", dict(kernel_size=3, stride=2, padding=1, return_indices=True)),
             (f"AvgPool{n}d", dict(kernel_size=2, ceil_mode=True)),
             (f"AdaptiveAvgPool{n}d", dict(output_size=3)),
             (f"AdaptiveMaxPool{n}d", dict(output_size=4, return_indices=True))]
    for name, kw in pairs:
        _check(lambda M, v: (getattr(fg.nn, name) if M is F else getattr(torch.nn, name))(**kw)(v), arrays=[x])
    ours, idx = fg.nn.__dict__[f"MaxPool{n}d"](2, return_indices=True)(fg.tensor(x))
    back = fg.nn.__dict__[f"MaxUnpool{n}d"](2)(ours, idx, output_size=shape)
    ref, ref_idx = torch.nn.__dict__[f"MaxPool{n}d"](2, return_indices=True)(torch.tensor(x))
    np.testing.assert_array_equal(back.numpy(), torch.nn.__dict__[f"MaxUnpool{n}d"](2)(ref, ref_idx, shape).numpy())


@pytest.mark.parametrize("call", [
    lambda M, x: M.max_pool3d(x[0, 0], 2),  # 3-D is unbatched 2-D, not 3-D pooling
    lambda M, x: M.max_pool2d(x, 2),
    lambda M, x: M.avg_pool3d(x[0, 0, 0], 2),
    lambda M, x: M.max_pool3d(x, 3, padding=2),  # padding above half the kernel
    lambda M, x: M.max_pool3d(x, 3, padding=2, dilation=1),
    lambda M, x: M.avg_pool3d(x, 2, padding=(0, 2, 0)),
    lambda M, x: M.avg_pool3d(x, 2, divisor_override=0),
    lambda M, x: M.max_pool3d(x, 8),  # larger than the input
    lambda M, x: M.adaptive_max_pool3d(x[0, 0], 2),
    lambda M, x: M.adaptive_avg_pool3d(x[0, 0, 0], 2),
])
def test_bad_pooling_raises_like_torch(call):
    x = RNG.standard_normal((2, 3, 6, 5, 7)).astype("float32")
    with pytest.raises(RuntimeError) as ref:
        call(TF, torch.tensor(x))
    with pytest.raises(fg.ShapeError) as got:
        call(F, fg.tensor(x))
    assert isinstance(got.value, type(ref.value))


@pytest.mark.parametrize("output_size", [(8, 4), (2, 3, 4, 5, 6, 7), [6, 2], (6,)])
def test_bad_unpool_output_size_raises_like_torch(output_size):
    x = RNG.standard_normal((2, 3, 6, 5)).astype("float32")
    pooled, idx = TF.max_pool2d(torch.tensor(x), 2, return_indices=True)
    with pytest.raises(ValueError):
        TF.max_unpool2d(pooled, idx, 2, output_size=output_size)
    with pytest.raises(fg.ShapeError):
        F.max_unpool2d(fg.tensor(pooled.numpy()), fg.tensor(idx.numpy()), 2, output_size=output_size)


def test_unpool_index_past_the_output_raises_like_torch():
    """Floor mode dropped the last row: without output_size, the default output has no place for its indices."""
    x = RNG.standard_normal((2, 7, 5)).astype("float32")
    pooled, idx = TF.max_pool2d(torch.tensor(x), 2, return_indices=True)
    idx[0, 0, 0] = 7 * 5 - 1
    with pytest.raises(RuntimeError):
        TF.max_unpool2d(pooled, idx, 2)
    raises_at_call_or_read(fg.IndexOutOfRangeError,
                           lambda: F.max_unpool2d(fg.tensor(pooled.numpy()), fg.tensor(idx.numpy()), 2))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, args", [
    ("ReflectionPad3d", (2,)), ("ReplicationPad3d", ((1, 2, 0, 3, 2, 1),)), ("CircularPad3d", ((2, 1, 0, 3, 1, 2),)),
    ("ConstantPad3d", ((1, 2, 0, 1, 3, 0), 2.5)), ("ZeroPad3d", ((1, 0, 2, 1, 0, 3),)),
])
@pytest.mark.parametrize("shape", [(2, 3, 4, 5, 6), (3, 5, 4, 3)])
def test_3d_padding_modules_match_torch(name, args, shape, dtype):
    _check(lambda M, x: (getattr(fg.nn, name) if M is F else getattr(torch.nn, name))(*args)(x), shape, dtype=dtype)


@pytest.mark.parametrize("name, args, shape, error", [
    ("ReflectionPad3d", (2,), (2, 2, 2, 3, 3), RuntimeError),  # reflection past the edge
    ("ReflectionPad3d", (1,), (4, 5, 6), NotImplementedError),
    ("ReplicationPad3d", (1,), (4, 5, 6), NotImplementedError),
    ("CircularPad3d", (1,), (4, 5, 6), ValueError),
    ("CircularPad3d", (3,), (2, 2, 2, 3, 3), RuntimeError),  # wraps more than the dimension holds
])
def test_bad_3d_padding_raises_like_torch(name, args, shape, error):
    x = RNG.standard_normal(shape)
    with pytest.raises(error):
        getattr(torch.nn, name)(*args)(torch.tensor(x))
    with pytest.raises(error):
        getattr(fg.nn, name)(*args)(fg.tensor(x))


# float32 sums of a few dozen products: a looser absolute tolerance than one op's
CONV_TOL = {"float32": dict(atol=1e-4, rtol=1e-4), "float64": {}}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape, w_shape, kw", [
    ((2, 4, 5, 6, 7), (3, 4, 3, 2, 3), dict(stride=2, padding=1)),
    ((2, 4, 6, 5, 7), (6, 2, 2, 3, 2), dict(stride=(1, 2, 3), padding=(1, 0, 2), dilation=(2, 1, 1), groups=2)),
    ((1, 3, 5, 5, 6), (2, 3, 3, 3, 3), dict(padding="same", dilation=(1, 2, 1))),
    ((3, 5, 4, 6), (2, 3, 2, 2, 3), dict(padding="valid")),  # unbatched
])
def test_conv3d_matches_torch(x_shape, w_shape, kw, dtype):
    _check(lambda M, x, w, b: M.conv3d(x, w, b, **kw), x_shape, w_shape, w_shape[:1], dtype=dtype, **CONV_TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, x_shape, w_shape, kw", [
    (1, (2, 4, 9), (4, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    (1, (2, 4, 7), (4, 2, 4), dict(stride=3, padding=2, dilation=1, groups=2, output_padding=2)),
    (1, (4, 8), (4, 3, 3), dict(dilation=2, padding=1, output_padding=1)),  # unbatched; output padding < dilation
    (3, (2, 4, 4, 5, 3), (4, 3, 3, 2, 3), dict(stride=2, padding=1, output_padding=1)),
    (3, (2, 4, 3, 4, 5), (4, 1, 2, 3, 2), dict(stride=(1, 2, 3), padding=(0, 1, 1), groups=2)),
    (3, (1, 2, 3, 4, 3), (2, 3, 3, 2, 2), dict(dilation=(2, 1, 2), padding=(1, 0, 1))),
    (3, (2, 4, 3, 5), (2, 3, 2, 3, 2), dict(stride=(2, 1, 2), output_padding=(1, 0, 0))),  # unbatched
])
def test_conv_transpose_matches_torch(n, x_shape, w_shape, kw, dtype):
    cout = w_shape[1] * kw.get("groups", 1)
    _check(lambda M, x, w, b: getattr(M, f"conv_transpose{n}d")(x, w, b, **kw), x_shape, w_shape, (cout,),
           dtype=dtype, **CONV_TOL[dtype])


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("name, args, kw, shape", [
    ("Conv3d", (4, 6, 3), dict(stride=2, padding=1, groups=2), (2, 4, 5, 6, 7)),
    ("Conv3d", (4, 3, (2, 3, 2)), dict(padding="same", bias=False), (4, 5, 4, 6)),
    ("ConvTranspose1d", (4, 6, 3), dict(stride=2, padding=1, output_padding=1, groups=2), (2, 4, 9)),
    ("ConvTranspose3d", (4, 3, 3), dict(stride=2, padding=1, output_padding=(1, 0, 1)), (2, 4, 3, 4, 5)),
    ("Conv3d", (2, 4, 3), dict(padding=(1, 0, 2), stride=2, padding_mode="reflect"), (2, 2, 5, 4, 6)),
    ("Conv3d", (2, 4, 3), dict(padding="same", padding_mode="circular"), (2, 4, 5, 3)),
    ("Conv2d", (3, 2, (3, 2)), dict(padding=(2, 1), dilation=(1, 2), padding_mode="replicate"), (2, 3, 6, 5)),
    ("Conv1d", (3, 6, 4), dict(padding="same", groups=3, padding_mode="reflect"), (2, 3, 9)),
])
def test_conv_modules_match_torch(name, args, kw, shape):
    """The same weights in both: the module's forward and the gradients of its input and parameters."""
    torch.manual_seed(0)
    ref = getattr(torch.nn, name)(*args, **kw).double()
    ours = getattr(fg.nn, name)(*args, **kw)
    assert [tuple(p.shape) for p in ours.parameters()] == [tuple(p.shape) for p in ref.parameters()]
    for p, q in zip(ours.parameters(), ref.parameters()):
        p.data = fg.tensor(q.detach().numpy())
    x = RNG.standard_normal(shape)
    _check(lambda M, v: (ours if M is F else ref)(v), arrays=[x], dtype="float64")
    weights = RNG.standard_normal(ref(torch.tensor(x)).shape)
    (ours(fg.tensor(x)) * fg.tensor(weights)).sum().backward()
    (ref(torch.tensor(x)) * torch.tensor(weights)).sum().backward()
    for p, q in zip(ours.parameters(), ref.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("call", [
    lambda M, x, w: M.conv3d(x[0, 0], w),  # 3-D input: neither batched nor unbatched 3-D
    lambda M, x, w: M.conv3d(x, w[:, :2]),  # channels that do not fit the weight
    lambda M, x, w: M.conv3d(x, w, groups=2),
    lambda M, x, w: M.conv3d(x, w, stride=2, padding="same"),
    lambda M, x, w: M.conv3d(x, w, padding=(0, 0, 0, 1)),
    lambda M, x, w: M.conv_transpose3d(x, w.transpose(0, 1)[:2]),
    lambda M, x, w: M.conv_transpose3d(x, w.transpose(0, 1), stride=2, output_padding=2),
    lambda M, x, w: M.conv_transpose1d(x[0, :, 0, 0], w[:, :, 0, 0], output_padding=1),  # without stride
])
def test_bad_convolutions_raise_like_torch(call):
    x, w = RNG.standard_normal((2, 3, 5, 6, 7)), RNG.standard_normal((3, 3, 2, 3, 2))
    with pytest.raises(RuntimeError) as ref:
        call(TF, torch.tensor(x), torch.tensor(w))
    with pytest.raises(fg.ShapeError) as got:
        call(F, fg.tensor(x), fg.tensor(w))
    assert isinstance(got.value, type(ref.value))


@pytest.mark.parametrize("name, kw", [("Conv3d", dict(padding_mode="mirror")),
                                      ("ConvTranspose1d", dict(padding_mode="reflect"))])
def test_bad_padding_modes_raise_like_torch(name, kw):
    with pytest.raises(ValueError):
        getattr(torch.nn, name)(2, 3, 3, **kw)
    with pytest.raises(ValueError):
        getattr(fg.nn, name)(2, 3, 3, **kw)


def test_conv_module_repr_names_its_padding_mode():
    assert repr(fg.nn.Conv3d(2, 3, 3, padding=1, padding_mode="circular")) == \
        repr(torch.nn.Conv3d(2, 3, 3, padding=1, padding_mode="circular"))


@pytest.mark.parametrize("name, args, kw, shape, output_size", [
    ("ConvTranspose1d", (3, 2, 3), dict(stride=3, padding=1), (2, 3, 5), [15]),
    ("ConvTranspose2d", (3, 2, 3), dict(stride=2, padding=1), (2, 3, 4, 5), (2, 2, 8, 9)),
    ("ConvTranspose3d", (3, 2, 2), dict(stride=(2, 3, 1)), (3, 3, 4, 2), (7, 12, 3)),  # unbatched
])
def test_conv_transpose_output_size_matches_torch(name, args, kw, shape, output_size):
    torch.manual_seed(0)
    ref = getattr(torch.nn, name)(*args, **kw).double()
    ours = getattr(fg.nn, name)(*args, **kw)
    for p, q in zip(ours.parameters(), ref.parameters()):
        p.data = fg.tensor(q.detach().numpy())
    x = RNG.standard_normal(shape)
    _check(lambda M, v: (ours if M is F else ref)(v, output_size=output_size), arrays=[x], dtype="float64")
    too_large = [size + 3 for size in output_size]
    with pytest.raises(ValueError):
        ref(torch.tensor(x), output_size=too_large)
    with pytest.raises(ValueError):
        ours(fg.tensor(x), output_size=too_large)
