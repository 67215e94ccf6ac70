"""Loop-IR pass: recognize a contraction and hand it to the packed GEMM micro-kernels.

A kernel whose global loops hold `acc = sum_{k...} A[...] * B[...]` (two loads, any index
arithmetic: matrix products, their transposes, convolution windows with padding) followed by
any elementwise epilogue becomes: batch loops around one GEMM writing the sums into the output
buffer, then the original loops re-reading them to apply the epilogue in place (inside the batch
loops, after each element's product, when the sums land in the output and there are enough).
Rows are the output loops only A reads, columns those only B reads, the rest batch. When the
output is laid out [batch, rows, cols] the sums land in it directly; otherwise in a scratch
buffer that the epilogue scatters into place (e.g. convolution gradients).
Renderers without GEMM support leave `supports_gemm` False and keep the plain loops.
"""
from __future__ import annotations

import math

from .. import dtypes
from ..graph.ops import Op
from ..graph.symbolic import DivAtom, Lin, ModAtom, Var, atom
from .gemm_c import nr
from .ir import (Accumulate, Alu, Cond, Const, Define, DefineAcc, EndLoop, Gemm, Load, Loop, LoopIR, Param, Ref,
                 Store, single_reduction_nest, subexpressions)

GEMM_DTYPES = ("float32", "float64")
MIN_GEMM_WORK = 1 << 14  # multiply-adds below which the plain loops win (no packing, no call)
MIN_COLUMNS = 8  # narrower outputs waste most of a 32-wide tile
MIN_ROWS = 4  # fewer rows waste most of a 6-row tile; a dot product per output is better as plain loops
# per batch element, at least: a few tiles each way and enough multiply-adds to amortize packing
DIRECT_MIN_ROWS, DIRECT_MIN_COLUMNS, DIRECT_MIN_WORK = 16, 64, 1 << 16
EPILOGUE_BATCH = 16  # batch elements from which each one's epilogue follows its own product


def lin_vars(expr: Lin) -> set[Var]:
    out: set[Var] = set()
    stack = [expr]
    while stack:
        e = stack.pop()
        for a, _ in e.terms:
            if isinstance(a, Var):
                out.add(a)
            elif isinstance(a, (DivAtom, ModAtom)):
                stack.append(a.num)
    return out


def load_vars(load: Load) -> set[Var]:
    found = lin_vars(load.index)
    for b in load.valid:
        found |= lin_vars(b.expr)
    return found


Operand = tuple[Load, "dtypes.DType | None"]  # a load and the half type its value rounds to first, if any


def match_contraction(body: list, a0: int) -> tuple[int, int, Operand, Operand] | None:
    """(number of reduce loops, index past the nest, operand A, operand B) when body[a0:] is acc = sum
    of a product of loads. Loads of a half or float8 type widened to a float32 accumulator (torch's
    narrow products: exact products summed in float32) count as loads, and so do float32 loads rounded to a
    half type and widened back (autocast's cast of a float32 weight); the packing converts them."""
    acc = body[a0]
    n_red = 0
    while a0 + 1 + n_red < len(body) and isinstance(body[a0 + 1 + n_red], Loop):
        n_red += 1
    if n_red == 0 or acc.op is not Op.SUM or acc.dtype.name not in GEMM_DTYPES:
        return None
    first = a0 + 1 + n_red
    operands: dict[Ref, Operand] = {}
    i = first
    while i < len(body) and isinstance(body[i], Define) and i - first < 6:
        d = body[i]
        source = d.value.args[0] if isinstance(d.value, Alu) and d.value.op is Op.CAST else None
        if isinstance(d.value, Load) and d.value.param != 0:
            operands[Ref(d.name, d.dtype)] = (d.value, None)
        elif source in operands and acc.dtype == dtypes.float32 and d.dtype in (dtypes.float32, *dtypes.HALF):
            load, rounded = operands.pop(source)
            if d.dtype == dtypes.float32 and (rounded or load.dtype) in dtypes.NARROW:  # widened: the product's
                operands[Ref(d.name, d.dtype)] = (load, rounded)
            elif d.dtype in dtypes.HALF and rounded is None and load.dtype == dtypes.float32:  # rounded first
                operands[Ref(d.name, d.dtype)] = (load, d.dtype)
            else:
                return None
        else:
            break
        i += 1
    if len(operands) != 2 or i + 2 + n_red > len(body):
        return None
    mul, accum = body[i], body[i + 1]
    if not (isinstance(mul, Define) and isinstance(mul.value, Alu) and mul.value.op is Op.MUL
            and isinstance(accum, Accumulate) and accum.name == acc.name and accum.value == Ref(mul.name, mul.dtype)
            and all(isinstance(s, EndLoop) for s in body[i + 2:i + 2 + n_red])
            and set(mul.value.args) == set(operands) and all(r.dtype == acc.dtype for r in operands)):
        return None
    oa, ob = (operands[r] for r in operands)
    return n_red, i + 2 + n_red, oa, ob


