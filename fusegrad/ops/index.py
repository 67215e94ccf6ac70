"""Indexing: basic slicing as views, integer-tensor/boolean indexing, gather/scatter.

Basic indices (ints, slices, None, Ellipsis) are views: SHRINK/FLIP/PAD/RESHAPE chains, no kernel.
Advanced indices select by a one-hot comparison, `where(index == arange(n), x, 0).sum(axis)`:
exact for every dtype (only one term is ever non-zero), NaN-safe (`where`, not multiply), and its
gradient is the matching scatter-add for free. Writes (`x[i] = v`, `scatter`) build
`where(hit, value, x)`; when several writes hit one element the last one in index order wins.

Index checks: an index already in host memory is checked there before the op is built, so an
out-of-range entry raises `IndexOutOfRangeError` at the call, as torch does on the CPU; a lazy index,
one on a GPU, or one inside `fg.jit` is checked by the kernel that computes it (`device_check`), and
the first bad entry raises at the next synchronization, naming the op, the value and its position.
A boolean mask used to read is realized to find its True positions (a sync point), because the
result's shape depends on them. `x[mask] = scalar` needs no sync.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import dtypes
from ..engine import capture
from ..engine.realize import is_view_of_buffer
from ..errors import DTypeError, IndexOutOfRangeError, ShapeError
from ..graph import node as G
from ..graph.shapes import broadcast_shape
from ..runtime import device_errors, registry
from .autocast import autocast_op

if TYPE_CHECKING:
    from ..tensor import Tensor


# ---- one-hot building blocks ----------------------------------------------------------------

def _eq_arange(idx: "Tensor", n: int, axis: int, shape: tuple[int, ...]) -> "Tensor":
    """idx (size 1 at `axis`) == [0, n) laid along `axis`: a one-hot mask of `shape`.

    Both sides are broadcast before comparing, so the mask is computed inside the kernel that
    reads it instead of being materialized and then broadcast."""
    from ..creation import arange
    ar = arange(n, device=idx.device).reshape(tuple(n if i == axis else 1 for i in range(idx.ndim)))
    return idx.broadcast_to(shape) == ar.broadcast_to(shape)


def _pick(values: "Tensor", mask: "Tensor", axis: int) -> "Tensor":
    """Sum over `axis` of the masked values, in the values' dtype."""
    out = values.where(mask, values._const(0, values.dtype, ())).sum(axis)
    return out if out.dtype is values.dtype else out.cast(values.dtype)


def _last_write(eq: "Tensor", src: "Tensor", axis: int) -> tuple["Tensor", "Tensor"]:
    """For writes src[m] -> target n where eq[m, n] (m along `axis`, n after it): which targets are
    hit, and the value of the last write to each (later m wins, like torch's CPU kernels)."""
    from ..creation import arange
    m = eq.shape[axis]
    ar = arange(m, device=eq.device).reshape(tuple(m if i == axis else 1 for i in range(eq.ndim)))
    last = ar.where(eq, -1).amax(axis, keepdim=True)
    return last.squeeze(axis) >= 0, _pick(src, eq & (ar == last), axis)


def _place(t: "Tensor", shape: tuple[int, ...], fill: Any = 0) -> "Tensor":
    """t at the origin of a tensor of `shape`, `fill` elsewhere."""
    return t.pad([p for s, n in zip(reversed(t.shape), reversed(shape)) for p in (0, n - s)], value=fill)


def _index_tensor(x: "Tensor", index: Any, what: str) -> "Tensor":
    """An integer index as a Tensor on x's device."""
    from ..tensor import Tensor, tensor
    if not isinstance(index, Tensor):
        arr = np.asarray(index)
        index = tensor(arr.astype(np.int64) if arr.size == 0 or arr.dtype.kind in "iu" else arr, device=x.device)
    index = x._operand(index)
    if not index.dtype.is_int:
        raise DTypeError(f"{what}: index must be an integer tensor, got {index.dtype.name}")
    return index


