"""scatter_reduce, index_reduce, index_add, index_copy, index_fill (fusegrad/ops/index_reduce.py)
against PyTorch: values, dtypes and gradients to self and to the source."""
import numpy as np
import pytest
import torch

import fusegrad as fg
from tests import helpers
from tests.helpers import check_op

RNG = np.random.default_rng(6122026)
FLOATS = ["float32", "float64"]
SELF, SRC = (4, 5), (6, 5)
INDEX = RNG.integers(0, 4, size=SRC)  # along dim 0: duplicates certain, row 4 of self often untouched
INDEX_DIM1 = RNG.integers(0, 5, size=(4, 3))
ROWS = np.array([2, 0, 2, 3, 0, 2])  # a 1-D index with duplicates; row 1 is never hit

pytestmark = pytest.mark.filterwarnings("ignore:index_reduce.*beta:UserWarning")  # torch's notice


def floats(shape, dtype="float32"):
    return RNG.standard_normal(shape).astype(dtype)


def idx(m, values):
    return m.tensor(np.asarray(values, dtype=np.int64))


REDUCTIONS = ["sum", "prod", "mean", "amax", "amin"]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("include_self", [True, False], ids=["include_self", "exclude_self"])
@pytest.mark.parametrize("reduce", REDUCTIONS)
def test_scatter_reduce(reduce, include_self, dtype):
    def fn(m):
        return lambda x, s: x.scatter_reduce(0, idx(m, INDEX), s, reduce, include_self=include_self)
    check_op([SELF, SRC], fn(fg), fn(torch), dtype=dtype, arrays=[floats(SELF, dtype), floats(SRC, dtype)])


@pytest.mark.parametrize("reduce", ["sum", "amax", "mean"])
def test_scatter_reduce_dim1_smaller_index(reduce):
    """An index smaller than self outside dim."""
    def fn(m):
        return lambda x, s: m.scatter_reduce(x, 1, idx(m, INDEX_DIM1), s, reduce, include_self=False)
    check_op([(5, 5), (4, 3)], fn(fg), fn(torch), arrays=[floats((5, 5)), floats((4, 3))])


def test_scatter_reduce_src_larger_than_index():
    """src larger than the index is cut to it (forward only: torch's backward rejects this case)."""
    x, s = floats((5, 5)), floats((4, 4))
    got = fg.tensor(x).scatter_reduce(1, fg.tensor(INDEX_DIM1), fg.tensor(s), "sum")
    want = torch.tensor(x).scatter_reduce(1, torch.tensor(INDEX_DIM1), torch.tensor(s), "sum")
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", ["int32", "int64"])
@pytest.mark.parametrize("reduce", REDUCTIONS)
def test_scatter_reduce_integers(reduce, dtype):
    """Integer mean rounds down (floor division), like torch."""
    x, s = RNG.integers(-9, 9, size=SELF).astype(dtype), RNG.integers(-9, 9, size=SRC).astype(dtype)
    for include_self in (True, False):
        got = fg.tensor(x).scatter_reduce(0, fg.tensor(INDEX), fg.tensor(s), reduce, include_self=include_self)
        want = torch.tensor(x).scatter_reduce(0, torch.tensor(INDEX), torch.tensor(s), reduce,
                                              include_self=include_self)
        assert got.dtype.name == dtype
        np.testing.assert_array_equal(got.numpy(), want.numpy())


