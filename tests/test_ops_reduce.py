"""Composite reductions (fusegrad/ops/reduce.py) against PyTorch: values, indices, dtypes, gradients."""
import math

import numpy as np
import pytest
import torch

import fusegrad as fg
from tests.helpers import RNG, finite_difference_check, check_op

SHAPE = (4, 5)  # one shape for most tests: every new shape costs a compile
INF = math.inf

# name -> fn applied to both frameworks (torch spells these ops the same way)
FLOAT_REDUCE = {
    "max": lambda x: x.max(),
    "min": lambda x: x.min(),
    "max_dim": lambda x: x.max(1),
    "max_dim0_keepdim": lambda x: x.max(0, keepdim=True),
    "min_dim": lambda x: x.min(dim=-1),
    "argmax": lambda x: x.argmax(),
    "argmax_dim": lambda x: x.argmax(1),
    "argmin_keepdim": lambda x: x.argmin(0, keepdim=True),
    "argmax_all_keepdim": lambda x: x.argmax(keepdim=True),
    "var": lambda x: x.var(),
    "var_dim": lambda x: x.var(1),
    "var_keepdim_correction0": lambda x: x.var(0, keepdim=True, correction=0),
    "var_unbiased_false": lambda x: x.var(1, False),
    "std": lambda x: x.std(),
    "std_dims_correction2": lambda x: x.std((0, 1), correction=2),
    "logsumexp": lambda x: x.logsumexp(1),
    "logsumexp_dims_keepdim": lambda x: x.logsumexp((0, 1), keepdim=True),
    "softmax": lambda x: x.softmax(1),
    "softmax_dim0": lambda x: x.softmax(0),
    "log_softmax": lambda x: x.log_softmax(-1),
    "log_softmax_dim0": lambda x: x.log_softmax(0),
    "cumsum": lambda x: x.cumsum(1),
    "cumsum_dim0": lambda x: x.cumsum(dim=0),
    "cumprod": lambda x: x.cumprod(1),
    "norm": lambda x: x.norm(),
    "norm_dim": lambda x: x.norm(dim=1),
    "norm_1": lambda x: x.norm(1, 0),
    "norm_inf": lambda x: x.norm(INF, 1),
    "norm_neg_inf_keepdim": lambda x: x.norm(-INF, 1, keepdim=True),
    "norm_3": lambda x: x.norm(3, 1),
    "norm_0": lambda x: x.norm(0, 1),
}

# int/bool results: no gradient to compare
NO_GRAD = {"argmax", "argmax_dim", "argmin_keepdim", "argmax_all_keepdim", "any", "all", "count_nonzero"}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(FLOAT_REDUCE))
def test_reduce(name, dtype):
    check_op([SHAPE], FLOAT_REDUCE[name], dtype=dtype, grad=name not in NO_GRAD)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", ["max_dim", "argmin_keepdim", "var_dim", "logsumexp", "softmax", "log_softmax",
                                  "cumsum", "norm_dim"])
def test_reduce_half_precision(name, dtype):
    # the arg-reductions pick among values that rounding may have tied: compare on distinct values
    arr = (RNG.permutation(20).reshape(SHAPE) / 8 - 1).astype("float32" if dtype == "bfloat16" else dtype)
    check_op([], FLOAT_REDUCE[name], dtype=dtype, arrays=[arr], grad=name not in NO_GRAD)


INT_REDUCE = {
    "max": lambda x: x.max(),
    "max_dim": lambda x: x.max(1),
    "min_dim_keepdim": lambda x: x.min(0, keepdim=True),
    "argmax": lambda x: x.argmax(),
    "argmin_dim": lambda x: x.argmin(1),
    "cumsum": lambda x: x.cumsum(1),
    "cumprod": lambda x: x.cumprod(0),
    "cumsum_dtype": lambda x: x.cumsum(1, dtype=torch.float64),  # fusegrad accepts torch dtypes
    "any": lambda x: x.any(1),
    "all": lambda x: x.all(),
    "any_keepdim": lambda x: x.any(0, keepdim=True),
    "count_nonzero": lambda x: x.count_nonzero(1),
    "logsumexp": lambda x: x.logsumexp(1),
}


