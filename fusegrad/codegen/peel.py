"""Loop-IR pass: peel the innermost global loop at the edges of the padding bounds on its variable.

A guard like `i3 < 10` on a loop over 11 (the gradient of a floor-mode pool, of a shrink, the
border of a padded input) makes every load in the body conditional, and gcc vectorizes no loop
with control flow in it. Cut at each edge of the bounds that read the variable alone, every piece
decides those bounds statically: the inside runs unguarded (and can be split and vectorized by
the merge pass), the outside reads constant zeros. A CPU pass: GPU renderers map global loops to
threads and keep the guards.

A window's guard reads two variables: `2*i3 + r4 >= 1` (an output column and a tap of a padded
strided convolution) or `i3 + r4 >= 1` (a tap and an input column of its weight gradient). When one
of them is a short loop around the innermost loop that reads the other, that loop is unrolled
(a piece of one iteration per tap, the tap a constant in it) and each copy of the innermost loop is
cut at its own edges, so every tap's row runs unguarded and vectorizes. A tap loop around nothing but
a row of outputs (the interchange pass's `inner` loop) moves inside the row instead: each output then
adds all the taps, in their order, with one read and write of its partial sum.
"""
from __future__ import annotations

from dataclasses import replace

from .. import dtypes
from ..graph.ops import Op
from ..graph.symbolic import Bound, Lin, Var, atom, bound
from .interchange import _sub_stmt
from .ir import (Accumulate, Alu, Cond, Const, Define, DefineAcc, EndLoop, Expr, Gemm, Load, Loop, LoopIR, Ref, Stmt,
                 Store, subexpressions)
from .gemm import lin_vars
from .merge import _end, _stmt_lins

SHORT = 6  # global loops this short are unrolled where bounds read them (stacked parts)
MAX_PIECES = 16  # a loop cut into more pieces costs more code than the guards do
UNROLL = 16  # taps of a window row unrolled so the loop inside them can be cut
MAX_STATEMENTS = 4096  # unrolled copies past this cost more compile time than the guards cost run time


def _bounds(e: Expr) -> list[Bound]:
    if isinstance(e, Load):
        return list(e.valid)
    if isinstance(e, Cond):
        return list(e.bounds)
    if isinstance(e, Alu):
        return [b for a in e.args for b in _bounds(a)]
    return []


def _body_bounds(body: list[Stmt]) -> list[Bound]:
    return [b for s in body if isinstance(s, (Define, Accumulate, Store)) for b in _bounds(s.value)]


