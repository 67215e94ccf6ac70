"""Loop-IR pass: reductions over a strided axis run with the reduction loop outside.

`out[i] = sum_r x[r*N + i]` read column-wise touches a new cache line per element. When the
loads inside a reduction are contiguous in the innermost output index and not in the
reduction index, the pass accumulates a block of outputs in the output buffer instead:
    for block: out[block] = init; for r: for i in block: out[i] op= f(i, r); epilogue
so the inner loop streams through memory and vectorizes. The summation order per output
element is unchanged, so results are bit-identical to the plain loops. A sliding window's sum
(a grouped or depthwise convolution, a pool) reads along the outputs and along its last window
dim both; its window rows are too short to vectorize, so it is interchanged too, and its outputs
may read the input at a stride.
"""
from __future__ import annotations

import math

from .. import dtypes
from ..graph.ops import Op
from ..graph.symbolic import Bound, Lin, Var, atom, substitute
from .ir import (Accumulate, Alu, Cond, Define, DefineAcc, EndLoop, Expr, Index, Load, Loop, LoopIR, Rand, Ref, Stmt,
                 Store, coefficient, loads, single_reduction_nest, subexpressions)

_COMBINE = {Op.SUM: Op.ADD, Op.RMAX: Op.MAX, Op.PROD: Op.MUL}
BLOCK = 512  # outputs accumulated at once: 2 KiB of float32 partial results stay in L1
FEW_TERMS = 4  # reductions this short gain nothing from streaming (gcc unrolls them in place)
WINDOW = 16  # a window row this short, read along the outputs too, is a stencil: the outputs vectorize
MIN_BLOCK = 8  # fewer outputs than a vector gain nothing from running side by side
MAX_STRIDE = 4  # outputs read this far apart (a strided window) still vectorize


def _sub_bound(b: Bound, v: Var, value: Lin) -> Bound:
    return Bound(substitute(b.expr, v, value), b.lo, b.hi)


def _sub(e: Expr, v: Var, value: Lin) -> Expr:
    if isinstance(e, Load):
        return Load(e.param, substitute(e.index, v, value), tuple(_sub_bound(b, v, value) for b in e.valid), e.dtype)
    if isinstance(e, Cond):
        return Cond(tuple(_sub_bound(b, v, value) for b in e.bounds))
    if isinstance(e, Rand):
        return Rand(e.state_param, substitute(e.index, v, value))
    if isinstance(e, Index):
        return Index(substitute(e.index, v, value), e.dtype)
    if isinstance(e, Alu):
        return Alu(e.op, tuple(_sub(a, v, value) for a in e.args), e.dtype)
    return e


def _sub_stmt(s: Stmt, v: Var, value: Lin) -> Stmt:
    if isinstance(s, Define):
        return Define(s.name, _sub(s.value, v, value), s.dtype)
    if isinstance(s, Accumulate):
        return Accumulate(s.name, s.op, _sub(s.value, v, value), s.dtype)
    if isinstance(s, Store):
        return Store(s.param, substitute(s.index, v, value), _sub(s.value, v, value), s.dtype)
    return s


def _block_size(n: int) -> int:
    if n <= BLOCK:
        return n
    return max((b for b in range(64, BLOCK + 1) if n % b == 0), default=0)


def _loop_follows(body: list[Stmt], j: int) -> bool:
    """Is body[j] one of a run of Defines that ends at a Loop?"""
    while j < len(body) and isinstance(body[j], Define):
        j += 1
    return j < len(body) and isinstance(body[j], Loop)


