"""Loop-IR pass: recognize a matrix product and hand it to a tiled GEMM routine.

A kernel whose global loops hold `acc = sum_r A[...] * B[...]` (both plain strided loads) followed
by any elementwise epilogue becomes: batch loops around one GEMM call writing the products into
the output buffer, then the original loops re-reading them to apply the epilogue in place.
Renderers that have no GEMM routine leave `supports_gemm` False and keep the plain loops.
"""
from __future__ import annotations

from ..graph.ops import Op
from ..graph.symbolic import ZERO, Lin, Var, atom
from .ir import Accumulate, Alu, Define, DefineAcc, EndLoop, Gemm, Load, Loop, LoopIR, Ref, Store

GEMM_DTYPES = ("float32", "float64")
MIN_GEMM_WORK = 1 << 12  # below this the plain loops win: no packing, no call


def _coef(index: Lin, v: Var | None) -> int:
    if v is None:
        return 0
    return dict(index.terms).get(v, 0)


def _only_vars(index: Lin) -> bool:
    return all(isinstance(a, Var) for a, _ in index.terms)


def _drop(index: Lin, drop: tuple[Var | None, ...]) -> Lin:
    out = ZERO + index.const
    for a, c in index.terms:
        if a not in drop:
            out = out + atom(a) * c
    return out


def use_gemm(ir: LoopIR) -> LoopIR:
    """`ir` with its matrix product turned into a Gemm statement, or `ir` unchanged."""
    stmts = ir.stmts
    n_glob = 0
    while n_glob < len(stmts) and isinstance(stmts[n_glob], Loop) and stmts[n_glob].kind == "global":
        n_glob += 1
    body = stmts[n_glob:len(stmts) - n_glob]
    if n_glob == 0 or any(not isinstance(s, EndLoop) for s in stmts[len(stmts) - n_glob:]):
        return ir
    acc_at = [i for i, s in enumerate(body) if isinstance(s, DefineAcc)]
    if len(acc_at) != 1 or acc_at[0] + 7 > len(body):
        return ir
    a0 = acc_at[0]
    acc, loop, l1, l2, mul, accum, end = body[a0:a0 + 7]
    if not (acc.op is Op.SUM and acc.dtype.name in GEMM_DTYPES and isinstance(loop, Loop) and loop.kind == "reduce"
            and isinstance(end, EndLoop) and isinstance(accum, Accumulate) and accum.name == acc.name
            and all(isinstance(d, Define) for d in (l1, l2, mul))
            and isinstance(mul.value, Alu) and mul.value.op is Op.MUL and accum.value == Ref(mul.name, mul.dtype)
            and all(isinstance(d.value, Load) and not d.value.valid and d.value.param != 0
                    and d.value.dtype == acc.dtype and _only_vars(d.value.index) for d in (l1, l2))
            and set(mul.value.args) == {Ref(l1.name, l1.dtype), Ref(l2.name, l2.dtype)}):
        return ir
    if any(isinstance(s, (Loop, DefineAcc)) for s in body[a0 + 7:]):
        return ir
    globals_ = [s.var for s in stmts[:n_glob]]
    r = loop.var
    la, lb = l1.value, l2.value
    in_a = {a for a, _ in la.index.terms}
    in_b = {a for a, _ in lb.index.terms}
    only_a = [v for v in globals_ if v in in_a and v not in in_b]
    only_b = [v for v in globals_ if v in in_b and v not in in_a]
    if len(only_a) > 1 or len(only_b) > 1:
        return ir
    vi = only_a[0] if only_a else None
    vj = only_b[0] if only_b else None
    if vi is not None and vj is not None and globals_.index(vi) > globals_.index(vj):
        la, lb, vi, vj = lb, la, vj, vi  # C[i, j] needs i to be the outer loop of the two
    m = vi.extent if vi else 1
    n = vj.extent if vj else 1
    batch = [v for v in globals_ if v not in (vi, vj)]
    tail = [v for v in (vi, vj) if v is not None]
    if globals_[len(globals_) - len(tail):] != tail:  # the output must be laid out [batch..., i, j]
        return ir
    c_index = Lin((), 0)
    stride = 1
    for v in reversed(globals_):
        c_index = c_index + atom(v) * stride
        stride *= v.extent
    store = body[-1]
    if not (isinstance(store, Store) and store.index == c_index and store.dtype == acc.dtype):
        return ir
    if m * n * r.extent < MIN_GEMM_WORK:
        return ir
    gemm = Gemm(acc.dtype, m, n, r.extent,
                la.param, _drop(la.index, (vi, vj, r)), _coef(la.index, vi), _coef(la.index, r),
                lb.param, _drop(lb.index, (vi, vj, r)), _coef(lb.index, r), _coef(lb.index, vj),
                _drop(c_index, (vi, vj)))
    out = [Loop(v, "global") for v in batch] + [gemm] + [EndLoop("global") for _ in batch]
    epilogue = body[:a0] + [Define(acc.name, Load(0, c_index, (), acc.dtype), acc.dtype)] + body[a0 + 7:]
    trivial = len(epilogue) == 2 and isinstance(body[-1], Store) and body[-1].value == Ref(acc.name, acc.dtype)
    if not trivial:
        out += stmts[:n_glob] + epilogue + [EndLoop("global") for _ in range(n_glob)]
    return LoopIR(ir.name, ir.params, out, ir.work)