INDEX_OPS = {
    "index_add": lambda m, x, s: x.index_add(0, idx(m, ROWS), s),
    "index_add_alpha": lambda m, x, s: m.index_add(x, 0, idx(m, ROWS), s, alpha=-2.5),
    "index_copy": lambda m, x, s: x.index_copy(0, idx(m, [3, 0, 1, 4, 5, 2]), s * 2),
    "index_fill": lambda m, x, s: x.index_fill(1, idx(m, [4, 0, 4]), -1.5) + s.sum(),
    "index_fill_tensor_value": lambda m, x, s: m.index_fill(x, 0, idx(m, [-1]), m.tensor(3.0, dtype=x.dtype)),
    "index_reduce_prod": lambda m, x, s: x.index_reduce(0, idx(m, ROWS), s, "prod"),
    "index_reduce_mean": lambda m, x, s: m.index_reduce(x, 0, idx(m, ROWS), s, "mean", include_self=False),
    "index_reduce_amax": lambda m, x, s: x.index_reduce(0, idx(m, ROWS), s, "amax"),
    "index_reduce_amin": lambda m, x, s: x.index_reduce(0, idx(m, ROWS), s, "amin", include_self=False),
}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", list(INDEX_OPS))
def test_index_ops(name, dtype):
    fn = INDEX_OPS[name]
    shapes = [(6, 5), SRC]
    check_op(shapes, lambda x, s: fn(fg, x, s), lambda x, s: fn(torch, x, s), dtype=dtype,
             arrays=[floats(s, dtype) for s in shapes])


def test_index_ops_on_other_dims_and_integers():
    x, s = RNG.integers(0, 9, size=(3, 6)), RNG.integers(0, 9, size=(3, 4))
    cols = [5, 0, 5, 2]
    cases = [
        lambda m, x, s: x.index_add(1, idx(m, cols), s),
        lambda m, x, s: x.index_add(-1, idx(m, cols), s, alpha=3),
        lambda m, x, s: x.index_copy(1, idx(m, [1, 0, 3, 2]), s),
        lambda m, x, s: x.index_fill(1, idx(m, cols), 7),
        lambda m, x, s: x.index_reduce(1, idx(m, cols), s, "amax", include_self=False),
    ]
    for case in cases:
        got, want = case(fg, fg.tensor(x), fg.tensor(s)), case(torch, torch.tensor(x), torch.tensor(s))
        assert got.dtype.name == str(want.dtype).removeprefix("torch.")
        np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_in_place_forms():
    x, s = floats((6, 5)), floats(SRC)
    for name, args in [("index_add_", (0, ROWS, s)), ("index_copy_", (0, [5, 4, 3, 2, 1, 0], s)),
                       ("index_fill_", (1, [1, 3], 0.5)), ("index_reduce_", (0, ROWS, s, "amin")),
                       ("scatter_reduce_", (0, INDEX, s, "prod"))]:
        a, t = fg.tensor(x), torch.tensor(x)
        fg_args = [fg.tensor(np.asarray(v)) if isinstance(v, (np.ndarray, list)) else v for v in args]
        t_args = [torch.tensor(np.asarray(v)) if isinstance(v, (np.ndarray, list)) else v for v in args]
        assert getattr(a, name)(*fg_args) is a
        getattr(t, name)(*t_args)
        np.testing.assert_allclose(a.numpy(), t.numpy(), rtol=1e-6, atol=1e-6)


def test_errors():
    x, s = fg.tensor(floats((6, 5))), fg.tensor(floats(SRC))
    with pytest.raises(ValueError):
        x.scatter_reduce(0, fg.tensor(INDEX), s, "max")
    with pytest.raises(ValueError):
        x.index_reduce(0, fg.tensor(ROWS), s, "sum")  # torch's index_reduce has no 'sum'
    helpers.raises_at_call_or_read(fg.IndexOutOfRangeError, lambda: x.index_add(0, fg.tensor([0, 1, 2, 3, 4, 6]), s))
    helpers.raises_at_call_or_read(fg.IndexOutOfRangeError, lambda: x.scatter_reduce(0, fg.tensor(INDEX + 3), s, "sum"))
    with pytest.raises(fg.ShapeError):
        x.index_add(0, fg.tensor([0, 1]), s)  # source's dim 0 must be the index's length
    with pytest.raises(fg.ShapeError):
        x.index_copy(0, fg.tensor(ROWS.reshape(2, 3)), s)
    with pytest.raises(fg.DTypeError):
        x.index_fill(0, fg.tensor([0.5]), 1.0)
    with pytest.raises(fg.ShapeError):
        x.index_fill(0, fg.tensor([0]), fg.tensor([1.0, 2.0]))
