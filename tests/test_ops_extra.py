"""More torch functions (ops/extra.py, ops/extra_math.py) against torch: introspection, splitting and stacking,
products with an added term, quantiles and covariance, and the special functions erfc, erfinv, lgamma, digamma."""
import numpy as np
import pytest
import torch

import fusegrad as fg
from tests.helpers import check_op

FLOATS = ["float32", "float64"]


# ---- introspection ------------------------------------------------------------------------------

def test_introspection_matches_a_contiguous_torch_tensor():
    a = np.zeros((2, 3, 4), np.float32)
    x, t = fg.tensor(a, device="cpu"), torch.tensor(a)
    assert x.stride() == t.stride() and x.stride(1) == t.stride(1) and x.stride(-1) == t.stride(-1)
    assert fg.zeros(2, 0, 3).stride() == torch.zeros(2, 0, 3).stride()
    assert fg.tensor(1.0).stride() == ()
    assert x.is_contiguous() and x.storage_offset() == 0
    assert x.nelement() == 24 and x.ndimension() == 3
    assert x.get_device() == -1 and not x.is_complex() and not x.is_inference()
    for name in ("byte", "char", "short"):
        assert getattr(x, name)().dtype.name == str(getattr(t, name)().dtype).removeprefix("torch.")
    assert x.is_set_to(x.detach()) and not x.is_set_to(x.clone()) and not x.is_set_to(x.reshape(6, 4))
    with pytest.raises(IndexError):
        fg.tensor(1.0).stride(0)
    with pytest.raises(IndexError):
        x.stride(3)


def test_data_ptr_is_the_buffer_address():
    x = fg.tensor([1.0, 2.0, 3.0], device="cpu")  # OpenCL buffers have no address (NotImplementedError)
    assert x.data_ptr() == x.data_ptr() != 0
    assert fg.zeros(0, device="cpu").data_ptr() == 0
    y = (x * 2).contiguous()
    assert y.data_ptr() not in (0, x.data_ptr())


# ---- shapes ----------------------------------------------------------------------------------------

def test_broadcast_and_atleast():
    assert fg.broadcast_shapes((2, 1), (3,), 1) == tuple(torch.broadcast_shapes((2, 1), (3,), 1))
    with pytest.raises(RuntimeError):
        fg.broadcast_shapes((2,), (3,))
    a, b = fg.broadcast_tensors(fg.tensor([[1.0], [2.0]]), fg.tensor([1, 2, 3]))
    assert a.shape == b.shape == (2, 3) and b.dtype is fg.int64
    with pytest.raises(fg.ShapeError):
        fg.broadcast_tensors(fg.zeros(2), fg.zeros(3))
    for n, shape in ((0, ()), (1, (5,)), (2, (2, 5)), (3, (2, 3, 4))):
        arr = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
        for name in ("atleast_1d", "atleast_2d", "atleast_3d"):
            got, ref = getattr(fg, name)(fg.tensor(arr)), getattr(torch, name)(torch.tensor(arr))
            assert got.shape == ref.shape, (name, n)
            np.testing.assert_array_equal(got.numpy(), ref.numpy())
    pair = fg.atleast_2d(fg.tensor(1.0), fg.tensor([1.0, 2.0]))
    assert isinstance(pair, tuple) and [p.shape for p in pair] == [(1, 1), (1, 2)]


@pytest.mark.parametrize("dtype", FLOATS)
def test_stacking(dtype):
    check_op([(3,), (3, 2), (3, 1)], lambda a, b, c: fg.column_stack([a, b, c]) if isinstance(a, fg.Tensor)
             else torch.column_stack([a, b, c]), dtype=dtype)
    check_op([(3,), (2, 3)], lambda a, b: fg.row_stack([a, b]) if isinstance(a, fg.Tensor)
             else torch.vstack([a, b]), dtype=dtype)
    check_op([(2, 3), (2, 3, 2), (2, 3)], lambda a, b, c: fg.dstack([a, b, c]) if isinstance(a, fg.Tensor)
             else torch.dstack([a, b, c]), dtype=dtype)
    check_op([(2, 3), (2,), ()], lambda a, b, c: fg.block_diag(a, b, c) if isinstance(a, fg.Tensor)
             else torch.block_diag(a, b, c), dtype=dtype)
    check_op([(3,), (2,)], lambda a, b: fg.cartesian_prod(a, b) if isinstance(a, fg.Tensor)
             else torch.cartesian_prod(a, b), dtype=dtype)


