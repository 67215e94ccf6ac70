"""Loop-IR pass: merge perfectly nested loops that walk memory as one (and split the ones that do not).

`for a < A: for b < B: ... x[a*B*s + b*s] ...` is `for c < A*B: ... x[c*s] ...` when every index
in the body stays linear after substituting a = c / B, b = c % B (the symbolic algebra folds
B*(c/B) + c%B back into c). A reduction over the last two axes of (N, C, 26, 26) then runs one
vectorized loop of 676 instead of 26 loops of 26, and an elementwise kernel's innermost loop
covers whole planes. Loops whose merge would leave a division or remainder in an index stay
apart, so the generated index arithmetic never gets more expensive.

The opposite case, a global loop whose variable is only read through `i / k` and `i % k` (a 2x2
max-pool's gradient broadcast back over the (26, 26) input: `g[i2/2, i3/2]`), is split first into
`for h < E/k: for l < k:` with i = k*h + l: the indices become linear, so the compiler vectorizes
the loop over h (it could not vectorize the division) and unrolls the one over l.
"""
from __future__ import annotations

from ..graph.symbolic import DivAtom, Lin, ModAtom, Var, atom
from .interchange import _sub_stmt
from .ir import Accumulate, Alu, Cond, Define, EndLoop, Expr, Gemm, Index, Load, Loop, LoopIR, Rand, Stmt, Store


def _lins(e: Expr) -> list[Lin]:
    if isinstance(e, Load):
        return [e.index, *(b.expr for b in e.valid)]
    if isinstance(e, Cond):
        return [b.expr for b in e.bounds]
    if isinstance(e, (Index, Rand)):
        return [e.index]
    if isinstance(e, Alu):
        return [lin for a in e.args for lin in _lins(a)]
    return []


def _stmt_lins(s: Stmt) -> list[Lin]:
    if isinstance(s, (Define, Accumulate)):
        return _lins(s.value)
    if isinstance(s, Store):
        return [s.index, *_lins(s.value)]
    return []


def _mentions(lin: Lin, v: Var) -> bool:
    for a, _ in lin.terms:
        if a == v or (isinstance(a, (DivAtom, ModAtom)) and _mentions(a.num, v)):
            return True
    return False


def _linear_in(lin: Lin, v: Var) -> bool:
    """v appears only as a plain term (not inside a division or remainder)."""
    return not any(isinstance(a, (DivAtom, ModAtom)) and _mentions(a.num, v) for a, _ in lin.terms)


def _end(stmts: list[Stmt], start: int) -> int:
    """Index of the EndLoop closing the Loop at `start`."""
    depth = 0
    for i in range(start, len(stmts)):
        if isinstance(stmts[i], Loop):
            depth += 1
        elif isinstance(stmts[i], EndLoop):
            depth -= 1
            if depth == 0:
                return i
    raise ValueError("unbalanced loops")


def _try_merge(stmts: list[Stmt], i: int) -> list[Stmt] | None:
    outer, inner = stmts[i], stmts[i + 1]
    if not (isinstance(outer, Loop) and isinstance(inner, Loop)) or outer.kind != inner.kind:
        return None
    j = _end(stmts, i + 1)
    if j + 1 >= len(stmts) or not isinstance(stmts[j + 1], EndLoop) or _end(stmts, i) != j + 1:
        return None
    a, b = outer.var, inner.var
    merged = Var(f"{a.name}_{b.name}", a.extent * b.extent)
    c = atom(merged)
    body = []
    for s in stmts[i + 2:j]:
        s = _sub_stmt(_sub_stmt(s, a, c // b.extent), b, c % b.extent)
        if any(not _linear_in(lin, merged) for lin in _stmt_lins(s)):
            return None
        body.append(s)
    return stmts[:i] + [Loop(merged, outer.kind)] + body + stmts[j:j + 1] + stmts[j + 2:]


def _divisors(lins: list[Lin], v: Var) -> set[int]:
    """Divisors k of the divisions and remainders whose numerator mentions v."""
    out: set[int] = set()
    stack = list(lins)
    while stack:
        lin = stack.pop()
        for a, _ in lin.terms:
            if isinstance(a, (DivAtom, ModAtom)):
                if _mentions(a.num, v):
                    out.add(a.k)
                stack.append(a.num)
    return out


def _try_split(stmts: list[Stmt], i: int) -> list[Stmt] | None:
    """Global loop i split as k*h + l when that leaves no division or remainder of h or l (reduce
    loops stay: measured, the split sums ran slower than the divisions under `omp simd`)."""
    loop = stmts[i]
    if not isinstance(loop, Loop) or loop.kind != "global":
        return None
    v = loop.var
    j = _end(stmts, i)
    lins = [lin for s in stmts[i + 1:j] for lin in _stmt_lins(s)]
    for k in sorted(_divisors(lins, v)):
        if k >= v.extent or v.extent % k:
            continue
        hi, lo = Var(f"{v.name}h", v.extent // k), Var(f"{v.name}l", k)
        body = [_sub_stmt(s, v, atom(hi) * k + atom(lo)) for s in stmts[i + 1:j]]
        if all(_linear_in(lin, hi) and _linear_in(lin, lo) for s in body for lin in _stmt_lins(s)):
            return (stmts[:i] + [Loop(hi, "global"), Loop(lo, "global")] + body + [EndLoop("global")]
                    + stmts[j:])
    return None


def split_loops(stmts: list[Stmt]) -> list[Stmt]:
    """Split every global loop whose variable is read only through divisions/remainders by one k."""
    i = 0
    while i < len(stmts):
        split = _try_split(stmts, i)
        if split is not None:
            stmts = split
        i += 1
    return stmts


def merge_loops(ir: LoopIR) -> LoopIR:
    """Split loops read through divisions (see the module docstring), then merge every mergeable
    pair of directly nested loops (repeatedly, so chains merge too)."""
    if any(isinstance(s, Gemm) for s in ir.stmts):
        return ir
    stmts = split_loops(list(ir.stmts))
    i = 0
    while i < len(stmts) - 1:
        merged = _try_merge(stmts, i)
        if merged is None:
            i += 1
        else:
            stmts = merged  # try the new loop against the next one too
    return LoopIR(ir.name, ir.params, stmts, ir.work)
