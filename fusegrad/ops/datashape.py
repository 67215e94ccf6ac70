"""Ops whose output shape depends on the input's values: nonzero, argwhere, unique,
unique_consecutive, bincount, repeat_interleave with a tensor of repeats.

Each one is a sync point: it realizes its input and reads it on the host to find the output's
shape, and computes the (integer) positions there. Values the result holds are selected from the
input on the device where a gradient can flow (repeat_interleave); unique's values carry none in
torch either, so they are uploaded with the positions.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .. import dtypes
from ..errors import DTypeError, ShapeError
from ..graph.shapes import normalize_dim

if TYPE_CHECKING:
    from ..tensor import Tensor


def _upload(x: "Tensor", arr: np.ndarray, dtype: Any = dtypes.int64) -> "Tensor":
    from ..tensor import tensor
    return tensor(np.ascontiguousarray(arr), dtype=dtype, device=x.device)


def _unique_result(x: "Tensor", values: np.ndarray, inverse: np.ndarray, counts: np.ndarray,
                   return_inverse: bool, return_counts: bool) -> Any:
    out = _upload(x, values, x.dtype)
    if not return_inverse and not return_counts:
        return out
    extra = [_upload(x, inverse)] if return_inverse else []
    extra += [_upload(x, counts)] if return_counts else []
    return (out, *extra)


def _runs(arr: np.ndarray) -> np.ndarray:
    """bool per slice of axis 0 (after the first): it differs from the previous one."""
    flat = arr.reshape(arr.shape[0], -1)
    return (flat[1:] != flat[:-1]).any(axis=1) if flat.shape[1] else np.zeros(len(flat) - 1, dtype=bool)


class DataShapeMixin:
    __slots__ = ()

    def nonzero(self: "Tensor", *, as_tuple: bool = False) -> Any:
        """int64 (count, ndim) positions of the nonzero elements (a sync point); as_tuple: one 1-D
        tensor per dim."""
        arr = self.numpy()
        if as_tuple:
            return tuple(_upload(self, p) for p in np.nonzero(arr.reshape(-1) if arr.ndim == 0 else arr))
        if arr.ndim == 0:
            return _upload(self, np.zeros((int(arr != 0), 0), dtype=np.int64))
        return _upload(self, np.argwhere(arr).astype(np.int64).reshape(-1, arr.ndim))

    def argwhere(self: "Tensor") -> "Tensor":
        """Positions of the nonzero elements, as nonzero() (a sync point)."""
        return self.nonzero()

    def unique(self: "Tensor", sorted: bool = True, return_inverse: bool = False, return_counts: bool = False,
               dim: int | None = None) -> Any:
        """The distinct values in ascending order (a sync point; each NaN counts as distinct), with
        optionally the inverse indices and the counts; with dim, the distinct slices along dim."""
        arr = self.numpy()
        if dim is None:
            values, inverse, counts = np.unique(arr.reshape(-1), return_inverse=True, return_counts=True,
                                                equal_nan=False)
            return _unique_result(self, values, inverse.reshape(arr.shape), counts, return_inverse, return_counts)
        d = normalize_dim(dim, self.ndim)
        if arr.shape[d] == 0:
            empty = np.zeros(0, dtype=np.int64)
            return _unique_result(self, arr, empty, empty, return_inverse, return_counts)
        values, inverse, counts = np.unique(arr, return_inverse=True, return_counts=True, axis=d)
        return _unique_result(self, values, inverse.reshape(-1), counts, return_inverse, return_counts)

    def unique_consecutive(self: "Tensor", return_inverse: bool = False, return_counts: bool = False,
                           dim: int | None = None) -> Any:
        """Collapse runs of equal consecutive values (or slices along dim); a sync point."""
        arr = self.numpy()
        d = None if dim is None else normalize_dim(dim, self.ndim)
        moved = arr.reshape(-1) if d is None else np.moveaxis(arr, d, 0)
        if moved.shape[0] == 0:
            empty = np.zeros(0, dtype=np.int64)
            return _unique_result(self, arr, empty.reshape(arr.shape) if d is None else empty, empty,
                                  return_inverse, return_counts)
        new = np.concatenate([[True], _runs(moved)])
        starts = np.flatnonzero(new)
        counts = np.diff(np.append(starts, moved.shape[0]))
        inverse = np.cumsum(new) - 1
        values = moved[starts] if d is None else np.moveaxis(moved[starts], 0, d)
        return _unique_result(self, values, inverse.reshape(arr.shape) if d is None else inverse, counts,
                              return_inverse, return_counts)

    def bincount(self: "Tensor", weights: Any = None, minlength: int = 0) -> "Tensor":
        """Count of each value of a 1-D non-negative integer tensor (weighted sums with weights);
        the length, max + 1, is read on the host (a sync point)."""
        if not self.dtype.is_int:
            raise DTypeError(f"bincount() needs an integer tensor, got {self.dtype.name}")
        if self.ndim != 1:
            raise ShapeError(f"bincount() needs a 1-D tensor, got shape {self.shape}")
        if minlength < 0:
            raise ValueError(f"bincount(): minlength must be non-negative, got {minlength}")
        arr = self.numpy()
        if arr.size and arr.min() < 0:
            raise ValueError("bincount(): the input must hold non-negative integers")
        size = max(int(arr.max()) + 1 if arr.size else 0, minlength)
        from .sorting import _iota
        hit = self.unsqueeze(0) == _iota(size, self, 0, 2)  # (size, n)
        if weights is None:
            return hit.sum(1)
        w = self._operand(weights)
        if w.shape != self.shape:
            raise ShapeError(f"bincount(): weights of shape {w.shape} must match the input's shape {self.shape}")
        w = w if w.dtype.is_floating_point else w.cast(dtypes.float64)
        return w.unsqueeze(0).where(hit, 0).sum(1).cast(w.dtype)

    def repeat_interleave(self: "Tensor", repeats: Any, dim: int | None = None, *,
                          output_size: int | None = None) -> "Tensor":
        """Each element (or slice along dim) repeated; an int repeat is a view, a tensor of repeats is
        read on the host (a sync point) and selects slices by index."""
        from ..tensor import Tensor
        x = self.reshape(-1) if dim is None else self
        d = 0 if dim is None else normalize_dim(dim, x.ndim)
        if x.ndim == 0:
            x = x.reshape(1)
        n = x.shape[d]
        if isinstance(repeats, Tensor) and repeats.numel() == 1 and repeats.ndim <= 1:
            repeats = int(repeats.item())
        if isinstance(repeats, int):
            if repeats < 0:
                raise ValueError(f"repeat_interleave(): repeats must be non-negative, got {repeats}")
            wide = x.unsqueeze(d + 1).expand(x.shape[:d + 1] + (repeats,) + x.shape[d + 1:])
            return wide.reshape(x.shape[:d] + (n * repeats,) + x.shape[d + 1:])
        reps = np.asarray(repeats.numpy() if isinstance(repeats, Tensor) else repeats)
        if reps.ndim != 1 or reps.shape[0] != n:
            raise ShapeError(f"repeat_interleave(): repeats of shape {reps.shape} must be 1-D with {n} entries "
                             f"(the size of dimension {d})")
        if reps.dtype.kind not in "iu":
            raise DTypeError(f"repeat_interleave(): repeats must be integers, got {reps.dtype}")
        if (reps < 0).any():
            raise ValueError("repeat_interleave(): repeats must be non-negative")
        index = np.repeat(np.arange(n, dtype=np.int64), reps)
        if output_size is not None and output_size != index.size:
            raise ShapeError(f"repeat_interleave(): output_size {output_size} != {index.size}, the repeats' sum")
        from .index import _Advanced, _take
        return _take(_Advanced(x, d, _upload(x, index), list(range(x.ndim)), (n,)))


def nonzero(input: "Tensor", *, as_tuple: bool = False) -> Any:
    return input.nonzero(as_tuple=as_tuple)


def argwhere(input: "Tensor") -> "Tensor":
    return input.argwhere()


def unique(input: "Tensor", sorted: bool = True, return_inverse: bool = False, return_counts: bool = False,
           dim: int | None = None) -> Any:
    return input.unique(sorted, return_inverse, return_counts, dim)


def unique_consecutive(input: "Tensor", return_inverse: bool = False, return_counts: bool = False,
                       dim: int | None = None) -> Any:
    return input.unique_consecutive(return_inverse, return_counts, dim)


def bincount(input: "Tensor", weights: Any = None, minlength: int = 0) -> "Tensor":
    return input.bincount(weights, minlength)


def repeat_interleave(input: "Tensor", repeats: Any = None, dim: int | None = None, *,
                      output_size: int | None = None) -> "Tensor":
    """torch.repeat_interleave; with one tensor argument, its positions repeated by its values."""
    if repeats is None:
        from ..creation import arange
        return arange(input.numel(), device=input.device).repeat_interleave(input, 0, output_size=output_size)
    return input.repeat_interleave(repeats, dim, output_size=output_size)


def masked_select(input: "Tensor", mask: Any) -> "Tensor":
    return input.masked_select(mask)