def test_stacking_errors_and_dtypes():
    mixed = fg.block_diag(fg.tensor([[1, 2]]), fg.tensor([0.5]))
    assert mixed.dtype is fg.float32 and mixed.shape == (2, 3)
    with pytest.raises(fg.ShapeError):
        fg.block_diag(fg.zeros(1, 1, 1))
    with pytest.raises(fg.ShapeError):
        fg.cartesian_prod(fg.zeros(2, 2))
    with pytest.raises(RuntimeError):
        fg.cartesian_prod(fg.zeros(2), fg.zeros(2, dtype=fg.int64))


@pytest.mark.parametrize("r,repl", [(2, False), (3, False), (2, True), (5, False)], ids=["r2", "r3", "r2-repl", "r5"])
def test_combinations(r, repl):
    check_op([(4,)], lambda a: fg.combinations(a, r, repl) if isinstance(a, fg.Tensor)
             else torch.combinations(a, r, repl), dtype="float64")
    assert fg.combinations(fg.zeros(3), 0).shape == torch.combinations(torch.zeros(3), 0).shape


@pytest.mark.parametrize("offset", [-1, 0, 2])
def test_tri_indices(offset):
    for row, col in ((3, 4), (4, 2), (0, 3)):
        np.testing.assert_array_equal(fg.tril_indices(row, col, offset).numpy(),
                                      torch.tril_indices(row, col, offset).numpy())
        np.testing.assert_array_equal(fg.triu_indices(row, col, offset).numpy(),
                                      torch.triu_indices(row, col, offset).numpy())
    assert fg.tril_indices(3, 3, dtype=fg.int32).dtype is fg.int32


@pytest.mark.parametrize("spec", [3, 4, [1, 4], [-2, 10], [3, 1]], ids=["3", "4", "idx", "clip", "reversed"])
def test_tensor_split(spec):
    arr = np.arange(35, dtype=np.float64).reshape(5, 7)
    for dim in (0, 1):
        got = fg.tensor(arr).tensor_split(spec, dim)
        ref = torch.tensor(arr).tensor_split(spec, dim)
        assert len(got) == len(ref)
        for g, r in zip(got, ref):
            np.testing.assert_array_equal(g.numpy(), r.numpy())
    check_op([(5, 7)], lambda a: a.tensor_split(spec, 1)[0] * 2, dtype="float64")


def test_hsplit_vsplit_dsplit():
    arr = np.arange(48, dtype=np.float32).reshape(2, 4, 6)
    for name, spec in (("hsplit", 2), ("vsplit", [1]), ("dsplit", 3), ("hsplit", [1, 3])):
        got, ref = getattr(fg, name)(fg.tensor(arr), spec), getattr(torch, name)(torch.tensor(arr), spec)
        assert [g.shape for g in got] == [tuple(r.shape) for r in ref]
        np.testing.assert_array_equal(got[-1].numpy(), ref[-1].numpy())
    assert [p.shape for p in fg.tensor(np.arange(6.0)).hsplit(3)] == [(2,)] * 3
    with pytest.raises(RuntimeError):
        fg.tensor(arr).hsplit(3)
    with pytest.raises(RuntimeError):
        fg.zeros(4).vsplit(2)
    with pytest.raises(RuntimeError):
        fg.zeros(4, 4).dsplit(2)


@pytest.mark.parametrize("k", [1, 2, 3, -1, 4])
def test_rot90(k):
    check_op([(2, 3, 4)], lambda a: a.rot90(k, [0, 2]), dtype="float64")
    check_op([(3, 4)], lambda a: a.rot90(k) * 1)


def test_rot90_errors_and_ravel_diagflat():
    with pytest.raises(RuntimeError):
        fg.zeros(3).rot90()
    with pytest.raises(RuntimeError):
        fg.zeros(3, 3).rot90(1, [0, 0])
    check_op([(2, 3)], lambda a: a.ravel(), dtype="float64")
    check_op([(2, 2)], lambda a: a.diagflat(1), dtype="float64")
    check_op([(3,)], lambda a: fg.diagflat(a, -1) if isinstance(a, fg.Tensor) else torch.diagflat(a, -1))


