"""fusegrad.linalg against torch.linalg: forward values, gradients, batching and error types."""
import math

import numpy as np
import pytest
import torch

import fusegrad as fg
from tests.helpers import RNG, check_op, finite_difference_check

DTYPES = ["float32", "float64"]
N = 4  # one matrix size for most cases, so their kernels compile once


def spd(shape, n=N):
    """Symmetric positive-definite: B B^T + n I."""
    b = RNG.standard_normal((*shape, n, n))
    return b @ np.swapaxes(b, -1, -2) + n * np.eye(n)


def general(shape, n=N):
    """Random plus n I: well conditioned, not symmetric."""
    return RNG.standard_normal((*shape, n, n)) + n * np.eye(n)


def arrays(dtype, *arrs):
    return [a.astype(dtype) for a in arrs]


def both(fn):
    """fn(lib, *tensors) run with lib = fusegrad and lib = torch."""
    return (lambda *t: fn(fg, *t)), (lambda *t: fn(torch, *t))


TOL = {"float32": dict(atol=2e-5, rtol=2e-5), "float64": dict(atol=1e-10, rtol=1e-10)}


def run(fn, arrs, dtype, **kw):
    f, t = both(fn)
    check_op([], f, t, dtype=dtype, arrays=arrs, **{**TOL[dtype], **kw})


# ---- factorizations and solves ------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("upper", [False, True], ids=["lower", "upper"])
def test_cholesky(dtype, upper):
    junk = RNG.standard_normal((N, N))  # in the triangle cholesky does not read
    a = spd((2,)) + (np.tril(junk, -1) if upper else np.triu(junk, 1))
    run(lambda m, a: m.linalg.cholesky(a, upper=upper), arrays(dtype, a), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ["matrix", "vector", "batch_vector", "broadcast", "right"])
def test_solve(dtype, case):
    a = general((2,))
    b = {"matrix": RNG.standard_normal((2, N, 3)), "vector": RNG.standard_normal(N),
         "batch_vector": RNG.standard_normal((2, N)), "broadcast": RNG.standard_normal((3, 1, N, 2)),
         "right": RNG.standard_normal((2, 3, N))}[case]
    left = case != "right"
    run(lambda m, a, b: m.linalg.solve(a, b, left=left), arrays(dtype, a, b), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_inv_det_slogdet(dtype):
    a = general((2,))
    a[1] = -a[1][[1, 0, 2, 3]]  # a row swap and negative determinants
    run(lambda m, a: m.linalg.inv(a), arrays(dtype, a), dtype)
    run(lambda m, a: m.linalg.det(a), arrays(dtype, a), dtype)
    run(lambda m, a: m.linalg.slogdet(a)[1], arrays(dtype, a), dtype)
    run(lambda m, a: m.linalg.slogdet(a)[0], arrays(dtype, a), dtype, grad=False)
    run(lambda m, a: m.inverse(a) + m.det(a)[..., None, None], arrays(dtype, a), dtype)


def test_pivoting_matches_torch():
    """A zero leading entry needs the row swap; the singular matrix gives det 0 and slogdet (0, -inf)."""
    a = np.array([[[0.0, 2, 1, 3], [1, 1, 0, 2], [4, 0, 1, 1], [2, 3, 5, 0]],
                  [[1.0, 2, 3, 4], [2, 4, 6, 8], [0, 1, 0, 1], [1, 0, 1, 0]]])
    for f in ("det", "slogdet"):
        got, want = getattr(fg.linalg, f)(fg.tensor(a)), getattr(torch.linalg, f)(torch.tensor(a))
        for g, w in zip(got if f == "slogdet" else [got], want if f == "slogdet" else [want]):
            np.testing.assert_allclose(g.numpy(), w.numpy(), atol=1e-12)
    np.testing.assert_allclose(fg.linalg.inv(fg.tensor(a[0])).numpy(), np.linalg.inv(a[0]), atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("upper,left,unit", [(False, True, False), (True, True, False), (False, False, True),
                                             (True, False, False)], ids=["lower", "upper", "right-unit", "right-upper"])
def test_solve_triangular(dtype, upper, left, unit):
    a = general((2,))  # the full matrix: only the triangle may be read, and only it gets a gradient
    b = RNG.standard_normal((2, N, 3) if left else (2, 3, N))
    run(lambda m, a, b: m.linalg.solve_triangular(a, b, upper=upper, left=left, unitriangular=unit),
        arrays(dtype, a, b), dtype)


@pytest.mark.filterwarnings("ignore:torch.triangular_solve is deprecated")
def test_triangular_and_cholesky_solve():
    a, b = spd((2,)), RNG.standard_normal((2, N, 3))
    low = np.linalg.cholesky(a)
    run(lambda m, l, b: m.cholesky_solve(b, l), [low, b], "float64")
    run(lambda m, u, b: m.cholesky_solve(b, u, upper=True), [np.swapaxes(low, -1, -2).copy(), b], "float64")
    run(lambda m, a, b: m.triangular_solve(b, a, upper=False, transpose=True)[0], [low, b], "float64")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,mode", [((5, 3), "reduced"), ((5, 3), "complete"), ((3, 5), "reduced"),
                                        ((2, N, N), "reduced"), ((5, 3), "r")], ids=str)
