"""Least squares and the pseudo-inverse of full-rank matrices, through QR.

A tall A = Q R gives X = R^{-1} Q^T B; a wide one is solved through the QR of A^T, which gives the
minimum-norm solution. Both assume A has full rank: torch's drivers and its pinv's SVD also handle
rank-deficient matrices, where these return infinite or meaningless values.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import dtypes
from ..creation import full
from ..errors import ShapeError
from ..ops.autocast import autocast_op
from ..tensor import Tensor
from ._common import LstsqResult, broadcast_batch, check_float, mT
from .householder import qr
from .jacobi import svdvals
from .triangular import solve_triangular

DRIVERS = (None, "gels", "gelsy", "gelsd", "gelss")


def _min_norm_or_least_squares(a: Tensor, b: Tensor) -> Tensor:
    """X minimizing |A X - B| (tall A) or |X| subject to A X = B (wide A), for full-rank A."""
    if a.shape[-2] >= a.shape[-1]:
        q, r = qr(a)
        return solve_triangular(r, mT(q) @ b, upper=True)
    q, r = qr(mT(a))  # A = R^T Q^T
    return q @ solve_triangular(mT(r), b, upper=False)


def pinv(A: Tensor, *, atol: Any = None, rtol: Any = None, hermitian: bool = False, out: Any = None) -> Tensor:
    """torch.linalg.pinv of a full-rank A (..., m, n): R^{-1} Q^T from A's QR (A^T's when wide). atol and rtol
    are accepted; they only matter for rank-deficient matrices, which this does not handle."""
    if out is not None:
        raise TypeError("pinv: out= is not supported")
    check_float("linalg.pinv", A)
    if A.ndim < 2:
        raise ShapeError("linalg.pinv: The input tensor A must have at least 2 dimensions.")
    m, n = A.shape[-2:]
    if m >= n:
        q, r = qr(A)
        return solve_triangular(r, mT(q), upper=True)
    return mT(pinv(mT(A)))


@autocast_op("linalg_lstsq")
def lstsq(A: Tensor, B: Tensor, rcond: float | None = None, *, driver: str | None = None) -> Any:
    """torch.linalg.lstsq for a full-rank A: (solution, residuals, rank, singular_values) shaped per driver as
    torch's CPU (default gelsy): residuals only for tall A and drivers other than gelsy, rank from |diag R|
    (gelsy) or the singular values above rcond * the largest (gelsd, gelss), singular values from svdvals."""
    check_float("linalg.lstsq", A, B)
    if driver not in DRIVERS:
        raise ShapeError("torch.linalg.lstsq: parameter `driver` should be one of (gels, gelsy, gelsd, gelss)")
    if A.ndim < 2:
        raise ShapeError("torch.linalg.lstsq: input must have at least 2 dimensions.")
    vector = B.ndim == A.ndim - 1
    b = B.unsqueeze(-1) if vector else B
    if b.ndim < 2 or b.shape[-2] != A.shape[-2]:
        raise ShapeError("torch.linalg.lstsq: input.size(-2) should match other.size(-2)")
    a, b = broadcast_batch("linalg.lstsq", A, b)
    m, n = a.shape[-2:]
    x = _min_norm_or_least_squares(a, b)
    driver = driver or "gelsy"
    empty = A.new_zeros(0)
    residuals = ((a @ x - b).square().sum(-2) if m > n and driver != "gelsy" else empty)
    rcond = float(np.finfo(A.dtype.name).eps) * max(m, n) if rcond is None or rcond < 0 else rcond
    sv = svdvals(a) if driver in ("gelsd", "gelss") else empty
    if driver == "gels":
        rank = full((0,), 0, dtype=dtypes.int64, device=A.device)
    else:
        size = sv if driver != "gelsy" else qr(a if m >= n else mT(a), mode="r")[1].diagonal(0, -2, -1).abs()
        rank = (size > rcond * size.amax(-1, keepdim=True)).sum(-1) if min(m, n) else a.new_zeros(a.shape[:-2])
        rank = rank.cast(dtypes.int64)
    return LstsqResult(x.squeeze(-1) if vector else x, residuals, rank, sv)


__all__ = ["lstsq", "pinv"]
