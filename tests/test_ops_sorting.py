"""Sorting, order statistics, scans, data-shaped ops, diagonals, windows and einsum's ellipsis
(fusegrad/ops/sorting.py, scan.py, datashape.py, movement.py, linalg.py) against PyTorch."""
import math

import numpy as np
import pytest
import torch

import fusegrad as fg
from tests import helpers
from tests.helpers import check_op

RNG = np.random.default_rng(20261206)
FLOATS = ["float32", "float64"]
SHAPE = (4, 6)
NAN = math.nan


def floats(shape=SHAPE, dtype="float32"):
    return RNG.standard_normal(shape).astype(dtype)


def few_values(shape=SHAPE, dtype="float32"):
    """Values from a small set, so ties are certain."""
    return RNG.integers(-2, 3, size=shape).astype(dtype)


def with_nans(dtype="float32"):
    a = floats(SHAPE, dtype)
    a[0, 1] = a[0, 4] = a[2, 0] = a[3, 5] = NAN
    a[1, :] = NAN
    return a


# name -> (fusegrad fn, torch fn or None for the same)
ORDER_OPS = {
    "sort": (lambda x: x.sort(), lambda x: x.sort(stable=True)),
    "sort_dim0_descending": (lambda x: x.sort(0, descending=True), lambda x: x.sort(dim=0, descending=True,
                                                                                       stable=True)),
    "sort_function_stable": (lambda x: fg.sort(x, dim=1, stable=True), lambda x: torch.sort(x, dim=1, stable=True)),
    "argsort": (lambda x: x.argsort(1, descending=True), lambda x: x.argsort(dim=1, descending=True, stable=True)),
    "msort": (lambda x: fg.msort(x), lambda x: torch.msort(x)),
    "topk": (lambda x: x.topk(3), None),
    "topk_smallest_dim0": (lambda x: fg.topk(x, 2, dim=0, largest=False), lambda x: torch.topk(x, 2, 0, False)),
    "kthvalue": (lambda x: x.kthvalue(2, 1), None),
    "kthvalue_dim0_keepdim": (lambda x: fg.kthvalue(x, 3, 0, keepdim=True), lambda x: torch.kthvalue(x, 3, 0, True)),
    "median_dim": (lambda x: x.median(1), None),
    "median_dim0_keepdim": (lambda x: x.median(0, keepdim=True), None),
    "median_all": (lambda x: x.median(), None),
    "nanmedian_dim": (lambda x: fg.nanmedian(x, 1), lambda x: torch.nanmedian(x, 1)),
    "cummax": (lambda x: x.cummax(1), None),
    "cummin_dim0": (lambda x: fg.cummin(x, 0), lambda x: torch.cummin(x, 0)),
    "logcumsumexp": (lambda x: x.logcumsumexp(1), None),
    "logcumsumexp_dim0": (lambda x: fg.logcumsumexp(x, 0), lambda x: torch.logcumsumexp(x, 0)),
    "cumsum": (lambda x: fg.cumsum(x, 1), lambda x: torch.cumsum(x, 1)),
    "cumprod": (lambda x: fg.cumprod(x, 0), lambda x: torch.cumprod(x, 0)),
}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", list(ORDER_OPS))
def test_order_ops_forward_and_grad(name, dtype):
    fg_fn, torch_fn = ORDER_OPS[name]
    check_op([SHAPE], fg_fn, torch_fn, dtype=dtype, arrays=[floats(SHAPE, dtype)])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", ["sort", "sort_dim0_descending", "argsort", "cummax", "cummin_dim0", "mode",
                                  "median_all"])
def test_ties_forward_and_grad(name, dtype):
    """Ties keep input order in sorts; cummax/cummin point at the last holder; mode picks the smallest
    of the most frequent values and its last index. The gradient goes to the element chosen (median()
    without dim shares it among the elements equal to the median, as torch does)."""
    fg_fn, torch_fn = ORDER_OPS[name] if name != "mode" else (lambda x: x.mode(1), None)
    check_op([SHAPE], fg_fn, torch_fn, dtype=dtype, arrays=[few_values(SHAPE, dtype)])


NETWORK_OPS = ["sort", "sort_dim0_descending", "argsort", "topk", "topk_smallest_dim0", "kthvalue", "median_dim",
               "nanmedian_dim", "median_all"]


