"""Fused attention on the tensor cores (sm_80 and newer) for float16 and bfloat16 operands.

The same three kernels as codegen/attention.py (forward with the row's log-sum-exp, query gradient,
key and value gradients), each a block of four warps over BM rows of its side (16 rows a warp) that
walks the other side in tiles of BN rows. The block's own rows and the current tile are staged in
shared memory (`cp.async`, the next tile's copies in flight while the warps compute on this one; rows
padded by 16 bytes so the `ldmatrix` reads of 8 rows hit distinct banks). Every product is a
sequence of `mma.sync` m16n8k16 steps with float32 accumulators: a score tile's accumulators are
rounded to the operand type in registers and become the next product's A fragments (P @ V, dS @ K,
P^T @ dO, dS^T @ Q), so scores never reach shared memory. The forward keeps the online softmax in
log2 units (exp2 of scaled scores), the gradients recompute P from the saved log-sum-exp. Head dims
are padded with zeros to a multiple of 16, up to MAX_HEAD.

An operand must be a plain strided read whose rows are contiguous (`_matrix`); else, and for wider
heads, the CUDA-core kernel (codegen/cuda_attention.py) runs instead. That kernel is also the body
for older GPUs, under `#else`, laid out for the same launch (BM rows of THREADS threads a block).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..graph.symbolic import Lin, Var, atom, num, substitute
from .cuda_attention import batch_vars, kernel_body as cuda_core_body
from .gemm import lin_vars
from .ir import Attention, Load, LoopIR, Ref, Store
from .render import decompose

BM = 64  # rows of the block's own side: four warps of 16
BN = 64  # rows of the other side per staged tile
THREADS = 128
PAD = 8  # elements of padding per shared row
MAX_HEAD = 128
LOG2E = 1.4426950408889634
_PTX = {"bfloat16": "bf16", "float16": "f16"}
# per direction, the operands of the block's own rows and those of the other side's double-buffered tiles,
# in the order they lie in shared memory (grad_kv's per-query lse and delta tiles follow them)
SIDES = {"forward": (("q",), ("k", "v")), "grad_q": (("q", "dout"), ("k", "v")),
         "grad_kv": (("k", "v"), ("q", "dout"))}
_SHORT = {"q": "q", "k": "k", "v": "v", "dout": "do"}  # shared tile fg_s<short>, this tile fg_<short>t
STATS_BYTES = 4 * 2 * 2 * BN  # grad_kv's lse and delta tiles: floats, double-buffered


def _preamble() -> str:
    """ldmatrix, the m16n8k16 product and the packing of two floats, for both operand types."""
    shared = '"r"((unsigned)__cvta_generic_to_shared(s))'
    lines = ["#if __CUDA_ARCH__ >= 800"]
    for suffix, trans in (("", ""), ("_t", ".trans")):
        lines.append(f"FG_DEVICE void fg_ldsm4{suffix}(unsigned (&r)[4], const uint16_t* s) {{\n"
                     f'  asm volatile("ldmatrix.sync.aligned.m8n8.x4{trans}.shared.b16 {{%0, %1, %2, %3}}, [%4];"\n'
                     f'               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : {shared} : "memory");\n}}')
    for ptx in _PTX.values():
        lines.append(f"FG_DEVICE void fg_mma_{ptx}(float (&d)[4], const unsigned (&a)[4], unsigned b0, "
                     "unsigned b1) {\n"
                     f'  asm("mma.sync.aligned.m16n8k16.row.col.f32.{ptx}.{ptx}.f32 {{%0, %1, %2, %3}}, '
                     '{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"\n'
                     '      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])\n'
                     '      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));\n}')
        # the first float goes to the low half: the lower column of the pair
        lines.append(f"FG_DEVICE unsigned fg_pack_{ptx}(float lo, float hi) {{\n"
                     f'  unsigned r; asm("cvt.rn.{ptx}x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo)); return r;\n}}')
    # the hardware's 2^x (relative error about 2^-22; -inf gives 0): exp2f's exact version costs a
    # range reduction per score
    lines.append('FG_DEVICE float fg_exp2(float x) { float y; asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x)); '
                 'return y; }')
    lines.append("#endif")
    return "\n".join(lines) + "\n"


FLASH_PREAMBLE = _preamble()


@dataclass(frozen=True)
class Matrix:
    """An operand read as rows of contiguous elements: row r of batch element starts at base + r * ld."""

    param: int
    base: str  # C expression in the batch variables
    ld: int
    aligned: bool  # every row start a multiple of 16 bytes from the buffer's start


@dataclass(frozen=True)
class FlashPlan:
    dtype: str  # the operands' type
    dp: int  # head dims rounded up to 16
    ep: int
    matrices: dict[str, Matrix]
    blocks: int
    smem: int  # bytes of dynamic shared memory


def _matrix(load: Load, row: Var, col: Var) -> Matrix | None:
    """`load` as rows of `row` with `col` contiguous, or None where it is not such a plain read. The
    batch part of the index may be any atoms (heads shared by groups of query heads divide theirs)."""
    index = load.index
    coefs = dict(index.terms)
    plain = {a for a in coefs if isinstance(a, Var)}
    if load.valid or coefs.get(col) != 1 or any((row in lin_vars(a.num) or col in lin_vars(a.num))
                                                for a in coefs if a not in plain):
        return None
    base = substitute(substitute(index, row, num(0)), col, num(0))
    aligned = index.const % 8 == 0 and all(c % 8 == 0 for a, c in index.terms if a != col)
    return Matrix(load.param, base.render(), coefs.get(row, 0), aligned)


def _rows(s: Attention) -> tuple[int, int]:
    """(rows of the block's own side, rows of the side it walks)."""
    return (s.j.extent, s.i.extent) if s.direction == "grad_kv" else (s.i.extent, s.j.extent)


def plan(ir: LoopIR, s: Attention) -> FlashPlan | None:
    """The tensor-core kernel for `s`, or None where its operands or head dims do not suit it."""
    dtype = s.q.dtype.name
    reads = {"q": (s.q, s.i, s.d), "k": (s.k, s.j, s.d), "v": (s.v, s.j, s.e)}
    if s.direction != "forward":
        reads["dout"] = (s.dout, s.i, s.e)
    if dtype not in _PTX or any(load.dtype.name != dtype for load, _, _ in reads.values()):
        return None
    dp, ep = -(-s.d.extent // 16) * 16, -(-s.e.extent // 16) * 16
    if max(dp, ep) > MAX_HEAD:
        return None
    matrices = {name: _matrix(*read) for name, read in reads.items()}
    blocks = math.prod(v.extent for v in batch_vars(ir)) * -(-_rows(s)[0] // BM)
    if any(m is None for m in matrices.values()) or blocks >= 1 << 31:
        return None
    own, walked = SIDES[s.direction]
    elements = BM * sum(_row(n, dp, ep) for n in own) + 2 * BN * sum(_row(n, dp, ep) for n in walked)
    smem = 2 * elements + (STATS_BYTES if s.direction == "grad_kv" else 0)
    return FlashPlan(dtype, dp, ep, {name: m for name, m in matrices.items() if m is not None}, blocks, smem)


def _row(name: str, dp: int, ep: int) -> int:
    """Elements of a shared row of operand `name`: its padded head dim and PAD."""
    return (dp if name in ("q", "k") else ep) + PAD


def render(r, ir: LoopIR, s: Attention, p: FlashPlan) -> str:
    """The kernel's source (a __global__ function named ir.name) for CUDA renderer `r`."""
    head = f"extern \"C\" __global__ void __launch_bounds__({THREADS}) {ir.name}(" + r.signature(ir).split("(", 1)[1]
    body = {"forward": _Writer.forward, "grad_q": _Writer.grad_q, "grad_kv": _Writer.grad_kv}[s.direction]
    writer = _Writer(r, ir, s, p)
    return "\n".join([head + " {", "#if __CUDA_ARCH__ >= 800", *("  " + x for x in writer.head() + body(writer)),
                      "#else", *cuda_core_body(r, ir, s, THREADS // BM, BM), "#endif", "}"])


class _Writer:
    """The statements of one kernel: the block's setup, then its direction's tiles and products."""

    def __init__(self, r, ir: LoopIR, s: Attention, p: FlashPlan):
        self.r, self.ir, self.s, self.p = r, ir, s, p
        self.ptx = _PTX[p.dtype]
        self.lq, self.lv = p.dp + PAD, p.ep + PAD
        self.own = _rows(s)[0]
        self.sl2 = r.literal(s.scale * LOG2E, s.dtype)

    def head(self) -> list[str]:
        """The block's rows and batch element, this thread's place in its warp, the operands' rows."""
        s = self.s
        per_batch = -(-self.own // BM)
        batch = batch_vars(self.ir)
        nbatch = math.prod(v.extent for v in batch)
        # causal query rows walk keys up to their own position: the longest blocks first
        last_first = s.causal and s.direction != "grad_kv"
        rb = f"{per_batch - 1}u - blockIdx.x / {nbatch}u" if last_first else f"blockIdx.x / {nbatch}u"
        lines = ["extern __shared__ __align__(16) uint16_t fg_smem[];",
                 "const int fg_warp = threadIdx.x / 32, fg_lane = threadIdx.x % 32, fg_g = fg_lane / 4, "
                 "fg_t = fg_lane % 4;",
                 f"const int fg_row0 = (int)({rb}) * {BM};",
                 *decompose(f"(blockIdx.x % {nbatch}u)", batch, "const int64_t {name} = (int64_t)({value});",
                            "u"),
                 "const int fg_r = fg_row0 + fg_warp * 16 + fg_g;  // this thread's rows: fg_r and fg_r + 8"]
        for name, m in self.p.matrices.items():
            lines += [f"const uint16_t* fg_{name} = p{m.param} + ({m.base});",
                      f"const bool fg_vec_{name} = {'true' if m.aligned else 'false'} && "
                      f"((unsigned long long)p{m.param} & 15) == 0;"]
        return lines

    def tiles(self) -> tuple[list[str], list[str], list[str], list[str], str]:
        """(the shared arrays, one after the other from fg_smem (SIDES); copies of the block's own rows into
        theirs; copies of a tile of the other side into buffer fg_nbuf (walk's staging); this tile's
        pointers into buffer fg_buf; the address past the last array)."""
        own_names, walked = SIDES[self.s.direction]
        own, other = _rows(self.s)
        decls, start = [], "fg_smem"
        for name, count in [*((n, BM) for n in own_names), *((n, 2 * BN) for n in walked)]:
            decls.append(f"uint16_t* fg_s{_SHORT[name]} = {start};")
            start = f"fg_s{_SHORT[name]} + {count * _row(name, self.p.dp, self.p.ep)}"
        own_stages = [self.stage(n, f"fg_s{_SHORT[n]}", "fg_row0", BM, own) for n in own_names]
        staging, pointers = [], []
        for name in walked:
            short, size = _SHORT[name], BN * _row(name, self.p.dp, self.p.ep)
            staging.append(self.stage(name, f"fg_s{short} + fg_nbuf * {size}", "fg_n0", BN, other))
            pointers.append(f"const uint16_t* fg_{short}t = fg_s{short} + fg_buf * {size};")
        return decls, own_stages, staging, pointers, start

    def stage(self, name: str, dst: str, row0: str, rows: int, extent: int) -> str:
        """Copies of `rows` rows of operand `name` from row0 on (of `extent`) into shared `dst`."""
        m = self.p.matrices[name]
        width, cols = (self.p.dp, self.s.d.extent) if name in ("q", "k") else (self.p.ep, self.s.e.extent)
        return (f"fg_mma_stage<{rows}, {width}, {width + PAD}>({dst}, fg_{name} + (int64_t)({row0}) * {m.ld}, "
                f"{m.ld}, {extent} - ({row0}), {cols}, fg_vec_{name});")

    def product(self, acc: str, a: str, la: int, a_steps: int, b: str, lb: int, n_pairs: int) -> list[str]:
        """acc[2 * n_pairs][4] += A (this warp's 16 rows of shared `a`) @ B^T (rows of shared `b`),
        over a_steps * 16 columns; A by ldmatrix, B's rows as the columns of the product."""
        return ["#pragma unroll", f"for (int fg_kk = 0; fg_kk < {a_steps}; fg_kk++) {{",
                "  unsigned fg_a[4];",
                f"  fg_ldsm4(fg_a, {a} + (fg_warp * 16 + fg_lane % 16) * {la} + fg_kk * 16 + fg_lane / 16 * 8);",
                "  #pragma unroll", f"  for (int fg_n = 0; fg_n < {n_pairs}; fg_n++) {{",
                "    unsigned fg_b[4];",
                f"    fg_ldsm4(fg_b, {b} + (fg_n * 16 + fg_lane / 16 * 8 + fg_lane % 8) * {lb} + fg_kk * 16 "
                "+ fg_lane / 8 % 2 * 8);",
                f"    fg_mma_{self.ptx}({acc}[2 * fg_n], fg_a, fg_b[0], fg_b[1]);",
                f"    fg_mma_{self.ptx}({acc}[2 * fg_n + 1], fg_a, fg_b[2], fg_b[3]);", "  }", "}"]

    def product_from_scores(self, acc: str, scores: str, b: str, lb: int, n_pairs: int) -> list[str]:
        """acc[2 * n_pairs][4] += scores (this warp's 16 x BN accumulators, rounded) @ B (BN rows of
        shared `b`, read transposed)."""
        pack = f"fg_pack_{self.ptx}"
        return ["#pragma unroll", f"for (int fg_kk = 0; fg_kk < {BN // 16}; fg_kk++) {{",
                f"  const unsigned fg_a[4] = {{{pack}({scores}[2 * fg_kk][0], {scores}[2 * fg_kk][1]), "
                f"{pack}({scores}[2 * fg_kk][2], {scores}[2 * fg_kk][3]),",
                f"    {pack}({scores}[2 * fg_kk + 1][0], {scores}[2 * fg_kk + 1][1]), "
                f"{pack}({scores}[2 * fg_kk + 1][2], {scores}[2 * fg_kk + 1][3])}};",
                "  #pragma unroll", f"  for (int fg_n = 0; fg_n < {n_pairs}; fg_n++) {{",
                "    unsigned fg_b[4];",
                f"    fg_ldsm4_t(fg_b, {b} + (fg_kk * 16 + fg_lane / 8 % 2 * 8 + fg_lane % 8) * {lb} + fg_n * 16 "
                "+ fg_lane / 16 * 8);",
                f"    fg_mma_{self.ptx}({acc}[2 * fg_n], fg_a, fg_b[0], fg_b[1]);",
                f"    fg_mma_{self.ptx}({acc}[2 * fg_n + 1], fg_a, fg_b[2], fg_b[3]);", "  }", "}"]

    @staticmethod
    def zeros(name: str, tiles: int) -> list[str]:
        return [f"float {name}[{tiles}][4];", "#pragma unroll",
                f"for (int fg_n = 0; fg_n < {tiles}; fg_n++) {name}[fg_n][0] = {name}[fg_n][1] = "
                f"{name}[fg_n][2] = {name}[fg_n][3] = 0.0f;"]

    @staticmethod
    def each_element(tiles: int, body: list[str]) -> list[str]:
        """body for each of the thread's accumulator elements [fg_n][fg_h * 2 + fg_c] of `tiles` tiles:
        row fg_r + 8 fg_h of the block, column fg_col = 8 fg_n + 2 fg_t + fg_c of the tile."""
        return ["#pragma unroll", f"for (int fg_n = 0; fg_n < {tiles}; fg_n++)", "  #pragma unroll",
                "  for (int fg_h = 0; fg_h < 2; fg_h++)", "    #pragma unroll",
                "    for (int fg_c = 0; fg_c < 2; fg_c++) {",
                "      const int fg_col = fg_n * 8 + fg_t * 2 + fg_c; (void)fg_col;",
                *("      " + x for x in body), "    }"]

    def store(self, column: Var, acc: str, value: str, offset: Lin) -> list[str]:
        """Store the thread's elements of acc (value: an expression of `fg_x`) at the block's rows
        and columns `column` of the output, from `offset` on in each row."""
        s = self.s
        out = self.r.store(Store(0, s.out + offset, Ref(value, s.dtype), s.dtype))
        row = s.j.name if s.direction == "grad_kv" else s.i.name
        padded = -(-column.extent // 16) * 16
        return self.each_element(padded // 8, [
            f"const int64_t {row} = fg_r + fg_h * 8, {column.name} = fg_col;",
            f"const float fg_x = {acc}[fg_n][fg_h * 2 + fg_c];",
            f"if ({row} < {self.own} && {column.name} < {column.extent}) {{ {out} }}"])

    @staticmethod
    def walk(first: str, end: str, staging: list[str], compute: list[str]) -> list[str]:
        """The loop over the other side's tiles from tile `first` to row `end`, the next tile's copies
        (`staging`, into buffer fg_nbuf from row fg_n0) issued before this one is used."""
        def at(tile: str) -> list[str]:
            return [f"{{ const int fg_nbuf = ({tile}) & 1, fg_n0 = ({tile}) * {BN};", *("  " + x for x in staging), "}"]
        return [f"const int fg_first = {first}, fg_tiles = ({end} + {BN - 1}) / {BN};",
                "if (fg_first < fg_tiles) {", *("  " + x for x in at("fg_first")),
                '  asm volatile("cp.async.commit_group;");', "}",
                "for (int fg_tile = fg_first; fg_tile < fg_tiles; fg_tile++) {",
                '  asm volatile("cp.async.wait_group 0;" ::: "memory");',
                "  __syncthreads();  // the tile has landed, and the other buffer is read",
                "  if (fg_tile + 1 < fg_tiles) {", *("    " + x for x in at("fg_tile + 1")),
                '    asm volatile("cp.async.commit_group;");', "  }",
                f"  const int fg_buf = fg_tile & 1, fg_c0 = fg_tile * {BN};",
                *("  " + x for x in compute), "}",
                'asm volatile("cp.async.wait_all;" ::: "memory");  // none left in flight when no tile was walked']

    def query_tiles(self) -> tuple[str, str]:
        """(the keys a query block walks, the mask of a key fg_key for row fg_r + 8 fg_h)."""
        s, ns = self.s, self.s.j.extent
        end = f"min({ns}, fg_row0 + {BM})" if s.causal else str(ns)
        return end, f"fg_key < {ns}" + (" && fg_key <= fg_r + fg_h * 8" if s.causal else "")

    def forward(self) -> list[str]:
        s, p, lq, lv = self.s, self.p, self.lq, self.lv
        nt, ne = s.i.extent, s.e.extent
        end, mask = self.query_tiles()
        decls, own_stages, staging, pointers, _ = self.tiles()
        compute = [*pointers,
                   *self.zeros("fg_s", BN // 8), *self.product("fg_s", "fg_sq", lq, p.dp // 16, "fg_kt", lq, BN // 16),
                   *self.each_element(BN // 8, [
                       "const int fg_key = fg_c0 + fg_col; float& fg_x = fg_s[fg_n][fg_h * 2 + fg_c];",
                       f"fg_x = {mask} ? fg_x * {self.sl2} : (-INFINITY);"]),
                   "#pragma unroll", "for (int fg_h = 0; fg_h < 2; fg_h++) {  // the online softmax of the two rows",
                   "  float fg_mx = fg_m[fg_h];", "  #pragma unroll",
                   f"  for (int fg_n = 0; fg_n < {BN // 8}; fg_n++) "
                   "fg_mx = fmaxf(fg_mx, fmaxf(fg_s[fg_n][fg_h * 2], fg_s[fg_n][fg_h * 2 + 1]));",
                   "  fg_mx = fmaxf(fg_mx, __shfl_xor_sync(0xffffffffu, fg_mx, 1));",
                   "  fg_mx = fmaxf(fg_mx, __shfl_xor_sync(0xffffffffu, fg_mx, 2));",
                   "  const float fg_base = fg_mx == (-INFINITY) ? 0.0f : fg_mx;  // no key seen yet",
                   "  const float fg_corr = fg_exp2(fg_m[fg_h] - fg_base);",
                   "  fg_m[fg_h] = fg_mx;", "  fg_l[fg_h] *= fg_corr;", "  #pragma unroll",
                   f"  for (int fg_n = 0; fg_n < {p.ep // 8}; fg_n++) {{ fg_o[fg_n][fg_h * 2] *= fg_corr; "
                   "fg_o[fg_n][fg_h * 2 + 1] *= fg_corr; }", "  #pragma unroll",
                   f"  for (int fg_n = 0; fg_n < {BN // 8}; fg_n++)", "    #pragma unroll",
                   "    for (int fg_c = 0; fg_c < 2; fg_c++) {",
                   "      const float fg_p = fg_exp2(fg_s[fg_n][fg_h * 2 + fg_c] - fg_base);",
                   "      fg_s[fg_n][fg_h * 2 + fg_c] = fg_p;", "      fg_l[fg_h] += fg_p;", "    }", "}",
                   *self.product_from_scores("fg_o", "fg_s", "fg_vt", lv, p.ep // 16)]
        lse = self.r.store(Store(0, s.out + ne, Ref("fg_x", s.dtype), s.dtype))
        return [*decls, *own_stages, *self.zeros("fg_o", p.ep // 8),
                "float fg_m[2] = {(-INFINITY), (-INFINITY)}, fg_l[2] = {0.0f, 0.0f};",
                *self.walk("0", end, staging, compute),
                "#pragma unroll", "for (int fg_h = 0; fg_h < 2; fg_h++) {  // the row sums over the quad's threads",
                "  fg_l[fg_h] += __shfl_xor_sync(0xffffffffu, fg_l[fg_h], 1);",
                "  fg_l[fg_h] += __shfl_xor_sync(0xffffffffu, fg_l[fg_h], 2);", "}",
                *self.store(s.e, "fg_o", "fg_x / fg_l[fg_h]", atom(s.e)),
                "#pragma unroll", "for (int fg_h = 0; fg_h < 2; fg_h++) {",
                f"  const int64_t {s.i.name} = fg_r + fg_h * 8;",
                f"  const float fg_x = (fg_m[fg_h] + log2f(fg_l[fg_h])) * {self.r.literal(1 / LOG2E, s.dtype)};",
                f"  if (fg_t == 0 && {s.i.name} < {nt}) {{ {lse} }}", "}"]

    def grad_q(self) -> list[str]:
        s, p, r, lq, lv = self.s, self.p, self.r, self.lq, self.lv
        nt = s.i.extent
        end, mask = self.query_tiles()
        lse_delta = ["float fg_lse2[2], fg_dl[2];  // the thread's rows' log-sum-exp (log2 units) and delta",
                     "#pragma unroll", "for (int fg_h = 0; fg_h < 2; fg_h++) {",
                     f"  const int64_t {s.i.name} = min(fg_r + fg_h * 8, {nt - 1});",
                     f"  fg_lse2[fg_h] = {r.load(s.lse)} * {r.literal(LOG2E, s.dtype)};",
                     f"  fg_dl[fg_h] = {r.load(s.delta)};", "}"]
        decls, own_stages, staging, pointers, _ = self.tiles()
        compute = [*pointers, *self.zeros("fg_s", BN // 8),
                   *self.product("fg_s", "fg_sq", lq, p.dp // 16, "fg_kt", lq, BN // 16),
                   *self.zeros("fg_dp", BN // 8),
                   *self.product("fg_dp", "fg_sdo", lv, p.ep // 16, "fg_vt", lv, BN // 16),
                   *self.each_element(BN // 8, [
                       "const int fg_key = fg_c0 + fg_col; float& fg_x = fg_s[fg_n][fg_h * 2 + fg_c];",
                       f"const float fg_p = {mask} ? fg_exp2(fg_x * {self.sl2} - fg_lse2[fg_h]) : 0.0f;",
                       f"fg_x = fg_p * (fg_dp[fg_n][fg_h * 2 + fg_c] - fg_dl[fg_h]) * {r.literal(s.scale, s.dtype)};"]),
                   *self.product_from_scores("fg_dq", "fg_s", "fg_kt", lq, p.dp // 16)]
        return decls + own_stages + lse_delta + self.zeros("fg_dq", p.dp // 8) + \
            self.walk("0", end, staging, compute) + \
            self.store(s.d, "fg_dq", "fg_x", atom(s.d))

    def grad_kv(self) -> list[str]:
        """The block's rows are keys; it walks the queries that see them."""
        s, p, r, lq, lv = self.s, self.p, self.r, self.lq, self.lv
        nt = s.i.extent
        decls, own_stages, staging, pointers, end = self.tiles()
        decls += [f"float* fg_slse = (float*)({end});", f"float* fg_sdl = fg_slse + {2 * BN};"]
        staging += [f"for (int fg_x = threadIdx.x; fg_x < {BN}; fg_x += {THREADS}) {{",
                   f"  const int64_t {s.i.name} = min(fg_n0 + fg_x, {nt - 1});",
                   f"  fg_slse[fg_nbuf * {BN} + fg_x] = {r.load(s.lse)} * {r.literal(LOG2E, s.dtype)};",
                   f"  fg_sdl[fg_nbuf * {BN} + fg_x] = {r.load(s.delta)};", "}"]
        mask = f"fg_query < {nt}" + (" && fg_query >= fg_r + fg_h * 8" if s.causal else "")
        compute = [*pointers, f"const float* fg_lt = fg_slse + fg_buf * {BN};",
                   f"const float* fg_dt = fg_sdl + fg_buf * {BN};",
                   *self.zeros("fg_s", BN // 8), *self.product("fg_s", "fg_sk", lq, p.dp // 16, "fg_qt", lq, BN // 16),
                   *self.zeros("fg_dp", BN // 8),
                   *self.product("fg_dp", "fg_sv", lv, p.ep // 16, "fg_dot", lv, BN // 16),
                   *self.each_element(BN // 8, [
                       "const int fg_query = fg_c0 + fg_col; float& fg_x = fg_s[fg_n][fg_h * 2 + fg_c];",
                       f"const float fg_p = {mask} ? fg_exp2(fg_x * {self.sl2} - fg_lt[fg_col]) : 0.0f;",
                       f"fg_x = fg_p * (fg_dp[fg_n][fg_h * 2 + fg_c] - fg_dt[fg_col]) * {r.literal(s.scale, s.dtype)};",
                       "fg_dp[fg_n][fg_h * 2 + fg_c] = fg_p;"]),
                   *self.product_from_scores("fg_dv", "fg_dp", "fg_dot", lv, p.ep // 16),
                   *self.product_from_scores("fg_dk", "fg_s", "fg_qt", lq, p.dp // 16)]
        first = f"fg_row0 / {BN}" if s.causal else "0"  # the first query that sees the block's first key
        return decls + own_stages + self.zeros("fg_dk", p.dp // 8) + self.zeros("fg_dv", p.ep // 8) + \
            self.walk(first, str(nt), staging, compute) + self.store(s.d, "fg_dk", "fg_x", atom(s.d)) + \
            self.store(s.e, "fg_dv", "fg_x", atom(s.e) + s.d.extent)
