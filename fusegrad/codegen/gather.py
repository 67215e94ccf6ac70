"""Loop-IR pass: a one-hot reduction becomes one indexed read.

The engine has no gather primitive: indexing, `gather`, `index_select`, embeddings and picking a
loss's target class all sum a one-hot selection, `sum over r of (e == r ? x[r] : 0)`, which
lowers to a reduce loop that compares every candidate r. When e does not change inside that loop,
only r = e can contribute, so the loop is replaced by that one iteration: the loop variable becomes
a value, `r = clamp(e, 0, n - 1)`, and the loop body runs once with it. The comparison stays in the
body, so an e outside [0, n) still gives the sum's 0 (and every read stays inside its buffer, as
the clamped r is in the loop's range). The cost falls from n reads and compares to one of each:
an embedding's rows, cross-entropy's target logit and gather run at memory speed.
"""
from __future__ import annotations

from ..dtypes import bool_, int64
from ..graph.ops import Op
from ..graph.symbolic import Var
from .ir import Accumulate, Alu, Const, Define, DefineAcc, EndLoop, Expr, Index, Loop, LoopIR, Ref, Stmt
from .merge import _lins, _mentions


def _resolve(e: Expr, defines: dict[str, Define]) -> Expr:
    while isinstance(e, Ref) and e.name in defines:
        e = defines[e.name].value
    return e


def _depends(e: Expr, v: Var, varying: set[str]) -> bool:
    """Whether `e` changes with `v`: it mentions v in an index, or reads a name in `varying`."""
    stack = [e]
    while stack:
        x = stack.pop()
        if isinstance(x, Ref) and x.name in varying:
            return True
        if isinstance(x, Alu):
            stack.extend(x.args)
        elif any(_mentions(lin, v) for lin in _lins(x)):
            return True
    return False


def _selected(value: Expr, v: Var, defines: dict[str, Define], varying: set[str]) -> tuple[Expr, int] | None:
    """(e, k) when `value` is WHERE(e == v + k, x, 0) (either side of the comparison, perhaps cast)
    with e not changing with v; else None."""
    top = _resolve(value, defines)
    while isinstance(top, Alu) and top.op is Op.CAST:
        top = _resolve(top.args[0], defines)
    if not (isinstance(top, Alu) and top.op is Op.WHERE):
        return None
    zero = _resolve(top.args[2], defines)
    cmp = _resolve(top.args[0], defines)
    if not (isinstance(zero, Const) and zero.value == 0 and isinstance(cmp, Alu) and cmp.op is Op.CMPEQ):
        return None
    for idx, other in (cmp.args, cmp.args[::-1]):
        at = _resolve(idx, defines)
        if isinstance(at, Index) and at.index.terms == ((v, 1),) and not _depends(other, v, varying):
            return other, at.index.const
    return None


def _clamped(e: Expr, k: int, extent: int) -> Expr:
    """e - k as int64, clamped to [0, extent)."""
    x: Expr = e if e.dtype == int64 else Alu(Op.CAST, (e,), int64)
    if k:
        x = Alu(Op.SUB, (x, Const(k, int64)), int64)
    top = Const(extent - 1, int64)
    high = Alu(Op.WHERE, (Alu(Op.CMPLT, (x, top), bool_), x, top), int64)
    return Alu(Op.WHERE, (Alu(Op.CMPLT, (x, Const(0, int64)), bool_), Const(0, int64), high), int64)


def _rewrite(stmts: list[Stmt], at: int) -> tuple[list[Stmt], int] | None:
    """The replacement of the reduce loop at stmts[at] (and of its accumulator's DefineAcc, when that
    opens the loop) and the index just past that loop; None when it is not a one-hot selection."""
    loop = stmts[at]
    if not (isinstance(loop, Loop) and loop.kind == "reduce"):
        return None
    end = at + 1
    while end < len(stmts) and isinstance(stmts[end], Define):
        end += 1
    last = stmts[end] if end < len(stmts) else None
    if not (isinstance(last, Accumulate) and last.op is Op.SUM
            and end + 1 < len(stmts) and isinstance(stmts[end + 1], EndLoop)):
        return None
    body = stmts[at + 1:end]
    defines = {s.name: s for s in body}
    varying: set[str] = set()
    for s in body:
        if _depends(s.value, loop.var, varying):
            varying.add(s.name)
    found = _selected(last.value, loop.var, defines, varying)
    if found is None:
        return None
    e, k = found
    index = Define(loop.var.name, _clamped(e, k, loop.var.extent), int64)
    head = [s for s in body if s.name not in varying] + [index] + [s for s in body if s.name in varying]
    before = stmts[at - 1] if at else None
    if isinstance(before, DefineAcc) and before.name == last.name:  # the whole sum is this one term
        return head + [Define(last.name, last.value, last.dtype)], end + 2
    return head + [last], end + 2


def one_hot_reads(ir: LoopIR) -> LoopIR:
    """Replace every one-hot selection reduce loop by its one contributing iteration (see above)."""
    out: list[Stmt] = []
    work = ir.work
    i = 0
    while i < len(ir.stmts):
        done = _rewrite(ir.stmts, i)
        if done is None:
            out.append(ir.stmts[i])
            i += 1
            continue
        work = max(1, work // ir.stmts[i].var.extent)
        stmts, i = done
        if isinstance(stmts[-1], Define):  # the DefineAcc before the loop is gone: its sum is one term
            out.pop()
        out += stmts
    if out == ir.stmts:
        return ir
    return LoopIR(ir.name, ir.params, out, work)