def _cuts(body: list[Stmt], v: Var) -> list[int]:
    """Where the bounds on `v` alone (times a positive step) change value, strictly inside (0, extent)."""
    found: set[int] = set()
    for b in _body_bounds(body):
        if len(b.expr.terms) == 1 and b.expr.terms[0][0] == v and b.expr.terms[0][1] > 0:
            step = b.expr.terms[0][1]
            found |= {-(-(edge - b.expr.const) // step) for edge in (b.lo, b.hi)}
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
    """`ir` with its innermost global loop cut into pieces at the edges of its bounds, then its windows'
    innermost loops (see above)."""
    if any(isinstance(s, Gemm) for s in ir.stmts):
        return ir
    return peel_windows(_peel_global(_peel_short(ir)))


def _peel_short(ir: LoopIR) -> LoopIR:
    """`ir` with every short global loop cut at the edges of the bounds on its variable alone, pieces of one
    iteration unrolled, so each part of a stack or cat along a short axis runs its own loops without the
    others' guards and selections (Winograd's transforms stack up to 6 x 6 parts along their two leading axes).
    Unchanged past MAX_STATEMENTS."""
    stmts, i = list(ir.stmts), 0
    while i < len(stmts):
        s = stmts[i]
        if isinstance(s, Loop) and s.kind == "global" and s.var.extent <= SHORT:
            j = _end(stmts, i)
            body = stmts[i + 1:j]
            edges = _cuts(body, s.var)
            # elementwise bodies only: unrolled, each piece's names must differ, and accumulators and one-hot
            # positions are named where renaming does not reach
            plain = not any(isinstance(d, DefineAcc) for d in body) and not _indexed_names(body) & {
                d.name for d in body if isinstance(d, Define)}
            if edges and plain and _steps_only(body, s.var):
                cut = stmts[:i] + _unrolled(s, body, edges) + stmts[j + 1:]
                if len(cut) > MAX_STATEMENTS:
                    return ir
                stmts = cut
                continue
        i += 1
    return ir if stmts == ir.stmts else LoopIR(ir.name, ir.params, stmts, ir.work)


def _peel_global(ir: LoopIR) -> LoopIR:
    stmts = ir.stmts
    opened = [i for i, s in enumerate(stmts) if isinstance(s, Loop) and s.kind == "global"]
    if not opened:
        return ir
    i = opened[-1]
    v, j = stmts[i].var, _end(stmts, i)
    body = stmts[i + 1:j]
    edges = _cuts(body, v)
    if not edges or len(edges) + 1 > MAX_PIECES:
        return ir
    return LoopIR(ir.name, ir.params, stmts[:i] + _pieces(stmts[i], body, edges) + stmts[j + 1:], ir.work)


def _pieces(loop: Loop, body: list[Stmt], edges: list[int]) -> list[Stmt]:
    """The loop cut at the edges, the bounds each piece settles decided; a piece of one iteration
    takes its variable as a constant, so bounds that also read another variable become its alone."""
    v, out = loop.var, []
    for n, (lo, hi) in enumerate(zip([0, *edges], [*edges, v.extent])):
        piece = Var(f"{v.name}p{n}", hi - lo)
        at = Lin((), lo) if hi - lo == 1 else atom(piece) + lo
        out += [Loop(piece, loop.kind), *(_decide_stmt(_sub_stmt(s, v, at)) for s in body), EndLoop(loop.kind)]
    return out


def _indexed_names(stmts: list[Stmt]) -> set[str]:
    """Names that indices read (a one-hot read's defined position)."""
    return {v.name for s in stmts for lin in _stmt_lins(s) for v in lin_vars(lin)}


def _unrolled(loop: Loop, body: list[Stmt], edges: list[int]) -> list[Stmt]:
    """The loop cut at the edges, the bounds each piece settles decided; a piece of one iteration is its body
    with the variable a constant, its names suffixed apart from the other pieces'."""
    v, out = loop.var, []
    local = {s.name for s in body if isinstance(s, Define)}
    for n, (lo, hi) in enumerate(zip([0, *edges], [*edges, v.extent])):
        if hi - lo > 1:
            piece = Var(f"{v.name}u{n}", hi - lo)
            out += [Loop(piece, loop.kind), *(_decide_stmt(_sub_stmt(s, v, atom(piece) + lo)) for s in body),
                    EndLoop(loop.kind)]
            continue
        out += [_renamed(_decide_stmt(_sub_stmt(s, v, Lin((), lo))), f"_{v.name}u{n}", local) for s in body]
    return _pruned(out)


def _pruned(stmts: list[Stmt]) -> list[Stmt]:
    """`stmts` with selections on a settled condition replaced by the branch taken, and values no one reads dropped."""
    known: dict[str, Expr] = {}

    def fold(e: Expr) -> Expr:
        if isinstance(e, Ref):
            return known.get(e.name, e)
        if not isinstance(e, Alu):
            return e
        args = tuple(fold(a) for a in e.args)
        if e.op is Op.WHERE and isinstance(args[0], Const):
            return args[1] if args[0].value else args[2]
        return Alu(e.op, args, e.dtype)

    folded: list[Stmt] = []
    for s in stmts:
        if isinstance(s, (Define, Accumulate, Store)):
            s = replace(s, value=fold(s.value))
            if isinstance(s, Define):
                # pieces that are loops keep their names: one piece's constant is not another's
                known.pop(s.name, None)
                if isinstance(s.value, (Const, Ref)):
                    known[s.name] = s.value
                    continue
        folded.append(s)
    while True:
        read = {x.name for s in folded if isinstance(s, (Define, Accumulate, Store))
                for x in subexpressions(s.value) if isinstance(x, Ref)}
        kept = [s for s in folded if not isinstance(s, Define) or s.name in read]
        if len(kept) == len(folded):
            return kept
        folded = kept


def peel_windows(ir: LoopIR) -> LoopIR:
    """`ir` with each innermost loop whose guards read it with the variable of a short loop around
    it cut at its edges, after unrolling that loop (module docstring); unchanged past MAX_STATEMENTS."""
    stmts, done = list(ir.stmts), 0
    while True:
        step = _window_step(stmts, done)
        if step is None:
            return ir if len(stmts) > MAX_STATEMENTS or stmts == ir.stmts else LoopIR(ir.name, ir.params, stmts,
                                                                                       ir.work)
        stmts, done = step
        if len(stmts) > MAX_STATEMENTS:
            return ir


def _window_step(stmts: list[Stmt], start: int) -> tuple[list[Stmt], int] | None:
    """One unrolling or cut for the first innermost loop from `start` that needs one, and where to look
    on; None when none does."""
    opened: list[int] = []
    for i in range(len(stmts)):
        if isinstance(stmts[i], EndLoop):
            opened.pop()
            continue
        if not isinstance(stmts[i], Loop):
            continue
        opened.append(i)
        j = _end(stmts, i)
        if i < start or any(isinstance(s, Loop) for s in stmts[i + 1:j]):
            continue
        v, body = stmts[i].var, stmts[i + 1:j]
        shared = [b for b in _body_bounds(body) if v in dict(b.expr.terms) and len(b.expr.terms) > 1]
        if not shared:
            edges = _cuts(body, v)
            if edges and len(edges) < MAX_PIECES and _steps_only(body, v):
                return stmts[:i] + _pieces(stmts[i], body, edges) + stmts[j + 1:], i + 1
            continue
        around = {stmts[k].var: k for k in opened[:-1]}
        others = {a for b in shared for a, _ in b.expr.terms if a != v}
        if not others <= set(around) or not _steps_only(body, v):
            continue
        k = min(around[a] for a in others)
        loop, end = stmts[k], _end(stmts, k)
        if stmts[i].kind == "inner" and others == {loop.var} and (k + 1, end - 1) == (i, j):
            jammed = _jam(loop, stmts[i], body)
            if jammed is not None:
                return stmts[:k] + jammed + stmts[end + 1:], k + 1
        inside_globals = any(isinstance(s, Loop) and s.kind == "global" for s in stmts[k + 1:end])
        if loop.var.extent > UNROLL or (loop.kind == "global" and inside_globals):
            continue
        return stmts[:k] + _pieces(loop, stmts[k + 1:end], list(range(1, loop.var.extent))) + stmts[end + 1:], k
    return None


def _jam(taps: Loop, leaf: Loop, body: list[Stmt]) -> list[Stmt] | None:
    """A short reduce loop around an `inner` loop of disjoint outputs, moved inside it and unrolled: the
    inner loop cut at the edges of every tap, each piece adding all taps to an output in the taps'
    order (so each output sums its terms in the same order), one read and write of it for all of them.
    None when that takes more than MAX_PIECES pieces."""
    r, v = taps.var, leaf.var
    copies = [[_sub_stmt(s, r, Lin((), t)) for s in body] for t in range(r.extent)]
    edges = sorted({e for copy in copies for e in _cuts(copy, v)})
    if len(edges) >= MAX_PIECES:
        return None
    local = {s.name for s in body if isinstance(s, Define)}
    out: list[Stmt] = []
    for n, (lo, hi) in enumerate(zip([0, *edges], [*edges, v.extent])):
        piece = Var(f"{v.name}j{n}", hi - lo)
        at = Lin((), lo) if hi - lo == 1 else atom(piece) + lo
        out.append(Loop(piece, leaf.kind))
        for t, copy in enumerate(copies):
            out += [_renamed(_decide_stmt(_sub_stmt(s, v, at)), f"_{t}", local) for s in copy]
        out.append(EndLoop(leaf.kind))
    return out


def _renamed(s: Stmt, suffix: str, local: set[str]) -> Stmt:
    """`s` with the local names it defines and reads suffixed, so unrolled copies share one scope."""
    def expr(e: Expr) -> Expr:
        if isinstance(e, Ref) and e.name in local:
            return Ref(e.name + suffix, e.dtype)
        if isinstance(e, Alu):
            return Alu(e.op, tuple(expr(a) for a in e.args), e.dtype)
        return e
    if isinstance(s, Define):
        return Define(s.name + suffix, expr(s.value), s.dtype)
    if isinstance(s, (Accumulate, Store)):
        return replace(s, value=expr(s.value))
    return s


def _steps_only(body: list[Stmt], v: Var) -> bool:
    """Does `v` appear in the bounds only as a plain term (never inside a division or remainder)?"""
    return not any(v in lin_vars(a.num) for b in _body_bounds(body) for a, _ in b.expr.terms if not isinstance(a, Var))
