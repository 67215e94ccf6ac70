"""Pooling over 1, 2 or 3 spatial dims, batched (N, C, ...) or not (C, ...).

Windows are views of the padded input (nn.conv's `windows`) reduced by max or sum; adaptive pooling
gathers each dim's variable windows (max) or multiplies by averaging matrices (mean); max-unpooling is a
scatter of the pooled values to their indices. Indices are flat over the input's spatial dims, as torch's."""
from __future__ import annotations

import math
from typing import Callable, Sequence

from .. import dtypes
from ..errors import DTypeError, ShapeError
from ..function import Function
from ..tensor import Tensor
from ..creation import arange, zeros
from .conv import IntOrPair, _gradient_buffer, _pad_spatial, windows


def _sizes(v: IntOrPair, n: int, what: str, name: str) -> tuple[int, ...]:
    sizes = (v,) * n if isinstance(v, int) else tuple(v)
    if len(sizes) == 1 and n > 1:
        sizes *= n
    if len(sizes) != n:
        raise ShapeError(f"{name}: {what} must be a single int or a tuple of {n} ints, got {v}")
    return sizes


def _check_rank(x: Tensor, n: int, name: str) -> None:
    if x.ndim not in (n + 1, n + 2):
        raise ShapeError(f"{name}: expected a {n + 1}-D (unbatched) or {n + 2}-D (batched) input, got shape {x.shape}")


