"""Row gathers whose gradient is a fused row scatter-add (Op.INDEX_ADD, graph/scatter.py).

`gather_rows(weight, index)` is weight's rows at index (an embedding lookup), computed as any row
gather is; its history entry differentiates to `index_add_rows`: the gradient's N rows added into the
weight's rows in one kernel of N x C additions. Differentiated as the composed gather it is, the
gradient was a comparison of every weight row with every index (rows x N x C work, which a real
vocabulary makes prohibitive: docs/benchmarks.md). The scatter-add's own gradient is the gather
again, so gradients of gradients work.
"""
from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from .. import autograd
from ..graph.ops import Op
from ..graph.scatter import index_add_node

if TYPE_CHECKING:
    from ..tensor import Tensor

SCATTER_DTYPES = ("float32", "float64")  # stored as they compute: the kernel adds into its output in place


def index_add_rows(src: "Tensor", index: "Tensor", rows: int, base: "Tensor | None" = None) -> "Tensor":
    """base (rows, C), or zeros, with src's rows (N, C) added at index (N,), whose values lie in [0, rows)."""
    node = index_add_node(src._node, index._node, rows, None if base is None else base._node)
    inputs = (src, index) if base is None else (src, index, base)
    return src._apply(node, Op.INDEX_ADD, inputs, node.arg)


def index_add_gradients(inputs: tuple["Tensor", ...], g: "Tensor") -> tuple["Tensor | None", ...]:
    """The gradients of INDEX_ADD's (src, index[, base]): g's rows at index, none, and g."""
    index = inputs[1]
    return (g._index_select(0, index, "index_add"), None, g)[:len(inputs)]


class _RowGather:
    """The history entry of a row gather: its gradient is a fused row scatter-add."""

    __slots__ = ("index", "rows")
    name = "EmbeddingBackward"

    def __init__(self, index: "Tensor", rows: int):
        self.index = index
        self.rows = rows

    def rule(self, hist: autograd.Ctx, out: "Tensor", g: "Tensor") -> tuple:
        return (index_add_rows(g.reshape(-1, g.shape[-1]), self.index, self.rows),)


def gather_rows(weight: "Tensor", index: "Tensor", what: str) -> "Tensor":
    """weight's rows (weight 2-D) at the integer indices `index`, any shape: (*index.shape, C). The
    indices are checked as index_select checks them (negative ones are out of range); the gradient
    skips an index out of range, which the gather has reported."""
    from ..tensor import Tensor
    flat = index.reshape(-1)
    records = autograd.is_grad_enabled() and (weight.requires_grad or bool(autograd._state.tapes))
    fused = records and weight.dtype.name in SCATTER_DTYPES and flat.numel() > 0
    with autograd.no_grad() if fused else contextlib.nullcontext():
        out = weight._index_select(0, flat, what).reshape(index.shape + (weight.shape[1],))
    if not fused:
        return out
    t = Tensor._from_node(out._node)
    t._ctx = autograd.Ctx(_RowGather(flat, weight.shape[0]), (weight,), None)  # type: ignore[arg-type]
    t.requires_grad = True  # as a custom Function's output: recorded for a gradient or a transform's tape
    return t