@pytest.fixture
def network(monkeypatch):
    """Rows longer than 4 take the bitonic network instead of the rank kernel (cheap to compile)."""
    monkeypatch.setattr(fg.ops.sorting, "RANK_MAX", 4)


@pytest.mark.parametrize("data", ["distinct", "ties", "nans"])
@pytest.mark.parametrize("name", NETWORK_OPS)
def test_bitonic_network(name, data, network):
    fg_fn, torch_fn = ORDER_OPS[name]
    arr = {"distinct": floats, "ties": few_values, "nans": lambda: with_nans()[[0, 2, 3]]}[data]()
    arbitrary = data == "ties" and not name.startswith(("sort", "argsort", "median_all"))
    if arbitrary:  # torch's topk, kthvalue and median pick among equal values arbitrarily
        fg_op, torch_op = fg_fn, torch_fn or fg_fn
        fg_fn, torch_fn = (lambda x: fg_op(x).values), (lambda x: torch_op(x).values)
    check_op([arr.shape], fg_fn, torch_fn, arrays=[arr], grad=data != "nans" and not arbitrary)


@pytest.mark.parametrize("dtype", ["int64", "uint8"])
def test_bitonic_network_integers(dtype, network):
    arr = RNG.integers(0, 4, size=SHAPE).astype(dtype)
    check_op([SHAPE], INT_OPS["sort"][0], INT_OPS["sort"][1], dtype=dtype, arrays=[arr])
    check_op([SHAPE], INT_OPS["sort_descending"][0], INT_OPS["sort_descending"][1], dtype=dtype, arrays=[arr])


def test_long_rows_sort_by_network():
    """A row longer than RANK_MAX (4096) sorts through the network: stable, NaN last."""
    a = few_values((2, 4100)) + RNG.integers(0, 50, size=(2, 4100)).astype("float32") / 7
    a[0, 17] = a[1, 4000] = NAN
    got, want = fg.tensor(a).sort(1), torch.tensor(a).sort(dim=1, stable=True)
    np.testing.assert_array_equal(got.values.numpy(), want.values.numpy())
    np.testing.assert_array_equal(got.indices.numpy(), want.indices.numpy())


def test_sort_is_three_kernels():
    """Ranks (one O(n^2) compare-sum), then values and indices by a one-hot select."""
    x = fg.tensor(floats()).realize()
    with fg.profile() as p:
        values, indices = x.sort(1)
        fg.realize(values, indices)
    assert len(p.kernels) == 3


def test_cumprod_gradient_with_zeros():
    a = floats((3, 6), "float64")
    a[0, 2] = 0.0
    a[1, 1] = a[1, 4] = 0.0
    a[2, 0] = 0.0
    check_op([a.shape], lambda x: x.cumprod(1), dtype="float64", arrays=[a])


@pytest.mark.parametrize("name", ["sort", "sort_dim0_descending", "topk", "median_dim", "nanmedian_dim", "cummax",
                                  "cummin_dim0", "median_all", "logcumsumexp"])
def test_nan_ordering(name):
    """NaN sorts as the largest value; median returns NaN (and the first NaN's index) when a NaN is
    present, nanmedian ignores them; running extremes propagate NaN."""
    fg_fn, torch_fn = ORDER_OPS[name]
    if name in ("topk", "nanmedian_dim"):  # torch's index among equal NaNs (the all-NaN row) is arbitrary
        fg_op, torch_op = fg_fn, torch_fn or fg_fn
        fg_fn, torch_fn = (lambda x: fg_op(x).values), (lambda x: torch_op(x).values)
    check_op([SHAPE], fg_fn, torch_fn, arrays=[with_nans()], grad=False)


INT_OPS = {
    "sort": (lambda x: x.sort(1), lambda x: x.sort(dim=1, stable=True)),
    "sort_descending": (lambda x: x.sort(0, True), lambda x: x.sort(dim=0, descending=True, stable=True)),
    "argsort": (lambda x: x.argsort(), lambda x: x.argsort(stable=True)),
    "topk_values": (lambda x: x.topk(2).values, lambda x: x.topk(2).values),
    "kthvalue_values": (lambda x: x.kthvalue(3).values, lambda x: x.kthvalue(3).values),
    "median_values": (lambda x: x.median(0).values, lambda x: x.median(0).values),
    "median_all": (lambda x: x.median(), None),
    "mode": (lambda x: x.mode(1), None),
    "cummax": (lambda x: x.cummax(1), None),
    "cummin": (lambda x: x.cummin(0), None),
}


