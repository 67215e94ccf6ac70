"""solve, inv, det and slogdet through Gaussian elimination with partial pivoting, on the device.

Step j picks the pivot row by argmax of |column j| over the rows not yet done and swaps it into row
j by one-hot selection (no host read), then eliminates below it; the right-hand sides ride along
as extra columns. A zero pivot leaves its column unscaled, as LAPACK's getrf does, so a singular
matrix gives a zero determinant instead of NaN. Like the triangular solves, every step works on
the whole matrix through uploaded selectors, so the n steps share a few compiled kernels.
"""
from __future__ import annotations

from typing import Any

from .. import autograd, dtypes
from ..creation import arange, ones
from ..errors import DTypeError, ShapeError
from ..function import Function
from ..ops.autocast import autocast_op
from ..tensor import Tensor, cat
from ._common import (InvExResult, LUFactorResult, LUResult, SlogdetResult, SolveExResult, broadcast_batch,
                      check_float, check_square, first_index, identity_like, mT, outer, pick, raise_on_info,
                      selectors)
from .triangular import triangular


def eliminate(a: Tensor, b: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(t, sign, ipiv, perm) for a (..., n, n) and b (..., n, k) or None: t = [LU | C] with P A = L U packed
    as LAPACK's getrf packs it (unit L's multipliers below U's diagonal) and C = L^{-1} P b; sign is det(P),
    ipiv LAPACK's 1-based int32 pivot rows, perm the original row of each row of P A (as floats).
    Only what a caller reads gets computed: the graph is lazy."""
    n = a.shape[-1]
    k = 0 if b is None else b.shape[-1]
    sign = ones(a.shape[:-2], dtype=a.dtype, device=a.device)
    rows = arange(n, device=a.device)
    perm, ipiv = rows.cast(a.dtype).expand(*a.shape[:-2], n), rows.cast(dtypes.int32).expand(*a.shape[:-2], n)
    t = (a if b is None else cat([a, b], -1)).contiguous()
    for e, active, below in zip(selectors(n, a, None), selectors(n, a, 0), selectors(n, a, 1)):
        ecol, right = e.pad((0, k)), active.pad((0, k), 1.0)
        candidates = pick(t, ecol, -1).abs().where(active > 0, -1)
        p = candidates.argmax(-1, keepdim=True)
        hot = (rows == p).cast(a.dtype)
        # exchange rows j and p by selection (a rank-one update would round the rows it moves)
        t = _swap(t, e, hot, -2)
        perm = _swap(perm, e, hot, -1).contiguous()
        ipiv = ipiv.where(e == 0, (p + 1).cast(dtypes.int32)).contiguous()
        sign = (sign * (2 * pick(hot, e, -1) - 1)).contiguous()
        row = pick(t, e, -2)
        pivot = pick(row, ecol, -1)
        zero = pivot == 0
        low = pick(t, ecol, -1) * below / pivot.where(zero.logical_not(), 1).unsqueeze(-1)
        low = low.where(zero.logical_not().unsqueeze(-1), 0)
        t = (t - outer(low, row * right)).where(outer(below, ecol) == 0, low.unsqueeze(-1)).contiguous()
    return t, sign, ipiv, perm


def _swap(t: Tensor, e: Tensor, hot: Tensor, dim: int) -> Tensor:
    """t with the slices at the one-hot positions of e and hot along dim (-2: rows, -1: entries) exchanged."""
    if dim == -2:
        e, hot = e.unsqueeze(-1), hot.unsqueeze(-1)
    at_p, at_j = (t * hot).sum(dim, keepdim=True), (t * e).sum(dim, keepdim=True)
    return at_p.where(e > 0, at_j.where(hot > 0, t))


def _factors(a: Tensor, b: Tensor | None) -> tuple[Tensor, Tensor | None, Tensor, Tensor]:
    """(U, C, pivots (U's diagonal), sign) of the elimination; n = 0 gives det 1."""
    n = a.shape[-1]
    if n == 0:
        return a, b, a.new_zeros((*a.shape[:-2], 0)), ones(a.shape[:-2], dtype=a.dtype, device=a.device)
    t, sign, _, _ = eliminate(a, b)
    u = t[..., :n]
    return u.triu(), (None if b is None else t[..., n:]), u.diagonal(0, -2, -1), sign


def _solve_system(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """(X, info): A X = B for one broadcast batch; info is 1 + the first zero pivot, else 0."""
    u, c, pivots, _ = _factors(a, b)
    return triangular(u, c, True, True, False), first_index(pivots == 0)


class _Solve(Function):
    """X = A^{-1} B; gB = A^{-T} g, gA = -gB X^T."""

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        x, info = _solve_system(a, b)
        ctx.save_for_backward(a, b, x)
        ctx.mark_non_differentiable(info)
        return x, info

    @staticmethod
    def backward(ctx, g: Tensor, _ginfo: Tensor) -> tuple:
        a, b, x = ctx.saved_tensors
        gb = _Solve.apply(mT(a), g)[0]
        if not ctx.needs_input_grad[0]:
            return None, gb
        if autograd.is_grad_enabled():
            x = _Solve.apply(a, b)[0]
        return -(gb @ mT(x)), gb


class _Inv(Function):
    """X = A^{-1}; gA = -X^T g X^T."""

    @staticmethod
    def forward(ctx, a: Tensor) -> tuple[Tensor, Tensor]:
        x, info = _solve_system(a, identity_like(a, a.shape[-1]))
        ctx.save_for_backward(a, x)
        ctx.mark_non_differentiable(info)
        return x, info

    @staticmethod
    def backward(ctx, g: Tensor, _ginfo: Tensor) -> Tensor:
        a, x = ctx.saved_tensors
        if autograd.is_grad_enabled():
            x = _Inv.apply(a)[0]
        return -(mT(x) @ g @ mT(x))


class _Slogdet(Function):
    """(sign, log|det A|, det A) from the pivots; g log|det| and g det give gA = g A^{-T} and g det A^{-T}."""

    @staticmethod
    def forward(ctx, a: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        _, _, pivots, perm = _factors(a, None)
        sign = perm * pivots.sign().prod(-1)
        det = perm * pivots.prod(-1)
        ctx.save_for_backward(a, det)
        ctx.mark_non_differentiable(sign)
        return sign, pivots.abs().log().sum(-1), det

    @staticmethod
    def backward(ctx, _gsign: Tensor, glog: Tensor, gdet: Tensor) -> Tensor:
        a, det = ctx.saved_tensors
        if autograd.is_grad_enabled():
            det = _Slogdet.apply(a)[2]
        scale = glog + gdet * det
        return scale.unsqueeze(-1).unsqueeze(-1) * mT(_Inv.apply(a)[0])


def _rhs(name: str, A: Tensor, B: Tensor, left: bool) -> tuple[Tensor, bool]:
    """B as a batch of matrices for A X = B, and whether it was a (batch of) vector(s), by torch's rule."""
    n = A.shape[-1]
    vector = B.ndim == 1 or (left and B.ndim == A.ndim - 1 and B.shape == A.shape[:-1])
    if vector:
        B = B.unsqueeze(-1) if left else B.unsqueeze(-2)
    if B.ndim < 2 or (B.shape[-2] if left else B.shape[-1]) != n:
        raise ShapeError(f"{name}: Incompatible shapes of A and B for the equation {'AX = B' if left else 'XA = B'}"
                         f" ({n}x{n} and {'x'.join(str(s) for s in B.shape[-2:])})")
    return B, vector


@autocast_op("linalg_solve_ex")
def solve_ex(A: Tensor, B: Tensor, *, left: bool = True, check_errors: bool = False) -> tuple[Tensor, Tensor]:
    """torch.linalg.solve_ex: (X, info) without reading values back unless check_errors."""
    check_float("linalg.solve", A, B)
    check_square("linalg.solve", A)
    b, vector = _rhs("linalg.solve", A, B, left)
    a, b = broadcast_batch("linalg.solve", A, b)
    if left:
        x, info = _Solve.apply(a, b)
    else:  # X A = B is A^T X^T = B^T
        x, info = _Solve.apply(mT(a), mT(b))
        x = mT(x)
    if check_errors:
        raise_on_info(info, "linalg.solve: The solver failed because the input matrix is singular.", x)
    if vector:
        x = x.squeeze(-1) if left else x.squeeze(-2)
    return SolveExResult(x, info)


@autocast_op("linalg_solve")
def solve(A: Tensor, B: Tensor, *, left: bool = True, out: Tensor | None = None) -> Tensor:
    """torch.linalg.solve: X with A X = B (or X A = B). A singular A raises LinAlgError, which reads a flag
    back from the device (a sync point, as torch's CPU kernel has; solve_ex has none)."""
    if out is not None:
        raise TypeError("solve: out= is not supported")
    return solve_ex(A, B, left=left, check_errors=True)[0]


@autocast_op("linalg_inv_ex")
def inv_ex(A: Tensor, *, check_errors: bool = False) -> tuple[Tensor, Tensor]:
    """torch.linalg.inv_ex: (A^{-1}, info) without reading values back unless check_errors."""
    check_float("linalg.inv", A)
    check_square("linalg.inv", A)
    x, info = _Inv.apply(A)
    if check_errors:
        raise_on_info(info, "linalg.inv: The diagonal element {} is zero, the inversion could not be completed "
                            "because the input matrix is singular.", x)
    return InvExResult(x, info)


@autocast_op("linalg_inv")
def inv(A: Tensor, *, out: Tensor | None = None) -> Tensor:
    """torch.linalg.inv: A^{-1}. A singular A raises LinAlgError (a sync point, as on torch's CPU)."""
    if out is not None:
        raise TypeError("inv: out= is not supported")
    return inv_ex(A, check_errors=True)[0]


@autocast_op("det")
def det(A: Tensor) -> Tensor:
    """torch.linalg.det (no sync: a singular matrix gives 0; its gradient is not defined here)."""
    check_float("linalg.det", A)
    check_square("linalg.det", A)
    return _Slogdet.apply(A)[2]


@autocast_op("slogdet")
def slogdet(A: Tensor) -> Any:
    """torch.linalg.slogdet: (sign, logabsdet); sign is 0 and logabsdet -inf for a singular A."""
    check_float("linalg.slogdet", A)
    check_square("linalg.slogdet", A)
    sign, logabs, _ = _Slogdet.apply(A)
    return SlogdetResult(sign, logabs)


@autocast_op("logdet")
def logdet(A: Tensor) -> Tensor:
    """torch.logdet: log det A (NaN for a negative determinant)."""
    sign, logabs = slogdet(A)
    return logabs + sign.where(sign >= 0, float("nan")).log()


def _check_pivot(name: str, pivot: bool) -> None:
    if not pivot:
        raise NotImplementedError(f"{name}: LU without pivoting is not implemented on the CPU")


@autocast_op("lu_factor")
def lu_factor(A: Tensor, *, pivot: bool = True, out: Any = None) -> Any:
    """torch.linalg.lu_factor for square A: (LU, pivots) packed as LAPACK's getrf; gradients by composition."""
    if out is not None:
        raise TypeError("lu_factor: out= is not supported")
    _check_pivot("linalg.lu_factor", pivot)
    check_float("linalg.lu_factor", A)
    n = check_square("linalg.lu_factor", A)
    if n == 0:
        return LUFactorResult(A, A.new_zeros(A.shape[:-1], dtype=dtypes.int32))
    t, _, ipiv, _ = eliminate(A, None)
    return LUFactorResult(t, ipiv)


@autocast_op("lu")
def lu(A: Tensor, *, pivot: bool = True, out: Any = None) -> Any:
    """torch.linalg.lu for square A: (P, L, U) with A = P L U, L unit lower and U upper triangular."""
    if out is not None:
        raise TypeError("lu: out= is not supported")
    _check_pivot("linalg.lu", pivot)
    check_float("linalg.lu", A)
    n = check_square("linalg.lu", A)
    if n == 0:
        return LUResult(A, A, A)
    t, _, _, perm = eliminate(A, None)
    p = (perm.unsqueeze(-2) == arange(n, device=A.device).cast(A.dtype).unsqueeze(-1)).cast(A.dtype)
    return LUResult(p, t.tril(-1) + identity_like(A, n), t.triu())


def _apply_pivots(b: Tensor, ipiv: Tensor, reverse: bool) -> Tensor:
    """b's rows exchanged as LAPACK's laswp does: row j with row ipiv[j] - 1, in order (P^T b) or reversed (P b)."""
    n = b.shape[-2]
    rows = arange(n, device=b.device).cast(b.dtype)
    steps = selectors(n, b, None)
    for e in reversed(steps) if reverse else steps:
        target = pick(ipiv.cast(b.dtype), e, -1) - 1
        b = _swap(b, e, (rows == target.unsqueeze(-1)).cast(b.dtype), -2).contiguous()
    return b


@autocast_op("lu_solve")
def lu_solve(LU: Tensor, pivots: Tensor, B: Tensor, *, left: bool = True, adjoint: bool = False,
             out: Any = None) -> Tensor:
    """torch.linalg.lu_solve: X with A X = B (A^T X = B when adjoint; X A = B when not left), A = P L U given
    by lu_factor. Row exchanges and two triangular solves, differentiable in LU and B."""
    from .triangular import _SolveTriangular
    if out is not None:
        raise TypeError("lu_solve: out= is not supported")
    check_float("linalg.lu_solve", LU, B)
    n = check_square("linalg.lu_solve", LU)
    if pivots.dtype is not dtypes.int32:
        raise DTypeError(f"linalg.lu_solve: pivots should be a Tensor of type int32, got {pivots.dtype.name}")
    if tuple(pivots.shape) != tuple(LU.shape[:-1]):
        raise ShapeError(f"linalg.lu_solve: Expected LU.shape[:-1] and pivots.shape to be the same, but got "
                         f"pivots with shape {tuple(pivots.shape)} instead")
    if not left:  # X A = B is A^T X^T = B^T
        return mT(lu_solve(LU, pivots, mT(B), left=True, adjoint=not adjoint))
    if B.ndim < 2 or B.shape[-2] != n:
        raise ShapeError(f"linalg.lu_solve: Incompatible shapes of A and B for the equation AX = B "
                         f"({n}x{n} and {'x'.join(str(s) for s in B.shape[-2:])})")
    lu_, b = broadcast_batch("linalg.lu_solve", LU, B)
    piv = pivots.expand(*lu_.shape[:-1])
    if not adjoint:  # U X = L^{-1} P^T B
        y = _SolveTriangular.apply(lu_, _apply_pivots(b, piv, False), False, True, True)
        return _SolveTriangular.apply(lu_, y, True, True, False)
    z = _SolveTriangular.apply(mT(lu_), b, False, True, False)  # U^T z = B
    return _apply_pivots(_SolveTriangular.apply(mT(lu_), z, True, True, True), piv, True)


__all__ = ["det", "inv", "inv_ex", "logdet", "lu", "lu_factor", "lu_solve", "slogdet", "solve", "solve_ex"]