def _checked(index: "Tensor", n: int, dim: int, negative: bool, what: str) -> "Tensor":
    """The index, every entry of it checked to be in range; negative ones wrap when allowed.

    An index already in host memory is checked there, raising at the call; any other (lazy, on a
    GPU, or inside fg.jit, where replays bring other values) is checked by the kernel that reads it,
    which reports the first bad entry through the device's error word (runtime/device_errors.py)."""
    low = -n if negative else 0
    if index._is_host_value():
        arr = index.numpy()
        if not arr.size:
            return index
        lo, hi = int(arr.min()), int(arr.max())
        if lo < low or hi >= n:
            bad = lo if lo < low else hi
            raise IndexOutOfRangeError(f"{what}: index {bad} is out of bounds for dimension {dim} with size {n}")
        return index.where(index >= 0, index + n) if lo < 0 else index
    if not index.numel():
        return index
    index = index._device_check((index >= low) & (index < n),
                         f"{what}: index {{value}} is out of bounds for dimension {dim} with size {n} "
                         "(at position {position} of the index)")
    return index.where(index >= 0, index + n) if negative else index


# ---- parsing an index ------------------------------------------------------------------------

def _items(x: "Tensor", key: Any) -> list[Any]:
    """The index as a list of None, Ellipsis, bool, int, slice and Tensor entries."""
    from ..tensor import Tensor, tensor
    out: list[Any] = []
    for k in key if isinstance(key, tuple) or _list_as_tuple(key) else (key,):
        if isinstance(k, (np.bool_, np.integer)):
            k = k.item()
        if isinstance(k, (list, tuple, np.ndarray)):  # a sequence inside the key is an index tensor
            arr = np.asarray(k)
            if arr.dtype.kind not in "biu" and arr.size:
                raise DTypeError(f"tensors used as indices must be integer or bool, got numpy dtype {arr.dtype}")
            k = tensor(arr if arr.dtype.kind in "biu" else arr.astype(np.int64), device=x.device)
        if isinstance(k, Tensor):
            k = x._operand(k)
            if k.dtype.is_floating_point:
                raise DTypeError(f"tensors used as indices must be integer or bool tensors, got {k.dtype.name}")
            if k.ndim == 0:  # like torch, a 0-d index tensor acts as a Python int or bool (a sync point)
                k = k.item()
        elif k is not None and k is not Ellipsis and not isinstance(k, (bool, int, slice)):
            raise TypeError(f"unsupported index type {type(k).__name__}")
        out.append(k)
    return out


def _list_as_tuple(key: Any) -> bool:
    """torch's (and old numpy's) rule: a list key holding a slice, ..., None, a sequence or a tensor (and
    shorter than 32) is a tuple of indices (`x[[[0, 1], [1, 2]]]` is `x[[0, 1], [1, 2]]`); a list of
    numbers is one index tensor."""
    if not isinstance(key, list) or len(key) >= 32:
        return False
    return any(k is None or k is Ellipsis or isinstance(k, (slice, list, tuple)) or hasattr(k, "_node") for k in key)


def _consumes(k: Any) -> int:
    if k is None or k is Ellipsis or isinstance(k, bool):
        return 0
    if hasattr(k, "_node") and k.dtype is dtypes.bool_:
        return k.ndim
    return 1


@dataclass
class _Basic:
    """x viewed through the basic part of an index."""

    view: "Tensor"
    adv: list[tuple[int, "Tensor"]]  # (dim of view, in-range non-negative int index)
    places: list[tuple[int, int, int]]  # per dim of x: (first index, count, step) it keeps