@pytest.mark.parametrize("dtype", ["int32", "int64", "uint8"])
@pytest.mark.parametrize("name", list(INT_OPS))
def test_integer_order_ops(name, dtype):
    fg_fn, torch_fn = INT_OPS[name]
    arr = RNG.integers(0, 4, size=SHAPE).astype(dtype)
    check_op([SHAPE], fg_fn, torch_fn, dtype=dtype, arrays=[arr])


def test_bool_sort_and_0d():
    b = RNG.random(SHAPE) < 0.5
    v, i = fg.tensor(b).sort(1)
    tv, ti = torch.tensor(b).sort(dim=1, stable=True)
    np.testing.assert_array_equal(v.numpy(), tv.numpy())
    np.testing.assert_array_equal(i.numpy(), ti.numpy())
    assert v.dtype is fg.bool
    s = fg.tensor(2.5)
    assert s.sort().values.item() == 2.5 and s.sort().indices.item() == 0
    assert s.topk(1).values.shape == () and s.kthvalue(1).indices.item() == 0


def test_result_types():
    x = fg.tensor(floats())
    for result in (x.sort(), x.topk(2), x.kthvalue(1), x.median(1), x.mode(1), x.cummax(1), x.cummin(1)):
        values, indices = result
        assert values is result.values and indices is result.indices
        assert indices.dtype is fg.int64


def test_order_errors():
    x = fg.tensor(floats())
    with pytest.raises(fg.IndexOutOfRangeError):
        x.topk(7)
    with pytest.raises(fg.IndexOutOfRangeError):
        x.kthvalue(0)
    with pytest.raises(IndexError):
        x.sort(2)
    with pytest.raises(fg.DTypeError):
        fg.tensor([True, False]).topk(1)
    with pytest.raises(fg.DTypeError):
        fg.tensor([1, 2]).logcumsumexp(0)
    with pytest.raises(fg.IndexOutOfRangeError):
        fg.zeros(3, 0).median(1)


# ---- searching and counting --------------------------------------------------------------------

def test_searchsorted_and_bucketize():
    seq = np.sort(floats((7,)))
    seq2 = np.sort(floats((2, 7)), axis=1)
    vals = floats((2, 3))
    vals[0, 0], vals[1, 2] = seq[2], seq2[1, 4]  # exact hits tell left from right
    cases = [
        (lambda m, s, s2, v: m.searchsorted(s, v)),
        (lambda m, s, s2, v: m.searchsorted(s, v, right=True)),
        (lambda m, s, s2, v: m.searchsorted(s2, v, side="right", out_int32=True)),
        (lambda m, s, s2, v: m.searchsorted(s2, v)),
        (lambda m, s, s2, v: m.searchsorted(s, 0.25)),
        (lambda m, s, s2, v: m.bucketize(v, s)),
        (lambda m, s, s2, v: m.bucketize(v, s, right=True, out_int32=True)),
        (lambda m, s, s2, v: m.searchsorted(s, v, sorter=m.argsort(-s))),
    ]
    for case in cases[:-1]:
        got = case(fg, fg.tensor(seq), fg.tensor(seq2), fg.tensor(vals))
        want = case(torch, torch.tensor(seq), torch.tensor(seq2), torch.tensor(vals))
        assert str(want.dtype).endswith(got.dtype.name)
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    shuffled = seq[::-1].copy()
    got = fg.searchsorted(fg.tensor(shuffled), fg.tensor(vals), sorter=fg.tensor(shuffled).argsort())
    want = torch.searchsorted(torch.tensor(shuffled), torch.tensor(vals), sorter=torch.tensor(shuffled).argsort())
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    with pytest.raises(fg.ShapeError):
        fg.searchsorted(fg.tensor(seq2), fg.tensor(vals[:1]))
    with pytest.raises(ValueError):
        fg.searchsorted(fg.tensor(seq), fg.tensor(vals), right=True, side="left")


