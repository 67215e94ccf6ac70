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
from .ir import Attention, EndLoop, Load, Loop, LoopIR, Param, Ref, Store
from .lower import KernelSpec, load_at


def lower_attention(spec: KernelSpec, name: str, tiled: bool) -> LoopIR:
    """The kernel's IR: a row per iteration of the global loops, or with `tiled` a block of rows
    (BLOCK_ROWS, fewer for wide heads) streaming the other side in tiles of BLOCK_COLS."""
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
    params = [Param(root.dtype, root.numel, True)] + [Param(n.dtype, n.numel, False) for n in spec.inputs]
    return LoopIR(name, params, [*loops, stmt, *(EndLoop("global") for _ in loops)], pairs * (d + e))


def block_rows(d: int, e: int) -> int:
    """Rows per block of the tiled body: its row vectors and tiles stay within ~64 KiB of stack."""
    widest = max(d, e)
    return 32 if widest <= 128 else 16 if widest <= 256 else 1


def attention_lines(r, s: Attention) -> list[str]:
    """The C-family statements computing one row (or block of rows) of `s` with renderer `r`."""
    if s.block > 1:
        return tiled_lines(r, s)
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


BLOCK_COLS = 16  # columns per tile of the tiled body: a SIMD register of float32 scores


def tiled_lines(r, s: Attention) -> list[str]:
    """The statements computing a block of rows of `s`, for renderers with OpenMP SIMD loops (the CPU).

    The other side streams through in tiles of BLOCK_COLS, copied once per tile (the products' operands
    transposed so that every inner loop runs along a row of memory): a block's scores, probabilities
    and products are then SIMD loops over a tile or a head dim, with no sum across lanes per pair."""
    ct, index = r.compute_type(s.dtype), r.storage_type(int64)
    exp, log = r.math_fn("exp", s.dtype), r.math_fn("log", s.dtype)
    scale, zero, bc, br = r.literal(s.scale, s.dtype), r.literal(0, s.dtype), BLOCK_COLS, s.block
    d, e, i, j = s.d.name, s.e.name, s.i.name, s.j.name
    nd, ne, nt, ns = s.d.extent, s.e.extent, s.i.extent, s.j.extent
    simd = "#pragma omp simd"

    def for_(x: str, n: object, body: list[str] | str, pragma: str = "", start: object = 0) -> list[str]:
        lines = [body] if isinstance(body, str) else body
        head = ([pragma] if pragma else []) + [f"for ({index} {x} = {start}; {x} < {n}; {x}++) {{"]
        return head + ["  " + line for line in lines] + ["}"]

    def store(offset: Lin, value: str) -> str:
        return r.store(Store(0, s.out + offset, Ref(value, s.dtype), s.dtype))

    def lanes(x: str, n: object, target: str, start: str, over: str, lo: object, hi: object, term: str) -> list[str]:
        """target = start + the sum of term (a format of `over`) for `over` in [lo, hi), for x in [0, n): SIMD
        lanes along x, each summing in a register (an array updated per term went through memory at every
        step)."""
        return for_(x, n, [f"{ct} fg_a = {start};", *for_(over, hi, f"fg_a += {term.format(over)};", start=lo),
                           f"{target} = fg_a;"], simd)

    rows, row, other = (ns, j, i) if s.direction == "grad_kv" else (nt, i, j)
    lines = [f"const {index} fg_r0 = a_b * {br};", f"const {index} fg_rn = {rows} - fg_r0 < {br} ? {rows} - fg_r0 : {br};"]
    at_row = f"const {index} {row} = fg_r0 + fg_r;"
    # a tile's columns past the end repeat its first one: reads stay in range, the loops skip their results
    at_col = f"const {index} {other} = fg_c0 + (fg_c < fg_cn ? fg_c : 0);"
    if s.direction == "forward":
        end = f"({ns} < fg_r0 + fg_rn ? {ns} : fg_r0 + fg_rn)" if s.causal else str(ns)
        lim = f"({i} + 1 - fg_c0 < fg_cn ? {i} + 1 - fg_c0 : fg_cn)" if s.causal else "fg_cn"
        lines += [f"{ct} fg_q[{br}][{nd}], fg_o[{br}][{ne}], fg_m[{br}], fg_l[{br}];",
                  *for_("fg_r", "fg_rn", [at_row, *for_(d, nd, f"fg_q[fg_r][{d}] = {r.load(s.q)};"),
                                          *for_(e, ne, f"fg_o[fg_r][{e}] = {zero};"),
                                          f"fg_m[fg_r] = (-INFINITY); fg_l[fg_r] = {zero};"]),
                  f"const {index} fg_end = {end};",
                  f"for ({index} fg_c0 = 0; fg_c0 < fg_end; fg_c0 += {bc}) {{",
                  f"  const {index} fg_cn = fg_end - fg_c0 < {bc} ? fg_end - fg_c0 : {bc};",
                  f"  {ct} fg_kt[{nd}][{bc}], fg_v[{bc}][{ne}], fg_s[{bc}];",
                  *("  " + x for x in for_("fg_c", bc, [at_col, *for_(d, nd, f"fg_kt[{d}][fg_c] = {r.load(s.k)};"),
                                                        *for_(e, ne, f"fg_v[fg_c][{e}] = {r.load(s.v)};")])),
                  *("  " + x for x in for_("fg_r", "fg_rn", [
                      at_row, f"const {index} fg_lim = {lim};", "if (fg_lim <= 0) continue;  // above the diagonal",
                      *lanes("fg_c", bc, "fg_s[fg_c]", zero, d, 0, nd, "fg_q[fg_r][{0}] * fg_kt[{0}][fg_c]"),
                      f"{ct} fg_mx = (-INFINITY), fg_sum = {zero};",
                      *for_("fg_c", bc, ["fg_s[fg_c] = fg_c < fg_lim ? fg_s[fg_c] * " + scale + " : (-INFINITY);",
                                         "fg_mx = fg_s[fg_c] > fg_mx ? fg_s[fg_c] : fg_mx;"],
                            simd + " reduction(max:fg_mx)"),
                      "if (fg_mx > fg_m[fg_r]) {  // a new maximum: rescale what was summed so far",
                      f"  const {ct} fg_corr = {exp}(fg_m[fg_r] - fg_mx);",
                      "  fg_l[fg_r] *= fg_corr;",
                      *("  " + x for x in for_(e, ne, f"fg_o[fg_r][{e}] *= fg_corr;", simd)),
                      "  fg_m[fg_r] = fg_mx;",
                      "}",
                      *for_("fg_c", bc, [f"fg_s[fg_c] = {exp}(fg_s[fg_c] - fg_m[fg_r]);", "fg_sum += fg_s[fg_c];"],
                            simd + " reduction(+:fg_sum)"),
                      "fg_l[fg_r] += fg_sum;",
                      *lanes(e, ne, f"fg_o[fg_r][{e}]", f"fg_o[fg_r][{e}]", "fg_c", 0, "fg_lim",
                             "fg_s[{0}] * fg_v[{0}][" + e + "]")])),
                  "}",
                  *for_("fg_r", "fg_rn", [at_row, *for_(e, ne, store(atom(s.e), f"fg_o[fg_r][{e}] / fg_l[fg_r]")),
                                          store(Lin((), ne), f"fg_m[fg_r] + {log}(fg_l[fg_r])")])]
    elif s.direction == "grad_q":
        end = f"({ns} < fg_r0 + fg_rn ? {ns} : fg_r0 + fg_rn)" if s.causal else str(ns)
        lim = f"({i} + 1 - fg_c0 < fg_cn ? {i} + 1 - fg_c0 : fg_cn)" if s.causal else "fg_cn"
        lines += [f"{ct} fg_q[{br}][{nd}], fg_do[{br}][{ne}], fg_dq[{br}][{nd}], fg_lse[{br}], fg_dl[{br}];",
                  *for_("fg_r", "fg_rn", [at_row, *for_(d, nd, f"fg_q[fg_r][{d}] = {r.load(s.q)}; "
                                                              f"fg_dq[fg_r][{d}] = {zero};"),
                                          *for_(e, ne, f"fg_do[fg_r][{e}] = {r.load(s.dout)};"),
                                          f"fg_lse[fg_r] = {r.load(s.lse)}; fg_dl[fg_r] = {r.load(s.delta)};"]),
                  f"const {index} fg_end = {end};",
                  f"for ({index} fg_c0 = 0; fg_c0 < fg_end; fg_c0 += {bc}) {{",
                  f"  const {index} fg_cn = fg_end - fg_c0 < {bc} ? fg_end - fg_c0 : {bc};",
                  f"  {ct} fg_kt[{nd}][{bc}], fg_k[{bc}][{nd}], fg_vt[{ne}][{bc}], fg_s[{bc}], fg_dp[{bc}];",
                  *("  " + x for x in for_("fg_c", bc, [
                      at_col, *for_(d, nd, [f"const {ct} fg_x = {r.load(s.k)};", f"fg_kt[{d}][fg_c] = fg_x; "
                                                                               f"fg_k[fg_c][{d}] = fg_x;"]),
                      *for_(e, ne, f"fg_vt[{e}][fg_c] = {r.load(s.v)};")])),
                  *("  " + x for x in for_("fg_r", "fg_rn", [
                      at_row, f"const {index} fg_lim = {lim};", "if (fg_lim <= 0) continue;  // above the diagonal",
                      *lanes("fg_c", bc, "fg_s[fg_c]", zero, d, 0, nd, "fg_q[fg_r][{0}] * fg_kt[{0}][fg_c]"),
                      *lanes("fg_c", bc, "fg_dp[fg_c]", zero, e, 0, ne, "fg_do[fg_r][{0}] * fg_vt[{0}][fg_c]"),
                      *for_("fg_c", bc, f"fg_s[fg_c] = fg_c < fg_lim ? {exp}(fg_s[fg_c] * {scale} - fg_lse[fg_r]) * "
                                        f"(fg_dp[fg_c] - fg_dl[fg_r]) * {scale} : {zero};", simd),
                      *lanes(d, nd, f"fg_dq[fg_r][{d}]", f"fg_dq[fg_r][{d}]", "fg_c", 0, "fg_lim",
                             "fg_s[{0}] * fg_k[{0}][" + d + "]")])),
                  "}",
                  *for_("fg_r", "fg_rn", [at_row, *for_(d, nd, store(atom(s.d), f"fg_dq[fg_r][{d}]"))])]
    else:
        start = "fg_r0" if s.causal else "0"  # a key is seen by the queries from its own position on
        lo = f"({j} - fg_c0 > 0 ? {j} - fg_c0 : 0)" if s.causal else "0"
        lines += [f"{ct} fg_k[{br}][{nd}], fg_v[{br}][{ne}], fg_dk[{br}][{nd}], fg_dv[{br}][{ne}];",
                  *for_("fg_r", "fg_rn", [at_row, *for_(d, nd, f"fg_k[fg_r][{d}] = {r.load(s.k)}; "
                                                              f"fg_dk[fg_r][{d}] = {zero};"),
                                          *for_(e, ne, f"fg_v[fg_r][{e}] = {r.load(s.v)}; "
                                                       f"fg_dv[fg_r][{e}] = {zero};")]),
                  f"for ({index} fg_c0 = {start}; fg_c0 < {nt}; fg_c0 += {bc}) {{",
                  f"  const {index} fg_cn = {nt} - fg_c0 < {bc} ? {nt} - fg_c0 : {bc};",
                  f"  {ct} fg_qt[{nd}][{bc}], fg_q[{bc}][{nd}], fg_dot[{ne}][{bc}], fg_do[{bc}][{ne}], "
                  f"fg_lse[{bc}], fg_dl[{bc}], fg_s[{bc}], fg_dp[{bc}];",
                  *("  " + x for x in for_("fg_c", bc, [
                      at_col, *for_(d, nd, [f"const {ct} fg_x = {r.load(s.q)};", f"fg_qt[{d}][fg_c] = fg_x; "
                                                                               f"fg_q[fg_c][{d}] = fg_x;"]),
                      *for_(e, ne, [f"const {ct} fg_x = {r.load(s.dout)};", f"fg_dot[{e}][fg_c] = fg_x; "
                                                                          f"fg_do[fg_c][{e}] = fg_x;"]),
                      f"fg_lse[fg_c] = {r.load(s.lse)}; fg_dl[fg_c] = {r.load(s.delta)};"])),
                  *("  " + x for x in for_("fg_r", "fg_rn", [
                      at_row, f"const {index} fg_lo = {lo};", "if (fg_lo >= fg_cn) continue;  // below the diagonal",
                      *lanes("fg_c", bc, "fg_s[fg_c]", zero, d, 0, nd, "fg_k[fg_r][{0}] * fg_qt[{0}][fg_c]"),
                      *lanes("fg_c", bc, "fg_dp[fg_c]", zero, e, 0, ne, "fg_v[fg_r][{0}] * fg_dot[{0}][fg_c]"),
                      *for_("fg_c", bc, [f"const {ct} fg_p = fg_c >= fg_lo && fg_c < fg_cn ? "
                                         f"{exp}(fg_s[fg_c] * {scale} - fg_lse[fg_c]) : {zero};",
                                         "fg_s[fg_c] = fg_p;",
                                         f"fg_dp[fg_c] = fg_p * (fg_dp[fg_c] - fg_dl[fg_c]) * {scale};"], simd),
                      *lanes(e, ne, f"fg_dv[fg_r][{e}]", f"fg_dv[fg_r][{e}]", "fg_c", "fg_lo", "fg_cn",
                             "fg_s[{0}] * fg_do[{0}][" + e + "]"),
                      *lanes(d, nd, f"fg_dk[fg_r][{d}]", f"fg_dk[fg_r][{d}]", "fg_c", "fg_lo", "fg_cn",
                             "fg_dp[{0}] * fg_q[{0}][" + d + "]")])),
                  "}",
                  *for_("fg_r", "fg_rn", [at_row, *for_(d, nd, store(atom(s.d), f"fg_dk[fg_r][{d}]")),
                                          *for_(e, ne, store(atom(s.e) + nd, f"fg_dv[fg_r][{e}]"))])]
    return ["{", *("  " + x for x in lines), "}"]
