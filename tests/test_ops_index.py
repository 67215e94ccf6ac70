"""Indexing, assignment through indices, gather/scatter and one_hot against PyTorch."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fusegrad as fg
from fusegrad.ops import index as fg_index
from tests import helpers
from tests.helpers import RNG, check_op, random_array

FLOATS = ["float32", "float64"]
MASK = RNG.random((3, 4)) < 0.5
MASK[0, 0], MASK[1, 1] = True, False  # at least one of each
PAIR = np.array([True, False, False, True])  # exactly two True, to pair with a 2-element index


def idx(m, values):
    """An int64 index tensor of module m (fg or torch)."""
    return m.tensor(np.asarray(values, dtype=np.int64))


def both(fn):
    return (lambda *t: fn(fg, *t)), (lambda *t: fn(torch, *t))


# expressions on a (3, 4, 5) input, written once for both libraries
GETITEM_CASES = {
    "int": lambda m, x: x[1],
    "negative_ints": lambda m, x: x[-1, -2],
    "slice": lambda m, x: x[:, 1:3],
    "ellipsis_step": lambda m, x: x[..., ::2],
    "mixed_basic": lambda m, x: x[1:, None, ::3, -4:-1],
    "none_ellipsis": lambda m, x: x[None, ..., None, 2],
    "empty_slice": lambda m, x: x[:, 10:],  # empty slice
    "noncontiguous": lambda m, x: x.permute(2, 0, 1)[1:, ::2],  # non-contiguous input
    "repeated_negative_index": lambda m, x: x[idx(m, [0, 2, -1, 0])],  # repeated and negative index values
    "index_matrix": lambda m, x: x[:, idx(m, [[3, 0], [1, 1]])],
    "two_lists": lambda m, x: x[[2, 0], [1, 3]],  # Python lists: two adjacent advanced indices
    "separated_indices": lambda m, x: x[idx(m, [1, 0]), :, idx(m, [4, 1])],  # separated: result dims go first
    "int_and_index": lambda m, x: x[1, :, idx(m, [4, 1, 1])],  # the int is basic indexing in torch
    "broadcast_indices": lambda m, x: x[:, idx(m, [[0], [2]]), idx(m, [1, 2, 3])],  # broadcast index tensors
    "zero_d_index": lambda m, x: x[idx(m, 2)],  # 0-d index tensor
    "empty_index": lambda m, x: x[:, idx(m, [])],  # empty index
    "numpy_indices": lambda m, x: x[None, np.array([1, 0]), 1:, np.array([0, 4])],
    "mask": lambda m, x: x[m.tensor(MASK)],
    "mask_then_slice": lambda m, x: x[m.tensor(MASK[:, 0]), 1:],
    "index_and_mask_pair": lambda m, x: x[idx(m, [2, 0]), m.tensor(PAIR)],
    "pair_and_none": lambda m, x: x[1:, m.tensor(PAIR), None, idx(m, [[1], [4]])],
    "bool_list": lambda m, x: x[MASK[:, 0].tolist()],  # a list of bools is a mask
    # a 0-d index tensor acts as an int, as in torch
    "zero_d_index_as_int": lambda m, x: x[idx(m, 1), 1:3, idx(m, [[4], [1]])],
}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("fn", GETITEM_CASES.values(), ids=GETITEM_CASES.keys())
def test_getitem_matches_torch(fn, dtype):
    check_op([(3, 4, 5)], *both(fn), dtype=dtype)


@pytest.mark.parametrize("dtype", ["int64", "bool", "int32"])
@pytest.mark.parametrize("name", ["ellipsis_step", "repeated_negative_index", "separated_indices", "mask"])
def test_getitem_integer_and_bool_tensors(name, dtype):
    check_op([(3, 4, 5)], *both(GETITEM_CASES[name]), dtype=dtype, low=-9, high=9)


@pytest.mark.parametrize("key", [
    (slice(None, None, -1),),
    (slice(None), slice(None, None, -2)),
    (slice(3, 0, -2), slice(-1, None, -3)),
    (slice(None, None, -1), slice(4, None, -1), slice(-2, 0, -1)),
    (slice(0, 3, -1),),  # empty
])
def test_negative_step_slices(key):
    # torch has no negative steps; the reference indexes with the explicit positions numpy would pick
    shape = (3, 4, 5)

    def torch_fn(t):
        for d, k in enumerate(key):
            t = t.index_select(d, torch.tensor(list(range(shape[d]))[k], dtype=torch.int64))
        return t
    check_op([shape], lambda a: a[key], torch_fn, dtype="float64")
    a = random_array(shape)
    np.testing.assert_array_equal(fg.tensor(a)[key].numpy(), a[key])


def test_duplicate_indices_accumulate_gradients():
    check_op([(4, 3)], *both(lambda m, x: x[idx(m, [1, 1, 3, 1])] * 2), dtype="float64")


def test_gather_ignores_nan_in_unselected_elements():
    a = np.array([1.0, np.nan, 3.0, np.inf])
    out = fg.tensor(a)[fg.tensor([0, 2, 3])].numpy()
    np.testing.assert_array_equal(out, [1.0, 3.0, np.inf])
    picked = fg.tensor(a).reshape(2, 2).gather(1, fg.tensor([[0], [1]]))
    np.testing.assert_array_equal(picked.numpy(), [[1.0], [np.inf]])


# ---- __setitem__: writing into y = x * 1 keeps x a leaf, so gradients flow to x and to v ---------

def assign(key_fn, value_is_tensor=True):
    def fn(m, x, v):
        y = x * 1 if x.is_floating_point() else x
        y[key_fn(m)] = v if value_is_tensor else 2.5
        return y
    return fn


SETITEM_CASES = [
    ([(3, 4), (4,)], assign(lambda m: 1)),
    ([(3, 4), (2, 1)], assign(lambda m: (slice(1, None), slice(None, None, 2)))),
    ([(3, 4), ()], assign(lambda m: (Ellipsis, -1))),
    ([(3, 4), (1, 3)], assign(lambda m: (None, 0, slice(1, None)))),
    ([(3, 4), (2, 4)], assign(lambda m: idx(m, [2, 0]))),
    ([(3, 4), (2,)], assign(lambda m: (idx(m, [2, -3]), idx(m, [1, 3])))),
    ([(3, 4), (3, 1)], assign(lambda m: (slice(None), idx(m, [3, 0])))),
    ([(3, 4), (2, 1, 3)], assign(lambda m: (idx(m, [[0], [2]]), slice(1, None)))),
    ([(3, 4), (int(MASK.sum()),)], assign(lambda m: m.tensor(MASK))),
    ([(3, 4), (1,)], assign(lambda m: m.tensor(MASK))),
    ([(3, 4), ()], assign(lambda m: m.tensor(MASK), value_is_tensor=False)),
    ([(3, 4), (4,)], assign(lambda m: m.tensor(MASK[:, 0]))),
    ([(3, 4), (2,)], assign(lambda m: (slice(None), slice(10, None)), value_is_tensor=False)),  # empty: no-op
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shapes,fn", SETITEM_CASES)
def test_setitem_matches_torch(shapes, fn, dtype):
    check_op(shapes, *both(fn), dtype=dtype)


@pytest.mark.parametrize("dtype", ["int64", "bool"])
def test_setitem_integer_and_bool(dtype):
    for shapes, fn in (SETITEM_CASES[1], SETITEM_CASES[5], SETITEM_CASES[8]):
        check_op(shapes, *both(fn), dtype=dtype, low=-9, high=9)


@pytest.mark.parametrize("key", [(slice(None, None, -1), 1), (slice(None), slice(None, 0, -2)),
                                 (slice(2, None, -2), slice(3, 0, -1))])
def test_setitem_negative_steps_match_numpy(key):
    a = random_array((3, 4), "float64")
    region = a[key]
    v = random_array(region.shape, "float64")
    x = fg.tensor(a)
    x[key] = fg.tensor(v)
    a[key] = v
    np.testing.assert_array_equal(x.numpy(), a)


def test_setitem_duplicate_indices_last_write_wins():
    x = fg.zeros(5)
    x[fg.tensor([1, 3, 1, 1])] = fg.tensor([1.0, 2.0, 3.0, 4.0])
    expected = np.zeros(5)
    for i, v in zip([1, 3, 1, 1], [1.0, 2.0, 3.0, 4.0]):
        expected[i] = v
    np.testing.assert_array_equal(x.numpy(), expected)


def test_setitem_on_leaf_requiring_grad_raises():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(fg.GradError):
        x[0] = 3.0
    with fg.no_grad():
        x[0] = 3.0
    np.testing.assert_array_equal(x.numpy(), [3.0, 2.0])


def test_setitem_casts_value_to_tensor_dtype():
    x = fg.tensor([1, 2, 3])
    x[1:] = 2.7
    assert x.dtype is fg.int64
    np.testing.assert_array_equal(x.numpy(), [1, 2, 2])


def test_setitem_value_shape_mismatch_raises():
    with pytest.raises(fg.ShapeError, match=r"\(3,\).*\(2, 4\)"):
        fg.zeros(3, 4)[1:] = fg.zeros(3)


# ---- gather / scatter / index_select / masked ops / one_hot -----------------------------------------

GATHER_INDEX = np.array([[0, 3, 1], [2, 2, 0]])
UNIQUE_INDEX = np.array([[0, 3, 1], [2, 1, 0]])  # no duplicates along dim 1, so scatter gradients are defined


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shapes,fn", [
    ([(2, 4)], lambda m, x: x.gather(1, idx(m, GATHER_INDEX))),
    ([(4, 3)], lambda m, x: x.gather(0, idx(m, GATHER_INDEX.T[:, :2]))),  # index smaller than input
    ([(4, 2)], lambda m, x: x.T.gather(1, idx(m, GATHER_INDEX))),
    ([(2, 4)], lambda m, x: x.take_along_dim(idx(m, [[-1], [1]]), 1)),
    ([(2, 4)], lambda m, x: x.take_along_dim(idx(m, [[1, 0, 3]]), 1)),  # broadcast indices
    ([(2, 4)], lambda m, x: x.take_along_dim(idx(m, [7, 0]))),  # flattened
    ([(2, 4)], lambda m, x: x.take(idx(m, [[-1, 2], [0, 5]]))),
    ([(2, 4)], lambda m, x: x.index_select(1, idx(m, [3, 0, 3]))),
    ([(2, 4)], lambda m, x: x.index_select(0, idx(m, 1))),
    ([(2, 4), (2, 3)], lambda m, x, s: x.scatter(1, idx(m, UNIQUE_INDEX), s)),
    ([(2, 4)], lambda m, x: x.scatter(1, idx(m, UNIQUE_INDEX), -1.5)),
    ([(2, 4), (2, 3)], lambda m, x, s: x.scatter_add(1, idx(m, GATHER_INDEX), s)),
    ([(3, 4), (2, 3)], lambda m, x, s: x.scatter_add(0, idx(m, [[2, 0, 2], [2, 1, 0]]), s)),
    ([(3, 4)], lambda m, x: x.masked_fill(m.tensor(MASK), -2.0)),
    ([(3, 4), ()], lambda m, x, v: x.masked_fill(m.tensor(MASK[0]), v)),
    ([(3, 4)], lambda m, x: x.masked_select(m.tensor(MASK[:, :1]))),
])
def test_gather_scatter_match_torch(shapes, fn, dtype):
    check_op(shapes, *both(fn), dtype=dtype)


@pytest.mark.parametrize("dtype", ["int64", "int32", "bool"])
def test_gather_scatter_integer_and_bool(dtype):
    check_op([(2, 4)], *both(lambda m, x: x.gather(1, idx(m, GATHER_INDEX))), dtype=dtype, low=-9, high=9)
    check_op([(2, 4), (2, 3)], *both(lambda m, x, s: x.scatter(1, idx(m, UNIQUE_INDEX), s)), dtype=dtype,
                   low=-9, high=9)
    if dtype != "bool":
        check_op([(2, 4), (2, 3)], *both(lambda m, x, s: x.scatter_add(1, idx(m, GATHER_INDEX), s)),
                       dtype=dtype, low=-9, high=9)


# torch has no gradient for these (or a broken one), so only values are compared
@pytest.mark.filterwarnings("ignore:The reduce argument of torch.scatter")
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shapes,fn", [
    ([(2, 4), (3, 4)], lambda m, x, s: x.scatter(1, idx(m, UNIQUE_INDEX[:, :2]), s)),  # src larger than index
    ([(2, 4), (2, 3)], lambda m, x, s: x.scatter(1, idx(m, GATHER_INDEX), s, reduce="add")),
    ([(2, 4), (2, 3)], lambda m, x, s: x.scatter(1, idx(m, GATHER_INDEX), s, reduce="multiply")),
])
def test_scatter_values_match_torch(shapes, fn, dtype):
    check_op(shapes, *both(fn), dtype=dtype, grad=False)


def test_scatter_duplicates_last_write_wins():
    x, s = random_array((2, 4)), random_array((2, 3))
    got = fg.tensor(x).scatter(1, fg.tensor(GATHER_INDEX), fg.tensor(s)).numpy()
    for i in range(2):
        for j in range(3):
            x[i, GATHER_INDEX[i, j]] = s[i, j]
    np.testing.assert_array_equal(got, x)


def test_module_level_functions():
    x = fg.tensor(random_array((2, 4)))
    i = fg.tensor(UNIQUE_INDEX)
    np.testing.assert_array_equal(fg_index.gather(x, 1, i).numpy(), x.gather(1, i).numpy())
    np.testing.assert_array_equal(fg_index.scatter(x, 1, i, value=0.5).numpy(), x.scatter(1, i, 0.5).numpy())
    np.testing.assert_array_equal(fg_index.index_select(x, 1, fg.tensor([1])).numpy(), x.numpy()[:, [1]])
    np.testing.assert_array_equal(fg_index.masked_fill(x, x > 0, 0.0).numpy(), np.where(x.numpy() > 0, 0, x.numpy()))


@pytest.mark.parametrize("num_classes", [-1, 7])
def test_one_hot_matches_torch(num_classes):
    labels = RNG.integers(0, 5, size=(2, 3))
    want = F.one_hot(torch.tensor(labels), num_classes).numpy()
    for got in (fg_index.one_hot(fg.tensor(labels), num_classes), fg.tensor(labels).one_hot(num_classes)):
        assert got.dtype is fg.int64
        np.testing.assert_array_equal(got.numpy(), want)


# ---- errors at build time -------------------------------------------------------------------

@pytest.mark.parametrize("bad", [
    lambda x: x[3],
    lambda x: x[0, -5],
    lambda x: x[fg.tensor([0, 3])],
    lambda x: x[fg.tensor([-4])],
    lambda x: x[:, [4]],
    lambda x: x[np.array([1, 2, 3])],
    lambda x: x.gather(1, fg.tensor([[4]])),
    lambda x: x.gather(1, fg.tensor([[-1]])),
    lambda x: x.index_select(0, fg.tensor([-1])),
    lambda x: x.scatter(0, fg.tensor([[3]]), 1.0),
    lambda x: x.take(fg.tensor([12])),
    lambda x: x[fg.tensor([True, False])],
    lambda x: fg_index.one_hot(fg.tensor([0, 3]), 3),
    lambda x: fg_index.one_hot(fg.tensor([-1, 1])),
])
def test_out_of_range_indices_raise_at_build(bad):
    x = fg.tensor(random_array((3, 4)))
    helpers.raises_at_call_or_read(fg.IndexOutOfRangeError, lambda: bad(x))
    if helpers.checks_on_host():
        with fg.profile() as p, pytest.raises(IndexError):
            bad(x)
        assert not p.kernels  # the index was a buffer: checking it ran nothing


def test_out_of_range_assignment_raises():
    x = fg.zeros(3, 4)

    def write() -> fg.Tensor:
        x[fg.tensor([5])] = 1.0
        return x

    helpers.raises_at_call_or_read(fg.IndexOutOfRangeError, write)
    with pytest.raises(fg.IndexOutOfRangeError):
        x[0, 4] = 1.0


@pytest.mark.parametrize("bad,error", [
    (lambda x: x[0, 0, 0], IndexError),
    (lambda x: x[..., 0, ...], IndexError),
    (lambda x: x[fg.tensor([0.0])], fg.DTypeError),
    (lambda x: x[np.array([0.5])], fg.DTypeError),
    (lambda x: x["a"], TypeError),
    (lambda x: x[fg.tensor([0, 1]), fg.tensor([0, 1, 2])], fg.ShapeError),
    (lambda x: x.gather(0, fg.tensor([0])), fg.ShapeError),
    (lambda x: x.gather(0, fg.tensor([[0.0]])), fg.DTypeError),
    (lambda x: x.masked_fill(fg.tensor([1, 0, 1, 0]), 0.0), fg.DTypeError),
    (lambda x: x.masked_fill(fg.tensor([[True]] * 2), 0.0), fg.ShapeError),
    (lambda x: x.index_select(0, fg.tensor([[0]])), fg.ShapeError),
    (lambda x: x.scatter(0, fg.tensor([[0, 1]]), fg.zeros(1, 1)), fg.ShapeError),
    (lambda x: fg_index.one_hot(fg.tensor([0.0])), fg.DTypeError),
])
def test_bad_indices_raise(bad, error):
    with pytest.raises(error):
        bad(fg.zeros(3, 4))


# ---- laziness and kernel counts -------------------------------------------------------------

def test_basic_indexing_is_a_view_and_fuses():
    x = fg.tensor(random_array((6, 5)))
    with fg.profile() as p:
        y = x[1:, ::2][None, ..., -1]
        s = (x[1:, ::2] * 2).sum()
    assert not p.kernels and y.shape == (1, 5)
    with fg.profile() as p:
        s.realize()
    assert len(p.kernels) == 1
    np.testing.assert_allclose(s.numpy(), (x.numpy()[1:, ::2] * 2).sum(), rtol=1e-5)


def test_advanced_indexing_is_one_kernel():
    x, i = fg.tensor(random_array((6, 5))), fg.tensor([4, 0, 4])
    with fg.profile() as p:
        y = (x[i, 1:] + 1).realize()
    assert len(p.kernels) == (1 if helpers.checks_on_host() else 2)  # elsewhere a kernel checks the index
    np.testing.assert_allclose(y.numpy(), x.numpy()[[4, 0, 4], 1:] + 1, rtol=1e-6)


def test_masked_assignment_of_a_scalar_needs_no_sync():
    x = fg.tensor(random_array((3, 4)))
    y = x * 2
    with fg.profile() as p:
        y[y > 0] = 0.0
        y[:, 1] = -1.0
    assert not p.kernels
    want = np.where(x.numpy() * 2 > 0, 0.0, x.numpy() * 2)
    want[:, 1] = -1.0
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-6)
