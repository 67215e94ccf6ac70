"""The fused attention kernel on CUDA: a block of rows stages the other side's tiles in shared memory.

A block holds ROWS rows (query rows for the forward and the query gradient, key rows for the key and
value gradients), each row spread over `lanes` consecutive threads: lane l keeps elements l, l + lanes,
... of the row's vectors in registers, so a row's dot products are partial sums combined with warp
shuffles. The block walks the other side in tiles of TILE rows, copied once into shared memory by all
its threads and read there by every row (one address per row group: broadcasts, no bank conflicts).
Wide heads take fewer rows and shorter tiles (`blocking`): at most 1024 threads and 48 KiB of tiles.
Every thread runs every tile step, so the shuffles and barriers stay uniform; rows past the end and
keys a causal row must not see contribute nothing. The arithmetic is the shared body's
(codegen/attention.py), in this layout.
"""
from __future__ import annotations

import math

from ..graph.symbolic import Lin, Var, atom
from .ir import Attention, Loop, LoopIR, Ref, Store
from .render import decompose

ROWS = 64  # rows per block, at most
TILE = 32  # rows of the other side staged per step, at most
REGISTERS = 64  # floats of row vectors a thread may keep
MAX_THREADS = 1024  # per block, on every CUDA GPU
SHARED_BYTES = 48 << 10  # static shared memory a block may declare