@pytest.mark.parametrize("dtype", FLOATS + ["int32", "int64"])
def test_diff(dtype):
    check_op([(3, 5)], lambda a: a.diff(), dtype=dtype)
    check_op([(3, 5), (3, 1), (3, 2)], lambda a, p, q: a.diff(2, 1, prepend=p, append=q), dtype=dtype)
    check_op([(3, 5), (2, 5)], lambda a, p: fg.diff(a, 1, 0, prepend=p) if isinstance(a, fg.Tensor)
             else torch.diff(a, 1, 0, prepend=p), dtype=dtype)


def test_diff_bool_and_errors():
    arr = np.array([True, False, False, True])
    np.testing.assert_array_equal(fg.tensor(arr).diff().numpy(), torch.tensor(arr).diff().numpy())
    with pytest.raises(RuntimeError):
        fg.tensor(1.0).diff()
    with pytest.raises(RuntimeError):
        fg.zeros(3).diff(prepend=fg.tensor(0.0))
    with pytest.raises(TypeError):
        fg.zeros(3).diff(append=1.0)


# ---- products -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", FLOATS)
def test_products(dtype):
    check_op([(3, 4)], lambda a: a.trace(), dtype=dtype)
    check_op([(2, 3), (3, 2)], lambda a, b: a.kron(b), dtype=dtype)
    check_op([(2,), (2, 2, 3)], lambda a, b: a.kron(b), dtype=dtype)
    check_op([(2, 3), (4, 3)], lambda a, b: a.inner(b), dtype=dtype)
    check_op([(), (4, 3)], lambda a, b: fg.inner(a, b) if isinstance(a, fg.Tensor) else torch.inner(a, b),
             dtype=dtype)
    check_op([(4,), (4,)], lambda a, b: a.vdot(b), dtype=dtype)
    check_op([(2, 3, 4), (4, 3, 5)], lambda a, b: fg.tensordot(a, b, ([1, 2], [1, 0])) if isinstance(a, fg.Tensor)
             else torch.tensordot(a, b, ([1, 2], [1, 0])), dtype=dtype)
    check_op([(2, 3, 4), (3, 4, 2)], lambda a, b: fg.tensordot(a, b) if isinstance(a, fg.Tensor)
             else torch.tensordot(a, b), dtype=dtype)


@pytest.mark.parametrize("dtype", FLOATS)
def test_add_products(dtype):
    check_op([(3,), (2, 4), (4, 3)], lambda c, a, b: c.addmm(a, b), dtype=dtype)
    check_op([(2, 3), (2, 4), (4, 3)], lambda c, a, b: c.addmm(a, b, beta=0.5, alpha=-2.0), dtype=dtype)
    check_op([(2,), (2, 4), (4,)], lambda c, a, b: c.addmv(a, b, alpha=3.0), dtype=dtype)
    check_op([(2, 3), (2,), (3,)], lambda c, a, b: c.addr(a, b, beta=2.0), dtype=dtype)
    check_op([(2, 3, 2), (2, 3, 4), (2, 4, 2)], lambda c, a, b: c.baddbmm(a, b, beta=0.5), dtype=dtype)
    check_op([(3, 2), (2, 3, 4), (2, 4, 2)], lambda c, a, b: c.addbmm(a, b, alpha=0.5), dtype=dtype)
    check_op([(2, 3), (2, 4), (4, 3)], lambda c, a, b: fg.addmm(c, a, b) if isinstance(c, fg.Tensor)
             else torch.addmm(c, a, b), dtype=dtype)


def test_add_products_in_place():
    arrs = [np.random.default_rng(7).normal(size=s) for s in ((2, 3), (2, 4), (4, 3))]
    x, t = fg.tensor(arrs[0]), torch.tensor(arrs[0])
    assert x.addmm_(fg.tensor(arrs[1]), fg.tensor(arrs[2]), alpha=2.0) is x
    t.addmm_(torch.tensor(arrs[1]), torch.tensor(arrs[2]), alpha=2.0)
    np.testing.assert_allclose(x.numpy(), t.numpy(), rtol=1e-12)
    check_op([(3, 2), (3,), (2,)], lambda c, a, b: (c * 1).addr_(a, b, beta=0.5), dtype="float64")
    check_op([(3,)], lambda a: (a * 1).lgamma_(), dtype="float64", low=0.2, high=4.0)


