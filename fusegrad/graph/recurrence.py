"""The RECURRENCE node: a recurrent layer's steps over a whole sequence, its argument, sources and shapes.

The input projections (x @ W_ih^T + b_ih, all steps at once) are computed before the node; the node
runs the steps, each a product of the state with the recurrent weights and the cell's gates.

forward   srcs (xproj, wt, bias, h0[, c0])        out (L, N, width): per step the new hidden state,
                                                    then what the backward needs (gate activations)
backward  srcs (w, h0[, c0], saved, grad)          out (L, N, width): per step the gradients of the
                                                    gates' pre-activations, then those of the state
                                                    entering the step

xproj is (L, N, G) with G = gates * H; wt (H, G) is the recurrent weight transposed (contiguous), w
(G, H) the weight itself; bias (G) the recurrent bias; h0, c0 (N, H) the initial states; saved and
grad (L, N, forward width) the forward's output and its gradient. With `reverse` the steps run from
the last position to the first (the second direction of a bidirectional layer).

Columns of a row (each a block of H):
  LSTM      forward  h, c, i, f, g, o              backward  di, df, dg, do (pre-activation), dh, dc
  GRU       forward  h, r, z, n, hn (= W_hn h+b)   backward  dr, dz, dn (input side), dhn, dh
  RNN_TANH, RNN_RELU forward h                     backward  dpre, dh
"""
from __future__ import annotations

from dataclasses import dataclass

from .node import Node
from .ops import Op

GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}
DIRECTIONS = ("forward", "backward")


@dataclass(frozen=True)
class RecurrenceArg:
    mode: str
    direction: str
    reverse: bool


def forward_width(mode: str, hidden: int) -> int:
    """Columns of a forward output row."""
    return {"LSTM": 6, "GRU": 5}.get(mode, 1) * hidden


def backward_width(mode: str, hidden: int) -> int:
    """Columns of a backward output row."""
    return {"LSTM": 6, "GRU": 5}.get(mode, 2) * hidden


def state_count(mode: str) -> int:
    """States carried between steps: h, and c for an LSTM."""
    return 2 if mode == "LSTM" else 1


def recurrence_node(arg: RecurrenceArg, srcs: tuple[Node, ...]) -> Node:
    """The node computing `arg.direction` from srcs (shapes as the module docstring gives; the caller checks)."""
    assert arg.mode in GATES and arg.direction in DIRECTIONS
    states = state_count(arg.mode)
    if arg.direction == "forward":
        xproj, wt = srcs[:2]
        assert len(srcs) == 3 + states
        length, batch, gates = xproj.shape
        hidden = wt.shape[0]
        width = forward_width(arg.mode, hidden)
    else:
        w = srcs[0]
        assert len(srcs) == 3 + states
        gates, hidden = w.shape
        length, batch = srcs[-1].shape[:2]
        width = backward_width(arg.mode, hidden)
    assert gates == GATES[arg.mode] * hidden
    return Node(Op.RECURRENCE, tuple(srcs), arg, (length, batch, width), srcs[-1].dtype, srcs[-1].device)


def recurrence_flops(node: Node) -> int:
    """Floating-point operations of a RECURRENCE node: two per multiply-add of its step products."""
    if not node.srcs:  # realized: its sources are gone
        return 0
    length, batch = node.shape[:2]
    w = node.srcs[1] if node.arg.direction == "forward" else node.srcs[0]
    return 2 * length * batch * w.numel