def fold_guards(ir: LoopIR) -> LoopIR:
    """`ir` with WHERE(bounds, x, 0) of a load x that its own guard already zeroes outside those
    bounds replaced by the load, and loads left unused dropped. A padded convolution's window reads
    so guarded both ways are then a plain product of two loads, which the GEMM pass recognizes."""
    loads: dict[str, Load] = {}
    stmts = []
    for s in ir.stmts:
        if isinstance(s, Define) and isinstance(s.value, Load):
            loads[s.name] = s.value
        elif isinstance(s, Define) and isinstance(s.value, Alu) and s.value.op is Op.WHERE:
            cond, x, zero = s.value.args
            load = loads.get(x.name) if isinstance(x, Ref) else None
            if (load is not None and isinstance(cond, Cond) and isinstance(zero, Const) and zero.value == 0
                    and set(cond.bounds) <= set(load.valid) and load.dtype == s.dtype):
                s = Define(s.name, load, s.dtype)
                loads[s.name] = load
        stmts.append(s)
    used = {e.name for s in stmts if isinstance(s, (Define, Accumulate, Store))
            for e in subexpressions(s.value) if isinstance(e, Ref)}
    kept = [s for s in stmts if not (isinstance(s, Define) and isinstance(s.value, Load) and s.name not in used)]
    return ir if len(kept) == len(ir.stmts) and kept == ir.stmts else LoopIR(ir.name, ir.params, kept, ir.work)


def use_gemm(ir: LoopIR) -> LoopIR:
    """`ir` with its contraction turned into a Gemm statement, or `ir` unchanged. Redundant
    padding guards are folded first (without that no padded convolution was a GEMM)."""
    folded = fold_guards(ir)
    out = recognize_gemm(folded)
    return ir if out is folded else out


def recognize_gemm(ir: LoopIR) -> LoopIR:
    """`use_gemm` for an `ir` whose padding guards `fold_guards` already folded."""
    stmts = ir.stmts
    nest = single_reduction_nest(ir)
    if nest is None:
        return ir
    n_glob, body, a0 = nest
    found = match_contraction(body, a0)
    if found is None:
        return ir
    n_red, end, (la, ra), (lb, rb) = found
    if any(isinstance(s, (Loop, DefineAcc)) for s in body[end:]):
        return ir
    acc = body[a0]
    k_vars = tuple(s.var for s in body[a0 + 1:a0 + 1 + n_red])
    globals_ = [s.var for s in stmts[:n_glob]]
    va, vb = load_vars(la), load_vars(lb)
    if globals_[-1] in va and globals_[-1] not in vb:  # columns: the operand the innermost loop reads
        la, lb, va, vb, ra, rb = lb, la, vb, va, rb, ra
    rows = [v for v in globals_ if v in va and v not in vb]
    cols = [v for v in globals_ if v in vb and v not in va]
    m, n = math.prod(v.extent for v in rows), math.prod(v.extent for v in cols)
    if n < nr(acc.dtype.name) <= m:  # a narrow product (a 3x3 kernel's 9 weight-gradient columns) fills
        la, lb, va, vb, rows, cols, ra, rb = lb, la, vb, va, cols, rows, rb, ra  # whole tiles the other way round
    batch = [v for v in globals_ if v not in rows and v not in cols]
    batch, rows, cols = _direct_layout(globals_, batch, rows, cols, math.prod(v.extent for v in k_vars))
    store = body[-1]
    c_index = _flat(globals_)
    if not isinstance(store, Store) or store.index != c_index:
        return ir
    m, n = math.prod(v.extent for v in rows), math.prod(v.extent for v in cols)
    params = ir.params
    direct = globals_ == batch + rows + cols  # the output is laid out [batch, rows, cols]
    if direct and store.dtype == acc.dtype:
        c_param, c_read = 0, c_index
        c_base = _only(c_index, batch)
    else:  # sums go to a scratch [batch, rows, cols]; the epilogue scatters them into place
        c_param = len(params)
        params = params + [Param(acc.dtype, math.prod(v.extent for v in batch) * m * n, True, scratch=True)]
        c_read = _flat(batch + rows + cols)
        c_base = _only(c_read, batch)
    gemm = Gemm(acc.dtype, tuple(rows), tuple(cols), k_vars, la, lb, c_base, c_param, ra, rb)
    if gemm.m * gemm.n * gemm.k < MIN_GEMM_WORK or gemm.n < MIN_COLUMNS or gemm.m < MIN_ROWS:
        return ir
    epilogue = body[:a0] + [Define(acc.name, Load(c_param, c_read, (), acc.dtype), acc.dtype)] + body[end:]
    trivial = c_param == 0 and len(epilogue) == 2 and store.value == Ref(acc.name, acc.dtype)
    if direct and not trivial and math.prod(v.extent for v in batch) >= EPILOGUE_BATCH and not _guarded(epilogue):
        # each batch element's epilogue right after its product, while its block of sums is in cache
        # (a second pass over all of them re-read the whole output from memory: attention's score
        # gradients, a half output's rounding from its float32 scratch); enough batch elements keep
        # every thread busy, and an epilogue reading under padding guards stays a top-level nest, which
        # the CPU's peeling pass splits at their edges
        inner = [Loop(v, "global") for v in rows + cols] + epilogue + [EndLoop("global") for _ in rows + cols]
        out = [Loop(v, "global") for v in batch] + [gemm] + inner + [EndLoop("global") for _ in batch]
        return LoopIR(ir.name, params, out, ir.work)
    out = [Loop(v, "global") for v in batch] + [gemm] + [EndLoop("global") for _ in batch]
    if not trivial:
        out += stmts[:n_glob] + epilogue + [EndLoop("global") for _ in range(n_glob)]
    return LoopIR(ir.name, params, out, ir.work)


