"""Sorting and order statistics: sort, argsort, topk, kthvalue, median, mode, searchsorted, histc.

Everything runs in generated kernels, composed from comparisons, `where`, reductions and views.
A row of length n up to `RANK_MAX` (4096) is sorted by ranks: each element is compared with
every other, `rank_i = #{j : x_j sorts before x_i} + #{j < i : x_j ties x_i}` (one fused O(n^2)
compare-sum kernel), then element i goes to slot rank_i by a one-hot select (another O(n^2)
kernel, O(n*k) for the k slots topk reads, O(n) for kthvalue/median): three kernels, n^2
comparisons per row (about 25 ms for 16 rows of 1024 on 2 cores). Longer rows go through a
bitonic sorting network instead: the row padded to a power of two N, log2(N)(log2(N)+1)/2
compare-exchange stages of O(N) each (partners are views: a reshape and a flip), two kernels a
stage, so O(N log^2 N) work, but a first call compiles a few hundred kernels.

Ties keep their input order, so every sort is stable (the network breaks ties by index). NaN
sorts as the largest value, as in torch. Values are carried (the network) or selected (the
ranks) with `where`, so sort, topk, kthvalue, median and mode get gradients from the primitives.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import autograd, dtypes
from ..errors import DTypeError, IndexOutOfRangeError, ShapeError
from ..graph.shapes import normalize_dim
from .reduce import ValuesIndices

if TYPE_CHECKING:
    from ..tensor import Tensor

RANK_MAX = 4096  # longer rows sort with the bitonic network
_SHIFT = 1 << 40  # the network packs (class, index) into one int64: class * _SHIFT + index


def _comparable(x: "Tensor") -> "Tensor":
    """x as a dtype whose `<` orders it (bools compare as 0/1)."""
    return x.cast(dtypes.uint8) if x.dtype is dtypes.bool_ else x


def _iota(n: int, x: "Tensor", axis: int, ndim: int) -> "Tensor":
    """int64 [0, n) laid along `axis` of an `ndim`-dim tensor (size 1 elsewhere)."""
    from ..creation import arange
    return arange(n, device=x.device).reshape(tuple(n if i == axis else 1 for i in range(ndim)))


def _lt(a: "Tensor", b: "Tensor") -> "Tensor":
    """a sorts strictly before b in ascending order, NaN counting as the largest value."""
    less = a < b
    if a.dtype.is_floating_point:
        less = less | (b.isnan() & a.isnan().logical_not())
    return less


def _ties(a: "Tensor", b: "Tensor") -> "Tensor":
    """a and b hold the same value (two NaNs tie)."""
    same = a == b
    if a.dtype.is_floating_point:
        same = same | (a.isnan() & b.isnan())
    return same


def _ranks(x: "Tensor", descending: bool) -> "Tensor":
    """int64 slot of every element of x's last dim in its stable sort: one O(n^2) compare-sum."""
    x = _comparable(x.detach())
    n, nd = x.shape[-1], x.ndim + 1
    xi, xj = x.unsqueeze(-1), x.unsqueeze(-2)  # element i along axis -2, the elements compared with along -1
    before = _lt(xi, xj) if descending else _lt(xj, xi)
    earlier = _iota(n, x, nd - 1, nd) < _iota(n, x, nd - 2, nd)
    return (before | (_ties(xi, xj) & earlier)).sum(-1)


def _select_slots(x: "Tensor", hit: "Tensor") -> tuple["Tensor", "Tensor"]:
    """For a one-hot `hit` (..., k, n) marking which element of x's last dim fills each of k slots:
    the slots' values (differentiable) and int64 positions."""
    n, nd = x.shape[-1], x.ndim + 1
    zero = x._const(0, x.dtype, ())
    values = x.unsqueeze(-2).where(hit, zero).sum(-1)
    values = values if values.dtype is x.dtype else values.cast(x.dtype)
    indices = _iota(n, x, nd - 1, nd).where(hit, 0).sum(-1)
    return values, indices


def _slots(x: "Tensor", rank: "Tensor", slots: "Tensor") -> tuple["Tensor", "Tensor"]:
    """Values and indices of the elements of x's last dim whose rank is in `slots` (..., k)."""
    return _select_slots(x, rank.unsqueeze(-2) == slots.unsqueeze(-1))