@pytest.mark.parametrize("dtype", FLOATS)
def test_histc(dtype):
    h = floats((500,), dtype)
    for kwargs in ({"bins": 7}, {"bins": 5, "min": -1, "max": 1}, {"bins": 3, "min": 0.5, "max": 0.5}):
        got, want = fg.histc(fg.tensor(h), **kwargs), torch.histc(torch.tensor(h), **kwargs)
        assert got.dtype.name == dtype
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    np.testing.assert_array_equal(fg.tensor([1.0, 1, 1]).histc(4).numpy(), torch.tensor([1.0, 1, 1]).histc(4))
    with pytest.raises(fg.DTypeError):
        fg.tensor([1, 2]).histc()


def test_bincount():
    a = RNG.integers(0, 5, size=20)
    w = floats((20,))
    np.testing.assert_array_equal(fg.bincount(fg.tensor(a)).numpy(), torch.bincount(torch.tensor(a)).numpy())
    got = fg.tensor(a).bincount(fg.tensor(w), minlength=8)
    want = torch.tensor(a).bincount(torch.tensor(w), minlength=8)
    assert got.dtype.name == str(want.dtype).removeprefix("torch.")
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError):
        fg.tensor([1, -1]).bincount()
    with pytest.raises(fg.DTypeError):
        fg.tensor([1.0]).bincount()


# ---- ops whose output shape depends on the data ------------------------------------------------------

def _same(got, want):
    got, want = (got, want) if isinstance(got, tuple) else ((got,), (want,))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype.name == str(w.dtype).removeprefix("torch."), (g.dtype, w.dtype)
        np.testing.assert_array_equal(g.numpy(), w.numpy())


DATA_SHAPED = {
    "unique": lambda m, x: m.unique(x),
    "unique_inverse_counts": lambda m, x: m.unique(x, return_inverse=True, return_counts=True),
    "unique_dim1": lambda m, x: m.unique(x, dim=1, return_inverse=True, return_counts=True),
    "unique_method": lambda m, x: x.unique(return_counts=True),
    "unique_consecutive": lambda m, x: m.unique_consecutive(x.reshape(-1), return_inverse=True, return_counts=True),
    "unique_consecutive_dim0": lambda m, x: m.unique_consecutive(x[[0, 0, 1, 1, 2]], dim=0, return_counts=True),
    "nonzero": lambda m, x: m.nonzero(x),
    "nonzero_tuple": lambda m, x: x.nonzero(as_tuple=True),
    "nonzero_0d": lambda m, x: m.nonzero(x[0, 1]),
    "argwhere": lambda m, x: m.argwhere(x),
    "masked_select": lambda m, x: m.masked_select(x, x > 0),
    "masked_select_broadcast": lambda m, x: x.masked_select(m.tensor([True, False, True, False, False, True])),
    "repeat_interleave_tensor": lambda m, x: m.repeat_interleave(m.tensor([2, 0, 1])),
}


@pytest.mark.parametrize("name", list(DATA_SHAPED))
def test_data_shaped_ops(name):
    a = RNG.integers(0, 3, size=(4, 6))
    a[1] = a[0]
    fn = DATA_SHAPED[name]
    _same(fn(fg, fg.tensor(a)), fn(torch, torch.tensor(a)))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", ["int_dim1", "int_flat", "tensor_dim0", "tensor_dim_neg1"])
def test_repeat_interleave(case, dtype):
    fns = {
        "int_dim1": lambda m, x: x.repeat_interleave(2, dim=1),
        "int_flat": lambda m, x: m.repeat_interleave(x, 3),
        "tensor_dim0": lambda m, x: x.repeat_interleave(m.tensor([1, 0, 3, 2]), dim=0),
        "tensor_dim_neg1": lambda m, x: x.repeat_interleave(m.tensor([1, 2, 0, 1, 1, 2]), dim=-1),
    }
    fn = fns[case]
    check_op([SHAPE], lambda x: fn(fg, x), lambda x: fn(torch, x), dtype=dtype, arrays=[floats(SHAPE, dtype)])


def test_repeat_interleave_errors():
    x = fg.tensor(floats())
    with pytest.raises(fg.ShapeError):
        x.repeat_interleave(fg.tensor([1, 2]), dim=0)
    with pytest.raises(ValueError):
        x.repeat_interleave(-1)


