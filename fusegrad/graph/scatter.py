"""The INDEX_ADD node: out[index[n], :] += src[n, :] into `rows` rows of a base (zeros when none is
given), duplicates accumulating.

srcs (src, index[, base]): src (N, C) of a float dtype, index (N,) of an integer dtype with every
value in [0, rows) (the caller checks), base (rows, C) of src's dtype; out (rows, C). It is the
gradient of a row gather (an embedding lookup): N x C additions where the one-hot form of the same
sum compared every row with every index.
"""
from __future__ import annotations

from dataclasses import dataclass

from .node import Node
from .ops import Op


@dataclass(frozen=True)
class IndexAddArg:
    rows: int


def index_add_node(src: Node, index: Node, rows: int, base: Node | None = None) -> Node:
    """The node summing src's rows into `rows` rows (of base, or zeros) at `index`."""
    assert len(src.shape) == 2 and index.shape == (src.shape[0],)
    assert base is None or base.shape == (rows, src.shape[1])
    srcs = (src, index) if base is None else (src, index, base)
    return Node(Op.INDEX_ADD, srcs, IndexAddArg(rows), (rows, src.shape[1]), src.dtype, src.device)


def index_add_flops(node: Node) -> int:
    """One addition per element of the source."""
    return node.srcs[0].numel if node.srcs else 0
