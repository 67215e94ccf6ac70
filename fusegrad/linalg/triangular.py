"""Triangular solves and the Cholesky factorization, each as n column steps of vectorized tensor ops.

Every step works on the whole matrix, picks its row or column with an uploaded one-hot vector
(`_common.selectors`) and ends in `.contiguous()`: the next step reads that buffer several times,
and the buffer keeps the fused expression from growing with every step. So all steps share a few
compiled kernels; a factorization launches O(n) kernels and does O(n^3) work, which suits n up
to about 64-128.
"""
from __future__ import annotations

from .. import autograd, dtypes
from ..errors import ShapeError
from ..function import Function
from ..ops.autocast import autocast_op
from ..tensor import Tensor
from ._common import (CholeskyExResult, TriangularSolveResult, broadcast_batch, check_float, check_square,
                      first_index, mT, outer, pick, raise_on_info, selectors)


def forward_substitution(low: Tensor, b: Tensor, unit: bool) -> Tensor:
    """X with low @ X = b for lower-triangular low (..., n, n) and b (..., n, k), same batch dims.
    Reads only the lower triangle of low (without its diagonal when unit)."""
    n = low.shape[-1]
    if n == 0:
        return b
    strict = low.tril(-1).contiguous()
    diag = low.diagonal(0, -2, -1).unsqueeze(-1)
    rest = b.contiguous()
    for e in selectors(n, low, None)[:-1]:
        x = pick(rest, e, -2)  # row i is final once the rows above it are eliminated
        if not unit:
            x = x / pick(diag, e, -2)
        rest = (rest - outer(pick(strict, e, -1), x)).contiguous()
    return rest if unit else rest / diag


def triangular(a: Tensor, b: Tensor, upper: bool, left: bool, unit: bool) -> Tensor:
    """The solve of one broadcast batch, any side and triangle, through forward substitution:
    X A = B is A^T X^T = B^T, and an upper system read backwards (rows and columns flipped) is lower."""
    if not left:
        return mT(triangular(mT(a), mT(b), not upper, True, unit))
    if upper:
        return forward_substitution(a.flip(-2, -1), b.flip(-2), unit).flip(-2)
    return forward_substitution(a, b, unit)


class _SolveTriangular(Function):
    """X = A^{-1} B (left) or B A^{-1}; gB = A^{-T} g (or g A^{-T}), gA = -gB X^T (or -X^T gB) on A's triangle."""

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, upper: bool, left: bool, unit: bool) -> Tensor:
        x = triangular(a, b, upper, left, unit)
        ctx.save_for_backward(a, b, x)
        ctx.flags = (upper, left, unit)
        return x

    @staticmethod
    def backward(ctx, g: Tensor) -> tuple:
        a, b, x = ctx.saved_tensors
        upper, left, unit = ctx.flags
        gb = _SolveTriangular.apply(mT(a), g, not upper, left, unit)
        ga = None
        if ctx.needs_input_grad[0]:
            if autograd.is_grad_enabled():  # create_graph: x needs its own history
                x = _SolveTriangular.apply(a, b, upper, left, unit)
            ga = -(gb @ mT(x)) if left else -(mT(x) @ gb)
            diag = 1 if unit else 0
            ga = ga.triu(diag) if upper else ga.tril(-diag)
        return ga, gb, None, None, None


@autocast_op("linalg_solve_triangular")
def solve_triangular(A: Tensor, B: Tensor, *, upper: bool, left: bool = True, unitriangular: bool = False,
                     out: Tensor | None = None) -> Tensor:
    """torch.linalg.solve_triangular: X with A X = B (left) or X A = B, A triangular (only that triangle is read)."""
    if out is not None:
        raise TypeError("solve_triangular: out= is not supported")
    check_float("linalg.solve_triangular", A, B)
    n = check_square("linalg.solve_triangular", A)
    if B.ndim < 2:
        raise ShapeError("linalg.solve_triangular: The input tensor B must have at least 2 dimensions.")
    if (B.shape[-2] if left else B.shape[-1]) != n:
        eq = "AX = B" if left else "XA = B"
        raise ShapeError(f"linalg.solve_triangular: Incompatible shapes of A and B for the equation {eq} "
                         f"({n}x{n} and {B.shape[-2]}x{B.shape[-1]})")
    a, b = broadcast_batch("linalg.solve_triangular", A, B)
    return _SolveTriangular.apply(a, b, bool(upper), bool(left), bool(unitriangular))


@autocast_op("triangular_solve")
def triangular_solve(b: Tensor, A: Tensor, upper: bool = True, transpose: bool = False,
                     unitriangular: bool = False) -> tuple[Tensor, Tensor]:
    """torch.triangular_solve (deprecated there): (solution of op(A) X = b, a copy of A)."""
    coeff = mT(A) if transpose else A
    x = solve_triangular(coeff, b, upper=upper != transpose, unitriangular=unitriangular)
    return TriangularSolveResult(x, A.clone())


