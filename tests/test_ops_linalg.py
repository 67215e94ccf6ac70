"""Matrix products and einsum against PyTorch: values, dtypes, gradients, errors, fusion."""
import numpy as np
import pytest
import torch

import fusegrad as fg
from fusegrad.ops import linalg
from tests.helpers import check_op, random_array

FLOATS = ["float32", "float64"]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shapes,fn", [
    ([(3, 4), (4, 5)], lambda a, b: a @ b),
    ([(4,), (4, 5)], lambda a, b: a @ b),
    ([(3, 4), (4,)], lambda a, b: a.matmul(b)),
    ([(4,), (4,)], lambda a, b: a @ b),
    ([(2, 3, 4), (4, 5)], lambda a, b: a @ b),
    ([(4,), (2, 4, 5)], lambda a, b: a @ b),
    ([(2, 1, 3, 4), (5, 4, 2)], lambda a, b: a @ b),  # broadcast batch dims
    ([(4, 3), (5, 4)], lambda a, b: a.T @ b.T),  # non-contiguous operands
    ([(0, 4), (4, 5)], lambda a, b: a @ b),
    ([(3, 0), (0, 5)], lambda a, b: a @ b),  # empty contraction: zeros
    ([(4,), (4,)], lambda a, b: a.dot(b)),
    ([(3, 4), (4, 5)], lambda a, b: a.mm(b)),
    ([(2, 3, 4), (2, 4, 5)], lambda a, b: a.bmm(b)),
    ([(3, 4), (4,)], lambda a, b: a.mv(b)),
    ([(3,), (4,)], lambda a, b: a.outer(b)),
])
def test_products_match_torch(shapes, fn, dtype):
    check_op(shapes, fn, dtype=dtype)


@pytest.mark.parametrize("dtype", ["int64", "int32"])
def test_integer_products_keep_their_dtype(dtype):
    check_op([(2, 3, 4), (4, 5)], lambda a, b: a @ b, dtype=dtype, low=-5, high=5)
    check_op([(4,), (4,)], lambda a, b: a.dot(b), dtype=dtype, low=-5, high=5)


def test_module_level_products():
    a, b, v = (random_array(s, "float64") for s in [(3, 4), (4, 5), (4,)])
    ta, tb, tv = fg.tensor(a), fg.tensor(b), fg.tensor(v)
    np.testing.assert_allclose(linalg.matmul(ta, tb).numpy(), a @ b, rtol=1e-12)
    np.testing.assert_allclose(linalg.mm(ta, tb).numpy(), a @ b, rtol=1e-12)
    np.testing.assert_allclose(linalg.bmm(ta[None], tb[None]).numpy(), (a @ b)[None], rtol=1e-12)
    np.testing.assert_allclose(linalg.mv(ta, tv).numpy(), a @ v, rtol=1e-12)
    np.testing.assert_allclose(linalg.dot(tv, tv).numpy(), v @ v, rtol=1e-12)
    np.testing.assert_allclose(linalg.outer(tv, tv).numpy(), np.outer(v, v), rtol=1e-12)
    np.testing.assert_allclose((a @ tb).numpy(), a @ b, rtol=1e-12)  # __rmatmul__ with a numpy operand


