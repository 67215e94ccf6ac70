"""Shape arithmetic of the frontend: shapes from call arguments, dimension indices, broadcasting
and reshape inference, each raising the typed error of the call that caused it."""
from __future__ import annotations

import math
import operator

from ..errors import ShapeError

_MAX_NUMEL = 2 ** 63 - 1  # element counts (and the byte offsets kernels compute) are int64


def shape_arg(args: tuple) -> tuple[int, ...]:
    """Accept f(2, 3), f((2, 3)) and f([2, 3]) like torch; sizes must not be negative."""
    shape = shape_tuple(args)
    if any(s < 0 for s in shape):
        raise ShapeError(f"Trying to create tensor with negative dimension {min(shape)}: {list(shape)}")
    return check_numel(shape)


def check_numel(shape: tuple[int, ...]) -> tuple[int, ...]:
    """`shape`, unless its element count overflows int64 (torch raises too, rather than wrapping)."""
    if math.prod(shape) > _MAX_NUMEL:
        raise ShapeError(f"Storage size calculation overflowed with sizes={list(shape)}: "
                         f"{math.prod(shape)} elements do not fit int64")
    return shape


def size_int(value: object) -> int:
    """One size or dim argument: an int, a numpy integer or a one-element integer tensor (anything with
    `__index__`); a float or bool raises TypeError, as in torch."""
    if isinstance(value, bool):
        raise TypeError("sizes must be ints, not bool")
    try:
        size = operator.index(value)
    except TypeError:
        raise TypeError(f"sizes must be ints, not {type(value).__name__} ({value!r})") from None
    if not -2 ** 63 <= size <= _MAX_NUMEL:
        raise TypeError(f"size {size} does not fit int64")  # torch: "Overflow when unpacking long long"
    return size


def normalize_dim(dim: int, ndim: int) -> int:
    """A dimension index in [0, ndim); negative counts from the end. Scalars accept 0 and -1."""
    size = max(ndim, 1)
    if not -size <= dim < size:
        raise IndexError(f"dimension {dim} out of range for a tensor with {ndim} dimensions "
                         f"(expected in [{-size}, {size - 1}])")
    return dim % size


def broadcast_shape(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    """The shape all `shapes` broadcast to (aligned at their last dimension, like numpy)."""
    ndim = max(map(len, shapes))
    out = [1] * ndim
    for shape in shapes:
        i = ndim - len(shape)
        for n in shape:
            if n != 1:
                if out[i] == 1:
                    out[i] = n
                elif out[i] != n:
                    sizes = {s[i - ndim + len(s)] for s in shapes if i - ndim + len(s) >= 0} - {1}
                    raise ShapeError(f"shapes {', '.join(str(tuple(s)) for s in shapes)} cannot be broadcast "
                                     f"together (dimension {i} has sizes {sorted(sizes)})")
            i += 1
    return check_numel(tuple(out))


def shape_tuple(args: tuple) -> tuple[int, ...]:
    """f(2, 3), f((2, 3)) or f([2, 3]) as a tuple, unchecked (reshape and permute take -1 and negative dims)."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = tuple(args[0])
    return tuple(size_int(a) for a in args)


def infer_reshape(old: tuple[int, ...], new: tuple[int, ...]) -> tuple[int, ...]:
    """`new` with its -1 filled in, checked to hold as many elements as `old`."""
    if new.count(-1) > 1:
        raise ShapeError(f"only one dimension can be inferred in reshape {new}")
    numel = math.prod(old)
    if -1 in new:
        known = math.prod(s for s in new if s != -1)
        if known == 0 or numel % known:
            raise ShapeError(f"shape {new} is invalid for input of size {numel} (shape {old})")
        new = tuple(numel // known if s == -1 else s for s in new)
    if any(s < 0 for s in new) or math.prod(new) != numel:
        raise ShapeError(f"shape {new} is invalid for input of size {numel} (shape {old})")
    return new
