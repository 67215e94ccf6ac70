"""QR through Householder reflections, built the way LAPACK's geqrf builds them, so Q and R carry
torch's signs: the reflector of column x = [alpha; rest] maps it to beta e_1 with
beta = -sign(alpha) ||x|| (sign(0) = +1), and is the identity when rest is zero.

Written with differentiable tensor ops only, so gradients come by composition (defined for every
mode and shape, where torch's closed form refuses some). k = min(m, n) steps over the whole matrix,
picking column j through uploaded selectors, so the steps share a few compiled kernels.
"""
from __future__ import annotations

from typing import Any

from ..creation import eye
from ..errors import ShapeError
from ..ops.autocast import autocast_op
from ..tensor import Tensor
from ._common import QRResult, check_float, outer, pick, selectors


def householder(a: Tensor) -> tuple[Tensor, list[Tensor], list[Tensor]]:
    """(R (..., k, n) with k = min(m, n), the reflector vectors v_j (length m), their tau_j)."""
    m, n = a.shape[-2:]
    k = min(m, n)
    s = a.contiguous()
    vs, taus = [], []
    steps = zip(selectors(n, a, None), selectors(m, a, None), selectors(m, a, 1))
    for _, (ecol, erow, below) in zip(range(k), steps):
        x = pick(s, ecol, -1)
        alpha, rest = pick(x, erow, -1), x * below
        rest2 = rest.square().sum(-1)
        keep = rest2 == 0  # nothing below the diagonal: H = I
        norm = (alpha.square() + rest2).sqrt()
        beta = (-norm).where(alpha >= 0, norm).where(keep.logical_not(), alpha)
        tau = ((beta - alpha) / beta.where(keep.logical_not(), 1)).where(keep.logical_not(), 0)
        v = rest / (alpha - beta).where(keep.logical_not(), 1).unsqueeze(-1) + erow
        # H = I - tau v v^T on every column: rows above j are untouched (v is 0 there), so R's rows stay;
        # the diagonal entry is set to beta itself, as geqrf stores it
        s = s - outer(tau.unsqueeze(-1) * v, (v.unsqueeze(-1) * s).sum(-2))
        s = s.where(outer(erow, ecol) == 0, beta.unsqueeze(-1).unsqueeze(-1)).contiguous()
        vs.append(v)
        taus.append(tau)
    return s.triu()[..., :k, :], vs, taus  # below the diagonal only rounding residue is left


def _form_q(a: Tensor, vs: list[Tensor], taus: list[Tensor], cols: int) -> Tensor:
    """Q = H_0 H_1 ... H_{k-1} applied to the first `cols` columns of the identity (orgqr)."""
    m = a.shape[-2]
    q = eye(m, cols, dtype=a.dtype, device=a.device).expand(*a.shape[:-2], m, cols)
    for v, tau in zip(reversed(vs), reversed(taus)):
        q = (q - outer(tau.unsqueeze(-1) * v, (v.unsqueeze(-1) * q).sum(-2))).contiguous()
    return q


@autocast_op("linalg_qr")
def qr(A: Tensor, mode: str = "reduced", *, out: Any = None) -> Any:
    """torch.linalg.qr: (Q, R) with Q orthonormal columns and R upper triangular, torch's signs.
    mode 'reduced' (Q m x k, R k x n), 'complete' (Q m x m, R m x n) or 'r' (Q empty, R k x n)."""
    if out is not None:
        raise TypeError("qr: out= is not supported")
    check_float("linalg.qr", A)
    if A.ndim < 2:
        raise ShapeError("linalg.qr: The input tensor A must have at least 2 dimensions.")
    if mode not in ("reduced", "complete", "r"):
        raise ValueError(f"qr received unrecognized mode '{mode}' but expected one of 'reduced' (default), "
                         "'r', or 'complete'")
    m, n = A.shape[-2:]
    r, vs, taus = householder(A)
    if mode == "r":
        return QRResult(A.new_zeros(0), r)
    if mode == "complete" and m > n:
        r = r.pad((0, 0, 0, m - n))  # zero rows below the n x n triangle
    return QRResult(_form_q(A, vs, taus, m if mode == "complete" else min(m, n)), r)


__all__ = ["qr"]
