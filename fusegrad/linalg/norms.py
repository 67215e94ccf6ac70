"""Vector and matrix norms, cdist and cross: reductions of elementwise ops, one or two fused kernels each."""
from __future__ import annotations

import math
from typing import Any

from .. import dtypes
from ..errors import ShapeError
from ..ops.autocast import autocast_op
from ..tensor import Tensor
from ._common import broadcast_batch, broadcast_shapes, check_float


def _root(total: Tensor, exponent: float) -> Tensor:
    """total ** exponent with a zero gradient where total is 0, as torch's norms have (the root's
    derivative is infinite there; the untaken branch is fed 1 to keep it finite)."""
    nonzero = (total == 0).logical_not()
    safe = total.where(nonzero, 1)
    return (safe.sqrt() if exponent == 0.5 else safe ** exponent).where(nonzero, 0)


def _dims(x: Tensor, dim: Any) -> tuple[int, ...] | None:
    if dim is None:
        return None
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    return tuple(d % x.ndim if x.ndim else 0 for d in dims) if dims else None


@autocast_op("vector_norm")
def vector_norm(x: Tensor, ord: Any = 2, dim: Any = None, keepdim: bool = False, *, dtype: Any = None,
                out: Any = None) -> Tensor:
    """torch.linalg.vector_norm: ord 2, 1, inf, -inf, 0 or any other p, over dim (all elements by default)."""
    if out is not None:
        raise TypeError("vector_norm: out= is not supported")
    if not isinstance(x, Tensor):
        raise TypeError(f"linalg.vector_norm(): argument 'x' must be Tensor, not {type(x).__name__}")
    if dtype is not None:
        x = x.cast(dtypes.to_dtype(dtype))
    check_float("linalg.vector_norm", x)
    if isinstance(ord, (str, bool)) or not isinstance(ord, (int, float)):
        raise TypeError(f"linalg.vector_norm(): argument 'ord' must be a number, not {type(ord).__name__}")
    dims = _dims(x, dim)
    a = x.abs()
    if ord == math.inf:
        return a.amax(dims, keepdim)
    if ord == -math.inf:
        return a.amin(dims, keepdim)
    if ord == 0:
        return (x != 0).cast(x.dtype).sum(dims, keepdim)
    if ord == 1:
        return a.sum(dims, keepdim)
    if ord == 2:
        return _root(x.square().sum(dims, keepdim), 0.5)
    if ord < 0:  # a zero entry makes the sum infinite and the norm 0, as in torch
        return (a ** ord).sum(dims, keepdim) ** (1 / ord)
    nonzero = a > 0  # |x|^p has an infinite (p < 1) or NaN derivative at 0 otherwise
    powered = (a.where(nonzero, 1) ** ord).where(nonzero, 0)
    return _root(powered.sum(dims, keepdim), 1 / ord)


@autocast_op("matrix_norm")
def matrix_norm(A: Tensor, ord: Any = "fro", dim: tuple[int, int] = (-2, -1), keepdim: bool = False, *,
                dtype: Any = None, out: Any = None) -> Tensor:
    """torch.linalg.matrix_norm: ord 'fro', 1, -1, inf, -inf, and 'nuc', 2, -2 from svdvals (see its accuracy)."""
    if out is not None:
        raise TypeError("matrix_norm: out= is not supported")
    if dtype is not None:
        A = A.cast(dtypes.to_dtype(dtype))
    check_float("linalg.matrix_norm", A)
    if A.ndim < 2:
        raise ShapeError("linalg.matrix_norm: The input tensor A must have at least 2 dimensions.")
    d0, d1 = (d % A.ndim for d in dim)
    if len(dim) != 2 or d0 == d1:
        raise ShapeError(f"linalg.matrix_norm: dims must be different. Got ({dim[0]}, {dim[1]})")
    if ord == "fro":
        return vector_norm(A, 2, (d0, d1), keepdim)
    if ord in ("nuc", 2, -2):
        from .jacobi import svdvals
        sv = svdvals(A.movedim((d0, d1), (-2, -1)))
        result = sv.sum(-1) if ord == "nuc" else sv.amax(-1) if ord == 2 else sv.amin(-1)
        return result.unsqueeze(-1).unsqueeze(-1).movedim((-2, -1), (d0, d1)) if keepdim else result
    if ord not in (1, -1, math.inf, -math.inf):
        raise ShapeError(f"linalg.matrix_norm: Order {ord} not supported.")
    inner, outer = (d0, d1) if ord in (1, -1) else (d1, d0)  # 1: max column sum, inf: max row sum
    sums = A.abs().sum(inner, keepdim=True)
    result = sums.amax(outer, keepdim=True) if ord > 0 else sums.amin(outer, keepdim=True)
    return result if keepdim else result.squeeze((d0, d1))


