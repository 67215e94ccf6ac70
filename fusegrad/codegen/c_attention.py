"""The fused attention kernel on the CPU: blocks of rows, the other side streamed in tiles of one SIMD
register's width, every product written with GCC's vector types.

A block of rows (32, or 16 for heads over 128 wide: codegen/attention.py's block_rows) keeps its row
vectors as scalars; each tile of the other side is copied once, transposed where a product runs along
it, into arrays that one 64-byte vector spans per row. Scores for four rows at a time are then sums of
a row scalar times a tile vector (eight independent multiply-add chains in flight), the softmax runs in
SIMD loops over a tile's scores, and the outputs accumulate as vectors along the head dims. The kernel
is compiled with contracted multiply-adds (the rest of a translation unit is not: render wraps it).
"""
from __future__ import annotations

from ..dtypes import NARROW, int64
from ..graph.symbolic import Lin, atom
from .ir import Attention, Ref, Store

GROUP = 4  # rows whose scores are computed together
CONTRACTED = ('#pragma GCC push_options\n#pragma GCC optimize("fp-contract=fast")', "#pragma GCC pop_options")


def lanes(s: Attention) -> int:
    """Elements of the computed type in a 64-byte vector: the tile width (half types compute in float32)."""
    return 64 // (4 if s.dtype in NARROW else s.dtype.itemsize)