# ---- multinomial ------------------------------------------------------------------------------------

def test_multinomial_distribution():
    fg.manual_seed(1234)
    probs = fg.tensor([[0.1, 0.0, 0.6, 0.3], [1.0, 1.0, 1.0, 1.0]])
    draws = fg.multinomial(probs, 4000, replacement=True)
    assert draws.dtype is fg.int64 and draws.shape == (2, 4000)
    freq = np.stack([np.bincount(r, minlength=4) / 4000 for r in draws.numpy()])
    np.testing.assert_allclose(freq, [[0.1, 0.0, 0.6, 0.3], [0.25] * 4], atol=0.03)
    assert freq[0, 1] == 0  # a zero weight is never drawn
    # without replacement: distinct per row; the first draw follows the weights
    rows = fg.tensor([1.0, 0.0, 6.0, 3.0]).repeat(3000, 1).multinomial(3).numpy()
    assert all(len(set(r)) == 3 for r in rows) and not (rows == 1).any()
    np.testing.assert_allclose(np.bincount(rows[:, 0], minlength=4) / 3000, [0.1, 0.0, 0.6, 0.3], atol=0.03)
    # the second draw, given the first: P(2nd = 2 | 1st = 3) = 6 / 7
    second = rows[rows[:, 0] == 3, 1]
    assert abs((second == 2).mean() - 6 / 7) < 0.05
    one_d = fg.tensor([0.2, 0.8]).multinomial(5, True)
    assert one_d.shape == (5,)
    fg.manual_seed(7)
    a = fg.multinomial(probs, 5, True).numpy()
    fg.manual_seed(7)
    np.testing.assert_array_equal(fg.multinomial(probs, 5, True).numpy(), a)


def test_multinomial_errors():
    p = fg.tensor([0.5, 0.5, 0.0])
    with pytest.raises(fg.ShapeError):
        p.multinomial(4)  # more than the categories without replacement
    helpers.raises_at_call_or_read(ValueError, lambda: p.multinomial(3))  # two categories of non-zero weight
    helpers.raises_at_call_or_read(ValueError, lambda: fg.tensor([0.5, -0.1]).multinomial(1))
    helpers.raises_at_call_or_read(ValueError, lambda: fg.tensor([0.0, 0.0]).multinomial(1, True))
    with pytest.raises(fg.ShapeError):
        fg.ones(2, 2, 2).multinomial(1)
    with pytest.raises(fg.ShapeError):
        p.multinomial(0)
    with pytest.raises(fg.DTypeError):
        fg.tensor([1, 2]).multinomial(1)


# ---- diagonals, triangles and windows ------------------------------------------------------------------

MOVEMENT = {
    "diag_vector": lambda m, x: m.diag(x[0]),
    "diag_vector_offset": lambda m, x: m.diag(x[1], 2),
    "diag_vector_neg_offset": lambda m, x: x[2].diag(-3),
    "diag_matrix": lambda m, x: m.diag(x),
    "diag_matrix_offset": lambda m, x: x.diag(3),
    "diag_matrix_neg_offset": lambda m, x: m.diag(x, -2),
    "diag_embed": lambda m, x: m.diag_embed(x),
    "diag_embed_offset": lambda m, x: m.diag_embed(x, 1),
    "diag_embed_dims": lambda m, x: x.diag_embed(-2, 0, 2),
    "diag_embed_dims_reversed": lambda m, x: m.diag_embed(x, 1, -1, 0),
    "tril": lambda m, x: x.reshape(2, 3, 4).tril(),
    "tril_offsets": lambda m, x: x.reshape(2, 3, 4).tril(2) + x.reshape(2, 3, 4).tril(-1) * 3,
    "triu_offsets": lambda m, x: m.triu(x.reshape(2, 3, 4), 1) + m.triu(x.reshape(2, 3, 4), -2) * 3,
    "tril_far": lambda m, x: x.reshape(2, 3, 4).tril(-5) + x.reshape(2, 3, 4).triu(7),
    "unfold": lambda m, x: x.unfold(1, 3, 1),
    "unfold_step": lambda m, x: x.unfold(1, 2, 3),
    "unfold_dim0": lambda m, x: x.unfold(0, 2, 2),
    "unfold_batched": lambda m, x: x.reshape(2, 3, 4).unfold(-1, 3, 1),
}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", list(MOVEMENT))
def test_movement(name, dtype):
    fn = MOVEMENT[name]
    check_op([SHAPE], lambda x: fn(fg, x), lambda x: fn(torch, x), dtype=dtype, arrays=[floats(SHAPE, dtype)])