@pytest.mark.parametrize("dtype", ["int32", "uint8", "bool"])
@pytest.mark.parametrize("name", list(INT_REDUCE))
def test_reduce_integer_and_bool(name, dtype):
    if dtype == "bool" and name.startswith("arg"):
        with pytest.raises(fg.DTypeError, match="bool"):
            INT_REDUCE[name](fg.tensor(RNG.random(SHAPE) < 0.5))
        return
    # few distinct values: ties, where the first index must win
    check_op([SHAPE], INT_REDUCE[name], dtype=dtype, low=-3, high=4, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "int64"])
@pytest.mark.parametrize("fn", [lambda x: x.any(), lambda x: x.all(1), lambda x: x.count_nonzero(),
                                lambda x: x.any((0, 1), keepdim=True)])
def test_truth_reductions(fn, dtype):
    arr = RNG.integers(-1, 2, size=SHAPE).astype(dtype)
    arr[0] = 1  # one row with no zeros, so all() is True somewhere
    check_op([], fn, dtype=dtype, arrays=[arr], grad=False)
    with np.errstate(invalid="ignore"):
        special = np.array([np.nan, np.inf, -0.0, 0.0]).astype(dtype) if dtype == "float32" else arr
    check_op([], fn, dtype=dtype, arrays=[special.reshape(-1, special.shape[-1])], grad=False)


def test_var_mean_and_std_mean():
    # torch has these as functions only
    check_op([SHAPE], lambda x: x.var_mean(1), lambda x: torch.var_mean(x, 1))
    check_op([SHAPE], lambda x: x.std_mean(0, keepdim=True, correction=0),
                   lambda x: torch.std_mean(x, 0, keepdim=True, correction=0))


def test_max_min_return_values_and_indices():
    x = fg.tensor([[1.0, 3.0, 3.0], [-1.0, -5.0, -5.0]])
    out = x.max(1)
    values, indices = out
    assert isinstance(out, tuple) and out.values is values and out.indices is indices
    assert values.tolist() == [3.0, -1.0] and indices.tolist() == [1, 0]
    low = x.min(dim=1, keepdim=True)
    assert low.values.shape == (2, 1) and low.indices.tolist() == [[0], [1]]
    assert x.max(fg.tensor([2.0, 2.0, 2.0])).tolist() == [[2.0, 3.0, 3.0], [2.0, 2.0, 2.0]]


def test_ties_take_the_first_index_and_route_the_gradient_like_torch():
    # max(dim) sends the whole gradient to the chosen index; max() and amax split it among ties
    arr = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [-INF, -INF, -INF, -INF]])
    for fn in (lambda x: x.max(1), lambda x: x.min(0), lambda x: x.max()):
        check_op([], fn, dtype="float64", arrays=[arr[:2]])
    for fn in (lambda x: x.argmax(1), lambda x: x.argmin(1), lambda x: x.argmax(0), lambda x: x.max(1)):
        check_op([], fn, dtype="float64", arrays=[arr], grad=False)


def test_nan_and_inf_are_extremes_like_torch():
    arr = np.array([[1.0, np.nan, 3.0, np.nan], [-INF, 2.0, INF, INF], [-INF, -INF, -1.0, -INF]], dtype="float32")
    for fn in (lambda x: x.max(1), lambda x: x.min(1), lambda x: x.argmax(1), lambda x: x.argmin(1),
               lambda x: x.argmax(), lambda x: x.max(), lambda x: x.min(0), lambda x: x.logsumexp(1),
               lambda x: x.softmax(1), lambda x: x.cumsum(1), lambda x: x.norm(dim=1), lambda x: x.norm(INF, 1)):
        check_op([], fn, arrays=[arr], grad=False)


EXTREME = np.array([[-1e4, 1e4, 0.0, 5.0], [1e4, 1e4 - 1, -3.0, 2.0], [-1e4, -1e4 + 2, -1e4, -1e4 - 1]])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("fn", [lambda x: x.softmax(1), lambda x: x.log_softmax(1), lambda x: x.logsumexp(1),
                                lambda x: x.softmax(0), lambda x: x.logsumexp(0, keepdim=True)])
def test_softmax_family_with_extreme_values(fn, dtype):
    # torch's float32 logsumexp gradient goes through its rounded result, whose ulp at 1e4 is 1e-3
    check_op([], fn, dtype=dtype, arrays=[EXTREME.astype(dtype)], grad_atol=2e-3 if dtype == "float32" else None)