def test_add_products_ints_beta_zero_and_errors():
    check_op([(2, 3), (2, 4), (4, 3)], lambda c, a, b: c.addmm(a, b, beta=2, alpha=3), dtype="int64")
    nan = fg.full((2, 2), float("nan"))
    out = nan.addmm(fg.eye(2), fg.eye(2), beta=0)
    np.testing.assert_array_equal(out.numpy(), np.eye(2))
    with pytest.raises(RuntimeError):
        fg.zeros(3, 3).addmm(fg.zeros(2, 4), fg.zeros(4, 3))
    with pytest.raises(RuntimeError):
        fg.zeros(2, 3).addmm(fg.zeros(2, 4), fg.zeros(5, 3))
    with pytest.raises(TypeError):
        fg.zeros(2, 3, dtype=fg.float64).addmm(fg.zeros(2, 4), fg.zeros(4, 3))
    with pytest.raises(RuntimeError):
        fg.zeros(3).trace()
    with pytest.raises(RuntimeError):
        fg.tensordot(fg.zeros(2, 3), fg.zeros(4, 3), ([1], [0]))
    with pytest.raises(RuntimeError):
        fg.zeros(2, 3).inner(fg.zeros(2))
    out = fg.zeros(())
    assert fg.vdot(fg.ones(3), fg.ones(3), out=out) is out and out.item() == 3.0
    out = fg.zeros(2)
    assert fg.addmv(fg.ones(2), fg.ones(2, 3), fg.ones(3), alpha=2, out=out) is out
    np.testing.assert_array_equal(out.numpy(), [7.0, 7.0])
    assert fg.addmv_(out, fg.ones(2, 3), fg.ones(3), beta=0) is out and out.tolist() == [3.0, 3.0]
    assert [p.shape for p in fg.dsplit(fg.zeros(1, 2, 4), [1])] == [(1, 2, 1), (1, 2, 3)]
    out = fg.zeros(2, 2)
    assert fg.tensordot(fg.ones(2, 3), fg.ones(3, 2), 1, out=out) is out
    np.testing.assert_array_equal(out.numpy(), np.full((2, 2), 3.0))
    assert fg.tensor([[1, 2], [3, 4]]).trace().dtype is fg.int64


@pytest.mark.parametrize("dtype", FLOATS + ["int32"])
def test_aminmax(dtype):
    check_op([(3, 4)], lambda a: tuple(a.aminmax()), dtype=dtype)
    check_op([(3, 4)], lambda a: tuple(a.aminmax(dim=1, keepdim=True)), dtype=dtype)
    mn, mx = fg.aminmax(fg.tensor([[1, 5], [3, 2]]), dim=0)
    assert mn.tolist() == [1, 2] and mx.tolist() == [3, 5]


def test_isin():
    e, t = np.array([[1, 2, 3], [4, 5, 6]]), np.array([2, 6, 9])
    for invert in (False, True):
        got = fg.isin(fg.tensor(e), fg.tensor(t), invert=invert).numpy()
        np.testing.assert_array_equal(got, torch.isin(torch.tensor(e), torch.tensor(t), invert=invert).numpy())
    np.testing.assert_array_equal(fg.isin(fg.tensor(e), 5).numpy(), torch.isin(torch.tensor(e), 5).numpy())
    np.testing.assert_array_equal(fg.isin(2.0, fg.tensor([1.0, 2.0])).numpy(), True)
    with pytest.raises(TypeError):
        fg.isin(1, 2)


# ---- dtype rules -----------------------------------------------------------------------------------------

def test_result_type_promote_types_can_cast():
    i8, f16 = fg.tensor([1], dtype=fg.int8), fg.tensor([1.0], dtype=fg.float16)
    ti8, tf16 = torch.tensor([1], dtype=torch.int8), torch.tensor([1.0], dtype=torch.float16)
    cases = [((i8, 1), (ti8, 1)), ((i8, 1.5), (ti8, 1.5)), ((i8, f16), (ti8, tf16)),
             ((fg.tensor(1.0, dtype=fg.float64), i8), (torch.tensor(1.0, dtype=torch.float64), ti8)),
             ((fg.tensor(True), 3), (torch.tensor(True), 3))]
    for (a, b), (ta, tb) in cases:
        assert fg.result_type(a, b).name == str(torch.result_type(ta, tb)).removeprefix("torch.")
    names = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16", "float32", "float64"]
    for a in names:
        for b in names:
            ta, tb = getattr(torch, a), getattr(torch, b)
            assert fg.promote_types(a, b).name == str(torch.promote_types(ta, tb)).removeprefix("torch.")
            assert fg.can_cast(getattr(fg, a), getattr(fg, b)) == torch.can_cast(ta, tb), (a, b)
    assert fg.promote_types(torch.int8, torch.uint8) is fg.int16
    with pytest.raises(TypeError):
        fg.result_type("x", 1)


