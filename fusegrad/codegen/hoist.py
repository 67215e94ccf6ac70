"""Loop-IR pass: values that do not change inside an innermost reduce loop are computed before it.

Lowering defines every value where it is used, so a per-channel factor of a normalization,
`1 / sqrt(var[c] + eps) * weight[c]`, is recomputed for each of a channel's elements inside the
loop that sums them (a square root and a division per element of batch norm's backward sums). Such
a Define moves to just before the loop when nothing it reads changes in it: no loop variable of
it, no value defined or accumulated in it, no buffer stored in it. Only innermost reduce loops are
emptied, so nests of global loops keep their shape (the CPU collapses them for OpenMP and a GPU
maps them to threads); loops of a few iterations are left whole (the compiler unrolls them), and
names defined in several loops (the pieces of a peeled loop) stay where they are.
"""
from __future__ import annotations

from collections import Counter

from .gemm import lin_vars
from .ir import (Accumulate, Define, DefineAcc, EndLoop, Expr, Gemm, Load, Loop, LoopIR, Ref, Stmt, Store,
                 subexpressions)
from .merge import _lins, _mentions

SHORT_LOOP = 4  # loops this short are unrolled by the compiler: nothing to gain


def _reads(e: Expr) -> tuple[set[str], set[int]]:
    """(the names `e` refers to, the buffers it loads from). Names include the variables of its
    indices: one may be a value defined in the loop (a one-hot read's index, see gather.py)."""
    parts = list(subexpressions(e))
    names = {x.name for x in parts if isinstance(x, Ref)} | {v.name for lin in _lins(e) for v in lin_vars(lin)}
    return names, {x.param for x in parts if isinstance(x, Load)}


def _hoist_body(loop: Loop, body: list[Stmt], repeated: set[str]) -> tuple[list[Stmt], list[Stmt]]:
    """(the Defines of `body` that can run before `loop`, the statements left inside); names in
    `repeated` (defined in several loops, e.g. the pieces of a peeled one) stay where they are."""
    varying = {s.name for s in body if isinstance(s, (Accumulate, DefineAcc))} | repeated
    stored = {s.param for s in body if isinstance(s, Store)}
    hoisted: list[Stmt] = []
    kept: list[Stmt] = []
    for s in body:
        names, params = _reads(s.value) if isinstance(s, Define) else (set(), set())
        if isinstance(s, Define) and s.name not in varying and not names & varying and not params & stored \
                and not any(_mentions(lin, loop.var) for lin in _lins(s.value)):
            hoisted.append(s)
        else:
            if isinstance(s, Define):
                varying.add(s.name)
            kept.append(s)
    return hoisted, kept


def hoist_invariants(ir: LoopIR) -> LoopIR:
    """Move loop-invariant Defines out of every innermost reduce loop (see the module docstring)."""
    if any(isinstance(s, Gemm) for s in ir.stmts):
        return ir
    stmts = list(ir.stmts)
    names = Counter(s.name for s in stmts if isinstance(s, Define))
    repeated = {name for name, count in names.items() if count > 1}
    out: list[Stmt] = []
    i = 0
    changed = False
    while i < len(stmts):
        s = stmts[i]
        if isinstance(s, Loop) and s.kind == "reduce" and s.var.extent > SHORT_LOOP:
            j = i + 1
            while j < len(stmts) and not isinstance(stmts[j], (Loop, EndLoop)):
                j += 1
            if j < len(stmts) and isinstance(stmts[j], EndLoop):  # an innermost loop: stmts[i+1:j] is its body
                hoisted, kept = _hoist_body(s, stmts[i + 1:j], repeated)
                if hoisted:
                    changed = True
                    # a value an earlier hoisted Define reads stays inside only if it varies, so the
                    # hoisted ones keep their order and every one of them sees its inputs defined
                    out += hoisted + [s] + kept + [stmts[j]]
                    i = j + 1
                    continue
        out.append(s)
        i += 1
    if not changed:
        return ir
    return LoopIR(ir.name, ir.params, out, ir.work)