def _direct_layout(globals_: list[Var], batch: list[Var], rows: list[Var], cols: list[Var],
                   k: int) -> tuple[list[Var], list[Var], list[Var]]:
    """Move leading row/column loops into the batch when that lays the output out as [batch, rows,
    cols], so the sums land in it directly instead of in a scratch the epilogue scatters (a
    convolution's output [n, c, h, w]: rows c, columns (h, w) per image n). Kept only while each
    batch element's product stays large enough to run at the micro-kernel's rate. Done also when
    the output is direct already: per-image products stay in cache, and their batch-invariant
    operand is packed once (the window-gradient GEMM of the CNN's conv2: 5.8 ms as one product of
    7744 rows, 2.6 ms as 64 of 121)."""
    for p in range(1, len(globals_)):
        lead = set(globals_[:p])
        b = [v for v in globals_ if v in lead or v in batch]
        r, c = [v for v in rows if v not in lead], [v for v in cols if v not in lead]
        if not r or not c:
            break
        m, n = math.prod(v.extent for v in r), math.prod(v.extent for v in c)
        if m < DIRECT_MIN_ROWS or n < DIRECT_MIN_COLUMNS or m * n * k < DIRECT_MIN_WORK:
            break
        if globals_ == b + r + c:
            return b, r, c
    return batch, rows, cols


def _guarded(stmts: list) -> bool:
    """Do the statements read anything under a padding bound?"""
    return any(isinstance(x, Cond) or (isinstance(x, Load) and x.valid)
               for s in stmts if isinstance(s, (Define, Store)) for x in subexpressions(s.value))


def _flat(variables: list[Var]) -> Lin:
    """Row-major flat index of the variables in their extents."""
    index, stride = Lin((), 0), 1
    for v in reversed(variables):
        index = index + atom(v) * stride
        stride *= v.extent
    return index


def _only(index: Lin, keep: list[Var]) -> Lin:
    out = Lin((), index.const)
    for a, c in index.terms:
        if a in keep:
            out = out + atom(a) * c
    return out



def blas_operands(g: Gemm) -> tuple[tuple[bool, int, Lin], tuple[bool, int, Lin]] | None:
    """For a product a vendor BLAS can compute in place: per operand (transposed, leading
    dimension, offset of element [0, 0] in terms of the batch variables); None when an operand
    is not a plain strided matrix (one row, one column and one reduction variable, unit stride
    along one of its two dimensions, no padding bounds)."""
    if len(g.i_vars) != 1 or len(g.j_vars) != 1 or len(g.k_vars) != 1 or g.a.valid or g.b.valid \
            or not g.a.dtype == g.b.dtype == g.dtype or g.a_round or g.b_round:  # (converted as packed: no BLAS)
        return None
    out = []
    for load, outer, inner in ((g.a, g.i_vars[0], g.k_vars[0]), (g.b, g.k_vars[0], g.j_vars[0])):
        terms = dict(load.index.terms)
        if any(not isinstance(a, Var) for a in terms):
            return None
        row, col = terms.pop(outer, 0), terms.pop(inner, 0)
        base = Lin(tuple(terms.items()), load.index.const)
        if col == 1 and row >= max(inner.extent, 1):  # stored as [outer][inner]: as written
            out.append((False, row, base))
        elif row == 1 and col >= max(outer.extent, 1):  # stored as [inner][outer]: transposed
            out.append((True, col, base))
        else:
            return None
    return out[0], out[1]
