"""QR through Householder reflections, built the way LAPACK's geqrf builds them, so Q and R carry
torch's signs: the reflector of column x = [alpha; rest] maps it to beta e_1 with
beta = -sign(alpha) ||x|| (sign(0) = +1), and is the identity when rest is zero.

Written with differentiable tensor ops only, so gradients come by composition (defined for every
mode and shape, where torch's closed form refuses some). k = min(m, n) steps of a few kernels each.
"""
from __future__ import annotations

from typing import Any

from ..creation import arange
from ..errors import ShapeError
from ..tensor import Tensor, cat, stack
from ._common import check_float, outer


def householder(a: Tensor) -> tuple[Tensor, list[Tensor], list[Tensor]]:
    """(R (..., k, n), reflector vectors v_j padded to length m, their tau_j) for a (..., m, n)."""
    m, n = a.shape[-2:]
    k = min(m, n)
    rows, vs, taus = [], [], []
    s = a
    for j in range(k):
        alpha, rest = s[..., 0, 0], s[..., 1:, 0]
        rest2 = rest.square().sum(-1) if m - j > 1 else alpha.zeros_like()
        keep = rest2 == 0  # nothing below the diagonal: H = I
        norm = (alpha.square() + rest2.where(keep.logical_not(), 0)).sqrt()
        beta = (-norm).where(alpha >= 0, norm).where(keep.logical_not(), alpha)
        safe_beta = beta.where(keep.logical_not(), 1)
        tau = ((beta - alpha) / safe_beta).where(keep.logical_not(), 0)
        scale = (alpha - beta).where(keep.logical_not(), 1)
        v = (rest / scale.unsqueeze(-1)).pad((1, 0)) + (arange(m - j, device=a.device) == 0).cast(a.dtype)
        tail = s[..., :, 1:]
        if n - j > 1:  # apply H = I - tau v v^T to the columns right of this one
            w = (v.unsqueeze(-1) * tail).sum(-2)
            tail = (tail - outer(tau.unsqueeze(-1) * v, w)).contiguous()
            rows.append(cat([beta.unsqueeze(-1), tail[..., 0, :]], -1).pad((j, 0)))
        else:
            rows.append(beta.unsqueeze(-1).pad((j, 0)))
        vs.append(v.pad((j, 0)))
        taus.append(tau)
        s = tail[..., 1:, :]
    return stack(rows, -2), vs, taus


def _form_q(a: Tensor, vs: list[Tensor], taus: list[Tensor], cols: int) -> Tensor:
    """Q = H_0 H_1 ... H_{k-1} applied to the first `cols` columns of the identity (orgqr)."""
    m = a.shape[-2]
    q = (arange(m, device=a.device).unsqueeze(-1) == arange(cols, device=a.device)).cast(a.dtype)
    q = q.expand(*a.shape[:-2], m, cols)
    for v, tau in zip(reversed(vs), reversed(taus)):
        w = (v.unsqueeze(-1) * q).sum(-2)
        q = (q - outer(tau.unsqueeze(-1) * v, w)).contiguous()
    return q


def qr(A: Tensor, mode: str = "reduced", *, out: Any = None) -> Any:
    """torch.linalg.qr: (Q, R) with Q orthonormal columns and R upper triangular, torch's signs.
    mode 'reduced' (Q m x k, R k x n), 'complete' (Q m x m, R m x n) or 'r' (Q empty, R k x n)."""
    from . import QRResult
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
        r = r.pad((0, 0, 0, m - n))
    return QRResult(_form_q(A, vs, taus, m if mode == "complete" else min(m, n)), r)


__all__ = ["qr"]
