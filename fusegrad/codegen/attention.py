"""The fused attention kernel (Op.ATTENTION, graph/attention.py): its loop IR and its row body.

Each direction is a global loop nest over the batch and the rows around one `Attention` statement.
A row keeps its own vectors in registers and streams the other side once: the forward keeps the
query and the output accumulator and folds in one key at a time with an online softmax (the running
maximum rescales what was summed so far), so no T x T score matrix exists; the gradients recompute
each score from the saved log-sum-exp (flash attention's backward): per query row the query gradient,
per key row the key and value gradients. Causal rows stop at the diagonal. One C-family body serves
every renderer: its global loops make the rows parallel (OpenMP on the CPU, a thread per row on GPUs),
its fixed-length inner loops over the head dims vectorize (CPU) or unroll into registers (GPU).
"""
from __future__ import annotations

import math

from ..dtypes import int64
from ..graph.symbolic import Lin, Var, atom, flat_index
from .ir import Attention, EndLoop, Load, Loop, LoopIR, Ref, Store
from .lower import KernelSpec, kernel_params, load_at


def lower_attention(spec: KernelSpec, name: str, tiled: bool) -> LoopIR:
    """The kernel's IR: a row per iteration of the global loops, or with `tiled` a block of rows
    (block_rows; the CPU's layout, codegen/c_attention.py)."""
    root = spec.root
    arg = root.arg
    q, k, v = root.srcs[:3]
    *batch, t, d = q.shape
    s, e = v.shape[-2:]
    bvars = tuple(Var(f"i{n}", size) for n, size in enumerate(batch))
    bl = tuple(atom(x) for x in bvars)
    iv, jv, dv, ev = Var("a_i", t), Var("a_j", s), Var("a_d", d), Var("a_e", e)
    i, j, dd, ee = atom(iv), atom(jv), atom(dv), atom(ev)
    reads = {"q": load_at(spec, q, (*bl, i, dd)), "k": load_at(spec, k, (*bl, j, dd)),
             "v": load_at(spec, v, (*bl, j, ee))}
    if arg.direction != "forward":
        lse, delta, dout = root.srcs[3:]
        reads.update(lse=load_at(spec, lse, (*bl, i)), delta=load_at(spec, delta, (*bl, i)),
                     dout=load_at(spec, dout, (*bl, i, ee)))
    row = jv if arg.direction == "grad_kv" else iv
    out = flat_index((*bl, atom(row), Lin((), 0)), root.shape)
    block = block_rows(d, e) if tiled else 1
    outer = row if block == 1 else Var("a_b", -(-row.extent // block))
    stmt = Attention(arg.direction, arg.scale, arg.causal, root.dtype, iv, jv, dv, ev, out=out, block=block,
                     **reads)
    loops = [Loop(x, "global") for x in (*bvars, outer)]
    pairs = math.prod(batch) * t * s // (2 if arg.causal else 1)
    return LoopIR(name, kernel_params(spec), [*loops, stmt, *(EndLoop("global") for _ in loops)], pairs * (d + e))


def block_rows(d: int, e: int) -> int:
    """Rows per block of a tiled kernel (a multiple of c_attention.GROUP): its row vectors and tiles
    stay within ~64 KiB of stack; the widest heads go a row at a time."""
    widest = max(d, e)
    return 32 if widest <= 128 else 16 if widest <= 256 else 1


def attention_lines(r, s: Attention) -> list[str]:
    """The C-family statements computing one row of `s` with renderer `r`."""
    ct = r.compute_type(s.dtype)
    exp, log = r.math_fn("exp", s.dtype), r.math_fn("log", s.dtype)
    scale = r.literal(s.scale, s.dtype)
    zero = r.literal(0, s.dtype)
    d, e, i, j = s.d.name, s.e.name, s.i.name, s.j.name
    nd, ne, nt, ns = s.d.extent, s.e.extent, s.i.extent, s.j.extent
    index = r.storage_type(int64)

    def over(x: Var, body: str, reduction: str | None = None) -> list[str]:
        pragma = r.inner_pragma(reduction)
        return ([pragma] if pragma else []) + [f"for ({index} {x.name} = 0; {x.name} < {x.extent}; {x.name}++) {body}"]

    def store(offset: Lin, value: str) -> str:
        return r.store(Store(0, s.out + offset, Ref(value, s.dtype), s.dtype))

    ld = r.load
    if s.direction == "forward":
        end = f"({i} + 1 < {ns} ? {i} + 1 : {ns})" if s.causal else str(ns)
        body = [f"{ct} fg_q[{nd}], fg_acc[{ne}], fg_m = (-INFINITY), fg_l = {zero};",
                *over(s.d, f"fg_q[{d}] = {ld(s.q)};"), *over(s.e, f"fg_acc[{e}] = {zero};"),
                f"for ({index} {j} = 0; {j} < {end}; {j}++) {{",
                f"  {ct} fg_s = {zero};",
                *("  " + x for x in over(s.d, f"fg_s += fg_q[{d}] * {ld(s.k)};", "fg_s")),
                f"  fg_s *= {scale};",
                "  if (fg_s > fg_m) {  // a new maximum: rescale what was summed so far",
                f"    const {ct} fg_c = {exp}(fg_m - fg_s);",
                "    fg_l *= fg_c;",
                *("    " + x for x in over(s.e, "fg_acc[" + e + "] *= fg_c;")),
                "    fg_m = fg_s;",
                "  }",
                f"  const {ct} fg_p = {exp}(fg_s - fg_m);",
                "  fg_l += fg_p;",
                *("  " + x for x in over(s.e, f"fg_acc[{e}] += fg_p * {ld(s.v)};")),
                "}",
                *over(s.e, "{ " + store(atom(s.e), f"fg_acc[{e}] / fg_l") + " }"),
                store(Lin((), ne), f"fg_m + {log}(fg_l)")]
    elif s.direction == "grad_q":
        end = f"({i} + 1 < {ns} ? {i} + 1 : {ns})" if s.causal else str(ns)
        body = [f"{ct} fg_q[{nd}], fg_do[{ne}], fg_acc[{nd}];",
                f"const {ct} fg_lse = {ld(s.lse)}, fg_delta = {ld(s.delta)};",
                *over(s.d, f"{{ fg_q[{d}] = {ld(s.q)}; fg_acc[{d}] = {zero}; }}"),
                *over(s.e, f"fg_do[{e}] = {ld(s.dout)};"),
                f"for ({index} {j} = 0; {j} < {end}; {j}++) {{",
                f"  {ct} fg_s = {zero}, fg_dp = {zero};",
                *("  " + x for x in over(s.d, f"fg_s += fg_q[{d}] * {ld(s.k)};", "fg_s")),
                *("  " + x for x in over(s.e, f"fg_dp += fg_do[{e}] * {ld(s.v)};", "fg_dp")),
                f"  const {ct} fg_ds = {exp}(fg_s * {scale} - fg_lse) * (fg_dp - fg_delta) * {scale};",
                *("  " + x for x in over(s.d, f"fg_acc[{d}] += fg_ds * {ld(s.k)};")),
                "}",
                *over(s.d, "{ " + store(atom(s.d), f"fg_acc[{d}]") + " }")]
    else:
        start = j if s.causal else "0"
        body = [f"{ct} fg_k[{nd}], fg_v[{ne}], fg_dk[{nd}], fg_dv[{ne}];",
                *over(s.d, f"{{ fg_k[{d}] = {ld(s.k)}; fg_dk[{d}] = {zero}; }}"),
                *over(s.e, f"{{ fg_v[{e}] = {ld(s.v)}; fg_dv[{e}] = {zero}; }}"),
                f"for ({index} {i} = {start}; {i} < {nt}; {i}++) {{",
                f"  {ct} fg_s = {zero}, fg_dp = {zero};",
                *("  " + x for x in over(s.d, f"fg_s += {ld(s.q)} * fg_k[{d}];", "fg_s")),
                f"  const {ct} fg_p = {exp}(fg_s * {scale} - {ld(s.lse)});",
                *("  " + x for x in over(s.e, f"{{ const {ct} fg_o = {ld(s.dout)}; fg_dv[{e}] += fg_p * fg_o; "
                                              f"fg_dp += fg_o * fg_v[{e}]; }}", "fg_dp")),
                f"  const {ct} fg_ds = fg_p * (fg_dp - {ld(s.delta)}) * {scale};",
                *("  " + x for x in over(s.d, f"fg_dk[{d}] += fg_ds * {ld(s.q)};")),
                "}",
                *over(s.d, "{ " + store(atom(s.d), f"fg_dk[{d}]") + " }"),
                *over(s.e, "{ " + store(atom(s.e) + nd, f"fg_dv[{e}]") + " }")]
    return ["{", *("  " + x for x in body), "}"]