def test_qr(dtype, shape, mode):
    a = RNG.standard_normal(shape)
    f, t = both(lambda m, a: m.linalg.qr(a, mode=mode))
    (q, r), (tq, tr) = f(fg.tensor(a.astype(dtype))), t(torch.tensor(a.astype(dtype)))
    assert q.shape == tuple(tq.shape) and r.shape == tuple(tr.shape)
    np.testing.assert_allclose(q.numpy(), tq.numpy(), **TOL[dtype])  # torch's signs
    np.testing.assert_allclose(r.numpy(), tr.numpy(), **TOL[dtype])
    if mode == "reduced":  # torch defines the gradient here
        run(lambda m, a: m.cat([x.flatten(-2) for x in m.linalg.qr(a)], -1), arrays(dtype, a), dtype)


# ---- higher derivatives, accuracy --------------------------------------------------------------
@pytest.mark.parametrize("fn", ["inv", "det", "cholesky", "solve", "eigvalsh", "matrix_exp"])
def test_second_derivative(fn):
    a = spd((2,)) if fn == "cholesky" else symmetric((2,)) if fn == "eigvalsh" else general((2,))
    b = RNG.standard_normal((2, N, 2))
    w = RNG.standard_normal(N * N * 2)
    grads = []
    for m, tensor in ((fg, fg.tensor), (torch, torch.tensor)):
        x = tensor(a, requires_grad=True)
        y = m.linalg.solve(x, tensor(b)) if fn == "solve" else getattr(m.linalg, fn)(x)
        (g,) = m.autograd.grad((y * y).sum(), x, create_graph=True)
        (gg,) = m.autograd.grad((g.reshape(-1) * tensor(w)).sum(), x)
        grads.append((g.detach().numpy(), gg.numpy()))
    for got, want in zip(*grads):
        np.testing.assert_allclose(got, want, atol=1e-9, rtol=1e-9)


def test_accuracy_float64_32x32():
    """Well-conditioned 32 x 32 systems agree with LAPACK (through torch) to ~1e-15 relative (asserted: 1e-12)."""
    n = 32
    a, s, b = general((), n), spd((), n), RNG.standard_normal((n, 3))
    checks = [(fg.linalg.solve(fg.tensor(a), fg.tensor(b)), torch.linalg.solve(torch.tensor(a), torch.tensor(b))),
              (fg.linalg.inv(fg.tensor(a)), torch.linalg.inv(torch.tensor(a))),
              (fg.linalg.cholesky(fg.tensor(s)), torch.linalg.cholesky(torch.tensor(s))),
              (fg.linalg.det(fg.tensor(a)), torch.linalg.det(torch.tensor(a)))]
    for got, want in checks:
        err = np.abs(got.numpy() - want.numpy()).max() / np.abs(want.numpy()).max()
        assert err < 1e-12, err