def _pool_geometry(length: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> tuple[int, int]:
    """(output size, extra right padding needed) like torch's pooling shape rule."""
    span = length + 2 * p - d * (k - 1) - 1
    if ceil_mode:
        o = -(-span // s) + 1
        if (o - 1) * s >= length + p:
            o -= 1
    else:
        o = span // s + 1
    extra = max(0, (o - 1) * s + d * (k - 1) + 1 - (length + 2 * p))
    return o, extra


def _blocks(x: Tensor, kernel: Sequence[int], outs: Sequence[int]) -> Tensor:
    """Non-overlapping windows (stride == kernel, no dilation) as a reshape: (..., L1..Ln) ->
    (..., O1..On, k1..kn). Its gradient is a reshape too, where the sliding-window view's is a sum
    of shifted pads (max-pool backward was a chain of reductions over padded copies)."""
    n = len(kernel)
    lead = x.shape[:-n]
    x = _gradient_buffer(x)
    if tuple(o * k for o, k in zip(outs, kernel)) != x.shape[-n:]:  # floor mode drops the incomplete last window
        x = x.shrink([(0, s) for s in lead] + [(0, o * k) for o, k in zip(outs, kernel)])
    x = x.reshape(*lead, *[v for o, k in zip(outs, kernel) for v in (o, k)])
    m = len(lead)
    return x.permute(list(range(m)) + [m + 2 * i for i in range(n)] + [m + 2 * i + 1 for i in range(n)])


class _Geometry:
    """A pooling's kernel, stride, padding and dilation per spatial dim, checked like torch's."""

    def __init__(self, n: int, name: str, kernel_size: IntOrPair, stride: IntOrPair | None, padding: IntOrPair,
                 dilation: IntOrPair):
        self.kernel = _sizes(kernel_size, n, "kernel_size", name)
        self.stride = _sizes(stride, n, "stride", name) if stride not in (None, []) else self.kernel
        self.padding, self.dilation = _sizes(padding, n, "padding", name), _sizes(dilation, n, "dilation", name)
        if min(self.kernel) <= 0 or min(self.stride) <= 0 or min(self.dilation) <= 0:
            raise ShapeError(f"{name}: kernel_size, stride and dilation must be positive, got {self.kernel}, "
                             f"{self.stride}, {self.dilation}")
        if any(p < 0 or p > ((k - 1) * d + 1) // 2 for p, k, d in zip(self.padding, self.kernel, self.dilation)):
            # torch raises RuntimeError here; ShapeError is the shape error of that family
            raise ShapeError(f"{name}: pad should be at most half of effective kernel size, got padding "
                             f"{self.padding} for kernel {self.kernel} and dilation {self.dilation}")

    def windows(self, x: Tensor, ceil_mode: bool, value: float) -> Tensor:
        """x's windows (..., O1..On, k1..kn), padded with value."""
        pads, outs = [], []
        for length, k, s, p, d in zip(x.shape[-len(self.kernel):], self.kernel, self.stride, self.padding,
                                      self.dilation):
            o, extra = _pool_geometry(length, k, s, p, d, ceil_mode)
            if o <= 0:
                raise ShapeError(f"pooling: output size {o} is too small for input size {length}, kernel {k}")
            pads.append((p, p + extra))
            outs.append(o)
        x = _pad_spatial(x, pads, value)
        if self.stride == self.kernel and all(d == 1 for d in self.dilation):
            return _blocks(x, self.kernel, outs)
        return windows(x, self.kernel, self.stride, self.dilation)

    def position(self, i: int, out: int, j: Tensor) -> Tensor:
        """The input coordinate along spatial dim i of tap j of each output position. A tap on the left padding
        is the first maximum only of a window all -inf: torch's index is then the window's first input element."""
        o = arange(out, device=j.device).reshape(out, *([1] * (len(self.kernel) - 1 - i)))
        return (o * self.stride[i] - self.padding[i] + j * self.dilation[i]).clamp(min=0)


def _flat_indices(local: Tensor, widths: Sequence[int], sizes: Sequence[int],
                  position: Callable[[int, int, Tensor], Tensor]) -> Tensor:
    """The flat input index (over the spatial `sizes`) of each window's chosen element: local is its index in
    the window flattened over `widths`, position(i, out, tap) its coordinate along spatial dim i."""
    n = len(widths)
    outs = local.shape[-n:]
    flat = None
    for i in reversed(range(n)):
        tap = local % widths[i]
        local = local // widths[i]
        term = position(i, outs[i], tap) * math.prod(sizes[i + 1:])
        flat = term if flat is None else flat + term
    return flat


def _max_pool(x: Tensor, n: int, kernel_size: IntOrPair, stride: IntOrPair | None, padding: IntOrPair,
              dilation: IntOrPair, ceil_mode: bool, return_indices: bool) -> Tensor | tuple[Tensor, Tensor]:
    name = f"max_pool{n}d"
    _check_rank(x, n, name)
    geometry = _Geometry(n, name, kernel_size, stride, padding, dilation)
    # max over the flattened window: its gradient goes whole to the window's first maximum, as
    # torch's does (amax's would be shared among ties, common after a ReLU)
    values, local = geometry.windows(x, ceil_mode, float("-inf")).flatten(-n).max(-1)
    if not return_indices:
        return values
    return values, _flat_indices(local, geometry.kernel, x.shape[-n:], geometry.position)


def max_pool1d(input: Tensor, kernel_size: IntOrPair, stride: IntOrPair | None = None, padding: IntOrPair = 0,
               dilation: IntOrPair = 1, ceil_mode: bool = False, return_indices: bool = False) -> Tensor:
    return _max_pool(input, 1, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool2d(input: Tensor, kernel_size: IntOrPair, stride: IntOrPair | None = None, padding: IntOrPair = 0,
               dilation: IntOrPair = 1, ceil_mode: bool = False, return_indices: bool = False) -> Tensor:
    return _max_pool(input, 2, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool3d(input: Tensor, kernel_size: IntOrPair, stride: IntOrPair | None = None, padding: IntOrPair = 0,
               dilation: IntOrPair = 1, ceil_mode: bool = False, return_indices: bool = False) -> Tensor:
    return _max_pool(input, 3, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool1d_with_indices(input: Tensor, kernel_size: IntOrPair, stride: IntOrPair | None = None,
                            padding: IntOrPair = 0, dilation: IntOrPair = 1, ceil_mode: bool = False,
                            return_indices: bool = False) -> tuple[Tensor, Tensor]:
    """max_pool1d's values and indices, whatever return_indices says (as torch's)."""
    return _max_pool(input, 1, kernel_size, stride, padding, dilation, ceil_mode, True)


def max_pool2d_with_indices(input: Tensor, kernel_size: IntOrPair, stride: IntOrPair | None = None,
                            padding: IntOrPair = 0, dilation: IntOrPair = 1, ceil_mode: bool = False,
                            return_indices: bool = False) -> tuple[Tensor, Tensor]:
    return _max_pool(input, 2, kernel_size, stride, padding, dilation, ceil_mode, True)


def max_pool3d_with_indices(input: Tensor, kernel_size: IntOrPair, stride: IntOrPair | None = None,
                            padding: IntOrPair = 0, dilation: IntOrPair = 1, ceil_mode: bool = False,
                            return_indices: bool = False) -> tuple[Tensor, Tensor]:
    return _max_pool(input, 3, kernel_size, stride, padding, dilation, ceil_mode, True)


def _avg_pool(x: Tensor, n: int, kernel_size: IntOrPair, stride: IntOrPair | None, padding: IntOrPair,
              ceil_mode: bool, count_include_pad: bool, divisor_override: int | None) -> Tensor:
    name = f"avg_pool{n}d"
    _check_rank(x, n, name)
    geometry = _Geometry(n, name, kernel_size, stride, padding, 1)
    if divisor_override == 0:
        raise ShapeError(f"{name}: divisor must be not zero")
    axes = tuple(range(-n, 0))
    total = geometry.windows(x, ceil_mode, 0.0).sum(axes)
    if divisor_override:
        return total / divisor_override
    if count_include_pad and not ceil_mode:
        return total / math.prod(geometry.kernel)
    # count the window cells that lie on the input (or on the declared padding when it counts)
    ones = x._const(1.0, shape=(1,) * (x.ndim - n) + tuple(x.shape[-n:]))
    if count_include_pad:
        # the declared padding counts, the extra right padding of ceil mode does not; the geometry is
        # the input's (padding the ones first and pooling them unpadded let ceil mode add a window)
        g = geometry
        extras = [_pool_geometry(length, k, s, p, 1, ceil_mode)[1]
                  for length, k, s, p in zip(x.shape[-n:], g.kernel, g.stride, g.padding)]
        ones = _pad_spatial(ones, [(p, p) for p in g.padding], 1.0)
        ones = _pad_spatial(ones, [(0, e) for e in extras], 0.0)
        cnt = windows(ones, g.kernel, g.stride, g.dilation)
    else:
        cnt = geometry.windows(ones, ceil_mode, 0.0)
    return total / cnt.sum(axes)


def avg_pool1d(input: Tensor, kernel_size: IntOrPair, stride: IntOrPair | None = None, padding: IntOrPair = 0,
               ceil_mode: bool = False, count_include_pad: bool = True) -> Tensor:
    return _avg_pool(input, 1, kernel_size, stride, padding, ceil_mode, count_include_pad, None)


def avg_pool2d(input: Tensor, kernel_size: IntOrPair, stride: IntOrPair | None = None, padding: IntOrPair = 0,
               ceil_mode: bool = False, count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    return _avg_pool(input, 2, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)


def avg_pool3d(input: Tensor, kernel_size: IntOrPair, stride: IntOrPair | None = None, padding: IntOrPair = 0,
               ceil_mode: bool = False, count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    return _avg_pool(input, 3, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)


# ---- adaptive pooling ----------------------------------------------------------------------


def _adaptive_sizes(x: Tensor, n: int, output_size: IntOrPair | None, name: str) -> tuple[int, ...]:
    _check_rank(x, n, name)
    outs = tuple(length if o is None else o
                 for length, o in zip(x.shape[-n:], _sizes(output_size, n, "output_size", name)))
    if any(o < 0 for o in outs) or any(length == 0 for length in x.shape[-n:]):
        raise ShapeError(f"{name}: output_size {outs} and the input's spatial sizes {x.shape[-n:]} must be "
                         f"non-negative and non-empty")
    return outs


def _adaptive_bounds(length: int, out: int, like: Tensor) -> tuple[Tensor, Tensor]:
    """(start, end) of each of the out windows over length, as (out, 1) columns: [floor(o*L/O), ceil((o+1)*L/O))."""
    o = arange(out, device=like.device).reshape(out, 1)
    return (o * length) // out, ((o + 1) * length + out - 1) // out


def _adaptive_matrix(length: int, out: int, like: Tensor) -> Tensor:
    """(out, length) averaging weights: row o covers its adaptive window."""
    start, end = _adaptive_bounds(length, out, like)
    i = arange(length, device=like.device).reshape(1, length)
    inside = (i >= start) & (i < end)
    return inside.to(like.dtype) / (end - start).to(like.dtype)


def _adaptive_avg_pool(x: Tensor, n: int, output_size: IntOrPair | None) -> Tensor:
    outs = _adaptive_sizes(x, n, output_size, f"adaptive_avg_pool{n}d")
    sizes = x.shape[-n:]
    if all(length % o == 0 for length, o in zip(sizes, outs)):
        return _avg_pool(x, n, [length // o for length, o in zip(sizes, outs)], None, 0, False, True, None)
    for i, (length, o) in enumerate(zip(sizes, outs)):
        m = _adaptive_matrix(length, o, x)
        axis = i - n
        if axis == -1:
            x = x @ m.T
        elif axis == -2:
            x = m @ x
        else:
            x = (m @ x.transpose(axis, -2)).transpose(axis, -2)
    return x


def adaptive_avg_pool1d(input: Tensor, output_size: IntOrPair) -> Tensor:
    return _adaptive_avg_pool(input, 1, output_size)


def adaptive_avg_pool2d(input: Tensor, output_size: IntOrPair) -> Tensor:
    return _adaptive_avg_pool(input, 2, output_size)


def adaptive_avg_pool3d(input: Tensor, output_size: IntOrPair) -> Tensor:
    return _adaptive_avg_pool(input, 3, output_size)


def _adaptive_max_pool(x: Tensor, n: int, output_size: IntOrPair | None,
                       return_indices: bool) -> Tensor | tuple[Tensor, Tensor]:
    outs = _adaptive_sizes(x, n, output_size, f"adaptive_max_pool{n}d")
    sizes = x.shape[-n:]
    bounds = [_adaptive_bounds(length, o, x) for length, o in zip(sizes, outs)]
    # windows of uneven length, each gathered at the widest length: taps past a window's end repeat its
    # last element, which never comes before the first maximum
    widths = [max(-(-(j + 1) * length // o) - j * length // o for j in range(o)) if o else 0
              for length, o in zip(sizes, outs)]

    def tap_position(i: int, shape: tuple[int, ...], tap: Tensor) -> Tensor:
        start, end = (b.reshape(shape) for b in bounds[i])
        return (start + tap).minimum(end - 1)

    def position(i: int, out: int, tap: Tensor) -> Tensor:
        return tap_position(i, (out, *([1] * (n - 1 - i))), tap)

    lead = x.ndim - n
    for i in reversed(range(n)):
        picks = tap_position(i, (outs[i], 1), arange(widths[i], device=x.device).reshape(1, widths[i]))
        x = x.index_select(lead + i, picks.reshape(-1)).unflatten(lead + i, (outs[i], widths[i]))
    x = x.permute(list(range(lead)) + [lead + 2 * i for i in range(n)] + [lead + 2 * i + 1 for i in range(n)])
    values, local = x.flatten(-n).max(-1)
    if not return_indices:
        return values
    return values, _flat_indices(local, widths, sizes, position)


def adaptive_max_pool1d(input: Tensor, output_size: IntOrPair, return_indices: bool = False) -> Tensor:
    return _adaptive_max_pool(input, 1, output_size, return_indices)


def adaptive_max_pool2d(input: Tensor, output_size: IntOrPair, return_indices: bool = False) -> Tensor:
    return _adaptive_max_pool(input, 2, output_size, return_indices)


def adaptive_max_pool3d(input: Tensor, output_size: IntOrPair, return_indices: bool = False) -> Tensor:
    return _adaptive_max_pool(input, 3, output_size, return_indices)


def adaptive_max_pool1d_with_indices(input: Tensor, output_size: IntOrPair,
                                     return_indices: bool = False) -> tuple[Tensor, Tensor]:
    """adaptive_max_pool1d's values and indices, whatever return_indices says (as torch's)."""
    return _adaptive_max_pool(input, 1, output_size, True)


def adaptive_max_pool2d_with_indices(input: Tensor, output_size: IntOrPair,
                                     return_indices: bool = False) -> tuple[Tensor, Tensor]:
    return _adaptive_max_pool(input, 2, output_size, True)


def adaptive_max_pool3d_with_indices(input: Tensor, output_size: IntOrPair,
                                     return_indices: bool = False) -> tuple[Tensor, Tensor]:
    return _adaptive_max_pool(input, 3, output_size, True)


# ---- max-unpooling -------------------------------------------------------------------------


def _max_unpool(x: Tensor, indices: Tensor, n: int, kernel_size: IntOrPair, stride: IntOrPair | None,
                padding: IntOrPair, output_size: Sequence[int] | None) -> Tensor:
    name = f"max_unpool{n}d"
    _check_rank(x, n, name)
    kernel = _sizes(kernel_size, n, "kernel_size", name)
    st = _sizes(stride, n, "stride", name) if stride not in (None, []) else kernel
    pad = _sizes(padding, n, "padding", name)
    if indices.dtype != dtypes.int64:
        raise DTypeError(f"{name}: elements in indices should be type int64 but got: {indices.dtype.name}")
    if indices.shape != x.shape:
        raise ShapeError(f"{name}: expected indices of the input's shape {x.shape}, got {indices.shape}")
    default = [(length - 1) * s + k - 2 * p for length, s, k, p in zip(x.shape[-n:], st, kernel, pad)]
    sizes = default
    if output_size is not None:
        sizes = list(output_size)[-n:] if len(output_size) == n + 2 else list(output_size)
        if len(sizes) != n:
            raise ShapeError(f"{name}: output_size should be a sequence of {n} or {n + 2} elements, "
                             f"got {len(output_size)}")
        for d, (size, base, s) in enumerate(zip(sizes, default, st)):
            if not base - s < size < base + s:
                raise ShapeError(f'{name}: invalid output_size "{tuple(output_size)}" (dim {d} must be between '
                                 f'{base - s} and {base + s})')
    lead = x.shape[:-n]
    flat = _Unpool.apply(x.reshape(*lead, -1), indices.reshape(*lead, -1), math.prod(sizes))
    return flat.reshape(*lead, *sizes)


class _Unpool(Function):
    """Values scattered to their flat indices along the last dim, into zeros of that length (of duplicate
    indices, from overlapping windows, the last wins). The gradient gathers at the indices for every value,
    duplicates included, as torch's does: the scatter's own derivative would feed only the one written."""

    replayable = True

    @staticmethod
    def forward(ctx, x: Tensor, indices: Tensor, length: int) -> Tensor:
        ctx.save_for_backward(indices)
        out = zeros(*x.shape[:-1], length, dtype=x.dtype, device=x.device)
        return out.scatter(-1, indices, x)

    @staticmethod
    def backward(ctx, g: Tensor) -> tuple:
        (indices,) = ctx.saved_tensors
        return g.gather(-1, indices), None, None


def max_unpool1d(input: Tensor, indices: Tensor, kernel_size: IntOrPair, stride: IntOrPair | None = None,
                 padding: IntOrPair = 0, output_size: Sequence[int] | None = None) -> Tensor:
    return _max_unpool(input, indices, 1, kernel_size, stride, padding, output_size)


def max_unpool2d(input: Tensor, indices: Tensor, kernel_size: IntOrPair, stride: IntOrPair | None = None,
                 padding: IntOrPair = 0, output_size: Sequence[int] | None = None) -> Tensor:
    return _max_unpool(input, indices, 2, kernel_size, stride, padding, output_size)


def max_unpool3d(input: Tensor, indices: Tensor, kernel_size: IntOrPair, stride: IntOrPair | None = None,
                 padding: IntOrPair = 0, output_size: Sequence[int] | None = None) -> Tensor:
    return _max_unpool(input, indices, 3, kernel_size, stride, padding, output_size)
