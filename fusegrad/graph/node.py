"""Immutable lazy-graph nodes and their shape/dtype inference.

A node is an op applied to source nodes. Once realized it holds a device buffer and drops its
sources, so intermediates are freed when no tensor needs them. Movement ops on constants fold
away, and trivial movements return their source, so graphs stay small.
"""
from __future__ import annotations

import math
from typing import Any

from ..dtypes import DType, bool_, int64
from .ops import BINARY, COMPARISON, MOVEMENT, REDUCE, UNARY, Op

Shape = tuple[int, ...]


class Node:
    # no __eq__ or __hash__: nodes compare and hash by identity, so graph walks keep them in sets
    # and dicts directly (cheaper than keying by id())
    __slots__ = ("op", "srcs", "arg", "shape", "dtype", "device", "buffer", "__weakref__")

    def __init__(self, op: Op, srcs: tuple["Node", ...], arg: Any, shape: Shape, dtype: DType, device: str):
        self.op = op
        self.srcs = srcs
        self.arg = arg
        self.shape = shape
        self.dtype = dtype
        self.device = device
        self.buffer: Any = None

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def set_buffer(self, buffer: Any) -> None:
        """Mark realized: the value now lives in `buffer`; sources are no longer needed."""
        self.buffer = buffer
        self.srcs = ()

    def __repr__(self) -> str:
        state = "realized" if self.buffer is not None else f"srcs={len(self.srcs)}"
        return f"<Node {self.op.name} {self.shape} {self.dtype.name} {state}>"


def buffer_node(buffer: Any, shape: Shape, dtype: DType, device: str) -> Node:
    node = Node(Op.BUFFER, (), None, shape, dtype, device)
    node.buffer = buffer
    return node


def const(value: Any, shape: Shape, dtype: DType, device: str) -> Node:
    if dtype is bool_:
        value = bool(value)
    elif dtype.is_int:
        value = int(value)
    else:
        value = float(value)
    return Node(Op.CONST, (), value, tuple(shape), dtype, device)


def rand(shape: Shape, state: Node, dtype: DType) -> Node:
    """Uniform [0, 1) numbers: element i is Philox(seed, offset + i), (seed, offset) read from
    the int64 buffer node `state`."""
    return Node(Op.RAND, (state,), None, tuple(shape), dtype, state.device)


def iota(n: int, device: str) -> Node:
    """int64 [0, 1, ..., n-1], computed in the kernel that reads it."""
    return Node(Op.IOTA, (), None, (n,), int64, device)


def check(value: Node, ok: Node, word: Node, code: int) -> Node:
    """`value`, with every element where `ok` is False reported through the error word `word` as
    `code` (checks that depend on data run on the device, so they survive laziness and replays)."""
    assert value.shape == ok.shape and ok.dtype is bool_
    return Node(Op.CHECK, (value, ok, word), code, value.shape, value.dtype, value.device)


def unary(op: Op, src: Node, dtype: DType | None = None) -> Node:
    assert op in UNARY
    return Node(op, (src,), None, src.shape, dtype if dtype is not None else src.dtype, src.device)


def cast(src: Node, dtype: DType) -> Node:
    if src.dtype is dtype:
        return src
    if src.op is Op.CONST and src.buffer is None:
        return const(src.arg, src.shape, dtype, src.device)
    return unary(Op.CAST, src, dtype)


# float arithmetic on two constants folds at build time (a kernel for 1 / 24 would be a waste)
_FOLD = {Op.ADD: lambda x, y: x + y, Op.SUB: lambda x, y: x - y, Op.MUL: lambda x, y: x * y}


def binary(op: Op, a: Node, b: Node) -> Node:
    assert op in BINARY and a.shape == b.shape, (op, a.shape, b.shape)
    dtype = bool_ if op in COMPARISON else a.dtype
    if a.op is Op.CONST and b.op is Op.CONST and a.buffer is None and b.buffer is None and dtype.is_floating_point:
        if op in _FOLD:
            return const(_FOLD[op](a.arg, b.arg), a.shape, dtype, a.device)
        if op is Op.DIV and b.arg != 0:
            return const(a.arg / b.arg, a.shape, dtype, a.device)
    return Node(op, (a, b), None, a.shape, dtype, a.device)


