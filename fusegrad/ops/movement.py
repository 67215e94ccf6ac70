"""Composite movement ops: views built from reshape/permute/expand/pad/shrink/flip.

Everything here is zero-copy: the result is a chain of movement nodes over the source, which
the code generator turns into index arithmetic. Only `cat`, `pad(value != 0)`, `tril`/`triu`
add elementwise selects, and those fuse into whichever kernel reads the result.
"""
from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any, Sequence

from .. import dtypes
from ..errors import DeviceError, IndexOutOfRangeError, ShapeError
from ..graph.ops import Op
from ..graph.shapes import normalize_dim, shape_tuple
from .autocast import autocast_op

if TYPE_CHECKING:
    from ..tensor import Tensor


def _dim(dim: int, ndim: int) -> int:
    return normalize_dim(int(dim), ndim)


class MovementMixin:
    __slots__ = ()

    # ---- axis order -------------------------------------------------------------------
    def transpose(self: "Tensor", dim0: int, dim1: int) -> "Tensor":
        """Swap two dimensions (a view)."""
        order = list(range(self.ndim))
        a, b = _dim(dim0, self.ndim), _dim(dim1, self.ndim)
        if self.ndim:
            order[a], order[b] = order[b], order[a]
        return self.permute(order)

    swapaxes = swapdims = transpose

    def t(self: "Tensor") -> "Tensor":
        """Transpose of a tensor with at most 2 dimensions."""
        if self.ndim > 2:
            raise ShapeError(f"t() expects a tensor with <= 2 dimensions, got shape {self.shape}")
        return self.transpose(0, -1) if self.ndim == 2 else self

    @property
    def T(self: "Tensor") -> "Tensor":
        """All dimensions reversed."""
        return self.permute(tuple(reversed(range(self.ndim))))

    @property
    def mT(self: "Tensor") -> "Tensor":
        """The last two dimensions swapped (batched matrix transpose)."""
        if self.ndim < 2:
            raise ShapeError(f"mT needs at least 2 dimensions, got shape {self.shape}")
        return self.transpose(-2, -1)

    def movedim(self: "Tensor", source: Any, destination: Any) -> "Tensor":
        """Move dimensions `source` to positions `destination`, keeping the others in order."""
        src = (source,) if isinstance(source, int) else tuple(source)
        dst = (destination,) if isinstance(destination, int) else tuple(destination)
        if len(src) != len(dst):
            raise ShapeError(f"movedim: source {src} and destination {dst} must have the same length")
        src = tuple(_dim(d, self.ndim) for d in src)
        dst = tuple(_dim(d, self.ndim) for d in dst)
        if len(set(src)) != len(src) or len(set(dst)) != len(dst):
            raise ShapeError(f"movedim: repeated dimension in source {src} or destination {dst}")
        rest = iter(d for d in range(self.ndim) if d not in src)
        placed = dict(zip(dst, src))
        return self.permute([placed[i] if i in placed else next(rest) for i in range(self.ndim)])

    moveaxis = movedim

    # ---- shape ------------------------------------------------------------------------
    def unsqueeze(self: "Tensor", dim: int) -> "Tensor":
        """Insert a dimension of size 1 at `dim`."""
        d = _dim(dim, self.ndim + 1)
        return self._movement(Op.RESHAPE, self.shape[:d] + (1,) + self.shape[d:])

    def squeeze(self: "Tensor", dim: Any = None) -> "Tensor":
        """Drop size-1 dimensions (all, or those among `dim`; other sizes are left alone)."""
        axes = self._axes(dim)
        return self.reshape(tuple(s for i, s in enumerate(self.shape) if not (i in axes and s == 1)))

    def flatten(self: "Tensor", start_dim: int = 0, end_dim: int = -1) -> "Tensor":
        """Merge dimensions start_dim..end_dim into one."""
        if self.ndim == 0:
            return self.reshape(1)
        s, e = _dim(start_dim, self.ndim), _dim(end_dim, self.ndim)
        if s > e:
            raise ShapeError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} for shape {self.shape}")
        return self._movement(Op.RESHAPE, self.shape[:s] + (math.prod(self.shape[s:e + 1]),) + self.shape[e + 1:])

    def unflatten(self: "Tensor", dim: int, sizes: Sequence[int]) -> "Tensor":
        """Split dimension `dim` into `sizes` (one entry may be -1)."""
        d = _dim(dim, self.ndim)
        sizes = tuple(int(s) for s in sizes)
        if not sizes:
            raise ShapeError("unflatten: sizes must be non-empty")
        if -1 in sizes:
            known = math.prod(s for s in sizes if s != -1)
            if known == 0 or self.shape[d] % known:
                raise ShapeError(f"unflatten: sizes {sizes} do not fit dimension {d} of shape {self.shape}")
            sizes = tuple(self.shape[d] // known if s == -1 else s for s in sizes)
        if math.prod(sizes) != self.shape[d]:
            raise ShapeError(f"unflatten: sizes {sizes} do not multiply to {self.shape[d]} (dimension {d} of "
                             f"shape {self.shape})")
        return self.reshape(self.shape[:d] + sizes + self.shape[d + 1:])

    def view_as(self: "Tensor", other: "Tensor") -> "Tensor":
        return self.reshape(other.shape)

    reshape_as = view_as

    # ---- flips, rolls, repeats ------------------------------------------------------------
    def flip(self: "Tensor", *dims: Any) -> "Tensor":
        """Reverse the order of elements along `dims` (a copy, as torch's: writes to it stay in it)."""
        return self._movement(Op.FLIP, self._axes(shape_tuple(dims)))._as_copy(self)

    def fliplr(self: "Tensor") -> "Tensor":
        if self.ndim < 2:
            raise ShapeError(f"fliplr needs at least 2 dimensions, got shape {self.shape}")
        return self.flip(1)

    def flipud(self: "Tensor") -> "Tensor":
        if self.ndim < 1:
            raise ShapeError("flipud needs at least 1 dimension, got a 0-d tensor")
        return self.flip(0)

    def roll(self: "Tensor", shifts: Any, dims: Any = None) -> "Tensor":
        """Rotate elements along `dims` by `shifts` (the flattened tensor when dims is None)."""
        if dims is None:
            if not isinstance(shifts, int) and len(shifts) != 1:
                raise ShapeError(f"roll: shifts {shifts} needs dims when it has more than one entry")
            shift = shifts if isinstance(shifts, int) else shifts[0]
            return self.flatten().roll(shift, 0).reshape(self.shape)
        shifts = (shifts,) if isinstance(shifts, int) else tuple(shifts)
        dims = (dims,) if isinstance(dims, int) else tuple(dims)
        if len(shifts) != len(dims):
            raise ShapeError(f"roll: shifts {shifts} and dims {dims} must have the same length")
        out = self
        for shift, dim in zip(shifts, dims):
            d = _dim(dim, self.ndim)
            n = out.shape[d] if out.ndim else 1
            if n == 0 or shift % n == 0:
                continue
            # two copies side by side (an expand, no data) and a window into them
            doubled = out.unsqueeze(d).expand(out.shape[:d] + (2,) + out.shape[d:])
            doubled = doubled.reshape(out.shape[:d] + (2 * n,) + out.shape[d + 1:])
            start = n - shift % n
            out = doubled._narrow(d, start, start + n)
        return out._as_copy(self)

    def repeat(self: "Tensor", *sizes: Any) -> "Tensor":
        """Tile the tensor `sizes[i]` times along each dimension (extra sizes add leading dims)."""
        reps = shape_tuple(sizes)
        if len(reps) < self.ndim:
            raise ShapeError(f"repeat: got {len(reps)} repeat counts for a tensor of shape {self.shape}; "
                             f"need at least {self.ndim}")
        if any(r < 0 for r in reps):
            raise ShapeError(f"repeat: counts must be non-negative, got {reps}")
        shape = (1,) * (len(reps) - self.ndim) + self.shape
        interleaved = tuple(v for s in shape for v in (1, s))
        expanded = tuple(v for r, s in zip(reps, shape) for v in (r, s))
        out = self.reshape(interleaved).expand(expanded)
        return out.reshape(tuple(r * s for r, s in zip(reps, shape)))._as_copy(self)

    def tile(self: "Tensor", *dims: Any) -> "Tensor":
        """Like repeat, but fewer counts than dimensions are padded with 1s at the front."""
        reps = shape_tuple(dims)
        return self.repeat((1,) * (self.ndim - len(reps)) + reps)

    # ---- windows ------------------------------------------------------------------------
    def _narrow(self: "Tensor", dim: int, start: int, end: int) -> "Tensor":
        """The view [start, end) of dimension dim (already normalized and checked)."""
        return self._movement(Op.SHRINK, tuple((start, end) if i == dim else (0, s) for i, s in enumerate(self.shape)))

    def narrow(self: "Tensor", dim: int, start: int, length: int) -> "Tensor":
        """The view of `length` elements of `dim` from `start` (negative start counts from the end)."""
        if self.ndim == 0:
            raise IndexError("narrow() cannot be applied to a 0-d tensor")
        d = _dim(dim, self.ndim)
        n = self.shape[d]
        start = int(start) + n if start < 0 else int(start)
        if not 0 <= start <= n or length < 0 or start + length > n:
            raise IndexOutOfRangeError(f"narrow: start {start} with length {length} is outside dimension {d} "
                                       f"of size {n} (shape {self.shape})")
        return self._narrow(d, start, start + length)

    def select(self: "Tensor", dim: int, index: int) -> "Tensor":
        """The slice at `index` of dimension `dim`, which is removed (a view)."""
        d = _dim(dim, self.ndim)
        if self.ndim == 0:
            raise IndexError("select() cannot be applied to a 0-d tensor")
        n = self.shape[d]
        if not -n <= index < n:
            raise IndexOutOfRangeError(f"index {index} is out of bounds for dimension {d} with size {n} "
                                       f"(shape {self.shape})")
        i = index % n
        return self._narrow(d, i, i + 1).reshape(self.shape[:d] + self.shape[d + 1:])

    def _stride(self: "Tensor", dim: int, step: int) -> "Tensor":
        """Every `step`-th element of `dim` from the first: pad to a multiple, fold, keep column 0."""
        n = self.shape[dim]
        if step == 1 or n == 0:
            return self
        k = -(-n // step)
        x = self.pad_zeros(tuple((0, k * step - n) if i == dim else (0, 0) for i in range(self.ndim)))
        x = x.reshape(self.shape[:dim] + (k, step) + self.shape[dim + 1:])
        x = x._narrow(dim + 1, 0, 1)
        return x.reshape(self.shape[:dim] + (k,) + self.shape[dim + 1:])

    def diagonal(self: "Tensor", offset: int = 0, dim1: int = 0, dim2: int = 1) -> "Tensor":
        """The diagonal of dims (dim1, dim2) as a new last dimension (a view, like torch)."""
        d1, d2 = _dim(dim1, self.ndim), _dim(dim2, self.ndim)
        if d1 == d2:
            raise ShapeError(f"diagonal: dim1 and dim2 must differ, both are {d1}")
        x = self.permute([d for d in range(self.ndim) if d not in (d1, d2)] + [d1, d2])
        rows, cols = x.shape[-2:]
        r0, c0 = max(0, -offset), max(0, offset)
        length = max(0, min(rows - r0, cols - c0))
        x = x._narrow(x.ndim - 2, min(r0, rows), min(r0, rows) + length)._narrow(x.ndim - 1, min(c0, cols), cols)
        batch, width = x.shape[:-2], x.shape[-1]
        if length == 0:
            return x._narrow(x.ndim - 1, 0, 0).reshape(batch + (0,))
        # row i of the flattened block, re-folded with one extra column, starts at element (i, i)
        flat = x.reshape(batch + (length * width,)).pad_zeros(((0, 0),) * len(batch) + ((0, length),))
        return flat.reshape(batch + (length, width + 1))._narrow(len(batch) + 1, 0, 1).reshape(batch + (length,))

    def diag(self: "Tensor", diagonal: int = 0) -> "Tensor":
        """1-D: a square matrix with the vector on the `diagonal`-th diagonal; 2-D: that diagonal (a view)."""
        if self.ndim == 2:
            return self.diagonal(diagonal)
        if self.ndim != 1:
            raise ShapeError(f"diag expects a 1-D or 2-D tensor, got shape {self.shape}")
        return self.diag_embed(diagonal)

    def diag_embed(self: "Tensor", offset: int = 0, dim1: int = -2, dim2: int = -1) -> "Tensor":
        """The last dim's entries on the `offset`-th diagonal of new dims (dim1, dim2); zeros elsewhere."""
        from ..creation import arange
        nd = self.ndim + 1
        d1, d2 = _dim(dim1, nd), _dim(dim2, nd)
        if d1 == d2:
            raise ShapeError(f"diag_embed: dim1 and dim2 must differ, both are {d1}")
        m = self.shape[-1] if self.ndim else 1
        x = self.reshape(1) if self.ndim == 0 else self
        size = m + abs(offset)
        # the vector as a column, shifted down to its rows, spread along the columns and masked
        rows = x.unsqueeze(-1).pad_zeros(((0, 0),) * (x.ndim - 1) + ((max(0, -offset), max(0, offset)), (0, 0)))
        grid = rows.expand(rows.shape[:-1] + (size,))
        on = arange(size, device=self.device).reshape(1, size) - arange(size, device=self.device).reshape(size, 1)
        out = grid.where(on == offset, grid._const(0, grid.dtype, ()))
        # batch dims fill the positions other than d1 and d2 in order
        batch = iter(range(nd - 2))
        order = [nd - 2 if i == d1 else nd - 1 if i == d2 else next(batch) for i in range(nd)]
        return out.permute(order)

    def unfold(self: "Tensor", dimension: int, size: int, step: int) -> "Tensor":
        """Windows of `size` elements every `step` along `dimension`, as a new last dim (a view)."""
        x = self.reshape(1) if self.ndim == 0 else self
        d = _dim(dimension, x.ndim)
        n = x.shape[d]
        if size < 0 or size > n:
            raise ShapeError(f"unfold: size {size} is larger than dimension {d} of size {n} (shape {self.shape})")
        if step <= 0:
            raise ShapeError(f"unfold: step must be positive, got {step}")
        last = x.movedim(d, -1)
        batch = last.shape[:-1]
        # size copies of the row, each re-read with one extra column: copy k starts at element k
        copies = last.unsqueeze(-2).expand(batch + (size, n)).reshape(batch + (size * n,))
        shifted = copies.pad_zeros(((0, 0),) * len(batch) + ((0, size),)).reshape(batch + (size, n + 1))
        windows = shifted._narrow(len(batch) + 1, 0, n - size + 1)._stride(len(batch) + 1, step)
        out = windows.transpose(-1, -2)  # (..., count, size)
        out = out.movedim(-2, d)
        return out.reshape(out.shape[1:]) if self.ndim == 0 else out

    # ---- padding ---------------------------------------------------------------------------
    def pad_zeros(self: "Tensor", padding: Sequence[tuple[int, int]]) -> "Tensor":
        """Zero padding, ((before, after), ...) per dimension (negative values crop)."""
        if len(padding) != self.ndim:
            raise ShapeError(f"pad_zeros: {len(padding)} (before, after) pairs for shape {self.shape}")
        crop = tuple((max(0, -lo), s - max(0, -hi)) for (lo, hi), s in zip(padding, self.shape))
        if any(lo > hi for lo, hi in crop):
            raise ShapeError(f"padding {tuple(padding)} crops more than shape {self.shape} holds")
        out = self._movement(Op.SHRINK, crop)
        return out._movement(Op.PAD, tuple((max(0, lo), max(0, hi)) for lo, hi in padding))

    def pad(self: "Tensor", pad: Sequence[int], value: Any = 0.0) -> "Tensor":
        """Constant padding with F.pad's argument order: (left, right, top, bottom, ...) from the last dim."""
        pad = tuple(int(p) for p in pad)
        if len(pad) % 2 or len(pad) // 2 > self.ndim:
            raise ShapeError(f"pad: {pad} must hold (before, after) pairs for at most the {self.ndim} dims "
                             f"of shape {self.shape}")
        pairs = [(0, 0)] * self.ndim
        for i in range(len(pad) // 2):
            pairs[self.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
        out = self.pad_zeros(pairs)
        if value == 0:
            return out._as_copy(self)
        inside = self._const(True, dtypes.bool_, self.shape).pad_zeros(pairs)
        return out.where(inside, out._const(dtypes.checked_scalar(value, self.dtype), self.dtype, ()))

    def shrink(self: "Tensor", bounds: Sequence[tuple[int, int]]) -> "Tensor":
        """The view [start, end) per dimension."""
        bounds = tuple((int(lo), int(hi)) for lo, hi in bounds)
        if len(bounds) != self.ndim or any(not 0 <= lo <= hi <= s for (lo, hi), s in zip(bounds, self.shape)):
            raise ShapeError(f"shrink: bounds {bounds} do not fit shape {self.shape}")
        return self._movement(Op.SHRINK, bounds)

    # ---- triangles ----------------------------------------------------------------------
    def _triangle(self: "Tensor", diagonal: int, lower: bool) -> "Tensor":
        from ..creation import arange
        if self.ndim < 2:
            raise ShapeError(f"tril/triu need at least 2 dimensions, got shape {self.shape}")
        rows, cols = self.shape[-2:]
        offset = arange(cols, device=self.device).reshape(1, cols) - arange(rows, device=self.device).reshape(rows, 1)
        keep = offset <= diagonal if lower else offset >= diagonal
        return self.where(keep, self._const(0, self.dtype, ()))

    def tril(self: "Tensor", diagonal: int = 0) -> "Tensor":
        """Elements on and below the `diagonal`-th diagonal of the last two dims; zeros elsewhere."""
        return self._triangle(diagonal, True)

    def triu(self: "Tensor", diagonal: int = 0) -> "Tensor":
        """Elements on and above the `diagonal`-th diagonal of the last two dims; zeros elsewhere."""
        return self._triangle(diagonal, False)

    # ---- splitting ---------------------------------------------------------------------
    def split(self: "Tensor", split_size_or_sections: Any, dim: int = 0) -> tuple["Tensor", ...]:
        """Views of consecutive pieces: equal pieces of a given size (the last may be smaller), or given sizes."""
        d = _dim(dim, self.ndim)
        if self.ndim == 0:
            raise ShapeError("split: cannot split a 0-d tensor")
        n = self.shape[d]
        if isinstance(split_size_or_sections, int):
            size = split_size_or_sections
            if size < 0 or (size == 0 and n):
                raise ShapeError(f"split: split size {size} is invalid for dimension {d} of size {n}")
            sizes = ([size] * (n // size) + ([n % size] if n % size else [])) if size else []
            sizes = sizes or [0]
        else:
            sizes = [int(s) for s in split_size_or_sections]
            if sum(sizes) != n or any(s < 0 for s in sizes):
                raise ShapeError(f"split: sizes {sizes} must be non-negative and sum to {n} (dimension {d} of "
                                 f"shape {self.shape})")
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        return tuple(self._narrow(d, s, s + k) for s, k in zip(starts, sizes))

    def chunk(self: "Tensor", chunks: int, dim: int = 0) -> tuple["Tensor", ...]:
        """At most `chunks` pieces of equal size (the last may be smaller), as views."""
        if chunks <= 0:
            raise ShapeError(f"chunk: chunks must be positive, got {chunks}")
        d = _dim(dim, self.ndim)
        n = self.shape[d] if self.ndim else 1
        if n == 0:
            return tuple(self for _ in range(chunks))
        return self.split(-(-n // chunks), d)

    def unbind(self: "Tensor", dim: int = 0) -> tuple["Tensor", ...]:
        """Every slice along `dim`, with that dimension removed."""
        if self.ndim == 0:
            raise IndexError("unbind() cannot be applied to a 0-d tensor")
        d = _dim(dim, self.ndim)
        return tuple(self.select(d, i) for i in range(self.shape[d]))


# ---- joining (module level, like torch.cat / torch.stack) -------------------------------

def _check_same_device(tensors: Sequence["Tensor"], what: str) -> None:
    devices = {t.device for t in tensors}
    if len(devices) > 1:
        raise DeviceError(f"{what}: expected all tensors on the same device, got {sorted(devices)}")


@autocast_op("cat")
def cat(tensors: Sequence["Tensor"], dim: int = 0) -> "Tensor":
    """Join tensors along an existing dimension: each is padded into place and selected in (one fused kernel)."""
    from ..tensor import Tensor
    tensors = list(tensors)
    if not tensors:
        raise ShapeError("cat: expected a non-empty list of tensors")
    if not all(isinstance(t, Tensor) for t in tensors):
        raise TypeError(f"cat: expected Tensors, got {[type(t).__name__ for t in tensors]}")
    _check_same_device(tensors, "cat")
    dtype = functools.reduce(dtypes.promote_types, (t.dtype for t in tensors))
    # like torch, 1-D empty tensors are skipped whatever the others' shapes
    parts = [t for t in tensors if t.shape != (0,)] or tensors[:1]
    if any(t.ndim == 0 for t in parts):
        raise ShapeError(f"cat: zero-dimensional tensors cannot be concatenated (shapes {[t.shape for t in tensors]})")
    ref = parts[0]
    d = _dim(dim, ref.ndim)
    for t in parts[1:]:
        if t.ndim != ref.ndim or any(a != b for i, (a, b) in enumerate(zip(t.shape, ref.shape)) if i != d):
            raise ShapeError(f"cat: shapes {[tuple(t.shape) for t in tensors]} must match except in dimension {d}")
    parts = [t.cast(dtype) for t in parts]
    if len(parts) == 1:
        return parts[0]
    total = sum(t.shape[d] for t in parts)
    out: Tensor | None = None
    start = 0
    for t in parts:
        pairs = tuple((start, total - start - t.shape[d]) if i == d else (0, 0) for i in range(t.ndim))
        placed = t.pad_zeros(pairs)
        if out is None:
            out = placed
        else:
            # `where` rather than `+` keeps -0.0 and works for every dtype
            inside = t._const(True, dtypes.bool_, t.shape).pad_zeros(pairs)
            out = placed.where(inside, out)
        start += t.shape[d]
    assert out is not None
    return out


concat = concatenate = cat


@autocast_op("stack")
def stack(tensors: Sequence["Tensor"], dim: int = 0) -> "Tensor":
    """Join equal-shaped tensors along a new dimension."""
    tensors = list(tensors)
    if not tensors:
        raise ShapeError("stack: expected a non-empty list of tensors")
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) > 1:
        raise ShapeError(f"stack: expects each tensor to be equal size, got shapes {[tuple(t.shape) for t in tensors]}")
    d = _dim(dim, tensors[0].ndim + 1)
    return cat([t.unsqueeze(d) for t in tensors], d)


def hstack(tensors: Sequence["Tensor"]) -> "Tensor":
    """Join along dim 1 (dim 0 for 1-D tensors)."""
    tensors = [t.reshape(1) if t.ndim == 0 else t for t in tensors]
    return cat(tensors, 0 if tensors and tensors[0].ndim == 1 else 1)


def vstack(tensors: Sequence["Tensor"]) -> "Tensor":
    """Join along dim 0, treating 0-d and 1-D tensors as rows."""
    return cat([t.reshape(1, -1) if t.ndim < 2 else t for t in tensors], 0)


def meshgrid(*tensors: Any, indexing: str = "ij") -> tuple["Tensor", ...]:
    """Coordinate grids from 1-D tensors, as expanded views ("ij" or "xy" indexing)."""
    ts = list(tensors[0]) if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)) else list(tensors)
    if indexing not in ("ij", "xy"):
        raise ValueError(f"meshgrid: indexing must be 'ij' or 'xy', got {indexing!r}")
    if any(t.ndim > 1 for t in ts):
        raise ShapeError(f"meshgrid: expects 0-d or 1-D tensors, got shapes {[t.shape for t in ts]}")
    sizes = [t.numel() for t in ts]
    if indexing == "xy" and len(ts) >= 2:
        sizes[0], sizes[1] = sizes[1], sizes[0]
    out = []
    for i, t in enumerate(ts):
        axis = (1 - i if i < 2 else i) if indexing == "xy" and len(ts) >= 2 else i
        shape = tuple(s if j == axis else 1 for j, s in enumerate(sizes))
        out.append(t.reshape(shape).expand(tuple(sizes)))
    return tuple(out)


# ---- torch.* spellings of the methods above ------------------------------------------------

def transpose(input: "Tensor", dim0: int, dim1: int) -> "Tensor":
    return input.transpose(dim0, dim1)


def squeeze(input: "Tensor", dim: Any = None) -> "Tensor":
    return input.squeeze(dim)


def unsqueeze(input: "Tensor", dim: int) -> "Tensor":
    return input.unsqueeze(dim)


def flatten(input: "Tensor", start_dim: int = 0, end_dim: int = -1) -> "Tensor":
    return input.flatten(start_dim, end_dim)


def movedim(input: "Tensor", source: Any, destination: Any) -> "Tensor":
    return input.movedim(source, destination)


def flip(input: "Tensor", dims: Any) -> "Tensor":
    return input.flip(dims)


def roll(input: "Tensor", shifts: Any, dims: Any = None) -> "Tensor":
    return input.roll(shifts, dims)


def diagonal(input: "Tensor", offset: int = 0, dim1: int = 0, dim2: int = 1) -> "Tensor":
    return input.diagonal(offset, dim1, dim2)


def diag(input: "Tensor", diagonal: int = 0) -> "Tensor":
    return input.diag(diagonal)


def diag_embed(input: "Tensor", offset: int = 0, dim1: int = -2, dim2: int = -1) -> "Tensor":
    return input.diag_embed(offset, dim1, dim2)


def tril(input: "Tensor", diagonal: int = 0) -> "Tensor":
    return input.tril(diagonal)


def triu(input: "Tensor", diagonal: int = 0) -> "Tensor":
    return input.triu(diagonal)


def narrow(input: "Tensor", dim: int, start: int, length: int) -> "Tensor":
    return input.narrow(dim, start, length)


def split(tensor: "Tensor", split_size_or_sections: Any, dim: int = 0) -> tuple["Tensor", ...]:
    return tensor.split(split_size_or_sections, dim)


def chunk(input: "Tensor", chunks: int, dim: int = 0) -> tuple["Tensor", ...]:
    return input.chunk(chunks, dim)


def unbind(input: "Tensor", dim: int = 0) -> tuple["Tensor", ...]:
    return input.unbind(dim)