def cholesky_lower(a: Tensor) -> tuple[Tensor, Tensor]:
    """(L, info) for the lower triangle of a (..., n, n): outer-product Cholesky on the symmetric matrix
    that triangle defines (subtracting symmetric outer products keeps it exactly symmetric, so column j
    is row j); step j stores L's column j in column j. info is LAPACK's: the order of the first leading
    minor that is not positive-definite (its pivot is <= 0 or NaN, and so is L's diagonal entry)."""
    n = a.shape[-1]
    if n == 0:
        return a, a.new_zeros(a.shape[:-2], dtype=dtypes.int32)
    s = (a.tril() + mT(a.tril(-1))).contiguous()
    for e, active in zip(selectors(n, a, None), selectors(n, a, 0)):
        col = pick(s, e, -1)
        col = (col / pick(col, e, -1).sqrt().unsqueeze(-1)).where(active > 0, 0)  # above j: rounding residue
        # where, not a multiply by the mask: a failed pivot's NaN must stay in its own column
        s = (s - outer(col, col)).where(e == 0, col.unsqueeze(-1)).contiguous()
    low = s.tril()
    return low, first_index((low.diagonal(0, -2, -1) > 0).logical_not())


class _Cholesky(Function):
    """A = L L^T; gA = L^{-T} Sym(tril(L^T gL)) L^{-1}, torch's symmetric gradient."""

    @staticmethod
    def forward(ctx, a: Tensor) -> tuple[Tensor, Tensor]:
        low, info = cholesky_lower(a)
        ctx.save_for_backward(a, low)
        ctx.mark_non_differentiable(info)
        return low, info

    @staticmethod
    def backward(ctx, g: Tensor, _ginfo: Tensor) -> Tensor:
        a, low = ctx.saved_tensors
        if autograd.is_grad_enabled():
            low = _Cholesky.apply(a)[0]
        ga = (mT(low) @ g).tril()
        ga = 0.5 * (ga + mT(ga.tril(-1)))
        ga = _SolveTriangular.apply(mT(low), ga, True, True, False)
        return _SolveTriangular.apply(low, ga, False, False, False)


@autocast_op("linalg_cholesky_ex")
def cholesky_ex(A: Tensor, *, upper: bool = False, check_errors: bool = False) -> tuple[Tensor, Tensor]:
    """torch.linalg.cholesky_ex: (L, info) without reading values back unless check_errors."""
    check_float("linalg.cholesky", A)
    check_square("linalg.cholesky", A)
    low, info = _Cholesky.apply(mT(A) if upper else A)  # upper reads A's upper triangle, as LAPACK does
    if check_errors:
        raise_on_info(info, "linalg.cholesky: The factorization could not be completed because the input is "
                            "not positive-definite (the leading minor of order {} is not positive-definite).",
                      low)
    return CholeskyExResult(mT(low) if upper else low, info)


@autocast_op("linalg_cholesky")
def cholesky(A: Tensor, *, upper: bool = False, out: Tensor | None = None) -> Tensor:
    """torch.linalg.cholesky: the Cholesky factor of SPD A. Raises LinAlgError for a non-positive-definite
    input, which reads the result back from the device (a sync point; cholesky_ex does not)."""
    if out is not None:
        raise TypeError("cholesky: out= is not supported")
    return cholesky_ex(A, upper=upper, check_errors=True)[0]


class _CholeskySolve(Function):
    """X = (L L^T)^{-1} B with torch's gradient, which treats all of L as the factor: gB = A^{-1} g,
    gL = -(gB X^T + X gB^T) L."""

    @staticmethod
    def forward(ctx, b: Tensor, low: Tensor) -> Tensor:
        x = triangular(mT(low), triangular(low, b, False, True, False), True, True, False)
        ctx.save_for_backward(b, low, x)
        return x

    @staticmethod
    def backward(ctx, g: Tensor) -> tuple:
        b, low, x = ctx.saved_tensors
        gb = _CholeskySolve.apply(g, low)
        if not ctx.needs_input_grad[1]:
            return gb, None
        if autograd.is_grad_enabled():
            x = _CholeskySolve.apply(b, low)
        common = gb @ mT(x)
        return gb, -((common + mT(common)) @ low)


@autocast_op("cholesky_solve")
def cholesky_solve(B: Tensor, L: Tensor, upper: bool = False, *, out: Tensor | None = None) -> Tensor:
    """torch.cholesky_solve: X with A X = B where A = L L^T (or U^T U), two triangular solves."""
    if out is not None:
        raise TypeError("cholesky_solve: out= is not supported")
    check_float("cholesky_solve", B, L)
    check_square("cholesky_solve", L)
    if B.ndim < 2 or B.shape[-2] != L.shape[-1]:
        raise ShapeError(f"cholesky_solve: Incompatible matrix sizes for B {tuple(B.shape)} and L {tuple(L.shape)}")
    b, low = broadcast_batch("cholesky_solve", B, mT(L) if upper else L)
    return _CholeskySolve.apply(b, low)


__all__ = ["cholesky", "cholesky_ex", "cholesky_solve", "solve_triangular", "triangular_solve"]
