"""Tensors stored back to back in one flat buffer: how optimizers update many parameters at once.

An optimizer reads its parameters, gradients and state as flat tensors (`flat_of`: no copy when they
already lie back to back, as after an earlier step or a backward that packed its gradients), computes
the new flat values in one formula, and `bind`s each tensor to its slice of the result: an in-place
write of every tensor (versions bumped), that costs no copy.
"""
from __future__ import annotations

import math
import weakref
from typing import Sequence

import numpy as np

from .graph import node as G
from .graph.node import Node
from .graph.ops import Op
from .runtime import registry
from .tensor import Tensor, cat

__all__ = ["bind", "flat_of", "is_bound", "reads_in_place", "store"]

# the view node the first tensor of a group was last bound to by `bind`, and the flat node it views
# (the group's other tensors are checked against that node by their own views' structure)
_bound_views: "weakref.WeakKeyDictionary[Node, Node]" = weakref.WeakKeyDictionary()


def _bound_base(tensors: Sequence[Tensor]) -> Node | None:
    """The flat node the tensors are, in order, the back-to-back views of (bound by an earlier `bind`)."""
    base = _bound_views.get(tensors[0]._node)
    if base is None or base.numel != sum(t.numel() for t in tensors):
        return None
    offset = 0
    for t in tensors:
        place = G.flat_view_offset(t._node)
        if place is None or place[0] is not base or place[1] != offset:
            return None
        offset += t.numel()
    return base


def is_bound(tensors: Sequence[Tensor]) -> bool:
    """Whether the tensors are, in order, the slices of one flat tensor a `bind` laid out."""
    return _bound_base(tensors) is not None


def _packed(tensors: Sequence[Tensor]) -> Tensor | None:
    """The one allocation that holds the tensors' buffers back to back in this order (gradients
    from one backward pass), as a flat tensor."""
    buffers = [t._node.buffer for t in tensors]
    base = buffers[0].base if buffers[0] is not None else None
    if base is None or any(t.dtype != tensors[0].dtype for t in tensors):
        return None
    offset = 0
    for b in buffers:
        if b is None or b.base is not base or b.offset != offset:
            return None
        offset += b.nbytes
    if offset != base.nbytes:
        return None
    first = tensors[0]._node
    return Tensor._from_node(G.buffer_node(base, (sum(t.numel() for t in tensors),), first.dtype, first.device))


def reads_in_place(tensors: Sequence[Tensor]) -> bool:
    """Whether `flat_of(tensors)` is a view (bound slices, packed gradients, a single tensor), not a
    concatenation: a reduction over a concatenation evaluates a guard per piece for every element."""
    return len(tensors) == 1 or _bound_base(tensors) is not None or _packed(tensors) is not None


def flat_of(tensors: Sequence[Tensor]) -> Tensor:
    """The tensors' values as one flat tensor, without copying when they are the views an earlier
    `bind` made, or packed gradients; otherwise a concatenation."""
    base = _bound_base(tensors)
    if base is not None:
        return Tensor._from_node(base)
    packed = _packed(tensors) if len(tensors) > 1 else None
    if packed is not None:
        return packed
    return cat([t.reshape(-1) for t in tensors]) if len(tensors) > 1 else tensors[0].reshape(-1)


def bind(tensors: Sequence[Tensor], flat: Tensor) -> None:
    """Write every tensor in place with its slice of the (realized) flat tensor, as a view: no copy."""
    offset = 0
    base = flat._node
    whole = base.numel
    for t in tensors:
        shape = t._node.shape
        n = math.prod(shape)
        # nodes built directly, not tensor ops: the slices are valid by construction, record no
        # history, and every step makes them for every parameter (through G.movement's checks, 8 us
        # per parameter: the SGD step of the MNIST MLP rebound its 6 in 51 us, now 15)
        view = base if n == whole else \
            Node(Op.SHRINK, (base,), ((offset, offset + n),), (n,), base.dtype, base.device)
        if shape != view.shape:
            view = Node(Op.RESHAPE, (view,), shape, shape, base.dtype, base.device)
        t._node = view
        t._version += 1  # an in-place write, as torch's optimizer step is: ops that used the old value see it
        if not offset:
            _bound_views[view] = base
        offset += n


def store(scalar: Tensor, value: float) -> Tensor:
    """Write a new value into a realized one-element tensor's own buffer, so every kernel that reads
    it (those a jitted step replays too) sees the change."""
    node = scalar._node
    if node.buffer is None or node.numel != 1:
        raise ValueError("store needs a realized one-element tensor")
    registry.get(node.device).copy_in(node.buffer, np.array(value, dtype=node.dtype.np))
    return scalar
