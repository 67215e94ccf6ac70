"""torch's top-level spellings of linear algebra that predate torch.linalg (`torch.cholesky(A, upper)`,
`torch.qr(A, some)`, `torch.pinverse(A, rcond)`), on the torch.linalg functions of this package."""
from __future__ import annotations

from typing import Any

from ..ops.autocast import autocast_op
from ..tensor import Tensor
from .householder import qr as _qr
from .leastsq import pinv
from .triangular import cholesky as _cholesky


@autocast_op("cholesky")
def cholesky(input: Tensor, upper: bool = False, *, out: Tensor | None = None) -> Tensor:
    """torch.cholesky: the lower (or upper) Cholesky factor."""
    return _cholesky(input, upper=upper, out=out)


@autocast_op("qr")
def qr(input: Tensor, some: bool = True, *, out: Any = None) -> Any:
    """torch.qr: (Q, R), reduced when `some`, else complete."""
    return _qr(input, "reduced" if some else "complete", out=out)


@autocast_op("pinverse")
def pinverse(input: Tensor, rcond: float = 1e-15) -> Tensor:
    """torch.pinverse: the pseudo-inverse, singular values below rcond * the largest cut."""
    return pinv(input, rtol=rcond)