def render_lines(r, s: Attention) -> list[str]:
    """The statements computing a block of rows of `s` with the C renderer `r`."""
    ct, index = r.compute_type(s.dtype), r.storage_type(int64)
    exp, log = r.math_fn("exp", s.dtype), r.math_fn("log", s.dtype)
    scale, zero, br, vl = r.literal(s.scale, s.dtype), r.literal(0, s.dtype), s.block, lanes(s)
    d, e, i, j = s.d.name, s.e.name, s.i.name, s.j.name
    nd, ne, nt, ns = s.d.extent, s.e.extent, s.i.extent, s.j.extent
    pd, pe = -(-nd // vl) * vl, -(-ne // vl) * vl  # head dims padded to whole vectors (zeros past the end)
    simd, align = "#pragma omp simd", "__attribute__((aligned(64)))"
    vec = "*(fg_vec*)&"

    def for_(x: str, n: object, body: list[str] | str, pragma: str = "", start: object = 0, step: int = 1) -> list[str]:
        lines = [body] if isinstance(body, str) else body
        inc = f"{x}++" if step == 1 else f"{x} += {step}"
        return ([pragma] if pragma else []) + [f"for ({index} {x} = {start}; {x} < {n}; {inc}) {{",
                                               *("  " + line for line in lines), "}"]

    def store(offset: Lin, value: str) -> str:
        return r.store(Store(0, s.out + offset, Ref(value, s.dtype), s.dtype))

    def fill(target: str, var: str, n: int, padded: int, load: str, live: str) -> list[str]:
        """target[var] for var < padded: the load where live and var < n, zero elsewhere."""
        return for_(var, padded, f"{target}[{var}] = {live} && {var} < {n} ? {load} : {zero};")

    def scores(out: str, rows: str, tile: str, n: int, extra: tuple[str, str, int] | None = None) -> list[str]:
        """out[g][c] = sum over the dim of rows[fg_r + g][x] * tile[x][c] for the group's rows (and plus the
        second product `extra` = (rows, tile, n) into fg_dp when given)."""
        acc = [f"fg_vec fg_a{g} = {{0}};" for g in range(GROUP)]
        body = for_("fg_x", n, ["const fg_vec fg_t = " + vec + tile + "[fg_x][0];",
                                *(f"fg_a{g} += {rows}[fg_r + {g}][fg_x] * fg_t;" for g in range(GROUP))])
        lines = acc + body + [f"{vec}{out}[{g}][0] = fg_a{g};" for g in range(GROUP)]
        if extra is not None:
            lines += scores("fg_dp", *extra)
        return ["{", *("  " + x for x in lines), "}"]

    def accumulate(target: str, width: int, weights: str, tile: str, lo: str, hi: str) -> list[str]:
        """target[fg_r + g][:] += sum over c in [lo, hi) of weights[g][c] * tile[c][:], as vectors."""
        return for_("fg_w", width // vl, [
            *(f"fg_vec fg_a{g} = {vec}{target}[fg_r + {g}][fg_w * {vl}];" for g in range(GROUP)),
            *for_("fg_c", hi, ["const fg_vec fg_t = " + vec + tile + f"[fg_c][fg_w * {vl}];",
                               *(f"fg_a{g} += {weights}[{g}][fg_c] * fg_t;" for g in range(GROUP))], start=lo),
            *(f"{vec}{target}[fg_r + {g}][fg_w * {vl}] = fg_a{g};" for g in range(GROUP))])

    rows, row, other, n_other = (ns, j, i, nt) if s.direction == "grad_kv" else (nt, i, j, ns)
    lines = [f"typedef {ct} fg_vec __attribute__((vector_size(64), may_alias));",
             f"const {index} fg_r0 = a_b * {br};",
             f"const {index} fg_rn = {rows} - fg_r0 < {br} ? {rows} - fg_r0 : {br};"]
    at_row = [f"const {index} {row} = fg_r0 + (fg_r < fg_rn ? fg_r : 0);", "const int fg_live = fg_r < fg_rn;"]
    # a tile's columns past the end repeat its first one: reads stay in range, their results are masked
    at_col = [f"const {index} {other} = fg_c0 + (fg_c < fg_cn ? fg_c : 0);", "const int fg_live = 1;"]
    group = [f"for ({index} fg_r = 0; fg_r < fg_rn; fg_r += {GROUP}) {{"]
    if s.direction in ("forward", "grad_q"):
        end = f"({ns} < fg_r0 + fg_rn ? {ns} : fg_r0 + fg_rn)" if s.causal else str(ns)
        lim = f"({i} + 1 - fg_c0 < fg_cn ? {i} + 1 - fg_c0 : fg_cn)" if s.causal else "fg_cn"
        tiles = [f"const {index} fg_end = {end};",
                 f"for ({index} fg_c0 = 0; fg_c0 < fg_end; fg_c0 += {vl}) {{",
                 f"  const {index} fg_cn = fg_end - fg_c0 < {vl} ? fg_end - fg_c0 : {vl};"]
        per_row = [f"const {index} {i} = fg_r0 + fg_r + fg_g;", f"const {index} fg_lim = {lim};"]
    if s.direction == "forward":
        lines += [f"{ct} fg_q[{br}][{nd}] {align}, fg_o[{br}][{pe}] {align}, fg_m[{br}], fg_l[{br}];",
                  *for_("fg_r", br, [*at_row, *fill("fg_q[fg_r]", d, nd, nd, r.load(s.q), "fg_live"),
                                     *for_(e, pe, f"fg_o[fg_r][{e}] = {zero};"),
                                     f"fg_m[fg_r] = (-INFINITY); fg_l[fg_r] = {zero};"]),
                  *tiles,
                  f"  {ct} fg_kt[{nd}][{vl}] {align}, fg_v[{vl}][{pe}] {align}, fg_s[{GROUP}][{vl}] {align};",
                  *("  " + x for x in for_("fg_c", vl, [*at_col, *for_(d, nd, f"fg_kt[{d}][fg_c] = {r.load(s.k)};"),
                                                        *fill("fg_v[fg_c]", e, ne, pe, r.load(s.v), "1")])),
                  *("  " + x for x in group),
                  *("    " + x for x in scores("fg_s", "fg_q", "fg_kt", nd)),
                  *("    " + x for x in for_("fg_g", GROUP, [
                      *per_row, "if (fg_r + fg_g >= fg_rn || fg_lim <= 0) {  // past the end, or above the diagonal",
                      *for_("fg_c", vl, f"fg_s[fg_g][fg_c] = {zero};", simd), "  continue;", "}",
                      f"{ct} fg_mx = (-INFINITY), fg_sum = {zero};",
                      *for_("fg_c", vl, [f"fg_s[fg_g][fg_c] = fg_c < fg_lim ? fg_s[fg_g][fg_c] * {scale} "
                                          ": (-INFINITY);",
                                         "fg_mx = fg_s[fg_g][fg_c] > fg_mx ? fg_s[fg_g][fg_c] : fg_mx;"],
                            simd + " reduction(max:fg_mx)"),
                      "if (fg_mx > fg_m[fg_r + fg_g]) {  // a new maximum: rescale what was summed so far",
                      f"  const {ct} fg_corr = {exp}(fg_m[fg_r + fg_g] - fg_mx);",
                      "  fg_l[fg_r + fg_g] *= fg_corr;",
                      *("  " + x for x in for_(e, pe, f"fg_o[fg_r + fg_g][{e}] *= fg_corr;", simd)),
                      "  fg_m[fg_r + fg_g] = fg_mx;", "}",
                      *for_("fg_c", vl, [f"fg_s[fg_g][fg_c] = {exp}(fg_s[fg_g][fg_c] - fg_m[fg_r + fg_g]);",
                                         "fg_sum += fg_s[fg_g][fg_c];"], simd + " reduction(+:fg_sum)"),
                      "fg_l[fg_r + fg_g] += fg_sum;"])),
                  *("    " + x for x in accumulate("fg_o", pe, "fg_s", "fg_v", "0", "fg_cn")),
                  "  }", "}",
                  *for_("fg_r", "fg_rn", [*at_row, *for_(e, ne, store(atom(s.e), f"fg_o[fg_r][{e}] / fg_l[fg_r]")),
                                          store(Lin((), ne), f"fg_m[fg_r] + {log}(fg_l[fg_r])")])]
    elif s.direction == "grad_q":
        lines += [f"{ct} fg_q[{br}][{nd}] {align}, fg_do[{br}][{ne}] {align}, fg_dq[{br}][{pd}] {align}, "
                  f"fg_lse[{br}], fg_dl[{br}];",
                  *for_("fg_r", br, [*at_row, *fill("fg_q[fg_r]", d, nd, nd, r.load(s.q), "fg_live"),
                                     *fill("fg_do[fg_r]", e, ne, ne, r.load(s.dout), "fg_live"),
                                     *for_(d, pd, f"fg_dq[fg_r][{d}] = {zero};"),
                                     f"fg_lse[fg_r] = {r.load(s.lse)}; fg_dl[fg_r] = {r.load(s.delta)};"]),
                  *tiles,
                  f"  {ct} fg_kt[{nd}][{vl}] {align}, fg_k[{vl}][{pd}] {align}, fg_vt[{ne}][{vl}] {align}, "
                  f"fg_s[{GROUP}][{vl}] {align}, fg_dp[{GROUP}][{vl}] {align};",
                  *("  " + x for x in for_("fg_c", vl, [
                      *at_col, *fill("fg_k[fg_c]", d, nd, pd, r.load(s.k), "1"),
                      *for_(d, nd, f"fg_kt[{d}][fg_c] = fg_k[fg_c][{d}];"),
                      *for_(e, ne, f"fg_vt[{e}][fg_c] = {r.load(s.v)};")])),
                  *("  " + x for x in group),
                  *("    " + x for x in scores("fg_s", "fg_q", "fg_kt", nd, ("fg_do", "fg_vt", ne))),
                  *("    " + x for x in for_("fg_g", GROUP, [
                      *per_row, f"const {ct} fg_lse1 = fg_lse[fg_r + fg_g], fg_dl1 = fg_dl[fg_r + fg_g];",
                      "const int fg_seen = fg_r + fg_g < fg_rn;",
                      *for_("fg_c", vl, f"fg_s[fg_g][fg_c] = fg_seen && fg_c < fg_lim ? {exp}(fg_s[fg_g][fg_c] * "
                                        f"{scale} - fg_lse1) * (fg_dp[fg_g][fg_c] - fg_dl1) * {scale} : {zero};",
                            simd)])),
                  *("    " + x for x in accumulate("fg_dq", pd, "fg_s", "fg_k", "0", "fg_cn")),
                  "  }", "}",
                  *for_("fg_r", "fg_rn", [*at_row, *for_(d, nd, store(atom(s.d), f"fg_dq[fg_r][{d}]"))])]
    else:
        start = "fg_r0" if s.causal else "0"  # a key is seen by the queries from its own position on
        lines += [f"{ct} fg_k[{br}][{nd}] {align}, fg_v[{br}][{ne}] {align}, fg_dk[{br}][{pd}] {align}, "
                  f"fg_dv[{br}][{pe}] {align};",
                  *for_("fg_r", br, [*at_row, *fill("fg_k[fg_r]", d, nd, nd, r.load(s.k), "fg_live"),
                                     *fill("fg_v[fg_r]", e, ne, ne, r.load(s.v), "fg_live"),
                                     *for_(d, pd, f"fg_dk[fg_r][{d}] = {zero};"),
                                     *for_(e, pe, f"fg_dv[fg_r][{e}] = {zero};")]),
                  f"for ({index} fg_c0 = {start}; fg_c0 < {nt}; fg_c0 += {vl}) {{",
                  f"  const {index} fg_cn = {nt} - fg_c0 < {vl} ? {nt} - fg_c0 : {vl};",
                  f"  {ct} fg_qt[{nd}][{vl}] {align}, fg_q[{vl}][{pd}] {align}, fg_dot[{ne}][{vl}] {align}, "
                  f"fg_do[{vl}][{pe}] {align}, fg_lse[{vl}], fg_dl[{vl}], fg_s[{GROUP}][{vl}] {align}, "
                  f"fg_dp[{GROUP}][{vl}] {align};",
                  *("  " + x for x in for_("fg_c", vl, [
                      *at_col, *fill("fg_q[fg_c]", d, nd, pd, r.load(s.q), "1"),
                      *fill("fg_do[fg_c]", e, ne, pe, r.load(s.dout), "1"),
                      *for_(d, nd, f"fg_qt[{d}][fg_c] = fg_q[fg_c][{d}];"),
                      *for_(e, ne, f"fg_dot[{e}][fg_c] = fg_do[fg_c][{e}];"),
                      f"fg_lse[fg_c] = {r.load(s.lse)}; fg_dl[fg_c] = {r.load(s.delta)};"])),
                  *("  " + x for x in group),
                  *("    " + x for x in scores("fg_s", "fg_k", "fg_qt", nd, ("fg_v", "fg_dot", ne))),
                  *("    " + x for x in for_("fg_g", GROUP, [
                      f"const {index} {j} = fg_r0 + fg_r + fg_g;",
                      f"const {index} fg_lo = {f'{j} - fg_c0' if s.causal else '0'};",
                      "const int fg_seen = fg_r + fg_g < fg_rn;",
                      *for_("fg_c", vl, [f"const {ct} fg_p = fg_seen && fg_c >= fg_lo && fg_c < fg_cn ? "
                                         f"{exp}(fg_s[fg_g][fg_c] * {scale} - fg_lse[fg_c]) : {zero};",
                                         "fg_s[fg_g][fg_c] = fg_p;",
                                         f"fg_dp[fg_g][fg_c] = fg_p * (fg_dp[fg_g][fg_c] - fg_dl[fg_c]) * {scale};"],
                            simd)])),
                  *("    " + x for x in accumulate("fg_dv", pe, "fg_s", "fg_do", "0", "fg_cn")),
                  *("    " + x for x in accumulate("fg_dk", pd, "fg_dp", "fg_q", "0", "fg_cn")),
                  "  }", "}",
                  *for_("fg_r", "fg_rn", [*at_row, *for_(d, nd, store(atom(s.d), f"fg_dk[fg_r][{d}]")),
                                          *for_(e, ne, store(atom(s.e) + nd, f"fg_dv[fg_r][{e}]"))])]
    return ["{", *("  " + x for x in lines), "}"]
