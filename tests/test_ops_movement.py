"""Movement ops (views) and joins against PyTorch: values, dtypes, gradients, errors, zero-copy."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fusegrad as fg
from fusegrad.ops import movement
from tests.helpers import check_op, random_array

FLOATS = ["float32", "float64"]


def both(fn):
    """One test expression for both libraries: fn(module, *tensors) with module fg or torch."""
    return (lambda *t: fn(fg, *t)), (lambda *t: fn(torch, *t))


# (shapes, expression) pairs; every one runs in float32 and float64 with gradients
VIEW_CASES = [
    ([(3, 4)], lambda a: a.transpose(0, 1)),
    ([(2, 3, 4)], lambda a: a.swapaxes(0, 2).swapdims(-1, 1)),
    ([(3, 4)], lambda a: a.T),
    ([(2, 3, 4)], lambda a: a.mT.exp()),
    ([(3, 4)], lambda a: a.t()),
    ([(1, 3, 1, 4)], lambda a: a.squeeze()),
    ([(1, 3, 1, 4)], lambda a: a.squeeze(2)),
    ([(1, 3, 1, 4)], lambda a: a.squeeze((0, 1, -2))),
    ([(3, 4)], lambda a: a.unsqueeze(-1).unsqueeze(0)),
    ([(2, 3, 4)], lambda a: a.flatten(1)),
    ([(2, 3, 4)], lambda a: a.flatten(0, 1)),
    ([(2, 12)], lambda a: a.unflatten(1, (3, -1))),
    ([(2, 3, 4)], lambda a: a.flip(0, 2)),
    ([(2, 3, 4)], lambda a: a.flip([-1])),
    ([(3, 4)], lambda a: a.roll(5)),
    ([(3, 4)], lambda a: a.roll((1, -3), (0, 1))),
    ([(2, 3, 4)], lambda a: a.roll(-1, 2)),
    ([(3, 4)], lambda a: a.repeat(2, 1, 3)),
    ([(3, 4)], lambda a: a.tile(2)),
    ([(3, 4)], lambda a: a.tril()),
    ([(2, 3, 4)], lambda a: a.triu(1)),
    ([(3, 4)], lambda a: a.tril(-1) + a.triu(2)),
    ([(3, 4)], lambda a: a.narrow(1, -3, 2)),
    ([(2, 3, 4)], lambda a: a.select(1, -1)),
    ([(2, 3, 4)], lambda a: a.movedim(0, -1)),
    ([(2, 3, 4)], lambda a: a.movedim((0, 1), (2, 0))),
    ([(3, 4)], lambda a: a.diagonal()),
    ([(3, 4)], lambda a: a.diagonal(2)),
    ([(2, 3, 4)], lambda a: a.diagonal(-1, 2, 1)),
    ([(3, 4)], lambda a: a.T.roll(1, 0).flip(1)),  # non-contiguous input
    ([(4, 6)], lambda a: a[::2].T.repeat(1, 2).tril()),  # strided input
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shapes,fn", VIEW_CASES)
def test_views_match_torch(shapes, fn, dtype):
    check_op(shapes, fn, dtype=dtype)


SPLIT_CASES = [
    lambda a: a.split(2, 1),
    lambda a: a.split([1, 0, 4], 1),
    lambda a: a.chunk(2, 0),
    lambda a: a.chunk(4, 1),
    lambda a: a.unbind(1),
]


@pytest.mark.parametrize("fn", SPLIT_CASES)
def test_splits_match_torch(fn):
    check_op([(3, 5)], fn, dtype="float64")


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("pad,value", [((1, 2), 0.0), ((1, -1, 0, 2), 5.0), ((0, 0, -1, 1, 2, 0), -1.5)])
def test_constant_pad_matches_f_pad(pad, value, dtype):
    check_op([(2, 3, 4)], lambda a: a.pad(pad, value=value), lambda a: F.pad(a, pad, value=value), dtype=dtype)


CAT_CASES = [
    ([(2, 3), (4, 3)], lambda m, a, b: m.cat([a, b])),
    ([(2, 3), (2, 1)], lambda m, a, b: m.cat((a, b, a), dim=-1)),
    ([(3, 2), (2, 3)], lambda m, a, b: m.cat([a.T, b], 0)),  # non-contiguous piece
    ([(2, 3), (0, 3)], lambda m, a, b: m.cat([a, b, a])),  # empty piece
    ([(2, 3), (2, 3)], lambda m, a, b: m.stack([a, b])),
    ([(2, 3), (2, 3)], lambda m, a, b: m.stack([a, b, a], -1)),
    ([(3,), (2,)], lambda m, a, b: m.cat([a, b]).exp()),
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shapes,fn", CAT_CASES)
def test_cat_and_stack_match_torch(shapes, fn, dtype):
    check_op(shapes, *both(fn), dtype=dtype)


@pytest.mark.parametrize("dtype", ["int64", "bool"])
@pytest.mark.parametrize("fn", [
    lambda m, a, b: m.cat([a, b, a], 1),
    lambda m, a, b: m.stack([a, b], 1),
    lambda m, a, b: a.roll(1, 1).flip(0).repeat(1, 2),
    lambda m, a, b: m.cat([a.tril(), b.triu(1)]),
    lambda m, a, b: a.T.diagonal(),
])
def test_integer_and_bool_movement(fn, dtype):
    check_op([(3, 4), (3, 4)], *both(fn), dtype=dtype, low=-5, high=5)


@pytest.mark.parametrize("name,shapes", [("hstack", [(2, 3), (2, 1)]), ("hstack", [(3,), (2,)]),
                                         ("hstack", [(), ()]), ("vstack", [(3,), (1, 3)]), ("vstack", [(), ()])])
def test_hstack_vstack(name, shapes):
    check_op(shapes, lambda a, b: getattr(movement, name)([a, b]), lambda a, b: getattr(torch, name)([a, b]),
                   dtype="float64")


@pytest.mark.parametrize("name,args", [("transpose", (0, 1)), ("squeeze", ()), ("unsqueeze", (1,)), ("flatten", ()),
                                       ("movedim", (0, 1)), ("flip", ((0,),)), ("roll", (1, 1)), ("diagonal", (1,)),
                                       ("tril", (-1,)), ("triu", ()), ("narrow", (1, 1, 2))])
def test_module_level_spellings(name, args):
    check_op([(3, 4)], lambda a: getattr(movement, name)(a, *args), lambda a: getattr(torch, name)(a, *args),
                   dtype="float64")


def test_module_level_splits():
    check_op([(3, 4)], lambda a: movement.split(a, 2, 1) + movement.chunk(a, 2) + movement.unbind(a),
                   lambda a: torch.split(a, 2, 1) + torch.chunk(a, 2) + torch.unbind(a), dtype="float64")


@pytest.mark.parametrize("indexing", ["ij", "xy"])
def test_meshgrid(indexing):
    check_op([(3,), (4,), (2,)], lambda *t: movement.meshgrid(*t, indexing=indexing),
                   lambda *t: torch.meshgrid(*t, indexing=indexing), dtype="float64")
    check_op([(3,), (4,)], lambda *t: movement.meshgrid(list(t), indexing=indexing),
                   lambda *t: torch.meshgrid(list(t), indexing=indexing), dtype="float64")


def test_cat_skips_1d_empty_tensors_like_torch():
    check_op([(2, 3), (0,)], *both(lambda m, a, b: m.cat([b, a, b], 1)), dtype="float64", grad=False)


def test_T_reverses_all_dims():
    check_op([(2, 3, 4)], lambda a: a.T, lambda a: a.permute(2, 1, 0), dtype="float64")


def test_cat_promotes_dtypes_like_torch():
    a, b = random_array((2, 3), "int32", -3, 3), random_array((1, 3), "bool")
    c = random_array((2, 3), "float64")
    for args in [(a, b), (b, a), (a, c), (b, b)]:
        got = fg.cat([fg.tensor(x) for x in args])
        want = torch.cat([torch.tensor(x) for x in args])
        assert got.dtype.name == str(want.dtype).removeprefix("torch.")
        np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_cat_keeps_negative_zero_and_nan():
    a = fg.tensor([-0.0, float("nan")])
    out = fg.cat([a, fg.tensor([float("inf")])]).numpy()
    assert np.signbit(out[0]) and np.isnan(out[1]) and out[2] == np.inf


@pytest.mark.parametrize("fn", [
    lambda a: a.flip(0).roll(1, 0),
    lambda a: a.repeat(2, 1).T,
    lambda a: a.tril(),
    lambda a: a.unflatten(0, (0, 5)).flatten(),
    lambda a: a.split(2, 0)[0],
])
def test_empty_tensors(fn):
    check_op([(0, 3)], fn, dtype="float64")


def test_empty_pad():
    check_op([(0, 3)], lambda a: a.pad((1, 1, 0, 1), value=3.0), lambda a: F.pad(a, (1, 1, 0, 1), value=3.0),
                   dtype="float64")


@pytest.mark.parametrize("fn", [
    lambda a: a.unsqueeze(0).unsqueeze(-1),
    lambda a: a.flatten(),
    lambda a: a.squeeze(0),
    lambda a: a.unsqueeze(0).repeat(3),
    lambda a: a.roll(2),
])
def test_zero_dim_tensors(fn):
    check_op([()], fn, dtype="float64")


def test_zero_dim_stack():
    check_op([(), ()], *both(lambda m, a, b: m.stack([a, b])), dtype="float64")


# ---- errors, raised when the op is built -------------------------------------------------------

def test_cat_and_stack_shape_errors_name_the_shapes():
    a, b = fg.zeros(2, 3), fg.zeros(2, 4)
    with pytest.raises(fg.ShapeError, match=r"\(2, 3\).*\(2, 4\)"):
        fg.cat([a, b])
    with pytest.raises(fg.ShapeError, match=r"\(2, 3\).*\(2, 4\)"):
        fg.stack([a, b])
    with pytest.raises(fg.ShapeError):
        fg.cat([a, fg.zeros(2, 3, 1)], 1)
    with pytest.raises(fg.ShapeError):
        fg.cat([])
    with pytest.raises(fg.ShapeError):
        fg.cat([fg.tensor(1.0), fg.tensor(2.0)])
    assert fg.cat([a, b], 1).shape == (2, 7)


@pytest.mark.parametrize("bad", [
    lambda: fg.cat([fg.zeros(2, 3)] * 2, 2),
    lambda: fg.stack([fg.zeros(2, 3)] * 2, -4),
    lambda: fg.zeros(2, 3).transpose(0, 2),
    lambda: fg.zeros(2, 3).squeeze(2),
    lambda: fg.zeros(2, 3).unsqueeze(3),
    lambda: fg.zeros(2, 3).flip(2),
    lambda: fg.zeros(2, 3).roll(1, 5),
    lambda: fg.zeros(2, 3).split(1, 2),
])
def test_bad_dims_raise_index_error(bad):
    with pytest.raises(IndexError):
        bad()


@pytest.mark.parametrize("bad", [
    lambda: fg.zeros(2, 3).repeat(2),
    lambda: fg.zeros(2, 3).unflatten(1, (2, 2)),
    lambda: fg.zeros(2, 3).split([1, 1], 1),
    lambda: fg.zeros(2, 3).pad((1, 1, 1, 1, 1, 1)),
    lambda: fg.zeros(2, 3).pad((-2, -2)),
    lambda: fg.zeros(3).tril(),
    lambda: fg.zeros(3).mT,
    lambda: fg.zeros(2, 3).diagonal(0, 1, 1),
    lambda: fg.zeros(2, 3).roll((1, 2), 0),
])
def test_bad_arguments_raise_shape_error(bad):
    with pytest.raises(fg.ShapeError):
        bad()


def test_narrow_and_select_out_of_range():
    x = fg.zeros(2, 3)
    with pytest.raises(fg.IndexOutOfRangeError):
        x.narrow(1, 2, 2)
    with pytest.raises(fg.IndexOutOfRangeError):
        x.select(0, 2)
    with pytest.raises(IndexError):
        x.select(0, -3)


# ---- zero copy ------------------------------------------------------------------------------

def test_movement_chains_launch_no_kernels_until_realized():
    x = fg.tensor(random_array((6, 4)))
    with fg.profile() as p:
        y = x.permute(1, 0).reshape(3, 8)[::2]
        z = x.roll(2, 0).repeat(2, 1).flip(1).diagonal().unsqueeze(0).T
        parts = x.split(2, 0) + x.unbind(1) + x.chunk(3, 1)
    assert len(p.kernels) == 0
    assert y.shape == (2, 8) and z.shape == (4, 1) and len(parts) == 9
    with fg.profile() as p:
        got = y.numpy()
    assert len(p.kernels) == 1
    np.testing.assert_array_equal(got, x.numpy().T.reshape(3, 8)[::2])


def test_slice_and_cat_fuse_into_one_kernel():
    a, b = fg.tensor(random_array((5, 6))), fg.tensor(random_array((2, 6)))
    with fg.profile() as p:
        s = (a[1:, ::2] * 2).sum()
        s.realize()
    assert len(p.kernels) == 1
    np.testing.assert_allclose(s.numpy(), (a.numpy()[1:, ::2] * 2).sum(), rtol=1e-5)
    with fg.profile() as p:
        c = (fg.cat([a, b.exp(), a[:1]]) + 1).realize()
    assert len(p.kernels) == 1
    np.testing.assert_allclose(c.numpy(), np.concatenate([a.numpy(), np.exp(b.numpy()), a.numpy()[:1]]) + 1,
                               rtol=1e-6)

