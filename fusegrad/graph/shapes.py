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


STAGED_TERMS = 1 << 15  # a reduction of at least this many terms per output ...
STAGED_OUTPUTS = 16  # ... into at most this many outputs runs in two stages
STAGE_TERMS = 4096  # the most terms each first-stage output sums (at least STAGE_TERMS // 16)


def two_stage_reduction(shape: tuple[int, ...], axes: tuple[int, ...]) -> \
        tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None:
    """How to reduce `axes` of `shape` in two stages, or None for one: (a reshape of the input, the axes
    the first stage sums, the axes the second sums), both stages keeping dims. One output summing
    millions of terms is one thread's loop on the CPU and one block's on a GPU (a gradient norm over
    10 M weights took 17 ms on an H200); its first stage gives many outputs, each a parallel loop.
    The reduced dims are split where they already divide (trailing dims for the first stage), else
    one dim is split into (n / q, q) with q a divisor of n."""
    terms = 1
    for a in axes:
        terms *= shape[a]
    outputs = 1
    for d, s in enumerate(shape):
        if d not in axes:
            outputs *= s
    if terms < STAGED_TERMS or outputs > STAGED_OUTPUTS:
        return None
    inner: list[int] = []
    size = 1
    for a in reversed(axes):  # trailing reduced dims, while they stay at most STAGE_TERMS
        if size * shape[a] > STAGE_TERMS:
            break
        inner.insert(0, a)
        size *= shape[a]
    if size >= STAGE_TERMS // 16 and len(inner) < len(axes):
        return shape, tuple(inner), tuple(a for a in axes if a not in inner)
    # split the reduced dim just before the trailing ones: (n, ...) -> (n / q, q, ...)
    at = axes[len(axes) - len(inner) - 1]
    n = shape[at]
    q = next((q for q in range(STAGE_TERMS // max(size, 1), 0, -1) if n % q == 0), 1)
    if q * size < STAGE_TERMS // 16 or q == n:
        return None
    new = shape[:at] + (n // q, q) + shape[at + 1:]
    moved = tuple(a + 1 if a > at else a for a in axes)
    inner_new = tuple(a + 1 for a in inner)
    return new, (at + 1,) + inner_new, tuple(a for a in moved if a != at + 1 and a not in inner_new)