# ---- statistics ------------------------------------------------------------------------------------------

INTERP = ["linear", "lower", "higher", "midpoint", "nearest"]


@pytest.mark.parametrize("interpolation", INTERP)
@pytest.mark.parametrize("dtype", FLOATS)
def test_quantile(interpolation, dtype):
    check_op([(3, 7)], lambda a: a.quantile(0.35, dim=1, interpolation=interpolation), dtype=dtype)
    q = np.array([0.0, 0.25, 0.5, 0.9, 1.0], dtype=dtype)
    check_op([(4, 5), (5,)], lambda a, qq: a.quantile(qq.detach(), dim=0, keepdim=True, interpolation=interpolation),
             dtype=dtype, arrays=[np.random.default_rng(1).normal(size=(4, 5)).astype(dtype), q])
    check_op([(2, 3, 4)], lambda a: fg.quantile(a, 0.5) if isinstance(a, fg.Tensor) else torch.quantile(a, 0.5),
             dtype=dtype)


@pytest.mark.parametrize("interpolation", ["linear", "nearest"])
def test_nanquantile_and_nan_rows(interpolation):
    arr = np.random.default_rng(2).normal(size=(4, 6))
    arr[0, 2] = arr[1, [0, 4]] = np.nan
    arr[3] = np.nan
    for name in ("quantile", "nanquantile"):
        check_op([(4, 6)], lambda a: getattr(a, name)(0.4, dim=1, interpolation=interpolation),
                 dtype="float64", arrays=[arr])
        check_op([(4, 6)], lambda a: getattr(a, name)(0.4, interpolation=interpolation),
                 dtype="float64", arrays=[arr], grad=False)


def test_quantile_errors():
    x = fg.zeros(4)
    with pytest.raises(RuntimeError):
        x.quantile(1.5)
    with pytest.raises(RuntimeError):
        x.quantile(0.5, interpolation="cubic")
    with pytest.raises(TypeError):
        fg.zeros(4, dtype=fg.int64).quantile(0.5)
    with pytest.raises(TypeError):
        x.quantile(fg.tensor([0.5], dtype=fg.float64))


@pytest.mark.parametrize("dtype", FLOATS)
def test_cov_corrcoef(dtype):
    check_op([(3, 6)], lambda a: a.cov(), dtype=dtype)
    check_op([(3, 6)], lambda a: a.cov(correction=0), dtype=dtype)
    check_op([(6,)], lambda a: a.cov(), dtype=dtype)
    check_op([(3, 6)], lambda a: a.corrcoef(), dtype=dtype)
    fw = np.array([1, 2, 1, 3, 1, 2])
    aw = np.random.default_rng(3).uniform(0.5, 2.0, 6).astype(dtype)
    arr = np.random.default_rng(4).normal(size=(2, 6)).astype(dtype)
    for kwargs in ({"fweights": fw}, {"aweights": aw}, {"fweights": fw, "aweights": aw}):
        got = fg.tensor(arr).cov(**{k: fg.tensor(v) for k, v in kwargs.items()})
        ref = torch.tensor(arr).cov(**{k: torch.tensor(v) for k, v in kwargs.items()})
        np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=1e-5)


def test_cov_integer_input_and_errors():
    arr = np.array([[1, 4, 2, 8], [3, 1, 2, 0]])
    got, ref = fg.tensor(arr).cov(), torch.tensor(arr).cov()
    assert got.dtype.name == str(ref.dtype).removeprefix("torch.")
    np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=1e-6)
    with pytest.raises(RuntimeError):
        fg.zeros(2, 2, 2).cov()


# ---- special functions -----------------------------------------------------------------------------------

