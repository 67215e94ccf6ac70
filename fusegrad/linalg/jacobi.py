"""Symmetric eigendecomposition by parallel cyclic Jacobi rotations, and what rests on it: eigvalsh,
svdvals and the spectral and nuclear matrix norms.

A sweep pairs the n indices in n - 1 rounds of disjoint pairs (round-robin), and each round rotates
every pair at once: A <- J^T A J, V <- V J, with J built from the pairs' cosines and sines through
uploaded one-hot pair matrices (so every round runs the same compiled kernels). A fixed number of
sweeps replaces a convergence test, which would read values back: Jacobi converges quadratically,
after about log2(n) sweeps of slower progress (random symmetric matrices: 6 sweeps leave 1e-13 of
error at n = 16, 8 at n = 64); `_sweeps` adds a margin of two. Each round costs three n x n
products, so a sweep is O(n^4): meant for n up to about 64.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import autograd
from ..creation import arange, eye
from ..errors import ShapeError
from ..function import Function
from ..ops.autocast import autocast_op
from ..tensor import Tensor, tensor
from ._common import EighResult, check_float, check_square, mT



def _sweeps(n: int) -> int:
    return 4 + max(1, math.ceil(math.log2(max(n, 2))))


def _pairings(n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """n - 1 rounds of n/2 disjoint (p, q) pairs (n even) that together pair every two indices once."""
    others = list(range(1, n))
    rounds = []
    for _ in range(n - 1):
        order = [0] + others
        rounds.append((np.array(order[: n // 2]), np.array(order[n // 2:][::-1])))
        others = others[-1:] + others[:-1]
    return rounds


def jacobi(a: Tensor) -> tuple[Tensor, Tensor]:
    """(eigenvalues unsorted, eigenvectors as columns) of the symmetric a (..., n, n)."""
    n = a.shape[-1]
    m = n + n % 2  # an odd size gets a decoupled zero row and column, dropped at the end
    s = a.pad((0, m - n, 0, m - n)) if m != n else a
    s = s.contiguous()
    v = eye(m, dtype=a.dtype, device=a.device).expand(*a.shape[:-2], m, m)
    hot = np.eye(m, dtype=a.dtype.name)
    rounds = [(tensor(hot[p], device=a.device), tensor(hot[q], device=a.device)) for p, q in _pairings(m)]
    one = eye(m, dtype=a.dtype, device=a.device)
    for _ in range(_sweeps(n)):
        for p, q in rounds:  # p, q: (m/2, m) one-hot rows
            sp, sq = p @ s, q @ s
            app, aqq, apq = (sp * p).sum(-1), (sq * q).sum(-1), (sp * q).sum(-1)
            zero = apq == 0
            tau = (aqq - app) / (2 * apq.where(zero.logical_not(), 1))
            t = tau.sign().where(tau != 0, 1) / (tau.abs() + (1 + tau.square()).sqrt())
            t = t.where(zero.logical_not(), 0)
            c = (1 + t.square()).rsqrt()
            sn = t * c
            cm1 = c - 1
            diag = ((cm1.unsqueeze(-1) * p).sum(-2) + (cm1.unsqueeze(-1) * q).sum(-2)).unsqueeze(-1) * one
            off = mT(p) @ (sn.unsqueeze(-1) * q)
            j = one + diag + off - mT(off)
            s = (mT(j) @ s @ j).contiguous()
            v = (v @ j).contiguous()
    w = s.diagonal(0, -2, -1)
    return w[..., :n], v[..., :n, :n]


def _ascending(w: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    """Sort eigenvalues ascending (ties by position) with their vectors, by ranks and a one-hot product."""
    n = w.shape[-1]
    idx = arange(n, device=w.device)
    before = (w.unsqueeze(-2) < w.unsqueeze(-1)) | ((w.unsqueeze(-2) == w.unsqueeze(-1)) & (idx < idx.unsqueeze(-1)))
    rank = before.cast(w.dtype).sum(-1)  # rank[i]: how many come before w[i]
    perm = (rank.unsqueeze(-1) == idx.cast(w.dtype)).cast(w.dtype)  # perm[i, r] = 1 where w[i] goes to r
    return (w.unsqueeze(-1) * perm).sum(-2), v @ perm


class _Eigh(Function):
    """A = V diag(w) V^T; gA = V (diag(gw) + (V^T gV)_skew / (w_j - w_i)) V^T, torch's symmetric rule."""

    @staticmethod
    def forward(ctx, a: Tensor, upper: bool) -> tuple[Tensor, Tensor]:
        low = mT(a.triu()) if upper else a.tril()  # the triangle read; the gradient is symmetric, as torch's
        w, v = _ascending(*jacobi(low + mT(low.tril(-1))))
        ctx.save_for_backward(a, w, v)
        ctx.upper = upper
        return w, v

    @staticmethod
    def backward(ctx, gw: Tensor, gv: Tensor) -> Tensor:
        a, w, v = ctx.saved_tensors
        if autograd.is_grad_enabled():
            w, v = _Eigh.apply(a, ctx.upper)
        n = w.shape[-1]
        vg = mT(v) @ gv
        skew = 0.5 * (vg - mT(vg))
        gap = w.unsqueeze(-2) - w.unsqueeze(-1)  # gap[i, j] = w_j - w_i
        off = eye(n, dtype=w.dtype, device=w.device) == 0
        inner = (skew / gap.where(off, 1)).where(off, 0) + gw.unsqueeze(-1) * eye(n, dtype=w.dtype, device=w.device)
        return v @ inner @ mT(v), None


@autocast_op("linalg_eigh")
def eigh(A: Tensor, UPLO: str = "L", *, out: Any = None) -> Any:
    """torch.linalg.eigh: ascending eigenvalues and orthonormal eigenvectors (columns) of a symmetric A,
    read from its lower (UPLO='L') or upper triangle. Eigenvector signs are arbitrary, as LAPACK's are."""
    if out is not None:
        raise TypeError("eigh: out= is not supported")
    check_float("linalg.eigh", A)
    check_square("linalg.eigh", A)
    if UPLO not in ("L", "U"):
        raise ShapeError(f"Expected UPLO argument to be 'L' or 'U', but got {UPLO}")
    return EighResult(*_Eigh.apply(A, UPLO == "U"))


@autocast_op("linalg_eigvalsh")
def eigvalsh(A: Tensor, UPLO: str = "L", *, out: Any = None) -> Tensor:
    """torch.linalg.eigvalsh: the ascending eigenvalues of a symmetric A."""
    return eigh(A, UPLO, out=out)[0]


@autocast_op("linalg_svdvals")
def svdvals(A: Tensor, *, driver: Any = None, out: Any = None) -> Tensor:
    """torch.linalg.svdvals: descending singular values, as square roots of eigvalsh(A^T A) (or A A^T),
    which squares A's condition number: accurate for well-conditioned A only."""
    if out is not None:
        raise TypeError("svdvals: out= is not supported")
    check_float("linalg.svdvals", A)
    if A.ndim < 2:
        raise ShapeError("linalg.svdvals: The input tensor A must have at least 2 dimensions.")
    gram = mT(A) @ A if A.shape[-2] >= A.shape[-1] else A @ mT(A)
    lam = eigvalsh(gram).flip(-1)
    positive = lam > 0  # rounding can leave a zero singular value's square slightly negative
    return lam.where(positive, 1).sqrt().where(positive, 0)


__all__ = ["eigh", "eigvalsh", "svdvals"]
