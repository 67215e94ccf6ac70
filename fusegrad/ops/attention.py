"""Fused scaled dot-product attention: the forward as one ATTENTION kernel, and its gradient rule.

`fused_attention` builds the forward node (graph/attention.py), whose output rows carry each query's
log-sum-exp in one extra column; the user sees the rows. The gradient rule runs two kernels that
recompute the scores from that log-sum-exp, after one small kernel for delta (the row sums of
dout * out). When the gradient must itself be differentiated (create_graph, nested tapes), the rule
instead returns the same gradients composed from differentiable ops.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .. import autograd
from ..graph.attention import AttentionArg, attention_node
from ..graph.ops import Op

if TYPE_CHECKING:
    from ..tensor import Tensor

# on the CPU the composed form's products run in the GEMM routine, faster than the fused kernel for short
# sequences; from score matrices of this many elements on (256 x 256) the fused kernel wins, and its
# memory stays linear in the length (docs/benchmarks.md)
CPU_FUSED_SCORES = 1 << 16


def prefers_fused(device: str, queries: int, keys: int) -> bool:
    """Whether attention of `queries` over `keys` runs fused on `device` (always, except short on the CPU)."""
    return not device.startswith("cpu") or queries * keys >= CPU_FUSED_SCORES


def fused_attention(q: "Tensor", k: "Tensor", v: "Tensor", scale: float, causal: bool) -> "Tensor":
    """softmax(q @ k^T * scale) @ v in one kernel (causal: query i sees keys j <= i); q (*B, T, D),
    k (*B, S, D), v (*B, S, E) of one float dtype and device, with equal batch dims."""
    node = attention_node("forward", (q._node, k._node, v._node), scale, causal)
    return q._apply(node, Op.ATTENTION, (q, k, v), node.arg)[..., :-1].to(q.dtype)


def attention_gradients(inputs: tuple["Tensor", ...], arg: AttentionArg, out: "Tensor",
                        g: "Tensor") -> tuple["Tensor", ...]:
    """The gradients of q, k and v of the forward node `out` (rows and log-sum-exp) given its gradient
    g (the log-sum-exp column's is zero: it is never shown)."""
    if arg.direction != "forward":
        raise AssertionError("the gradient kernels of fused attention record no history")
    q, k, v = inputs
    d, e = q.shape[-1], v.shape[-1]
    dout = g[..., :e].to(q.dtype)  # float32 from the forward's rows of half operands
    if autograd.is_grad_enabled():
        return _composite_gradients(q, k, v, dout, arg)
    delta = (dout * out[..., :e]).sum(-1)
    srcs = (q, k, v, out[..., e], delta, dout)
    nodes = tuple(x._node for x in srcs)
    dq = q._apply(attention_node("grad_q", nodes, arg.scale, arg.causal), Op.ATTENTION, srcs, arg)
    dkv = q._apply(attention_node("grad_kv", nodes, arg.scale, arg.causal), Op.ATTENTION, srcs, arg)
    return dq, dkv[..., :d], dkv[..., d:]


def _composite_gradients(q: "Tensor", k: "Tensor", v: "Tensor", dout: "Tensor",
                         arg: AttentionArg) -> tuple["Tensor", ...]:
    """The same gradients from differentiable ops (the T x T weights materialize)."""
    from ..creation import arange
    scores = (q @ k.transpose(-2, -1)) * arg.scale
    if arg.causal:
        t, s = q.shape[-2], k.shape[-2]
        seen = arange(t, device=q.device).reshape(t, 1) >= arange(s, device=q.device).reshape(1, s)
        scores = scores.where(seen, float("-inf"))
    p = scores.softmax(-1)
    dp = dout @ v.transpose(-2, -1)
    ds = p * (dp - (dp * p).sum(-1, keepdim=True)) * arg.scale
    return ds @ k, ds.transpose(-2, -1) @ q, p.transpose(-2, -1) @ dout
