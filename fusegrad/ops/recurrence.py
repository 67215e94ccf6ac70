"""Fused recurrent layers: a layer direction's steps as one RECURRENCE kernel, and its gradient rule.

`fused_recurrence` builds the forward node (graph/recurrence.py) from the sequence's input projection,
the recurrent weight and bias and the initial states; its output rows hold each step's hidden state
(and an LSTM's cell state) followed by the gate activations the backward reads. The gradient rule
runs the backward kernel, which walks the steps in reverse and yields the gate gradients and the
states' gradients; the weight's and bias's gradients are then one product and one sum over all
steps. When the gradient must itself be differentiated (create_graph), the rule differentiates the
same steps composed from plain ops instead (`composite_recurrence`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .. import autograd
from ..graph.ops import Op
from ..graph.recurrence import GATES, RecurrenceArg, recurrence_node, state_count
from .movement import cat, stack

if TYPE_CHECKING:
    from ..tensor import Tensor


def fused_recurrence(mode: str, reverse: bool, xproj: "Tensor", weight_hh: "Tensor", bias_hh: "Tensor",
                     states: tuple["Tensor", ...]) -> "Tensor":
    """The (L, N, width) forward rows of a layer direction: xproj (L, N, G) the input projection with
    its bias, weight_hh (G, H), bias_hh (G), states (h0[, c0]) each (N, H); of one float dtype and device."""
    wt = weight_hh.t().contiguous()  # the step product reads a unit's weight row across the gates
    inputs = (xproj, wt, bias_hh, *states)
    arg = RecurrenceArg(mode, "forward", reverse)
    node = recurrence_node(arg, tuple(x._node for x in inputs))
    return xproj._apply(node, Op.RECURRENCE, inputs, arg)


def recurrence_gradients(inputs: tuple["Tensor", ...], arg: RecurrenceArg, out: "Tensor",
                         g: "Tensor") -> tuple["Tensor | None", ...]:
    """The gradients of (xproj, wt, bias, h0[, c0]) of the forward node `out` given its gradient g."""
    if arg.direction != "forward":
        raise AssertionError("the backward kernel of a fused recurrence records no history")
    if autograd.is_grad_enabled():
        return _composite_gradients(inputs, arg, g)
    xproj, wt, bias, *states = inputs
    hidden, gates = wt.shape
    length = xproj.shape[0]
    w = wt.t().contiguous()  # the state gradient's product reads a gate's weight row across the units
    srcs = (w, *states, out, g)
    barg = RecurrenceArg(arg.mode, "backward", arg.reverse)
    back = xproj._apply(recurrence_node(barg, tuple(x._node for x in srcs)), Op.RECURRENCE, srcs, barg)
    dx = back[..., :gates]
    if arg.mode == "GRU":  # the new gate's weight side is scaled by the reset gate
        dhh = cat([back[..., :2 * hidden], back[..., 3 * hidden:4 * hidden]], -1)
    else:
        dhh = dx
    h = out[..., :hidden]
    h0 = states[0].unsqueeze(0)
    before = cat([h[1:], h0], 0) if arg.reverse else cat([h0, h[:-1]], 0)  # the state each step started from
    dwt = before.reshape(-1, hidden).t() @ dhh.reshape(-1, gates)
    dbias = dhh.sum((0, 1))
    first = length - 1 if arg.reverse else 0
    column = back.shape[-1] - hidden * state_count(arg.mode)
    dstates = tuple(back[first, :, column + m * hidden:column + (m + 1) * hidden] for m in range(len(states)))
    return (dx, dwt, dbias, *dstates)


def composite_recurrence(mode: str, reverse: bool, xproj: "Tensor", wt: "Tensor", bias: "Tensor",
                         states: tuple["Tensor", ...]) -> "Tensor":
    """The forward node's rows composed step by step from differentiable ops (wt is weight_hh transposed)."""
    hidden = wt.shape[0]
    length = xproj.shape[0]
    h, c = states[0], states[1] if mode == "LSTM" else None
    rows: list["Tensor"] = [xproj] * length
    for t in (range(length - 1, -1, -1) if reverse else range(length)):
        hh = h @ wt + bias
        x = xproj[t]
        if mode == "LSTM":
            i, f, gg, o = ((x + hh)[:, m * hidden:(m + 1) * hidden] for m in range(4))
            i, f, gg, o = i.sigmoid(), f.sigmoid(), gg.tanh(), o.sigmoid()
            c = f * c + i * gg
            h = o * c.tanh()
            rows[t] = cat([h, c, i, f, gg, o], -1)
        elif mode == "GRU":
            r = (x[:, :hidden] + hh[:, :hidden]).sigmoid()
            z = (x[:, hidden:2 * hidden] + hh[:, hidden:2 * hidden]).sigmoid()
            hn = hh[:, 2 * hidden:]
            n = (x[:, 2 * hidden:] + r * hn).tanh()
            h = (1 - z) * n + z * h
            rows[t] = cat([h, r, z, n, hn], -1)
        else:
            pre = x + hh
            h = pre.tanh() if mode == "RNN_TANH" else pre.relu()
            rows[t] = h
    assert GATES[mode] * hidden == xproj.shape[-1]
    return stack(rows, 0)


def _composite_gradients(inputs: tuple["Tensor", ...], arg: RecurrenceArg, g: "Tensor") -> tuple["Tensor | None", ...]:
    """The same gradients as differentiable tensors: the steps recomposed and differentiated."""
    xproj, wt, bias, *states = inputs
    wanted = [x for x in inputs if x.requires_grad]
    if not wanted:
        return tuple(None for _ in inputs)
    out = composite_recurrence(arg.mode, arg.reverse, xproj, wt, bias, tuple(states))
    grads = iter(autograd.grad(out, wanted, g, create_graph=True, allow_unused=True))
    return tuple(next(grads) if x.requires_grad else None for x in inputs)
