"""Argument checks and small helpers shared by the linalg modules."""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from .. import dtypes
from ..creation import eye
from ..errors import DTypeError, LinAlgError, ShapeError
from ..tensor import Tensor, realize, tensor

# the result types: named tuples with the field names of torch.return_types
QRResult = namedtuple("QRResult", ["Q", "R"])
EighResult = namedtuple("EighResult", ["eigenvalues", "eigenvectors"])
SlogdetResult = namedtuple("SlogdetResult", ["sign", "logabsdet"])
CholeskyExResult = namedtuple("CholeskyExResult", ["L", "info"])
InvExResult = namedtuple("InvExResult", ["inverse", "info"])
LstsqResult = namedtuple("LstsqResult", ["solution", "residuals", "rank", "singular_values"])
LUFactorResult = namedtuple("LUFactorResult", ["LU", "pivots"])
LUResult = namedtuple("LUResult", ["P", "L", "U"])
SolveExResult = namedtuple("SolveExResult", ["result", "info"])
TriangularSolveResult = namedtuple("TriangularSolveResult", ["solution", "cloned_coefficient"])


def check_float(name: str, *ts: Tensor) -> None:
    """torch's linalg takes float32/float64 only, and every operand in one dtype."""
    for t in ts:
        if not isinstance(t, Tensor):
            raise TypeError(f"{name}(): argument must be a Tensor, not {type(t).__name__}")
        if t.dtype not in (dtypes.float32, dtypes.float64):
            raise DTypeError(f"{name}: Expected a floating point tensor as input. Got {t.dtype.name}")
    if len({t.dtype for t in ts}) > 1:
        raise DTypeError(f"{name}: Expected all tensors to have the same dtype, got "
                         f"{', '.join(t.dtype.name for t in ts)}")


def check_square(name: str, a: Tensor, arg: str = "A") -> int:
    """A batch of square matrices (..., n, n); returns n."""
    if a.ndim < 2:
        raise ShapeError(f"{name}: The input tensor {arg} must have at least 2 dimensions.")
    if a.shape[-1] != a.shape[-2]:
        raise ShapeError(f"{name}: {arg} must be batches of square matrices, but they are "
                         f"{a.shape[-2]} by {a.shape[-1]} matrices")
    return a.shape[-1]


def broadcast_batch(name: str, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Broadcast the batch dims of a (..., n, n) and b (..., n, k) against each other."""
    try:
        batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ShapeError(f"{name}: incompatible batch shapes {a.shape} and {b.shape}") from None
    return a.expand(*batch, *a.shape[-2:]), b.expand(*batch, *b.shape[-2:])


def broadcast_shapes(s: tuple, t: tuple) -> tuple:
    """numpy's broadcast of two shapes; ValueError when they do not fit."""
    n = max(len(s), len(t))
    s, t = (1,) * (n - len(s)) + tuple(s), (1,) * (n - len(t)) + tuple(t)
    if any(x != y and 1 not in (x, y) for x, y in zip(s, t)):
        raise ValueError
    return tuple(max(x, y) for x, y in zip(s, t))


def identity_like(a: Tensor, n: int) -> Tensor:
    """An n x n identity in a's dtype and device, expanded over a's batch dims."""
    return eye(n, dtype=a.dtype, device=a.device).expand(*a.shape[:-2], n, n)


def selectors(n: int, like: Tensor, start: int | None) -> list[Tensor]:
    """Step j's masks over n positions, each uploaded as its own buffer: with start=None the one-hot e_j,
    else 1.0 at positions >= j + start. The steps of a factorization read their position only through
    these buffers, so all n steps run the same few compiled kernels (a constant index would make n)."""
    pos = np.arange(n)
    rows = [(pos == j) if start is None else (pos >= j + start) for j in range(n)]
    return [tensor(r.astype(like.dtype.name), dtype=like.dtype, device=like.device) for r in rows]


def pick(t: Tensor, e: Tensor, dim: int) -> Tensor:
    """The slice of t at e's one position along dim (-1: a column, -2: a row), as an exact sum."""
    return (t * (e if dim == -1 else e.unsqueeze(-1))).sum(dim)


def outer(u: Tensor, v: Tensor) -> Tensor:
    """Batched outer product (..., m) x (..., k) -> (..., m, k), one broadcast multiply."""
    return u.unsqueeze(-1) * v.unsqueeze(-2)


def first_index(flags: Tensor) -> Tensor:
    """int32 (..., ): 1 + the position of the first True along the last dim, 0 where there is none
    (LAPACK's `info`)."""
    hit = flags.cast(dtypes.int32)
    if flags.shape[-1] == 0:
        return hit.sum(-1).cast(dtypes.int32)
    return ((hit.argmax(-1) + 1) * hit.amax(-1)).cast(dtypes.int32)


def raise_on_info(info: Tensor, message: str, *with_: Tensor) -> None:
    """Reads `info` back to the host (computing `with_` in the same schedule) and raises LinAlgError
    naming the first failing position: the one sync point of inv, solve and cholesky, which raise
    where torch's CPU kernels do."""
    realize(info, *with_)
    bad = info.numpy().reshape(-1)
    hits = bad[bad != 0]
    if hits.size:
        batch = f"(Batch element {int((bad != 0).argmax())}): " if info.ndim else ""
        raise LinAlgError(batch + message.format(int(hits[0])))


def mT(t: Tensor) -> Tensor:
    """Transpose of the last two dims."""
    return t.transpose(-2, -1)