def lanes_per_row(s: Attention) -> int:
    """Threads sharing a row: the fewest (a power of two, at most a warp) whose share of the row's
    vectors fits REGISTERS floats (a kernel laid out for another launch may be given other lanes)."""
    vectors = {"forward": 2, "grad_q": 3, "grad_kv": 4}[s.direction]
    lanes = 1
    while lanes < 32 and vectors * -(-max(s.d.extent, s.e.extent) // lanes) > REGISTERS:
        lanes *= 2
    return lanes


def blocking(s: Attention, lanes: int, rows: int = ROWS) -> tuple[int, int]:
    """(rows per block, rows per staged tile) at `lanes` a row: `rows` and TILE, fewer where wide heads
    would pass the threads a block may have or the shared memory its tiles may take (heads of 300:
    32 lanes a row)."""
    row_bytes = 4 * lanes * (-(-s.d.extent // lanes) + -(-s.e.extent // lanes)) + (8 if s.direction == "grad_kv" else 0)
    tile = TILE
    while tile > 1 and tile * row_bytes > SHARED_BYTES:
        tile //= 2
    return min(rows, MAX_THREADS // lanes), tile


def batch_vars(ir: LoopIR) -> list[Var]:
    """The variables of the kernel's global loops around its rows: the batch dims."""
    return [lp.var for lp in ir.stmts if isinstance(lp, Loop)][:-1]


def launch(ir: LoopIR, s: Attention) -> tuple[int, int]:
    """(blocks, threads per block)."""
    rows = s.j.extent if s.direction == "grad_kv" else s.i.extent
    batch = math.prod(v.extent for v in batch_vars(ir))
    lanes = lanes_per_row(s)
    block_rows = blocking(s, lanes)[0]
    return batch * -(-rows // block_rows), block_rows * lanes


def render(r, ir: LoopIR, s: Attention) -> str:
    """The kernel's source (a __global__ function named ir.name) for CUDA renderer `r`."""
    threads = launch(ir, s)[1]
    return "\n".join([f"extern \"C\" __global__ void __launch_bounds__({threads}) {ir.name}("
                      + r.signature(ir).split("(", 1)[1] + " {", *kernel_body(r, ir, s, lanes_per_row(s)), "}"])


def kernel_body(r, ir: LoopIR, s: Attention, lanes: int, rows: int = ROWS) -> list[str]:
    """The kernel's statements (inside its braces) with `lanes` threads a row and `rows` a block."""
    block_rows, tile = blocking(s, lanes, rows)
    threads = block_rows * lanes
    nd, ne, nt, ns = s.d.extent, s.e.extent, s.i.extent, s.j.extent
    cd, ce = -(-nd // lanes), -(-ne // lanes)  # each lane's share of a head dim
    wd, we = cd * lanes, ce * lanes  # tile row widths (the head dims rounded up; the rest holds zeros)
    d, e, i, j = s.d.name, s.e.name, s.i.name, s.j.name
    scale = r.literal(s.scale, s.dtype)
    rows, row, other, n_other = (ns, j, i, nt) if s.direction == "grad_kv" else (nt, i, j, ns)
    per_batch = -(-rows // block_rows)
    batch = batch_vars(ir)
    unroll = "#pragma unroll"

    def mine(var: str, width: int, extent: int, body: str) -> list[str]:
        """body for each of this lane's elements u of a head dim (var = its index, live when below extent)."""
        return [unroll, f"for (int fg_u = 0; fg_u < {width}; fg_u++) {{",
                f"  const int64_t {var} = fg_lane + {lanes} * fg_u; (void){var};", f"  {body}", "}"]

    def dot(target: str, width: int, term: str) -> list[str]:
        """target = the row's dot product: four partial sums per lane, then a butterfly over its lanes."""
        lines = [f"float {target}_p[4] = {{0.0f, 0.0f, 0.0f, 0.0f}};", unroll,
                 f"for (int fg_u = 0; fg_u < {width}; fg_u++) {target}_p[fg_u & 3] += {term};",
                 f"float {target} = ({target}_p[0] + {target}_p[1]) + ({target}_p[2] + {target}_p[3]);"]
        if lanes > 1:
            lines.append(f"for (int fg_o = {lanes // 2}; fg_o > 0; fg_o >>= 1) "
                         f"{target} += __shfl_xor_sync(0xffffffffu, {target}, fg_o);")
        return lines

    def stage(array: str, width: int, extent: int, var: str, load: str) -> list[str]:
        """Copy the tile's rows (the other side from fg_c0, clamped in range) into shared `array`."""
        return [f"for (int fg_x = threadIdx.x; fg_x < {tile * width}; fg_x += {threads}) {{",
                f"  const int64_t {other} = min(fg_c0 + fg_x / {width}, (int64_t){n_other - 1});",
                f"  const int64_t {var} = fg_x % {width};",
                f"  {array}[fg_x / {width}][{var}] = {var} < {extent} ? {load} : 0.0f;", "}"]

    def store(offset: Lin, value: str) -> str:
        return r.store(Store(0, s.out + offset, Ref(value, s.dtype), s.dtype))

    head = [f"  const int64_t fg_block = blockIdx.x % {per_batch}u;",
            *("  " + x for x in decompose(f"(blockIdx.x / {per_batch}u)", batch,
                                          "const int64_t {name} = (int64_t)({value});", "u")),
            f"  const int fg_lane = threadIdx.x % {lanes};",
            f"  const int64_t fg_row = fg_block * {block_rows} + threadIdx.x / {lanes};",
            f"  const bool fg_live = fg_row < {rows};",
            f"  const int64_t {row} = fg_live ? fg_row : {rows - 1};  // rows past the end compute, never store"]
    if s.direction == "forward":
        end = f"min((int64_t){ns}, fg_block * {block_rows} + {block_rows})" if s.causal else str(ns)
        lim = f"min(fg_cn, {i} + 1 - fg_c0)" if s.causal else "fg_cn"
        body = [f"__shared__ float fg_kt[{tile}][{wd}], fg_vt[{tile}][{we}];",
                f"float fg_q[{cd}], fg_acc[{ce}], fg_m = (-INFINITY), fg_l = 0.0f;",
                *mine(d, cd, nd, f"fg_q[fg_u] = {d} < {nd} ? {r.load(s.q)} : 0.0f;"),
                unroll, f"for (int fg_u = 0; fg_u < {ce}; fg_u++) fg_acc[fg_u] = 0.0f;",
                f"const int64_t fg_end = {end};",
                f"for (int64_t fg_c0 = 0; fg_c0 < fg_end; fg_c0 += {tile}) {{",
                "  __syncthreads();  // the previous tile is read",
                *("  " + x for x in stage("fg_kt", wd, nd, d, r.load(s.k))),
                *("  " + x for x in stage("fg_vt", we, ne, e, r.load(s.v))),
                "  __syncthreads();",
                f"  const int64_t fg_cn = min((int64_t){tile}, fg_end - fg_c0), fg_lim = {lim};",
                "  for (int fg_c = 0; fg_c < fg_cn; fg_c++) {",
                *("    " + x for x in dot("fg_s", cd, f"fg_q[fg_u] * fg_kt[fg_c][fg_lane + {lanes} * fg_u]")),
                f"    fg_s = fg_c < fg_lim ? fg_s * {scale} : (-INFINITY);",
                "    if (fg_s > fg_m) {  // a new maximum: rescale what was summed so far",
                "      const float fg_corr = expf(fg_m - fg_s);",
                "      fg_l *= fg_corr;",
                f"      {unroll}",
                f"      for (int fg_u = 0; fg_u < {ce}; fg_u++) fg_acc[fg_u] *= fg_corr;",
                "      fg_m = fg_s;",
                "    }",
                "    const float fg_p = fg_c < fg_lim ? expf(fg_s - fg_m) : 0.0f;",
                "    fg_l += fg_p;",
                f"    {unroll}",
                f"    for (int fg_u = 0; fg_u < {ce}; fg_u++) "
                f"fg_acc[fg_u] += fg_p * fg_vt[fg_c][fg_lane + {lanes} * fg_u];",
                "  }",
                "}",
                "if (!fg_live) return;",
                *mine(e, ce, ne, f"if ({e} < {ne}) {{ {store(atom(s.e), 'fg_acc[fg_u] / fg_l')} }}"),
                f"if (fg_lane == 0) {{ {store(Lin((), ne), 'fg_m + logf(fg_l)')} }}"]
    elif s.direction == "grad_q":
        end = f"min((int64_t){ns}, fg_block * {block_rows} + {block_rows})" if s.causal else str(ns)
        lim = f"min(fg_cn, {i} + 1 - fg_c0)" if s.causal else "fg_cn"
        body = [f"__shared__ float fg_kt[{tile}][{wd}], fg_vt[{tile}][{we}];",
                f"float fg_q[{cd}], fg_do[{ce}], fg_dq[{cd}];",
                *mine(d, cd, nd, f"fg_q[fg_u] = {d} < {nd} ? {r.load(s.q)} : 0.0f; fg_dq[fg_u] = 0.0f;"),
                *mine(e, ce, ne, f"fg_do[fg_u] = {e} < {ne} ? {r.load(s.dout)} : 0.0f;"),
                f"const float fg_lse = {r.load(s.lse)}, fg_delta = {r.load(s.delta)};",
                f"const int64_t fg_end = {end};",
                f"for (int64_t fg_c0 = 0; fg_c0 < fg_end; fg_c0 += {tile}) {{",
                "  __syncthreads();  // the previous tile is read",
                *("  " + x for x in stage("fg_kt", wd, nd, d, r.load(s.k))),
                *("  " + x for x in stage("fg_vt", we, ne, e, r.load(s.v))),
                "  __syncthreads();",
                f"  const int64_t fg_cn = min((int64_t){tile}, fg_end - fg_c0), fg_lim = {lim};",
                "  for (int fg_c = 0; fg_c < fg_cn; fg_c++) {",
                *("    " + x for x in dot("fg_s", cd, f"fg_q[fg_u] * fg_kt[fg_c][fg_lane + {lanes} * fg_u]")),
                *("    " + x for x in dot("fg_dp", ce, f"fg_do[fg_u] * fg_vt[fg_c][fg_lane + {lanes} * fg_u]")),
                f"    const float fg_ds = fg_c < fg_lim ? expf(fg_s * {scale} - fg_lse) * (fg_dp - fg_delta) * {scale}"
                " : 0.0f;",
                f"    {unroll}",
                f"    for (int fg_u = 0; fg_u < {cd}; fg_u++) "
                f"fg_dq[fg_u] += fg_ds * fg_kt[fg_c][fg_lane + {lanes} * fg_u];",
                "  }",
                "}",
                "if (!fg_live) return;",
                *mine(d, cd, nd, f"if ({d} < {nd}) {{ {store(atom(s.d), 'fg_dq[fg_u]')} }}")]
    else:
        start = f"fg_block * {block_rows}" if s.causal else "0"  # a key is seen by the queries from its own position on
        body = [f"__shared__ float fg_qt[{tile}][{wd}], fg_dot[{tile}][{we}], fg_lse[{tile}], fg_dl[{tile}];",
                f"float fg_k[{cd}], fg_v[{ce}], fg_dk[{cd}], fg_dv[{ce}];",
                *mine(d, cd, nd, f"fg_k[fg_u] = {d} < {nd} ? {r.load(s.k)} : 0.0f; fg_dk[fg_u] = 0.0f;"),
                *mine(e, ce, ne, f"fg_v[fg_u] = {e} < {ne} ? {r.load(s.v)} : 0.0f; fg_dv[fg_u] = 0.0f;"),
                f"for (int64_t fg_c0 = {start}; fg_c0 < {nt}; fg_c0 += {tile}) {{",
                "  __syncthreads();  // the previous tile is read",
                *("  " + x for x in stage("fg_qt", wd, nd, d, r.load(s.q))),
                *("  " + x for x in stage("fg_dot", we, ne, e, r.load(s.dout))),
                f"  for (int fg_x = threadIdx.x; fg_x < {tile}; fg_x += {threads}) {{",
                f"    const int64_t {i} = min(fg_c0 + fg_x, (int64_t){nt - 1});",
                f"    fg_lse[fg_x] = {r.load(s.lse)}; fg_dl[fg_x] = {r.load(s.delta)};",
                "  }",
                "  __syncthreads();",
                f"  const int64_t fg_cn = min((int64_t){tile}, {nt} - fg_c0);",
                "  for (int fg_c = 0; fg_c < fg_cn; fg_c++) {",
                *("    " + x for x in dot("fg_s", cd, f"fg_k[fg_u] * fg_qt[fg_c][fg_lane + {lanes} * fg_u]")),
                *("    " + x for x in dot("fg_dp", ce, f"fg_v[fg_u] * fg_dot[fg_c][fg_lane + {lanes} * fg_u]")),
                f"    const float fg_p = {'fg_c0 + fg_c >= ' + j if s.causal else 'true'} ? "
                f"expf(fg_s * {scale} - fg_lse[fg_c]) : 0.0f;",
                f"    const float fg_ds = fg_p * (fg_dp - fg_dl[fg_c]) * {scale};",
                f"    {unroll}",
                f"    for (int fg_u = 0; fg_u < {ce}; fg_u++) "
                f"fg_dv[fg_u] += fg_p * fg_dot[fg_c][fg_lane + {lanes} * fg_u];",
                f"    {unroll}",
                f"    for (int fg_u = 0; fg_u < {cd}; fg_u++) "
                f"fg_dk[fg_u] += fg_ds * fg_qt[fg_c][fg_lane + {lanes} * fg_u];",
                "  }",
                "}",
                "if (!fg_live) return;",
                *mine(d, cd, nd, f"if ({d} < {nd}) {{ {store(atom(s.d), 'fg_dk[fg_u]')} }}"),
                *mine(e, ce, ne, f"if ({e} < {ne}) {{ {store(atom(s.e) + nd, 'fg_dv[fg_u]')} }}")]
    return head + ["  " + x for x in body]
