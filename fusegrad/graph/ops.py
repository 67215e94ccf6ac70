"""The closed set of primitive ops. Everything else is composed from these in the frontend.

A backend renderer must implement every elementwise op below; movement ops never reach a
renderer (they become index arithmetic) and reductions become loops. A fused op is one kernel
template per direction, rendered from one shared body (codegen/attention.py, codegen/recurrence.py, codegen/scatter.py).
"""
from __future__ import annotations

import enum


class Op(enum.Enum):
    # leaves: a realized buffer, a constant filled to a shape, counter-based random bits, indices
    BUFFER = enum.auto()
    CONST = enum.auto()
    RAND = enum.auto()
    IOTA = enum.auto()  # element i of a contiguous array holds i
    # unary elementwise
    NEG = enum.auto()
    NOT = enum.auto()
    EXP = enum.auto()
    LOG = enum.auto()
    SIN = enum.auto()
    COS = enum.auto()
    SQRT = enum.auto()
    ERF = enum.auto()
    FLOOR = enum.auto()
    RINT = enum.auto()  # round to the nearest integer, ties to even
    CAST = enum.auto()
    BITCAST = enum.auto()  # the same bits read as another dtype of the same itemsize (x.view(dtype))
    # binary elementwise (same shapes; broadcasting is explicit EXPAND)
    ADD = enum.auto()
    SUB = enum.auto()
    MUL = enum.auto()
    DIV = enum.auto()  # true division on floats, floor division on integers
    MOD = enum.auto()  # Python-style remainder (sign of the divisor)
    POW = enum.auto()
    MAX = enum.auto()
    CMPLT = enum.auto()
    CMPEQ = enum.auto()
    AND = enum.auto()
    OR = enum.auto()
    XOR = enum.auto()
    # ternary elementwise
    WHERE = enum.auto()
    # reductions over `arg` axes, keeping them as size 1
    SUM = enum.auto()
    RMAX = enum.auto()
    PROD = enum.auto()
    # movement: views, never computed
    RESHAPE = enum.auto()
    PERMUTE = enum.auto()
    EXPAND = enum.auto()
    PAD = enum.auto()  # zero padding, arg = ((before, after), ...)
    SHRINK = enum.auto()  # arg = ((start, end), ...)
    FLIP = enum.auto()  # arg = axes
    # force a materialized, contiguous buffer
    CONTIGUOUS = enum.auto()
    # srcs (value, ok, error word): the value passed through; where ok is False the kernel records
    # arg (a message code), the value and its position in the device's error word
    CHECK = enum.auto()
    # fused: softmax(q k^T * scale) v with keys streamed through an online softmax, one kernel per
    # direction (graph/attention.py: arg, sources and shapes); no T x T scores are ever stored
    ATTENTION = enum.auto()
    # fused: a recurrent layer (LSTM, GRU, RNN) over a whole sequence, its steps a loop inside one
    # kernel per direction (graph/recurrence.py: arg, sources and shapes)
    RECURRENCE = enum.auto()
    # fused: rows of a source added into the rows an index names, duplicates accumulating (the gradient
    # of a row gather such as an embedding), one kernel (graph/scatter.py)
    INDEX_ADD = enum.auto()

    def __repr__(self) -> str:
        return self.name

    # members are singletons compared by identity, so they hash by identity too: Enum's own hash (of
    # the name) is Python code, and ops are hashed in every set and table lookup while graphs are built
    __hash__ = object.__hash__


UNARY = frozenset({Op.NEG, Op.NOT, Op.EXP, Op.LOG, Op.SIN, Op.COS, Op.SQRT, Op.ERF, Op.FLOOR, Op.RINT,
                   Op.CAST, Op.BITCAST})
BINARY = frozenset({Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.MOD, Op.POW, Op.MAX, Op.CMPLT, Op.CMPEQ,
                    Op.AND, Op.OR, Op.XOR})
TERNARY = frozenset({Op.WHERE})
ELEMENTWISE = UNARY | BINARY | TERNARY
REDUCE = frozenset({Op.SUM, Op.RMAX, Op.PROD})
MOVEMENT = frozenset({Op.RESHAPE, Op.PERMUTE, Op.EXPAND, Op.PAD, Op.SHRINK, Op.FLIP})
LEAF = frozenset({Op.BUFFER, Op.CONST, Op.RAND, Op.IOTA})
COMPARISON = frozenset({Op.CMPLT, Op.CMPEQ})
FUSED = frozenset({Op.ATTENTION, Op.RECURRENCE, Op.INDEX_ADD})