def where(cond: Node, a: Node, b: Node) -> Node:
    assert cond.shape == a.shape == b.shape
    return Node(Op.WHERE, (cond, a, b), None, a.shape, a.dtype, a.device)


def reduce(op: Op, src: Node, axes: tuple[int, ...]) -> Node:
    assert op in REDUCE
    axes = tuple(sorted(set(axes)))
    sizes = [src.shape[i] for i in axes]
    if sizes.count(1) == len(sizes):  # nothing to reduce (also no axes)
        return src
    out = list(src.shape)
    for i in axes:
        out[i] = 1
    shape = tuple(out)
    if 0 in sizes:  # an empty reduction is its identity, like torch
        identity = {Op.SUM: 0, Op.PROD: 1, Op.RMAX: float("-inf")}[op]
        return const(identity, shape, src.dtype, src.device)
    return Node(op, (src,), axes, shape, src.dtype, src.device)


def contiguous(src: Node) -> Node:
    return Node(Op.CONTIGUOUS, (src,), None, src.shape, src.dtype, src.device)


def _movement_shape(op: Op, shape: Shape, arg: Any) -> Shape:
    if op is Op.PERMUTE:
        return tuple(shape[i] for i in arg)
    if op is Op.PAD:
        return tuple(s + lo + hi for s, (lo, hi) in zip(shape, arg))
    if op is Op.SHRINK:
        return tuple(hi - lo for lo, hi in arg)
    return shape  # FLIP


def _is_identity(op: Op, src: Node, arg: Any) -> bool:
    if op is Op.PERMUTE:
        return tuple(arg) == tuple(range(len(arg)))
    if op is Op.PAD:
        return all(lo == 0 and hi == 0 for lo, hi in arg)
    if op is Op.SHRINK:
        return all(lo == 0 and hi == s for (lo, hi), s in zip(arg, src.shape))
    return not any(src.shape[a] > 1 for a in arg)  # FLIP


def movement(op: Op, src: Node, arg: Any) -> Node:
    """A view of `src`. Callers validate `arg`; these asserts guard internal misuse."""
    assert op in MOVEMENT
    if op is Op.RESHAPE or op is Op.EXPAND:  # most movements: the new shape is the argument
        shape = tuple(arg)
        if shape == src.shape:
            return src
    else:
        if op is Op.FLIP:
            arg = tuple(a for a in arg if src.shape[a] > 1)
        if _is_identity(op, src, arg):
            return src
        shape = _movement_shape(op, src.shape, arg)
    assert min(shape, default=0) >= 0, (op, src.shape, arg)
    if src.op is Op.CONST and src.buffer is None and op is not Op.PAD:
        return const(src.arg, shape, src.dtype, src.device)
    if op is Op.RESHAPE and src.op is Op.RESHAPE:
        inner = src.srcs  # before the buffer: another thread realizing src sets it first, then drops srcs
        if inner and src.buffer is None:
            src = inner[0]
            if src.shape == shape:
                return src
    return Node(op, (src,), tuple(arg), shape, src.dtype, src.device)


def flat_view_offset(node: Node) -> tuple[Node, int] | None:
    """(base, first element) when `node` is a contiguous slice of a 1-D node, optionally reshaped:
    how parameters packed into one flat buffer look."""
    srcs = node.srcs  # read before the buffer, as in `movement`
    if node.op is Op.RESHAPE and srcs and node.buffer is None:
        node = srcs[0]
        srcs = node.srcs
    if node.op is not Op.SHRINK or not srcs or node.buffer is not None or len(node.shape) != 1:
        return None
    return srcs[0], node.arg[0][0]