# ---- norms ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ord", [2, 1, math.inf, -math.inf, 0, 3, 0.5, -1.5], ids=str)
def test_vector_norm(dtype, ord):
    x = RNG.standard_normal((3, 4, 5))
    for dim, keepdim in [(None, False), (1, True), ((0, 2), False)]:
        run(lambda m, x: m.linalg.vector_norm(x, ord, dim, keepdim), arrays(dtype, x), dtype,
            grad=ord != 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ord", ["fro", 1, -1, math.inf, -math.inf], ids=str)
def test_matrix_norm(dtype, ord):
    x = RNG.standard_normal((2, 3, 4))
    run(lambda m, x: m.linalg.matrix_norm(x, ord), arrays(dtype, x), dtype)
    run(lambda m, x: m.linalg.matrix_norm(x, ord, dim=(0, 2), keepdim=True), arrays(dtype, x), dtype)


@pytest.mark.parametrize("args", [dict(), dict(ord=1), dict(ord=math.inf, dim=(1, 2)), dict(dim=1, keepdim=True),
                                  dict(ord=3, dim=(2,))], ids=str)
def test_linalg_norm(args):
    if "ord" in args and "dim" not in args:  # a matrix norm of a 2-D input; 3-D raises
        run(lambda m, x: m.linalg.norm(x, **args), [RNG.standard_normal((3, 4))], "float64")
        with pytest.raises(fg.ShapeError):
            fg.linalg.norm(fg.ones(2, 3, 4), **args)
    else:
        run(lambda m, x: m.linalg.norm(x, **args), [RNG.standard_normal((2, 3, 4))], "float64")


@pytest.mark.parametrize("args", [dict(), dict(p="fro", dim=1), dict(p=1, dim=(0, 2)), dict(p=math.inf),
                                  dict(p=3, dim=2, keepdim=True), dict(p=0)], ids=str)
def test_tensor_norm(args):
    """Tensor.norm / torch.norm: the deprecated spelling, a vector norm over dim."""
    run(lambda m, x: x.norm(**args), [RNG.standard_normal((2, 3, 4))], "float64", grad=args.get("p") != 0)
    run(lambda m, x: m.norm(x, **args), arrays("float32", RNG.standard_normal((2, 3, 4))), "float32", grad=False)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0, 1, 2, math.inf, 1.5], ids=str)
def test_cdist(dtype, p):
    x1, x2 = RNG.standard_normal((2, 1, 5, 3)), RNG.standard_normal((3, 4, 3))
    run(lambda m, a, b: m.cdist(a, b, p=p), arrays(dtype, x1, x2), dtype, grad=p != 0)


def test_cross():
    a, b = RNG.standard_normal((2, 4, 3)), RNG.standard_normal((2, 1, 3))
    run(lambda m, a, b: m.linalg.cross(a, b), [a, b], "float64")
    run(lambda m, a, b: m.cross(a.mT, b.mT, dim=-2), [a, b], "float64")
    with pytest.raises(fg.ShapeError):
        fg.linalg.cross(fg.ones(4, 3), fg.ones(1, 1, 3))


# ---- errors -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("fn", ["inv", "det", "cholesky", "slogdet", "qr", "solve"])
def test_bad_input_errors(fn):
    def call(m, a):
        return getattr(m.linalg, fn)(a) if fn != "solve" else m.linalg.solve(a, a)
    for arr, err in [(np.ones((2, 3)), fg.ShapeError), (np.ones(3), fg.ShapeError),
                     (np.ones((3, 3), dtype=np.int64), fg.DTypeError)]:
        if fn == "qr" and arr.ndim == 2 and arr.dtype == np.float64:
            continue  # qr takes non-square matrices
        with pytest.raises(RuntimeError):
            call(torch, torch.tensor(arr))
        with pytest.raises(err):
            call(fg, fg.tensor(arr))
    with pytest.raises(fg.DTypeError):
        fg.linalg.solve(fg.ones(3, 3), fg.ones(3, dtype=fg.float64))
    with pytest.raises(fg.ShapeError):
        fg.linalg.solve(fg.ones(3, 3), fg.ones(4))