def _swap_summed(v: "Tensor", take: "Tensor", folded: tuple[int, ...]) -> "Tensor":
    """where(take, partner, v) as a sum over each pair: the gradient of a chain of `where`s of
    views reads each stage twice and would fuse into 2^stages terms; a reduction per stage keeps
    the backward one materialized step per stage."""
    nd = len(folded) + 1
    pairs = v.reshape(folded[:-2] + (1, 2, folded[-1]))  # axis -2: the source within the pair
    took = take.reshape(folded[:-2] + (2, 1, folded[-1]))  # axis -3: the output within the pair
    keep = (_iota(2, v, nd - 3, nd) == _iota(2, v, nd - 2, nd)) != took
    return pairs.where(keep, pairs._const(0, pairs.dtype, ())).sum(-2).reshape(v.shape)


def _exchange(v: "Tensor", packed: "Tensor", k: int, j: int, descending: bool,
              differentiable: bool) -> tuple["Tensor", "Tensor"]:
    """One bitonic stage: element p meets p ^ j and keeps the one sorting first when p's bit j
    agrees with its bit k (ascending blocks of k), else the other."""
    size, nd = v.shape[-1], v.ndim
    folded = v.shape[:-1] + (size // (2 * j), 2, j)

    def partner(t: "Tensor") -> "Tensor":
        return t.reshape(folded).flip(-2).reshape(t.shape)
    pos = _iota(size, v, nd - 1, nd)
    keep_first = (pos // j) % 2 == 0
    if k < size:
        keep_first = keep_first == ((pos // k) % 2 == 0)
    pv, pp = partner(v), partner(packed)
    pc, sc = pp // _SHIFT, packed // _SHIFT
    tie = _ties(pv.detach(), v.detach()) if v.dtype.is_floating_point else pv == v
    first = _lt(v.detach(), pv.detach()) if descending else _lt(pv.detach(), v.detach())
    # the partner sorts first: a lower class, or the same class and a value before, or equal and an earlier index
    partner_first = (pc < sc) | ((pc == sc) & (first | (tie & (pp < packed))))
    take = partner_first.where(keep_first, partner_first.logical_not())
    new_v = _swap_summed(v, take, folded) if differentiable else pv.where(take, v).contiguous()
    return new_v, pp.where(take, packed).contiguous()


def _bitonic(x: "Tensor", descending: bool) -> tuple["Tensor", "Tensor"]:
    """x's last dim sorted by a bitonic network (stable: ties are ordered by index)."""
    c = _comparable(x)
    n, nd = c.shape[-1], c.ndim
    size = 1 << (n - 1).bit_length()
    # classes: values 0, then NaN 1 (ascending; descending puts NaN first), padding last
    nan = c.detach().isnan()
    cls = (nan.logical_not() if descending else nan).cast(dtypes.int64)
    packed = (cls * _SHIFT + _iota(n, c, nd - 1, nd)).pad((0, size - n), value=2 * _SHIFT)
    v = c.pad((0, size - n))
    differentiable = c.dtype.is_floating_point and autograd.should_record((c,))
    k = 2
    while k <= size:
        j = k // 2
        while j:
            v, packed = _exchange(v, packed, k, j, descending, differentiable)
            j //= 2
        k *= 2
    v = v._narrow(nd - 1, 0, n)
    return (v.cast(x.dtype) if v.dtype is not x.dtype else v), packed._narrow(nd - 1, 0, n) % _SHIFT


def _first_slots(x: "Tensor", descending: bool, k: int) -> tuple["Tensor", "Tensor"]:
    """Values and indices of the first k slots of x's last dim sorted."""
    n = x.shape[-1]
    if n <= RANK_MAX:
        return _slots(x, _ranks(x, descending), _iota(k, x, x.ndim - 1, x.ndim))
    values, indices = _bitonic(x, descending)
    return values._narrow(x.ndim - 1, 0, k), indices._narrow(x.ndim - 1, 0, k)


def _to_last(x: "Tensor", dim: int) -> tuple["Tensor", int]:
    d = normalize_dim(dim, x.ndim)
    return (x if d == x.ndim - 1 else x.movedim(d, -1)), d


def _from_last(t: "Tensor", d: int, keepdim: bool = True) -> "Tensor":
    """Undo _to_last on a result whose last dim holds the slots (keepdim False drops a size-1 one)."""
    if not keepdim:
        return t.squeeze(-1)
    return t if d == t.ndim - 1 else t.movedim(-1, d)


def _check_orderable(x: "Tensor", name: str) -> None:
    if x.dtype is dtypes.bool_ and name not in ("sort", "argsort", "msort"):
        raise DTypeError(f"{name}() does not support bool tensors")


def _kth(x: "Tensor", target: "Tensor") -> tuple["Tensor", "Tensor"]:
    """Values and indices of the elements of ascending rank `target` (..., 1) along x's last dim."""
    if x.shape[-1] <= RANK_MAX:
        return _slots(x, _ranks(x, descending=False), target)
    values, indices = _bitonic(x, descending=False)
    hit = _iota(x.shape[-1], x, x.ndim - 1, x.ndim) == target
    return _select_slots(values, hit.unsqueeze(-2))[0], indices.where(hit, 0).sum(-1, keepdim=True)


def _median_slot(x: "Tensor", ignore_nan: bool) -> "Tensor":
    """int64 (..., 1) rank of the lower median along x's last dim. With NaN present, median picks the
    first NaN (rank = count of non-NaN, as torch returns NaN), nanmedian the median of the rest."""
    n = x.shape[-1]
    if not x.dtype.is_floating_point:
        return x._const((n - 1) // 2, dtypes.int64, x.shape[:-1] + (1,))
    count = x.isnan().logical_not().sum(-1, keepdim=True)
    if ignore_nan:
        return ((count - 1) // 2).clamp(min=0)
    return count.where(count < n, (n - 1) // 2)


class SortingMixin:
    __slots__ = ()

    def sort(self: "Tensor", dim: int = -1, descending: bool = False, *, stable: bool = False) -> ValuesIndices:
        """(values, indices) sorted along dim; always stable; NaN is largest. O(n^2) work per row."""
        _check_orderable(self, "sort")
        if self.ndim == 0:
            return ValuesIndices(self, self._const(0, dtypes.int64))
        x, d = _to_last(self, dim)
        values, indices = _first_slots(x, descending, x.shape[-1])
        return ValuesIndices(_from_last(values, d), _from_last(indices, d))

    def argsort(self: "Tensor", dim: int = -1, descending: bool = False, *, stable: bool = False) -> "Tensor":
        """int64 indices that sort the tensor along dim (stable)."""
        return self.sort(dim, descending).indices

    def msort(self: "Tensor") -> "Tensor":
        """Values sorted along dim 0."""
        return self.sort(0).values

    def topk(self: "Tensor", k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> ValuesIndices:
        """The k largest (or smallest) values along dim and their indices, in sorted order. O(n^2)."""
        _check_orderable(self, "topk")
        x, d = _to_last(self.reshape(1) if self.ndim == 0 else self, dim)
        n = x.shape[-1]
        if not 0 <= k <= n:
            raise IndexOutOfRangeError(f"topk: k ({k}) is out of range for dimension {d} of size {n}")
        values, indices = _first_slots(x, largest, k)
        if self.ndim == 0:
            return ValuesIndices(values.reshape(()), indices.reshape(()))
        return ValuesIndices(_from_last(values, d), _from_last(indices, d))

    def kthvalue(self: "Tensor", k: int, dim: int = -1, keepdim: bool = False) -> ValuesIndices:
        """The k-th smallest value (1-based) along dim and its index."""
        _check_orderable(self, "kthvalue")
        x, d = _to_last(self.reshape(1) if self.ndim == 0 else self, dim)
        n = x.shape[-1]
        if not 1 <= k <= n:
            raise IndexOutOfRangeError(f"kthvalue: k ({k}) is out of range for dimension {d} of size {n}")
        values, indices = _kth(x, x._const(k - 1, dtypes.int64, x.shape[:-1] + (1,)))
        return self._order_result(values, indices, d, keepdim)

    def _order_result(self: "Tensor", values: "Tensor", indices: "Tensor", d: int, keepdim: bool) -> ValuesIndices:
        if self.ndim == 0:
            return ValuesIndices(values.reshape(()), indices.reshape(()))
        return ValuesIndices(_from_last(values, d, keepdim), _from_last(indices, d, keepdim))

    def median(self: "Tensor", dim: int | None = None, keepdim: bool = False) -> Any:
        """Lower median (NaN if any is NaN); with dim, (values, indices)."""
        return self._median(dim, keepdim, ignore_nan=False)

    def nanmedian(self: "Tensor", dim: int | None = None, keepdim: bool = False) -> Any:
        """Lower median of the non-NaN values; with dim, (values, indices)."""
        return self._median(dim, keepdim, ignore_nan=True)

    def _median(self: "Tensor", dim: int | None, keepdim: bool, ignore_nan: bool) -> Any:
        name = "nanmedian" if ignore_nan else "median"
        _check_orderable(self, name)
        if dim is None:
            if self.numel() == 0:
                return self._const(float("nan"), shape=())
            x = self.reshape(1, -1)
            value = _kth(x.detach(), _median_slot(x, ignore_nan))[0].reshape(())
            if not (self.dtype.is_floating_point and autograd.should_record((self,))):
                return value
            # like torch, the gradient is shared evenly among the elements equal to the median
            hit = _ties(self, value)
            return self.where(hit, self._const(0, self.dtype, ())).sum() / hit.sum().cast(self.dtype)
        x, d = _to_last(self.reshape(1) if self.ndim == 0 else self, dim)
        if x.shape[-1] == 0:
            raise IndexOutOfRangeError(f"{name}(): cannot compute the median of an empty dimension {d}")
        values, indices = _kth(x, _median_slot(x, ignore_nan))
        return self._order_result(values, indices, d, keepdim)

    def mode(self: "Tensor", dim: int = -1, keepdim: bool = False) -> ValuesIndices:
        """The most frequent value along dim (the smallest among equally frequent ones) and the
        index of its last occurrence, like torch on the CPU. O(n^2)."""
        _check_orderable(self, "mode")
        x, d = _to_last(self.reshape(1) if self.ndim == 0 else self, dim)
        n, nd = x.shape[-1], x.ndim
        if n == 0:
            raise IndexOutOfRangeError(f"mode(): cannot compute the mode of an empty dimension {d}")
        c = x.detach()
        count = (c.unsqueeze(-1) == c.unsqueeze(-2)).sum(-1)
        frequent = count == count.amax(-1, keepdim=True)
        # the smallest frequent value: no frequent value sorts before it
        smaller = (frequent.unsqueeze(-2) & _lt(c.unsqueeze(-2), c.unsqueeze(-1))).sum(-1) == 0
        chosen = frequent & smaller
        last = _iota(n, x, nd - 1, nd).where(chosen, -1).amax(-1, keepdim=True)
        values, indices = _select_slots(x, (_iota(n, x, nd - 1, nd) == last).unsqueeze(-2))
        return self._order_result(values, indices, d, keepdim)

    def bucketize(self: "Tensor", boundaries: "Tensor", out_int32: bool = False, right: bool = False) -> "Tensor":
        """Index of the bucket of every element given sorted 1-D `boundaries`."""
        return bucketize(self, boundaries, out_int32=out_int32, right=right)

    def histc(self: "Tensor", bins: int = 100, min: float = 0, max: float = 0) -> "Tensor":
        """Counts of the elements in `bins` equal-width bins over [min, max] (the data's range when
        min == max); elements outside are ignored. One O(numel * bins) compare-sum kernel."""
        if not self.dtype.is_floating_point:
            raise DTypeError(f"histc() needs a floating point tensor, got {self.dtype.name}")
        if bins <= 0:
            raise ValueError(f"histc(): bins must be > 0, got {bins}")
        if min > max:
            raise ValueError(f"histc(): max ({max}) must be larger than or equal to min ({min})")
        x = self.detach().reshape(-1)
        if not x.numel():
            return x._const(0, shape=(bins,))
        if min == max:  # the data's range, widened by 1 on each side when it is a single value
            lo, hi = x.amin().reshape(1), x.amax().reshape(1)
            same = lo == hi
            lo, hi = lo.where(same.logical_not(), lo - 1), hi.where(same.logical_not(), hi + 1)
        else:
            lo, hi = x._const(min, shape=(1,)), x._const(max, shape=(1,))
        from ..creation import arange
        edges = lo + (hi - lo) * arange(bins, device=self.device).cast(x.dtype) / bins  # left edges
        inside = (x >= lo) & (x <= hi)
        at_or_above = ((x.unsqueeze(0) >= edges.unsqueeze(1)) & inside.unsqueeze(0)).sum(1)  # (bins,)
        above_next = at_or_above._narrow(0, 1, bins).pad_zeros(((0, 1),))
        return (at_or_above - above_next).cast(self.dtype)


def _search(seq: "Tensor", values: "Tensor", right: bool) -> "Tensor":
    """Count of the entries of seq's last dim that sort before each value (<= them when right)."""
    s, v = seq.unsqueeze(-2), values.unsqueeze(-1)
    return ((s <= v) if right else (s < v)).sum(-1)


def searchsorted(sorted_sequence: "Tensor", values: Any, *, out_int32: bool = False, right: bool = False,
                 side: str | None = None, sorter: Any = None) -> "Tensor":
    """torch.searchsorted: where values would be inserted into the sorted last dim of sorted_sequence
    (the first such place, or the last with right=True / side='right'). O(n) compares per value."""
    from ..tensor import Tensor
    if side is not None:
        if side not in ("left", "right"):
            raise ValueError(f"searchsorted: side must be 'left' or 'right', got {side!r}")
        if right and side == "left":
            raise ValueError("searchsorted: side='left' and right=True contradict each other")
        right = side == "right"
    seq = sorted_sequence
    if sorter is not None:
        seq = seq.take_along_dim(seq._operand(sorter), -1)
    scalar = not isinstance(values, Tensor)
    v = seq._operand(values)
    if scalar and v.ndim == 0 and seq.ndim > 1:
        raise ShapeError("searchsorted: a scalar value needs a 1-D sorted_sequence")
    if seq.ndim == 0:
        raise ShapeError("searchsorted: sorted_sequence must have at least one dimension")
    if seq.ndim > 1 and (v.ndim != seq.ndim or v.shape[:-1] != seq.shape[:-1]):
        raise ShapeError(f"searchsorted: leading dims of sorted_sequence {seq.shape} and values {v.shape} must match")
    out = _search(seq, v, right) if v.ndim else _search(seq, v.reshape(1), right).reshape(())
    return out.cast(dtypes.int32) if out_int32 else out


def bucketize(input: Any, boundaries: "Tensor", *, out_int32: bool = False, right: bool = False) -> "Tensor":
    """torch.bucketize: for each element, the index of its bucket among sorted 1-D boundaries."""
    if boundaries.ndim != 1:
        raise ShapeError(f"bucketize: boundaries must be 1-D, got shape {boundaries.shape}")
    return searchsorted(boundaries, input, out_int32=out_int32, right=right)


def histc(input: "Tensor", bins: int = 100, min: float = 0, max: float = 0) -> "Tensor":
    return input.histc(bins, min, max)


def sort(input: "Tensor", dim: int = -1, descending: bool = False, *, stable: bool = False) -> ValuesIndices:
    return input.sort(dim, descending, stable=stable)


def argsort(input: "Tensor", dim: int = -1, descending: bool = False, *, stable: bool = False) -> "Tensor":
    return input.argsort(dim, descending, stable=stable)


def msort(input: "Tensor") -> "Tensor":
    return input.msort()


def topk(input: "Tensor", k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> ValuesIndices:
    return input.topk(k, dim, largest, sorted)


def kthvalue(input: "Tensor", k: int, dim: int = -1, keepdim: bool = False) -> ValuesIndices:
    return input.kthvalue(k, dim, keepdim)


def median(input: "Tensor", dim: int | None = None, keepdim: bool = False) -> Any:
    return input.median(dim, keepdim)


def nanmedian(input: "Tensor", dim: int | None = None, keepdim: bool = False) -> Any:
    return input.nanmedian(dim, keepdim)


def mode(input: "Tensor", dim: int = -1, keepdim: bool = False) -> ValuesIndices:
    return input.mode(dim, keepdim)