def test_movement_int_and_errors():
    a = RNG.integers(-5, 5, size=SHAPE)
    for fn in (MOVEMENT["diag_embed_offset"], MOVEMENT["tril_offsets"], MOVEMENT["unfold_step"]):
        _same(fn(fg, fg.tensor(a)), fn(torch, torch.tensor(a)))
    x = fg.tensor(floats())
    with pytest.raises(fg.ShapeError):
        x.unfold(1, 7, 1)
    with pytest.raises(fg.ShapeError):
        x.unfold(1, 2, 0)
    with pytest.raises(fg.ShapeError):
        fg.diag(x.reshape(2, 3, 4))
    with pytest.raises(fg.ShapeError):
        x.diag_embed(0, 1, 1)


def test_unfold_is_a_view():
    """unfold is movement ops all the way down to its source: no copy, no kernel of its own."""
    x = fg.tensor(floats())
    node = x.unfold(1, 3, 2)._node
    while node is not x._node:
        assert node.op.name in ("RESHAPE", "PERMUTE", "EXPAND", "PAD", "SHRINK", "FLIP"), node.op.name
        node = node.srcs[0]


# ---- einsum with ellipses -----------------------------------------------------------------------------

EINSUM = [
    ("...ij,...jk->...ik", [(2, 3, 4), (4, 5)]),
    ("...ij,...jk", [(2, 3, 4), (2, 4, 5)]),
    ("i...j,j...->...i", [(3, 2, 4), (4, 2)]),
    ("ij...,j...->i...", [(3, 4, 2), (4, 1)]),
    ("...,...->...", [(3, 1), (4,)]),
    ("b...,b...->b", [(2, 3, 4), (2, 3, 4)]),
    ("...ii->...i", [(2, 3, 3)]),
    ("...ii", [(2, 3, 3)]),
    ("i...->...", [(3, 4, 2)]),
    ("a...b,b...c->a...c", [(2, 3, 4), (4, 3, 5)]),
    ("...j,j...->", [(2, 3), (3, 2)]),
    ("i...,i...->...", [(3,), (3, 4)]),
    ("...i,...i->...", [(2, 1, 3), (4, 3)]),
    ("i...i->...", [(3, 2, 3)]),
    ("ii...->i...", [(3, 3, 2)]),
    ("i...,...j->...ij", [(3, 2), (2, 4)]),
    ("ij->...ji", [(2, 3)]),  # an output ellipsis with none in the inputs covers no dims
    ("ij,jk->ik...", [(2, 3), (3, 4)]),
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("equation,shapes", EINSUM, ids=[e for e, _ in EINSUM])
def test_einsum_ellipsis(equation, shapes, dtype):
    check_op(shapes, lambda *t: fg.einsum(equation, *t), lambda *t: torch.einsum(equation, *t), dtype=dtype,
             arrays=[floats(s, dtype) for s in shapes])


def test_einsum_ellipsis_errors():
    x = fg.tensor(floats((2, 3)))
    for equation in (".i", "i..j", "i...j...", "ij->ji->"):
        with pytest.raises(ValueError):
            fg.einsum(equation, x)
    with pytest.raises(fg.ShapeError):
        fg.einsum("...ijk", x)


def test_multinomial_takes_a_generator():
    weights = fg.tensor([[0.1, 0.6, 0.3], [0.5, 0.0, 0.5]])
    first = weights.multinomial(5, replacement=True, generator=fg.Generator().manual_seed(11))
    again = fg.multinomial(weights, 5, replacement=True, generator=fg.Generator().manual_seed(11))
    assert first.tolist() == again.tolist() and first.shape == (2, 5)
    assert all(v != 1 for v in first[1].tolist())  # a zero weight is never drawn
    fg.manual_seed(11)
    assert fg.multinomial(weights, 5, replacement=True).tolist() == first.tolist()  # the same stream as the global seed
