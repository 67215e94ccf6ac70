"""torch.linalg's product helpers: matmul, vecdot, multi_dot, matrix_power, diagonal."""
from __future__ import annotations

from typing import Any, Sequence

from ..errors import ShapeError
from ..tensor import Tensor
from ._common import check_square, identity_like


def matmul(input: Tensor, other: Tensor, *, out: Any = None) -> Tensor:
    """torch.linalg.matmul: an alias of torch.matmul."""
    if out is not None:
        raise TypeError("matmul: out= is not supported")
    return input.matmul(other)


def vecdot(x: Tensor, y: Tensor, *, dim: int = -1, out: Any = None) -> Tensor:
    """torch.linalg.vecdot: sum(x * y) over dim, broadcast (real inputs: no conjugation)."""
    if out is not None:
        raise TypeError("vecdot: out= is not supported")
    return (x * y).sum(dim)


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


__all__ = ["diagonal", "matmul", "matrix_power", "multi_dot", "vecdot"]