def test_logsumexp_of_infinite_rows():
    arr = np.array([[-INF, -INF, -INF], [INF, 1.0, -INF], [-INF, 0.0, 1.0]], dtype="float64")
    check_op([], lambda x: x.logsumexp(1), dtype="float64", arrays=[arr], grad=False)
    check_op([], lambda x: x.logsumexp(1), dtype="float64", arrays=[arr[2:]])


@pytest.mark.parametrize("fn,grad", [
    (lambda x: x.logsumexp(1), True), (lambda x: x.softmax(1), True), (lambda x: x.log_softmax(0), True),
    (lambda x: x.cumsum(0), True), (lambda x: x.cumprod(1), True), (lambda x: x.var(1), True),
    (lambda x: x.norm(dim=1), True), (lambda x: x.max(1), True), (lambda x: x.argmin(1), False),
])
@pytest.mark.filterwarnings("ignore:.*degrees of freedom")
def test_empty_tensors(fn, grad):
    check_op([(0, 5)], fn, grad=grad)


@pytest.mark.filterwarnings("ignore:.*degrees of freedom")
def test_empty_reductions_give_torch_identities():
    empty = np.zeros((3, 0), dtype="float32")
    for fn in (lambda x: x.logsumexp(1), lambda x: x.any(1), lambda x: x.all(1), lambda x: x.norm(dim=1),
               lambda x: x.var(1), lambda x: x.count_nonzero(1), lambda x: x.cumsum(1), lambda x: x.softmax(1)):
        check_op([], fn, arrays=[empty], grad=False)
    with pytest.raises(IndexError, match="zero-size"):
        fg.tensor(empty).max(1)
    with pytest.raises(IndexError, match="zero-size"):
        fg.tensor(empty).argmin()


@pytest.mark.parametrize("fn,grad", [
    (lambda x: x.max(0), True), (lambda x: x.argmax(), False), (lambda x: x.argmin(0), False),
    (lambda x: x.cumsum(0), True), (lambda x: x.cumprod(-1), True), (lambda x: x.softmax(0), True),
    (lambda x: x.log_softmax(-1), True), (lambda x: x.logsumexp(0), True), (lambda x: x.var(), True),
    (lambda x: x.norm(), True), (lambda x: x.any(), False),
])
@pytest.mark.filterwarnings("ignore:.*degrees of freedom")
def test_zero_dim_tensors(fn, grad):
    check_op([()], fn, grad=grad)


@pytest.mark.parametrize("fn,grad", [
    (lambda x: x.T.softmax(1), True), (lambda x: x.T.cumsum(1), True), (lambda x: x.T.max(1), True),
    (lambda x: x.T.var(0), True), (lambda x: x.flip(0).logsumexp(1), True), (lambda x: x.T.argmin(0), False),
])
def test_non_contiguous_inputs(fn, grad):
    check_op([(5, 4)], fn, grad=grad)


def test_broadcast_expression_inputs():
    check_op([SHAPE, (5,)], lambda a, b: (a * b).softmax(1))
    check_op([SHAPE, (4, 1)], lambda a, b: (a + b).logsumexp(0))
    check_op([SHAPE, (5,)], lambda a, b: (a - b).max(1))


def test_norm_gradient_at_zero_is_zero_like_torch():
    zeros = np.zeros(SHAPE, dtype="float64")
    zeros[0] = RNG.uniform(-1, 1, size=5)
    for fn in (lambda x: x.norm(dim=1), lambda x: x.norm(1, 1), lambda x: x.norm(3, 1), lambda x: x.norm(INF, 1)):
        check_op([], fn, dtype="float64", arrays=[zeros])


def test_cumulative_and_norm_keywords():
    check_op([SHAPE], lambda x: x.cumprod(dim=-1, dtype=torch.float64))
    check_op([SHAPE], lambda x: x.norm(p="fro", dim=(0, 1), keepdim=True))
    check_op([SHAPE], lambda x: x.softmax(1, dtype=torch.float64))
    check_op([SHAPE], lambda x: x.var(True))
    check_op([SHAPE], lambda x: x.std(1, True, True))


