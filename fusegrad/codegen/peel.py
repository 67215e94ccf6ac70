"""Loop-IR pass: peel the innermost global loop at the edges of the padding bounds on its variable.

A guard like `i3 < 10` on a loop over 11 (the gradient of a floor-mode pool, of a shrink, the
border of a padded input) makes every load in the body conditional, and gcc vectorizes no loop
with control flow in it. Cut at each edge of the bounds that read the variable alone, every piece
decides those bounds statically: the inside runs unguarded (and can be split and vectorized by
the merge pass), the outside reads constant zeros. A CPU pass: GPU renderers map global loops to
threads and keep the guards.
"""
from __future__ import annotations

from dataclasses import replace

from .. import dtypes
from ..graph.symbolic import Bound, Var, atom, bound
from .interchange import _sub_stmt
from .ir import Accumulate, Alu, Cond, Const, Define, EndLoop, Expr, Gemm, Load, Loop, LoopIR, Stmt, Store
from .merge import _end

MAX_PIECES = 16  # a loop cut into more pieces costs more code than the guards do


def _bounds(e: Expr) -> list[Bound]:
    if isinstance(e, Load):
        return list(e.valid)
    if isinstance(e, Cond):
        return list(e.bounds)
    if isinstance(e, Alu):
        return [b for a in e.args for b in _bounds(a)]
    return []


def _cuts(body: list[Stmt], v: Var) -> list[int]:
    """Where the bounds on `v` alone change value, strictly inside (0, extent)."""
    found: set[int] = set()
    for s in body:
        value = s.value if isinstance(s, (Define, Accumulate, Store)) else None
        for b in _bounds(value) if value is not None else []:
            if b.expr.terms == ((v, 1),):
                found |= {edge - b.expr.const for edge in (b.lo, b.hi)}
    return sorted(c for c in found if 0 < c < v.extent)


def _decide(e: Expr) -> Expr:
    """`e` with every bound that its range now settles dropped (true) or folded to zero (false)."""
    if isinstance(e, Load):
        kept = [bound(b.expr, b.lo, b.hi) for b in e.valid]
        if any(k is False for k in kept):
            return Const(0, e.dtype)
        return replace(e, valid=tuple(k for k in kept if k is not True))
    if isinstance(e, Cond):
        kept = [bound(b.expr, b.lo, b.hi) for b in e.bounds]
        if any(k is False for k in kept):
            return Const(False, dtypes.bool_)
        left = tuple(k for k in kept if k is not True)
        return Cond(left) if left else Const(True, dtypes.bool_)
    if isinstance(e, Alu):
        return Alu(e.op, tuple(_decide(a) for a in e.args), e.dtype)
    return e


def _decide_stmt(s: Stmt) -> Stmt:
    if isinstance(s, (Define, Accumulate, Store)):
        return replace(s, value=_decide(s.value))
    return s


def peel_loops(ir: LoopIR) -> LoopIR:
    """`ir` with its innermost global loop cut into pieces at the edges of its bounds (see above)."""
    stmts = ir.stmts
    if any(isinstance(s, Gemm) for s in stmts):
        return ir
    opened = [i for i, s in enumerate(stmts) if isinstance(s, Loop) and s.kind == "global"]
    if not opened:
        return ir
    i = opened[-1]
    v, j = stmts[i].var, _end(stmts, i)
    body = stmts[i + 1:j]
    edges = _cuts(body, v)
    if not edges or len(edges) + 1 > MAX_PIECES:
        return ir
    pieces: list[Stmt] = []
    for n, (lo, hi) in enumerate(zip([0, *edges], [*edges, v.extent])):
        piece = Var(f"{v.name}p{n}", hi - lo)
        inner = [_decide_stmt(_sub_stmt(s, v, atom(piece) + lo)) for s in body]
        pieces += [Loop(piece, "global"), *inner, EndLoop("global")]
    return LoopIR(ir.name, ir.params, stmts[:i] + pieces + stmts[j + 1:], ir.work)