def _basic(x: "Tensor", items: list[Any]) -> _Basic:
    if sum(k is Ellipsis for k in items) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    used = sum(_consumes(k) for k in items)
    if used > x.ndim:
        raise IndexError(f"too many indices for tensor of dimension {x.ndim} (shape {x.shape})")
    fill = [slice(None)] * (x.ndim - used)
    items = [f for k in items for f in (fill if k is Ellipsis else [k])]
    view, d, sd = x, 0, 0
    adv: list[tuple[int, "Tensor"]] = []
    places: list[tuple[int, int, int]] = []
    for k in items:
        if k is None or isinstance(k, bool):
            view = view.unsqueeze(d)
            if k is False:  # torch: x[False] selects nothing along a new dim
                view = view._narrow(d, 0, 0)
            d += 1
        elif isinstance(k, int):
            n = x.shape[sd]
            if not -n <= k < n:
                raise IndexOutOfRangeError(f"index {k} is out of bounds for dimension {sd} with size {n}")
            view = view.select(d, k)
            places.append((k % n, 1, 1))
            sd += 1
        elif isinstance(k, slice):
            n = x.shape[sd]
            start, stop, step = k.indices(n)
            count = len(range(start, stop, step))
            view = _slice(view, d, start, count, step)
            places.append((start, count, step))
            d, sd = d + 1, sd + 1
        elif k.dtype is dtypes.bool_:
            if k.shape != x.shape[sd:sd + k.ndim]:
                raise IndexOutOfRangeError(f"the shape of the mask {k.shape} at index {sd} does not match the shape "
                                           f"{x.shape[sd:sd + k.ndim]} of the indexed tensor of shape {x.shape}")
            from ..tensor import tensor
            positions = np.nonzero(k.numpy())  # sync point: the result's shape depends on the mask's values
            for j, pos in enumerate(positions):
                adv.append((d + j, tensor(pos.astype(np.int64), device=x.device)))
                places.append((0, x.shape[sd + j], 1))
            d, sd = d + k.ndim, sd + k.ndim
        else:
            n = x.shape[sd]
            adv.append((d, _checked(k, n, sd, True, "indexing")))
            places.append((0, n, 1))
            d, sd = d + 1, sd + 1
    while sd < x.ndim:
        places.append((0, x.shape[sd], 1))
        sd += 1
    return _Basic(view, adv, places)


def _slice(x: "Tensor", d: int, start: int, count: int, step: int) -> "Tensor":
    """Elements start, start + step, ... (count of them) of dim d; a negative step flips first."""
    n = x.shape[d]
    if count == 0:
        return x._narrow(d, 0, 0)
    if step < 0:
        x, start, step = x.flip(d), n - 1 - start, -step
    return x._narrow(d, start, start + (count - 1) * step + 1)._stride(d, step)


@dataclass
class _Advanced:
    """The view with its advanced dims moved together at `axis` and merged into one of size n."""

    merged: "Tensor"
    axis: int
    index: "Tensor"  # linear index into the merged dim, shape `batch`
    order: list[int]
    sizes: tuple[int, ...]

    @property
    def result_shape(self) -> tuple[int, ...]:
        shape = self.merged.shape
        return shape[:self.axis] + tuple(self.index.shape) + shape[self.axis + 1:]


def _advanced(view: "Tensor", adv: list[tuple[int, "Tensor"]]) -> _Advanced:
    dims = [d for d, _ in adv]
    batch = broadcast_shape(*(t.shape for _, t in adv))
    # torch's rule: adjacent advanced indices keep their place, separated ones go first
    axis = dims[0] if dims == list(range(dims[0], dims[0] + len(dims))) else 0
    others = [i for i in range(view.ndim) if i not in dims]
    order = others[:axis] + dims + others[axis:]
    sizes = tuple(view.shape[d] for d in dims)
    moved = view.permute(order)
    merged = moved.reshape(moved.shape[:axis] + (math.prod(sizes),) + moved.shape[axis + len(dims):])
    linear = None
    for j, (_, t) in enumerate(adv):
        stride = math.prod(sizes[j + 1:])
        term = t if stride == 1 else t.cast(dtypes.int64) * stride
        linear = term if linear is None else linear + term
    assert linear is not None
    return _Advanced(merged, axis, linear.broadcast_to(batch), order, sizes)


