"""torch.linalg's product helpers: matmul, vecdot, multi_dot, matrix_power, diagonal, matrix_exp."""
from __future__ import annotations

from typing import Any, Sequence

from ..errors import ShapeError
from ..function import Function
from ..ops.autocast import autocast_op
from ..tensor import Tensor, cat, tensor
from ._common import check_float, check_square, identity_like, mT


def matmul(input: Tensor, other: Tensor, *, out: Any = None) -> Tensor:
    """torch.linalg.matmul: an alias of torch.matmul."""
    if out is not None:
        raise TypeError("matmul: out= is not supported")
    return input.matmul(other)


@autocast_op("vecdot")
def vecdot(x: Tensor, y: Tensor, *, dim: int = -1, out: Any = None) -> Tensor:
    """torch.linalg.vecdot: sum(x * y) over dim, broadcast (real inputs: no conjugation)."""
    if out is not None:
        raise TypeError("vecdot: out= is not supported")
    return (x * y).sum(dim)


@autocast_op("multi_dot")
def multi_dot(tensors: Sequence[Tensor], *, out: Any = None) -> Tensor:
    """torch.linalg.multi_dot: the product of 2-D matrices (the first and last may be 1-D vectors), multiplied
    left to right."""
    if out is not None:
        raise TypeError("multi_dot: out= is not supported")
    ts = list(tensors)
    if len(ts) < 2:
        raise ShapeError(f"multi_dot(): expected at least 2 tensors but got {len(ts)}")
    for i, t in enumerate(ts):
        allowed = (1, 2) if i in (0, len(ts) - 1) else (2,)
        if t.ndim not in allowed:
            raise ShapeError(f"multi_dot(): tensor {i} must be {' or '.join(f'{d}D' for d in allowed)} "
                             f"but got {t.ndim}D")
    result = ts[0]
    for t in ts[1:]:
        result = result.matmul(t)
    return result


def matrix_power(A: Tensor, n: int, *, out: Any = None) -> Tensor:
    """torch.linalg.matrix_power: A^n by repeated squaring; a negative n inverts A first (through linalg.inv,
    so a singular A raises LinAlgError)."""
    if out is not None:
        raise TypeError("matrix_power: out= is not supported")
    check_square("linalg.matrix_power", A)
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"matrix_power(): argument 'n' must be int, not {type(n).__name__}")
    if n < 0:
        from .lu import inv
        A, n = inv(A), -n
    result = None
    base = A
    while n:
        if n & 1:
            result = base if result is None else result @ base
        n >>= 1
        if n:
            base = base @ base
    return identity_like(A, A.shape[-1]) + A * 0 if result is None else result


def diagonal(A: Tensor, *, offset: int = 0, dim1: int = -2, dim2: int = -1) -> Tensor:
    """torch.linalg.diagonal: Tensor.diagonal with the last two dims as defaults."""
    return A.diagonal(offset, dim1, dim2)


# exp by scaling and squaring: A / 2^s has 1-norm <= 1/2, where Taylor's degree-18 remainder is
# below 0.5^19 / 19! ~ 1e-23 relative; s is computed on the device, so all _SQUARINGS products are
# built and each squares only while it is among the first s (norms up to 2^29 are covered).
_TAYLOR_DEGREE = 18
_SQUARINGS = 30


def _expm(a: Tensor) -> Tensor:
    """exp(a) for a (..., n, n) by scaling, Taylor and squaring."""
    from .norms import matrix_norm
    n = a.shape[-1]
    s = (matrix_norm(a, 1, keepdim=True) * 2).log2().ceil().clamp(0, _SQUARINGS)
    x = a * (-s).exp2()
    eye_ = identity_like(a, n)
    # the step constants are uploaded buffers (and each step a buffer of its own), so all steps share
    # compiled kernels
    result = eye_
    for k in range(_TAYLOR_DEGREE, 0, -1):  # Horner: I + x/1 (I + x/2 (I + ...))
        result = (eye_ + (x @ result) * tensor(1 / k, dtype=a.dtype, device=a.device)).contiguous()
    for i in range(_SQUARINGS):
        squares = s > tensor(float(i), dtype=a.dtype, device=a.device)
        result = (result @ result).where(squares, result).contiguous()
    return result


class _MatrixExp(Function):
    """exp(A); gA is the upper right block of exp([[A^T, g], [0, A^T]]), as torch's rule."""

    @staticmethod
    def forward(ctx, a: Tensor) -> Tensor:
        ctx.save_for_backward(a)
        return _expm(a)

    @staticmethod
    def backward(ctx, g: Tensor) -> Tensor:
        (a,) = ctx.saved_tensors
        n = a.shape[-1]
        top = cat([mT(a), g], -1)
        block = cat([top, cat([g.zeros_like(), mT(a)], -1)], -2)
        return _MatrixExp.apply(block)[..., :n, n:]


@autocast_op("matrix_exp")
def matrix_exp(A: Tensor) -> Tensor:
    """torch.linalg.matrix_exp by scaling and squaring with a degree-18 Taylor polynomial (no host read;
    about 50 n x n products; the gradient is a matrix_exp of size 2n)."""
    check_float("linalg.matrix_exp", A)
    if check_square("linalg.matrix_exp", A) == 0:
        return A.clone()
    return _MatrixExp.apply(A)


__all__ = ["diagonal", "matmul", "matrix_exp", "matrix_power", "multi_dot", "vecdot"]