def interchange_reduction(ir: LoopIR) -> LoopIR:
    """`ir` with its strided reduction interchanged, or `ir` unchanged when the pattern does not fit."""
    stmts = ir.stmts
    nest = single_reduction_nest(ir)
    if nest is None:
        return ir
    n_glob, body, a0 = nest
    acc = body[a0]
    # the reduce loops open one inside the other; values read before or between their openings
    # (lowered where first seen: a bias added to each term) join the innermost body, where each lane
    # of the block reads its own
    red_vars: list[Var] = []
    between: list[Stmt] = []
    j = a0 + 1
    while isinstance(body[j], Loop) or (isinstance(body[j], Define) and _loop_follows(body, j)):
        if isinstance(body[j], Loop):
            red_vars.append(body[j].var)
        else:
            between.append(body[j])
        j += 1
    n_red = len(red_vars)
    after = body[j:]
    close = next((i for i, s in enumerate(after) if isinstance(s, (EndLoop, Loop, DefineAcc))), None)
    if n_red == 0 or close is None or not isinstance(after[close], EndLoop) or \
            math.prod(v.extent for v in red_vars) <= FEW_TERMS:
        return ir
    inner, rest = between + after[:close], after[close + n_red:]
    store = body[-1]
    if not inner or not isinstance(inner[-1], Accumulate) or not isinstance(store, Store) \
            or any(isinstance(s, (Loop, EndLoop, DefineAcc)) for s in rest):
        return ir
    gi = stmts[n_glob - 1].var
    # values computed before the reduction land in the epilogue block only: a sum reading one (an
    # embedding gradient's index, shared with its padding test) cannot be interchanged
    before = {s.name for s in body[:a0] if isinstance(s, Define)}
    if any(isinstance(x, Ref) and x.name in before for s in inner if isinstance(s, (Define, Accumulate))
           for x in subexpressions(s.value)):
        return ir
    # worth it when the reads that change along the outputs are contiguous along them and not along the
    # reduction; reads the same for every output (a row's mean) may run along the reduction
    reads = [ld for s in inner if isinstance(s, Define) for ld in loads(s.value)]
    along = [ld for ld in reads if coefficient(ld.index, gi) == 1]
    # a sliding window (a convolution's or pool's row of taps) reads along both, but its taps are too
    # few to vectorize the sum; its outputs, read at the stride, are not
    window = red_vars[-1].extent <= WINDOW
    if window:
        along = [ld for ld in reads if 1 <= coefficient(ld.index, gi) <= MAX_STRIDE]
    if not along or not all(coefficient(ld.index, gi) in (0, 1) or (window and ld in along) for ld in reads) or \
            (not window and any(coefficient(ld.index, red_vars[-1]) == 1 for ld in along)):
        return ir
    if gi.extent < MIN_BLOCK and any(coefficient(ld.index, red_vars[-1]) for ld in along):
        return ir  # the outputs are a window's taps (a weight gradient): the reduction along the input vectorizes
    # partial sums accumulate in the output buffer: of the accumulator's type, or float32 for a half
    # sum widened as stored (the plain loops keep that sum in float too)
    half_sum = acc.dtype in dtypes.HALF and store.dtype is dtypes.float32
    if (store.dtype != acc.dtype and not half_sum) or coefficient(store.index, gi) != 1 or acc.op not in _COMBINE \
            or (acc.dtype.name in ("bool", "float16", "bfloat16") and not half_sum):
        return ir
    partial = store.dtype
    block = _block_size(gi.extent)
    if block == 0:
        return ir
    blocks, lane = Var(gi.name + "b", gi.extent // block), Var(gi.name + "l", block)
    split = (atom(blocks) * block if blocks.extent > 1 else Lin((), 0)) + (atom(lane) if block > 1 else Lin((), 0))
    out_index = substitute(store.index, gi, split)
    current = Load(0, out_index, (), partial)
    value = _sub(inner[-1].value, gi, split)
    if half_sum:  # the term joins the float32 partial sum unrounded
        value = Alu(Op.CAST, (value,), partial)
    outer = [Loop(s.var, "global") for s in stmts[:n_glob - 1]]
    if blocks.extent > 1:
        outer.append(Loop(blocks, "global"))
    new: list[Stmt] = outer + [acc, Loop(lane, "inner"), Store(0, out_index, Ref(acc.name, acc.dtype), partial),
                               EndLoop("inner")]
    new += [Loop(v, "reduce") for v in red_vars] + [Loop(lane, "inner")]
    new += [_sub_stmt(s, gi, split) for s in inner[:-1]]
    new += [Store(0, out_index, Alu(_COMBINE[acc.op], (current, value), partial), partial), EndLoop("inner")]
    new += [EndLoop("reduce") for _ in red_vars]
    if body[:a0] or rest != [Store(store.param, store.index, Ref(acc.name, acc.dtype), store.dtype)]:
        # the epilogue re-reads each finished value; the inner block scope shadows the accumulator
        epilogue = body[:a0] + [Define(acc.name, current, acc.dtype)] + rest
        new += [Loop(lane, "inner")] + [_sub_stmt(s, gi, split) for s in epilogue] + [EndLoop("inner")]
    new += [EndLoop("global") for _ in outer]
    return LoopIR(ir.name, ir.params, new, ir.work)