def _take(a: _Advanced) -> "Tensor":
    x, axis, idx = a.merged, a.axis, a.index
    nb = idx.ndim
    xe = x.reshape(x.shape[:axis] + (1,) * nb + x.shape[axis:])
    ie = idx.reshape((1,) * axis + idx.shape + (1,) * (x.ndim - axis))
    shape = x.shape[:axis] + idx.shape + x.shape[axis:]
    return _pick(xe, _eq_arange(ie, x.shape[axis], axis + nb, shape), axis + nb)


def _put(a: _Advanced, value: "Tensor") -> "Tensor":
    """The view with `value` (shaped like the gather result) written at the indexed positions."""
    x, axis = a.merged, a.axis
    pre, post = x.shape[:axis], x.shape[axis + 1:]
    m = a.index.numel()
    src = value.reshape(pre + (m, 1) + post)
    eq = _eq_arange(a.index.reshape((1,) * axis + (m, 1) + (1,) * len(post)), x.shape[axis], axis + 1,
                    pre + (m, x.shape[axis]) + post)
    hit, val = _last_write(eq, src, axis)
    new = val.where(hit, x).reshape(pre + a.sizes + post)
    inverse = [0] * len(a.order)
    for i, o in enumerate(a.order):
        inverse[o] = i
    return new.permute(inverse)


def _spread(t: "Tensor", dim: int, first: int, count: int, step: int, n: int) -> "Tensor":
    """Put dim's `count` entries at first, first + step, ... of a zero-filled dim of size n."""
    if step > 1 and count > 1:
        shape = t.shape
        t = t.unsqueeze(dim + 1).pad_zeros(tuple((0, step - 1) if i == dim + 1 else (0, 0) for i in range(t.ndim + 1)))
        t = t.reshape(shape[:dim] + (count * step,) + shape[dim + 1:])._narrow(dim, 0, (count - 1) * step + 1)
    span = (count - 1) * step + 1
    return t.pad_zeros(tuple((first, n - first - span) if i == dim else (0, 0) for i in range(t.ndim)))


def _write_back(x: "Tensor", content: "Tensor", places: list[tuple[int, int, int]]) -> "Tensor":
    """x with the basic-indexed region replaced by `content` (shaped like the view)."""
    counts = tuple(c for _, c, _ in places)
    if all(first == 0 and c == n and step == 1 for (first, c, step), n in zip(places, x.shape)):
        return content.reshape(x.shape)
    c, mask = content.reshape(counts), x._const(True, dtypes.bool_, counts)
    for i, (first, count, step) in enumerate(places):
        if step < 0:
            c, mask = c.flip(i), mask.flip(i)
            first, step = first + (count - 1) * step, -step
        c = _spread(c, i, first, count, step, x.shape[i])
        mask = _spread(mask, i, first, count, step, x.shape[i])
    return c.where(mask, x)


def _value(x: "Tensor", value: Any, shape: tuple[int, ...]) -> "Tensor":
    """The assigned value in x's dtype, broadcast to the indexed region's shape."""
    if isinstance(value, (bool, int, float)):
        v = x._const(dtypes.checked_scalar(value, x.dtype, half_range=False), x.dtype, ())
    else:
        v = x._operand(value).cast(x.dtype)
    while v.ndim > len(shape) and v.shape[0] == 1:
        v = v.reshape(v.shape[1:])
    try:
        return v.broadcast_to(shape)
    except ShapeError:
        raise ShapeError(f"shape mismatch: value of shape {v.shape} cannot be broadcast to the indexing "
                         f"result of shape {shape}") from None


_error_words: dict[str, "G.Node"] = {}  # one graph leaf per device for its error word