def test_singular_and_not_positive_definite():
    sing = np.array([[1.0, 2.0], [2.0, 4.0]])
    for fn in (lambda m, a: m.linalg.inv(a), lambda m, a: m.linalg.solve(a, a), lambda m, a: m.linalg.cholesky(a)):
        with pytest.raises(torch.linalg.LinAlgError):
            fn(torch, torch.tensor(sing))
        with pytest.raises(fg.linalg.LinAlgError) as info:
            fn(fg, fg.tensor(sing))
        assert isinstance(info.value, RuntimeError) and isinstance(info.value, fg.Error)
    batch = np.stack([np.eye(3), np.diag([1.0, -1.0, 1.0]), np.diag([1.0, 0.0, 1.0])])
    _, info = fg.linalg.cholesky_ex(fg.tensor(batch))
    np.testing.assert_array_equal(info.numpy(), torch.linalg.cholesky_ex(torch.tensor(batch)).info.numpy())
    _, info = fg.linalg.inv_ex(fg.tensor(batch))
    np.testing.assert_array_equal(info.numpy(), torch.linalg.inv_ex(torch.tensor(batch)).info.numpy())
    assert info.dtype == fg.int32


def test_norm_errors():
    with pytest.raises(fg.DTypeError):
        fg.linalg.vector_norm(fg.ones(3, dtype=fg.int64))
    with pytest.raises(fg.ShapeError):
        fg.linalg.matrix_norm(fg.ones(3))
    with pytest.raises(fg.ShapeError):
        fg.cdist(fg.ones(2, 3), fg.ones(2, 4))
    with pytest.raises(fg.ShapeError):
        fg.linalg.cross(fg.ones(4), fg.ones(4))


# ---- laziness --------------------------------------------------------------------------------------
def test_no_host_read_without_error_checks():
    """solve_ex, det and qr read nothing back, so fg.jit captures them and replays with new inputs;
    inv (which raises LinAlgError like torch's CPU kernel) reads a flag, which a capture refuses."""
    step = fg.jit(lambda a, b: (fg.linalg.solve_ex(a, b).result, fg.linalg.det(a), fg.linalg.qr(a).R))
    for _ in range(3):
        a, b = general(()), RNG.standard_normal((N, 2))
        x, d, r = step(fg.tensor(a), fg.tensor(b))
        np.testing.assert_allclose(x.numpy(), np.linalg.solve(a, b), atol=1e-12)
        np.testing.assert_allclose(d.numpy(), np.linalg.det(a), rtol=1e-12)
        np.testing.assert_allclose(r.numpy(), torch.linalg.qr(torch.tensor(a)).R.numpy(), atol=1e-12)
    with pytest.raises(fg.JitError):
        fg.jit(fg.linalg.inv)(fg.tensor(general(())))


@pytest.mark.parametrize("fn", ["det", "inv", "cholesky", "slogdet"])
def test_empty_matrices(fn):
    got, want = getattr(fg.linalg, fn)(fg.zeros(2, 0, 0, dtype=fg.float64)), getattr(torch.linalg, fn)(
        torch.zeros(2, 0, 0, dtype=torch.float64))
    for g, w in zip(got if fn == "slogdet" else [got], want if fn == "slogdet" else [want]):
        assert g.shape == tuple(w.shape)
        np.testing.assert_array_equal(g.numpy(), w.numpy())