def _pos_neg(rng, n):
    """x in (0.1, 50) and negative non-integers in (-10, 0)."""
    neg = rng.uniform(-10, 0, n)
    neg = neg[np.abs(neg - np.round(neg)) > 0.05]
    return np.concatenate([rng.uniform(0.1, 50, n), neg, [0.5, 1.0, 2.0, 1.4616321449683622]])


@pytest.mark.parametrize("dtype", FLOATS)
def test_lgamma_digamma(dtype):
    x = _pos_neg(np.random.default_rng(5), 60).astype(dtype)
    wide = dtype == "float64"
    check_op([x.shape], lambda a: a.lgamma(), dtype=dtype, arrays=[x], atol=1e-12 if wide else 1e-5,
             rtol=1e-12 if wide else 1e-5)
    check_op([x.shape], lambda a: a.digamma(), dtype=dtype, arrays=[x], atol=1e-12 if wide else 1e-5,
             rtol=1e-12 if wide else 1e-5, grad_atol=1e-9 if wide else 1e-4)
    poles = np.array([0.0, -1.0, -3.0, np.inf], dtype=dtype)
    for name in ("lgamma", "digamma"):
        np.testing.assert_array_equal(getattr(fg.tensor(poles), name)().numpy(),
                                      getattr(torch.tensor(poles), name)().numpy())
    ints = np.array([1, 3, 7])
    assert fg.lgamma(fg.tensor(ints)).dtype is fg.float32
    np.testing.assert_allclose(fg.digamma(fg.tensor(ints)).numpy(), torch.digamma(torch.tensor(ints)).numpy(),
                               rtol=1e-6)


@pytest.mark.parametrize("dtype", FLOATS)
def test_erfinv_erfc(dtype):
    rng = np.random.default_rng(6)
    x = np.concatenate([rng.uniform(-0.999, 0.999, 100), [0.0, 1 - 1e-6, -(1 - 1e-6), 0.9999, -0.99999]])
    tight = dtype == "float64"
    check_op([x.shape], lambda a: a.erfinv(), dtype=dtype, arrays=[x.astype(dtype)],
             atol=1e-12 if tight else 1e-5, rtol=1e-10 if tight else 1e-5, grad_atol=1e-6 if tight else 1e-2)
    edge = np.array([1.0, -1.0, 1.5, -2.0], dtype=dtype)
    np.testing.assert_array_equal(fg.tensor(edge).erfinv().numpy(), torch.tensor(edge).erfinv().numpy())
    y = np.concatenate([rng.uniform(-3, 8, 100), [2.5, 2.49, 10.0, 26.0, -30.0]]).astype(dtype)
    check_op([y.shape], lambda a: a.erfc(), dtype=dtype, arrays=[y], atol=0, rtol=1e-12 if tight else 1e-5,
             grad_atol=1e-12 if tight else 1e-6)
    assert fg.erfinv(fg.tensor([0, 1])).dtype is fg.float32


def test_special_out_and_functions():
    out = fg.zeros(3)
    assert fg.lgamma(fg.tensor([1.0, 2.0, 3.0]), out=out) is out
    np.testing.assert_allclose(out.numpy(), [0.0, 0.0, np.log(2.0)], atol=1e-6)
    x = fg.tensor([0.5, 1.5], dtype=fg.float64, requires_grad=True)
    fg.lgamma(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), torch.digamma(torch.tensor([0.5, 1.5], dtype=torch.float64)).numpy(),
                               rtol=1e-12)


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_integer_inputs(dtype):
    check_op([(2, 3), (3, 2)], lambda a, b: a.kron(b), dtype=dtype, low=-5, high=5)
    check_op([(2, 3), (4, 3)], lambda a, b: a.inner(b), dtype=dtype, low=-5, high=5)
    check_op([(3, 3)], lambda a: a.trace(), dtype=dtype, low=-5, high=5)
    check_op([(2, 3)], lambda a: a.rot90(3).diagflat(), dtype=dtype, low=-5, high=5)
    check_op([(5,)], lambda a: fg.combinations(a, 2) if isinstance(a, fg.Tensor) else torch.combinations(a, 2),
             dtype=dtype, low=-5, high=5)
    check_op([(2,), (3,)], lambda a, b: fg.cartesian_prod(a, b) if isinstance(a, fg.Tensor)
             else torch.cartesian_prod(a, b), dtype=dtype, low=-5, high=5)
    check_op([(3, 4)], lambda a: a.diff(dim=0), dtype=dtype)