class IndexMixin:
    __slots__ = ()

    def _is_host_value(self: "Tensor") -> bool:
        """Computed (or a view of a computed buffer), in host memory, and outside fg.jit: reading it
        costs no synchronization and freezes no value into a replay, so checks of its data can run on
        the host at the call."""
        return is_view_of_buffer(self._node) and registry.get(self.device).host_memory and not capture.current()

    def _device_check(self: "Tensor", ok: "Tensor", message: str,
                      error: type[Exception] = IndexOutOfRangeError) -> "Tensor":
        """self, checked where it is computed: the first element where `ok` is False raises
        error(message) at the next synchronization. `message` may name `{value}` (integers only) and
        `{position}` (the element's flat position in self)."""
        word = _error_words.get(self.device)
        if word is None:
            word = _error_words[self.device] = G.buffer_node(device_errors.error_word(self.device), (4,),
                                                             dtypes.int64, self.device)
        ok = ok.broadcast_to(self.shape)
        return type(self)._from_node(G.check(self._node, ok._node, word, device_errors.message_code(message, error)))

    def __getitem__(self: "Tensor", key: Any) -> "Tensor":
        """torch indexing: ints, slices (negative steps too), None, ..., integer tensors and bool masks."""
        b = _basic(self, _items(self, key))
        return _take(_advanced(b.view, b.adv)) if b.adv else b.view

    def __setitem__(self: "Tensor", key: Any, value: Any) -> None:
        """`x[key] = value`: x is rebound to a lazy `where(indexed, value, x)`."""
        target = self
        self = self._snapshot()  # the old value gets its own object, so history has no cycle
        items = _items(self, key)
        mask = items[0] if len(items) == 1 and hasattr(items[0], "_node") else None
        scalar = isinstance(value, (bool, int, float)) or math.prod(np.shape(value)) == 1
        if mask is not None and mask.dtype is dtypes.bool_ and scalar:
            if mask.shape != self.shape[:mask.ndim]:
                raise IndexOutOfRangeError(f"the shape of the mask {mask.shape} does not match the shape "
                                           f"{self.shape[:mask.ndim]} of the indexed tensor of shape {self.shape}")
            full = mask.reshape(mask.shape + (1,) * (self.ndim - mask.ndim))
            target._rebind(_value(self, value, (1,) * self.ndim).where(full, self))
            return
        b = _basic(self, items)
        if b.adv:
            a = _advanced(b.view, b.adv)
            v = _value(self, value, a.result_shape)
            content = _put(a, v) if a.index.numel() else b.view
        else:
            content = _value(self, value, b.view.shape)
        if b.view.numel():
            target._rebind(_write_back(self, content, b.places))

    def gather(self: "Tensor", dim: int, index: Any) -> "Tensor":
        """out[i][j] = self[index[i][j]][j] along `dim` (index has self's number of dims)."""
        return self._gather(dim, index, negative=False, what="gather")

    def _gather(self: "Tensor", dim: int, index: Any, negative: bool, what: str) -> "Tensor":
        from .movement import _dim
        index = _index_tensor(self, index, what)
        if self.ndim == 0 or index.ndim == 0:
            if self.ndim > 1 or index.ndim > 1:
                raise ShapeError(f"{what}: index of shape {index.shape} and input of shape {self.shape} must "
                                 "have the same number of dimensions")
            return self.reshape(1)._gather(0, index.reshape(1), negative, what).reshape(index.shape)
        d = _dim(dim, self.ndim)
        if index.ndim != self.ndim or any(i > s for k, (i, s) in enumerate(zip(index.shape, self.shape)) if k != d):
            raise ShapeError(f"{what}: index of shape {index.shape} does not fit input of shape {self.shape} "
                             f"(same number of dims, no larger outside dim {d})")
        n = self.shape[d]
        index = _checked(index, n, d, negative, what)
        x = self.shrink(tuple((0, n if k == d else i) for k, i in enumerate(index.shape)))
        shape = index.shape[:d + 1] + (n,) + index.shape[d + 1:]
        return _pick(x.unsqueeze(d), _eq_arange(index.unsqueeze(d + 1), n, d + 1, shape), d + 1)

    def take_along_dim(self: "Tensor", indices: Any, dim: int | None = None) -> "Tensor":
        """Gather along `dim` with indices broadcast against self (negative indices wrap)."""
        from .movement import _dim
        indices = _index_tensor(self, indices, "take_along_dim")
        if dim is None:
            return self.reshape(-1)._gather(0, indices.reshape(-1), True, "take_along_dim")
        d = _dim(dim, self.ndim)
        if indices.ndim != self.ndim:
            raise ShapeError(f"take_along_dim: indices of shape {indices.shape} and input of shape {self.shape} "
                             "must have the same number of dimensions")
        shape = broadcast_shape(tuple(1 if k == d else s for k, s in enumerate(self.shape)),
                                tuple(1 if k == d else s for k, s in enumerate(indices.shape)))
        x = self.expand(tuple(self.shape[k] if k == d else s for k, s in enumerate(shape)))
        idx = indices.expand(tuple(indices.shape[k] if k == d else s for k, s in enumerate(shape)))
        return x._gather(d, idx, True, "take_along_dim")

    def take(self: "Tensor", index: Any) -> "Tensor":
        """Elements of the flattened tensor at `index` (shaped like index)."""
        index = _index_tensor(self, index, "take")
        return self.reshape(-1)[index]

    def index_select(self: "Tensor", dim: int, index: Any) -> "Tensor":
        """The entries `index` (1-D) of dimension `dim` (negative entries are out of range, as in torch)."""
        return self._index_select(dim, index, "index_select")

    def _index_select(self: "Tensor", dim: int, index: Any, what: str) -> "Tensor":
        from .movement import _dim
        index = _index_tensor(self, index, what)
        if index.ndim > 1:
            raise ShapeError(f"{what}: index must be 0-d or 1-D, got shape {index.shape}")
        if self.ndim == 0:
            return self.reshape(1)._index_select(0, index, what)
        d = _dim(dim, self.ndim)
        index = _checked(index.reshape(-1), self.shape[d], d, False, what)
        a = _Advanced(self, d, index, list(range(self.ndim)), (self.shape[d],))
        return _take(a)

    def _scatter_args(self: "Tensor", dim: int, index: Any, src: Any, what: str) -> tuple[int, "Tensor", "Tensor"]:
        """Checked dim, index and src (cut to the index's shape, in self's dtype) of a scatter."""
        from ..tensor import Tensor
        from .movement import _dim
        index = _index_tensor(self, index, what)
        if self.ndim == 0:
            raise ShapeError(f"{what}: cannot scatter into a 0-d tensor")
        d = _dim(dim, self.ndim)
        if index.ndim != self.ndim or any(i > s for k, (i, s) in enumerate(zip(index.shape, self.shape)) if k != d):
            raise ShapeError(f"{what}: index of shape {index.shape} does not fit self of shape {self.shape}")
        if isinstance(src, Tensor):
            src = self._operand(src)
            if src.ndim != index.ndim or any(i > s for i, s in zip(index.shape, src.shape)):
                raise ShapeError(f"{what}: index of shape {index.shape} is larger than src of shape {src.shape}")
            src = src.shrink(tuple((0, i) for i in index.shape)).cast(self.dtype)
        else:
            src = self._const(src, self.dtype, index.shape)
        return d, _checked(index, self.shape[d], d, False, what), src

    def scatter(self: "Tensor", dim: int, index: Any, src: Any = None, *, value: Any = None,
                reduce: str | None = None) -> "Tensor":
        """self with src (or value) written at `index` along `dim`; with duplicates the last write wins."""
        src = value if src is None else src
        if src is None:
            raise TypeError("scatter() needs src or value")
        if reduce not in (None, "add", "multiply"):
            raise ValueError(f"scatter: reduce must be 'add' or 'multiply', got {reduce!r}")
        d, index, src = self._scatter_args(dim, index, src, "scatter")
        if not index.numel():
            return self.contiguous()
        n = self.shape[d]
        eq = _eq_arange(index.unsqueeze(d + 1), n, d + 1, index.shape[:d + 1] + (n,) + index.shape[d + 1:])
        if reduce == "add":
            return (self + _place(_pick(src.unsqueeze(d + 1), eq, d), self.shape)).cast(self.dtype)
        if reduce == "multiply":
            prod = src.unsqueeze(d + 1).where(eq, src._const(1, src.dtype, ())).prod(d).cast(self.dtype)
            return (self * _place(prod, self.shape, 1)).cast(self.dtype)
        hit, val = _last_write(eq, src.unsqueeze(d + 1), d)
        return _place(val, self.shape).where(_place(hit, self.shape, False), self)

    @autocast_op("scatter_add")
    def scatter_add(self: "Tensor", dim: int, index: Any, src: "Tensor") -> "Tensor":
        """self plus src summed into the positions `index` along `dim` (duplicates accumulate)."""
        return self.scatter(dim, index, src, reduce="add")

    def masked_fill(self: "Tensor", mask: Any, value: Any) -> "Tensor":
        """`value` where the bool `mask` (broadcast to self) holds, self elsewhere."""
        from ..tensor import Tensor
        mask = self._operand(mask)
        if mask.dtype is not dtypes.bool_:
            raise DTypeError(f"masked_fill only supports bool masks, got {mask.dtype.name}")
        if broadcast_shape(self.shape, mask.shape) != self.shape:
            raise ShapeError(f"masked_fill: mask of shape {mask.shape} does not broadcast to self's shape {self.shape}")
        if isinstance(value, Tensor) and value.ndim:
            raise ShapeError(f"masked_fill: value must be a 0-d tensor or a number, got shape {value.shape}")
        dtypes.checked_scalar(value, self.dtype)  # unlike x[mask] = v, torch checks a float dtype's range here
        return _value(self, value, ()).where(mask, self)

    def masked_select(self: "Tensor", mask: Any) -> "Tensor":
        """1-D tensor of the elements where the broadcast bool mask holds (a sync point)."""
        mask = self._operand(mask)
        if mask.dtype is not dtypes.bool_:
            raise DTypeError(f"masked_select only supports bool masks, got {mask.dtype.name}")
        shape = broadcast_shape(self.shape, mask.shape)
        return self.broadcast_to(shape)[mask.broadcast_to(shape)]

    def one_hot(self: "Tensor", num_classes: int = -1) -> "Tensor":
        """int64 one-hot encoding along a new last dim. Without num_classes the count is the largest
        value plus one, read on the host (a sync point); with it, values are checked like indices."""
        from ..creation import arange
        if not self.dtype.is_int:
            raise DTypeError(f"one_hot needs an integer tensor, got {self.dtype.name}")
        values = self
        if num_classes == -1:
            arr = self.numpy()
            if not arr.size:
                raise ShapeError("one_hot: cannot infer the number of classes from an empty tensor")
            num_classes = int(arr.max()) + 1
            if arr.min() < 0:
                raise IndexOutOfRangeError(f"one_hot: class values must be in [0, {num_classes}), got {arr.min()}")
        elif self.numel():
            values = _checked(self, num_classes, 0, False, "one_hot")
        classes = arange(num_classes, device=self.device)
        return (values.unsqueeze(-1) == classes).cast(dtypes.int64)


# ---- module-level functions (torch.gather, F.one_hot, ...) -----------------------------------

def gather(input: "Tensor", dim: int, index: Any) -> "Tensor":
    return input.gather(dim, index)


def scatter(input: "Tensor", dim: int, index: Any, src: Any = None, *, value: Any = None,
            reduce: str | None = None) -> "Tensor":
    return input.scatter(dim, index, src, value=value, reduce=reduce)


def scatter_add(input: "Tensor", dim: int, index: Any, src: "Tensor") -> "Tensor":
    return input.scatter_add(dim, index, src)


def index_select(input: "Tensor", dim: int, index: Any) -> "Tensor":
    return input.index_select(dim, index)


def take_along_dim(input: "Tensor", indices: Any, dim: int | None = None) -> "Tensor":
    return input.take_along_dim(indices, dim)


def masked_fill(input: "Tensor", mask: Any, value: Any) -> "Tensor":
    return input.masked_fill(mask, value)


def one_hot(tensor: "Tensor", num_classes: int = -1) -> "Tensor":
    """F.one_hot: int64 one-hot encoding along a new last dim."""
    return tensor.one_hot(num_classes)
