"""The ATTENTION node: its argument, its sources and the shape of its output, per direction.

forward  srcs (q, k, v)                    out (*B, T, E + 1): the output rows, then each row's
                                           log-sum-exp of the scaled scores (the backward's softmax);
                                           float32 for float16/bfloat16 operands (an lse rounded to
                                           8 bits would skew every recomputed probability)
grad_q   srcs (q, k, v, lse, delta, dout)  out (*B, T, D): the query gradient
grad_kv  srcs (q, k, v, lse, delta, dout)  out (*B, S, D + E): the key gradient, then the value gradient

q is (*B, T, D), k (*B, S, D), v (*B, S, E), lse and delta (*B, T), dout (*B, T, E), all of one float
dtype and device (lse and delta float32 for half operands); delta is the row sum of dout * out. With
`causal`, query i sees keys j <= i (top-left aligned, as PyTorch's is_causal).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..dtypes import HALF, float32
from .node import Node
from .ops import Op

DIRECTIONS = ("forward", "grad_q", "grad_kv")


@dataclass(frozen=True)
class AttentionArg:
    direction: str
    scale: float
    causal: bool


def attention_node(direction: str, srcs: tuple[Node, ...], scale: float, causal: bool) -> Node:
    """The node computing `direction` from srcs (shapes as the module docstring gives; the caller checks)."""
    q, k, v = srcs[:3]
    *batch, t, d = q.shape
    s, e = v.shape[-2], v.shape[-1]
    assert direction in DIRECTIONS and len(srcs) == (3 if direction == "forward" else 6)
    assert k.shape == (*batch, s, d) and v.shape == (*batch, s, e)
    rows, width = {"forward": (t, e + 1), "grad_q": (t, d), "grad_kv": (s, d + e)}[direction]
    dtype = float32 if direction == "forward" and q.dtype in HALF else q.dtype
    return Node(Op.ATTENTION, tuple(srcs), AttentionArg(direction, float(scale), bool(causal)),
                (*batch, rows, width), dtype, q.device)


def attention_flops(node: Node) -> int:
    """Floating-point operations of an ATTENTION node: two per multiply-add of its products over every
    (query, key) pair it visits (about half of them when causal)."""
    if not node.srcs:  # realized: its sources are gone, and so is what it cost
        return 0
    q, _, v = node.srcs[:3]
    *batch, t, d = q.shape
    s, e = v.shape[-2:]
    pairs = math.prod(batch) * t * s
    if node.arg.causal:
        pairs = math.prod(batch) * sum(min(i + 1, s) for i in range(t)) if t <= 1 << 16 else pairs // 2
    per_pair = {"forward": d + e, "grad_q": 2 * d + e, "grad_kv": 2 * d + 2 * e}[node.arg.direction]
    return 2 * pairs * per_pair