def test_argument_errors():
    x = fg.tensor([[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(fg.DTypeError, match="int64"):
        fg.tensor([1, 2]).softmax(0)
    with pytest.raises(fg.DTypeError, match="int64"):
        fg.tensor([1, 2]).var()
    with pytest.raises(fg.DTypeError, match="int64"):
        fg.tensor([1, 2]).norm()
    with pytest.raises(ValueError, match="nuc"):
        x.norm("nuc")
    with pytest.raises(ValueError, match="correction"):
        x.var(1, unbiased=True, correction=0)
    with pytest.raises(TypeError, match="int"):
        x.max((0, 1))
    with pytest.raises(IndexError):
        x.argmax(2)


def test_second_order_gradients_match_finite_differences():
    x = RNG.uniform(-2, 2, size=(3, 4))
    for fn in (lambda t: t.softmax(1) * t, lambda t: t.log_softmax(0), lambda t: t.logsumexp(1), lambda t: t.var(1),
               lambda t: t.norm(dim=0), lambda t: t.cumsum(1) * t, lambda t: t.max(1).values * t.std()):
        weights = fg.tensor(RNG.uniform(-1, 1, size=fn(fg.tensor(x)).shape))
        first = fg.grad(lambda t: (fn(t) * weights).sum())
        finite_difference_check(lambda t: first(t) * t, x, tol=1e-5)


def _kernels(fn, *inputs):
    for t in inputs:
        t.realize()
    with fg.profile() as p:
        out = fn()
        fg.realize(*(out if isinstance(out, tuple) else (out,)))
    return len(p.kernels)


def test_kernel_counts():
    a, b, c = (fg.tensor(RNG.standard_normal((64, 32)).astype("float32")) for _ in range(3))
    assert _kernels(lambda: ((a * b + c).relu()).sum(1), a, b, c) == 1
    assert _kernels(lambda: a.softmax(-1), a) <= 3
    assert _kernels(lambda: (a * b).log_softmax(1), a, b) <= 3
    assert _kernels(lambda: a.logsumexp(1), a) <= 2
    assert _kernels(lambda: a.cumsum(1), a) == 1
    assert _kernels(lambda: a.var(0), a) <= 2
    assert _kernels(lambda: a.argmax(1), a) <= 2
    assert _kernels(lambda: a.max(1), a) <= 2
    assert _kernels(lambda: (a - b).norm(dim=1), a, b) == 1


@pytest.mark.parametrize("dtype", ["float64", "float32", "int64"])
def test_pairwise_equal_counts(dtype):
    """For each element, how many elements of its row equal it: a sum over a compare of two reads of
    one row, accumulated in the output (the kernel `mode` builds). Rows of 6 against a vector width of
    8 doubles is the case GCC 12 vectorized wrongly 512 bits wide."""
    a = np.array([[1, 2, -2, 2, 0, 0], [1, -1, 2, -2, -1, -1], [0, 0, -2, -2, -2, -2], [-2, 2, -2, 1, 1, -1]],
                 dtype=dtype)
    c = fg.tensor(a)
    got = (c.unsqueeze(-1) == c.unsqueeze(-2)).sum(-1).numpy()
    np.testing.assert_array_equal(got, (a[:, :, None] == a[:, None, :]).sum(-1))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_a_nan_in_a_few_terms_max_is_the_result(dtype):
    """Maxima over a few terms (2x2 pooling windows, rows of 3) are selects with a NaN flag on the side:
    a NaN anywhere in the terms, first or last, is the result, as torch's max propagates it."""
    a = np.random.default_rng(3).standard_normal((2, 3, 6, 6)).astype(np.float32)
    a[0, 0, 0, 0], a[0, 0, 1, 3], a[1, 2, 3, 3], a[0, 1, 2, 2] = np.nan, np.nan, np.nan, np.inf
    x, t = fg.tensor(a).to(getattr(fg, dtype)), torch.tensor(a).to(getattr(torch, dtype))
    pairs = [(fg.nn.functional.max_pool2d(x, 2), torch.nn.functional.max_pool2d(t, 2)),
             (x.reshape(2, 3, 12, 3).amax(-1), t.reshape(2, 3, 12, 3).amax(-1))]
    for got, want in pairs:
        np.testing.assert_array_equal(got.float().numpy(), want.float().numpy())