# ---- eigenvalues and singular values ---------------------------------------------------------------
def symmetric(shape, n=N):
    b = RNG.standard_normal((*shape, n, n))
    return b + np.swapaxes(b, -1, -2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,uplo", [(N, "L"), (5, "U")], ids=str)
def test_eigh(dtype, n, uplo):
    a = symmetric((2,), n) + np.tril(RNG.standard_normal((n, n)), -1) * (uplo == "U")  # junk off its triangle
    (w, v), (tw, tv) = fg.linalg.eigh(fg.tensor(a.astype(dtype)), uplo), torch.linalg.eigh(torch.tensor(
        a.astype(dtype)), uplo)
    np.testing.assert_allclose(w.numpy(), tw.numpy(), **TOL[dtype])
    signs = np.sign((v.numpy() * tv.numpy()).sum(-2, keepdims=True))  # eigenvector signs are arbitrary
    np.testing.assert_allclose(v.numpy() * signs, tv.numpy(), atol=TOL[dtype]["atol"] * 10)
    # the gradient of sign-invariant results: eigenvalues and the eigenvectors' squares
    run(lambda m, a: m.cat([m.linalg.eigh(a, uplo)[0], m.linalg.eigh(a, uplo)[1].square().flatten(-2)], -1),
        arrays(dtype, a), dtype, grad_atol=TOL[dtype]["atol"] * 100)
    run(lambda m, a: m.linalg.eigvalsh(a, uplo), arrays(dtype, a), dtype)


@pytest.mark.parametrize("shape", [(2, 5, 3), (3, 4)], ids=str)
def test_svdvals_and_spectral_norms(shape):
    a = RNG.standard_normal(shape)
    run(lambda m, a: m.linalg.svdvals(a), [a], "float64")
    for ord in ("nuc", 2, -2):
        run(lambda m, a: m.linalg.matrix_norm(a, ord), [a], "float64")
    run(lambda m, a: m.linalg.norm(a, 2, dim=(0, -1), keepdim=True), [a], "float64")


def test_badly_scaled_rows_keep_their_digits():
    """Row exchanges move rows exactly: rows 1e12 apart in scale still give LAPACK's solution."""
    a = general(())
    a[0] *= 1e-12
    a[2] *= 1e12
    b = RNG.standard_normal((N, 2))
    got = fg.linalg.solve(fg.tensor(a), fg.tensor(b)).numpy()
    np.testing.assert_allclose(got, torch.linalg.solve(torch.tensor(a), torch.tensor(b)).numpy(), rtol=1e-12)


# ---- products ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("power", [0, 1, 3, -2], ids=str)
def test_matrix_power(power):
    run(lambda m, a: m.linalg.matrix_power(a, power), [general((2,))], "float64")


def test_vecdot_multi_dot_matmul_diagonal():
    x, y = RNG.standard_normal((2, 3, 4)), RNG.standard_normal((3, 4))
    run(lambda m, x, y: m.linalg.vecdot(x, y), [x, y], "float64")
    run(lambda m, x, y: m.linalg.vecdot(x, y, dim=-2), [x, y], "float64")
    run(lambda m, x, y: m.linalg.matmul(x, y.mT), [x, y], "float64")
    run(lambda m, x: m.linalg.diagonal(x, offset=1), [x], "float64")
    mats = [RNG.standard_normal(4), RNG.standard_normal((4, 3)), RNG.standard_normal((3, 5)), RNG.standard_normal(5)]
    run(lambda m, *t: m.linalg.multi_dot(list(t)), mats, "float64")
    with pytest.raises(fg.ShapeError):
        fg.linalg.multi_dot([fg.ones(2, 2)])


# ---- LU ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_lu_factor_and_lu(dtype):
    a = RNG.standard_normal((2, N, N))  # no diagonal boost: the pivots move rows
    (_, piv), (_, tpiv) = fg.linalg.lu_factor(fg.tensor(a.astype(dtype))), torch.linalg.lu_factor(
        torch.tensor(a.astype(dtype)))
    np.testing.assert_array_equal(piv.numpy(), tpiv.numpy())
    assert piv.dtype == fg.int32
    run(lambda m, a: m.linalg.lu_factor(a)[0], arrays(dtype, a), dtype, atol=TOL[dtype]["atol"] * 10)
    run(lambda m, a: m.linalg.lu(a)[0], arrays(dtype, a), dtype, grad=False)
    run(lambda m, a: m.cat([x.flatten(-2) for x in m.linalg.lu(a)[1:]], -1), arrays(dtype, a), dtype,
        atol=TOL[dtype]["atol"] * 10)
    with pytest.raises(RuntimeError):
        torch.linalg.lu_factor(torch.tensor(a), pivot=False)
    with pytest.raises(RuntimeError):
        fg.linalg.lu_factor(fg.tensor(a), pivot=False)


@pytest.mark.parametrize("left,adjoint", [(True, False), (True, True), (False, False), (False, True)], ids=str)
def test_lu_solve(left, adjoint):
    a = RNG.standard_normal((2, N, N))
    b = RNG.standard_normal((2, N, 3) if left else (2, 3, N))
    piv = torch.linalg.lu_factor(torch.tensor(a)).pivots

    def solve(m, lu, b):
        p = fg.tensor(piv.numpy()) if m is fg else piv
        return m.linalg.lu_solve(lu, p, b, left=left, adjoint=adjoint)
    run(solve, [torch.linalg.lu_factor(torch.tensor(a)).LU.numpy(), b], "float64", atol=1e-9, rtol=1e-9)


def test_zero_norm_has_zero_gradient():
    """At a zero norm (a zero vector, two equal points) torch's gradient is 0, not NaN."""
    x = np.zeros((2, 3))
    x[1] = RNG.standard_normal(3)
    for ord in (2, 3, 0.5):
        run(lambda m, x: m.linalg.vector_norm(x, ord, dim=-1), [x], "float64")
    p = RNG.standard_normal((3, 2))
    run(lambda m, a, b: m.cdist(a, b), [p, p[[1, 0, 2]].copy()], "float64")
    run(lambda m, x: m.linalg.vector_norm(x, -1, dim=-1), [x], "float64", grad=False)  # a zero entry: norm 0


# ---- least squares -----------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(2, 5, 3), (3, 5)], ids=["tall", "wide"])
def test_pinv(shape):
    run(lambda m, a: m.linalg.pinv(a), [RNG.standard_normal(shape)], "float64", atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("driver", [None, "gels", "gelsd"], ids=str)
@pytest.mark.parametrize("shape", [(2, 5, 3), (2, 3, 5)], ids=["tall", "wide"])
def test_lstsq(shape, driver):
    a, b = RNG.standard_normal(shape), RNG.standard_normal((2, shape[1], 2))
    run(lambda m, a, b: m.linalg.lstsq(a, b, driver=driver).solution, [a, b], "float64", atol=1e-9, rtol=1e-9)
    got = fg.linalg.lstsq(fg.tensor(a), fg.tensor(b), driver=driver)
    want = torch.linalg.lstsq(torch.tensor(a), torch.tensor(b), driver=driver)
    for g, w in zip(got[1:], want[1:]):
        assert g.shape == tuple(w.shape) and g.dtype.name == str(w.dtype).removeprefix("torch.")
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-9, atol=1e-9)
    vec = fg.linalg.lstsq(fg.tensor(a[0]), fg.tensor(b[0, :, 0])).solution
    np.testing.assert_allclose(vec.numpy(), torch.linalg.lstsq(torch.tensor(a[0]), torch.tensor(b[0, :, 0]))
                               .solution.numpy(), atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", [0.3, 20.0], ids=["small", "squared"])
def test_matrix_exp(dtype, scale):
    a = RNG.standard_normal((2, N, N)) * scale / N
    tol = dict(atol=1e-12 * scale, rtol=1e-11) if dtype == "float64" else dict(atol=1e-5 * scale, rtol=1e-4)
    run(lambda m, a: m.linalg.matrix_exp(a), arrays(dtype, a), dtype, **tol)


@pytest.mark.parametrize("p", [None, -2, "fro", "nuc", 1, -1, math.inf, -math.inf], ids=str)
def test_cond(p):
    """torch's own gradient fails for the norm-based orders (it writes its inverse in place)."""
    run(lambda m, a: m.linalg.cond(a, p), [general((2,))], "float64", atol=1e-9, rtol=1e-9, grad=p in (None, -2))
    if p not in (None, -2):
        assert fg.linalg.cond(fg.tensor([[1.0, 2.0], [2.0, 4.0]]), p).item() == math.inf
    if p == "fro":  # checked against finite differences instead
        finite_difference_check(lambda a: fg.linalg.cond(a, p), general(()))


@pytest.mark.parametrize("name", ["inverse", "det", "logdet", "cholesky", "matrix_exp", "pinverse"])
def test_tensor_methods_match_torch(name: str) -> None:
    """torch.Tensor's linear-algebra methods, values and gradients, on a well-conditioned SPD matrix."""
    b = np.random.default_rng(3).standard_normal((4, 4))
    spd = b @ b.T / 4 + np.eye(4)

    def fn(x):
        x = (x + x.mT) / 2  # symmetric for every input the gradient check perturbs
        return getattr(x, name)()
    check_op([(4, 4)], fn, dtype="float64", arrays=[spd], atol=1e-9, rtol=1e-9)