def norm(A: Tensor, ord: Any = None, dim: Any = None, keepdim: bool = False, *, dtype: Any = None,
         out: Any = None) -> Tensor:
    """torch.linalg.norm: a vector norm over one dim (or all, when ord is None), a matrix norm over two."""
    if out is not None:
        raise TypeError("norm: out= is not supported")
    if dim is not None:
        dims = (dim,) if isinstance(dim, int) else tuple(dim)
        if len(dims) == 2:
            return matrix_norm(A, "fro" if ord is None else ord, dims, keepdim, dtype=dtype)
        if len(dims) != 1:
            raise ShapeError(f"linalg.norm: If dim is specified, it must be of length 1 or 2. Got {list(dims)}")
        return vector_norm(A, 2 if ord is None else ord, dims, keepdim, dtype=dtype)
    if ord is None:
        return vector_norm(A, 2, None, keepdim, dtype=dtype)
    if A.ndim == 2:
        return matrix_norm(A, ord, (-2, -1), keepdim, dtype=dtype)
    if A.ndim == 1:
        return vector_norm(A, ord, None, keepdim, dtype=dtype)
    raise ShapeError(f"linalg.norm: If dim is not specified but ord is, the input must be 1D or 2D. Got {A.ndim}D.")


@autocast_op("linalg_cond")
def cond(A: Tensor, p: Any = None, *, out: Any = None) -> Tensor:
    """torch.linalg.cond: sigma_max / sigma_min (p None, 2; -2 the inverse) from svdvals, else
    norm(A, p) * norm(A^{-1}, p) for square A (inf for an exactly singular A; no host read)."""
    from .jacobi import svdvals
    from .lu import inv_ex
    if out is not None:
        raise TypeError("cond: out= is not supported")
    check_float("linalg.cond", A)
    if A.ndim < 2:
        raise ShapeError("linalg.cond: The input tensor A must have at least 2 dimensions.")
    if p in (None, 2, -2):
        sv = svdvals(A)
        ratio = sv[..., 0] / sv[..., -1]
        return ratio if p != -2 else 1 / ratio
    if A.shape[-1] != A.shape[-2]:
        raise ShapeError(f"linalg.cond(ord={p}): A must be batches of square matrices, but they are "
                         f"{A.shape[-2]} by {A.shape[-1]} matrices")
    inverse, info = inv_ex(A)
    result = matrix_norm(A, p) * matrix_norm(inverse, p)
    return result.where(info == 0, math.inf)


@autocast_op("cdist")
def cdist(x1: Tensor, x2: Tensor, p: float = 2.0, compute_mode: str = "use_mm_for_euclid_dist_if_necessary") -> Tensor:
    """torch.cdist: p-norm distances between the rows of x1 (..., P, M) and x2 (..., R, M) -> (..., P, R).
    Broadcasts the (..., P, R, M) differences (memory P*R*M per batch) for every p, also p = 2."""
    if not isinstance(x1, Tensor) or not isinstance(x2, Tensor):
        raise TypeError("cdist(): arguments x1 and x2 must be Tensors")
    for name, t in (("X1", x1), ("X2", x2)):
        if t.ndim < 2:
            raise ShapeError(f"cdist only supports at least 2D tensors, {name} got: {t.ndim}D")
    check_float("cdist", x1, x2)
    if x1.shape[-1] != x2.shape[-1]:
        raise ShapeError(f"X1 and X2 must have the same number of columns. X1: {x1.shape[-1]} X2: {x2.shape[-1]}")
    if p < 0:
        raise ShapeError("cdist only supports non-negative p values")
    a, b = broadcast_batch("cdist", x1, x2)
    return vector_norm(a.unsqueeze(-2) - b.unsqueeze(-3), p, -1)


@autocast_op("linalg_cross")
def cross(input: Tensor, other: Tensor, *, dim: int = -1, out: Any = None) -> Tensor:
    """torch.linalg.cross: the cross product of 3-vectors along dim (broadcast)."""
    if out is not None:
        raise TypeError("cross: out= is not supported")
    check_float("linalg.cross", input, other)
    if input.ndim != other.ndim:
        raise ShapeError(f"linalg.cross: inputs must have the same number of dimensions. Got {input.ndim} and "
                         f"{other.ndim}")
    if input.ndim == 0 or other.ndim == 0 or input.shape[dim] != 3 or other.shape[dim] != 3:
        raise ShapeError(f"linalg.cross: inputs dimension {dim} must have length 3. Got {input.shape[dim]} and "
                         f"{other.shape[dim]}")
    try:
        shape = broadcast_shapes(tuple(input.shape), tuple(other.shape))
    except ValueError:
        raise ShapeError(f"linalg.cross: shapes {input.shape} and {other.shape} do not broadcast") from None
    input, other = input.expand(*shape), other.expand(*shape)
    # c_i = a_{i+1} b_{i+2} - a_{i+2} b_{i+1}, indices mod 3: roll(-1) brings entry i+1 to position i
    return input.roll(-1, dim) * other.roll(-2, dim) - input.roll(-2, dim) * other.roll(-1, dim)


@autocast_op("cross")
def torch_cross(input: Tensor, other: Tensor, dim: int | None = None, *, out: Any = None) -> Tensor:
    """torch.cross: linalg.cross along dim, or (deprecated default) the first dim of size 3."""
    if dim is None:
        dim = next((d for d, s in enumerate(input.shape) if s == 3), -1)
    return cross(input, other, dim=dim, out=out)


__all__ = ["cdist", "cond", "cross", "matrix_norm", "norm", "vector_norm"]