EINSUM_CASES = [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("ij,jk", [(3, 4), (4, 5)]),  # implicit output
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("i,j->ij", [(3,), (4,)]),
    ("ij->ji", [(3, 4)]),
    ("ij->", [(3, 4)]),
    ("ii->i", [(4, 4)]),  # diagonal
    ("ii", [(4, 4)]),  # trace
    ("iij->ji", [(3, 3, 2)]),
    ("...ij,...jk->...ik", [(2, 3, 4), (4, 5)]),  # broadcast ellipsis
    ("...i,...i", [(2, 3), (4, 1, 3)]),
    ("b...,b->...b", [(2, 3, 4), (2,)]),
    ("...ij->ij", [(5, 3, 4)]),  # ellipsis summed away
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
    ("Ba,ac", [(3, 4), (4, 5)]),  # implicit output: upper-case labels sort first
    ("ij,jk->ik", [(3, 1), (4, 5)]),  # size-1 labels broadcast like torch
    (" i j , j k -> i k ", [(3, 4), (4, 5)]),  # spaces ignored
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("equation,shapes", EINSUM_CASES)
def test_einsum_matches_torch(equation, shapes, dtype):
    check_op(shapes, lambda *t: linalg.einsum(equation, *t), lambda *t: torch.einsum(equation, *t), dtype=dtype)


def test_einsum_operand_list_and_integers():
    check_op([(3, 4), (4, 5)], lambda a, b: linalg.einsum("ij,jk->ki", [a, b]),
                   lambda a, b: torch.einsum("ij,jk->ki", [a, b]), dtype="int64", low=-5, high=5)


# ---- errors at build time ----------------------------------------------------------------------

@pytest.mark.parametrize("bad", [
    lambda: fg.zeros(3, 4) @ fg.zeros(5, 6),
    lambda: fg.zeros(4) @ fg.zeros(3),
    lambda: fg.zeros(2, 3, 4) @ fg.zeros(3, 4, 5),
    lambda: fg.zeros(3).dot(fg.zeros(4)),
    lambda: fg.zeros(3, 3).dot(fg.zeros(3, 3)),
    lambda: fg.zeros(3, 4).mm(fg.zeros(4)),
    lambda: fg.zeros(2, 3, 4).bmm(fg.zeros(3, 4, 5)),
    lambda: fg.zeros(3, 4).bmm(fg.zeros(4, 5)),
    lambda: fg.zeros(3).mv(fg.zeros(3)),
    lambda: fg.zeros(3, 1).outer(fg.zeros(3)),
])
def test_shape_errors_name_both_shapes(bad):
    with pytest.raises(fg.ShapeError, match=r"\(.*\).*\(.*\)"):
        bad()


def test_scalar_matmul_raises():
    with pytest.raises(fg.ShapeError, match=r"\(\)"):
        fg.tensor(2.0) @ fg.zeros(3)


@pytest.mark.parametrize("bad", [
    lambda: fg.zeros(3, 4) @ fg.zeros(4, 5, dtype=fg.float64),
    lambda: fg.zeros(3, dtype=fg.int32).dot(fg.zeros(3, dtype=fg.int64)),
    lambda: fg.zeros(3, 4, dtype=fg.bool) @ fg.zeros(4, 5, dtype=fg.bool),
    lambda: linalg.einsum("ij,jk", fg.zeros(3, 4), fg.zeros(4, 5, dtype=fg.float64)),
])
def test_dtype_errors(bad):
    with pytest.raises(fg.DTypeError):
        bad()


@pytest.mark.parametrize("equation,shapes,error", [
    ("ij,jk->ik", [(3, 4)], fg.Error),  # too few operands
    ("ij->ik", [(3, 4)], fg.Error),  # output label not in inputs
    ("ij->ii", [(3, 4)], fg.Error),  # repeated output label
    ("i1->i", [(3, 4)], fg.Error),
    ("i.j->i", [(3, 4)], fg.Error),
    ("......->", [(3, 4)], fg.Error),
    ("ijk->i", [(3, 4)], fg.ShapeError),  # wrong number of subscripts
    ("ij,jk->ik", [(3, 4), (5, 6)], fg.ShapeError),  # mismatched contraction
    ("ii->i", [(3, 4)], fg.ShapeError),  # non-square diagonal
])
def test_einsum_errors(equation, shapes, error):
    with pytest.raises(error):
        linalg.einsum(equation, *(fg.zeros(*s) for s in shapes))


# ---- fusion ------------------------------------------------------------------------------

def test_matmul_and_einsum_are_one_kernel():
    a, b = fg.tensor(random_array((8, 6))), fg.tensor(random_array((6, 5)))
    with fg.profile() as p:
        out = (a @ b).realize()
    assert len(p.kernels) == 1
    np.testing.assert_allclose(out.numpy(), a.numpy() @ b.numpy(), rtol=1e-5, atol=1e-5)
    with fg.profile() as p:
        out = linalg.einsum("ij,kj->ik", a, b.T).realize()
    assert len(p.kernels) == 1
    np.testing.assert_allclose(out.numpy(), a.numpy() @ b.numpy(), rtol=1e-5, atol=1e-5)


HALF_EPS = {"bfloat16": 2.0 ** -7, "float16": 2.0 ** -10}  # 1 + eps: the next value after 1


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("case", ["matmul", "dot", "einsum", "conv1d"])
def test_half_products_are_exact_and_summed_in_float32(case, dtype):
    """(1+e)*(1+e) - (1+e) = e(1+e): exact when products and sums are float32 (torch's half products,
    on the GEMM routine and the plain loops alike); e alone when each product rounds to the half type."""
    e = HALF_EPS[dtype]
    pair = np.array([1 + e, -1.0])
    if case == "conv1d":  # windows [1+e, -1] and [-1, 1+e] against a kernel of (1+e, 1+e)
        x = fg.tensor(np.tile(pair, 64)[None, None], dtype=fg.float32).to(dtype)
        w = fg.full((1, 1, 2), 1 + e).to(dtype)
        got = fg.nn.functional.conv1d(x, w)
    else:
        a = np.tile(pair, (64, 64)) if case != "dot" else pair
        b = np.full((128, 64) if case != "dot" else 2, 1 + e)
        x, y = (fg.tensor(v, dtype=fg.float32).to(dtype) for v in (a, b))
        got = {"matmul": lambda: x @ y, "dot": lambda: x.dot(y), "einsum": lambda: fg.einsum("ik,kj->ij", x, y)}[case]()
    terms = {"matmul": 64, "einsum": 64, "dot": 1, "conv1d": 1}[case]
    assert got.dtype == getattr(fg, dtype)
    np.testing.assert_array_equal(got.float().numpy(), np.full(got.shape, terms * e * (1 + e), np.float32))
