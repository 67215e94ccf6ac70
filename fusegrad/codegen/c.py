"""C for the CPU device: OpenMP-parallel outer loops, compiled by gcc/clang."""
from __future__ import annotations

from .gemm import blas_operands, load_vars
from . import c_attention, c_bf16, c_gather, c_pack_runs, c_recurrence, float8, gemm_c
from .c_pack_runs import declare, step
from .gemm_c import (BF16_CONVERSIONS, L2_PANEL_BYTES, PARALLEL_WORK, gemm_declarations, gemm_source, k_splits,
                     micro_kernel, micro_tiles, pack_rows, tiles_for)
from ..graph.ops import Op
from .. import dtypes
from ..dtypes import DType
from ..graph.symbolic import Var
from .ir import (Accumulate, Alu, Attention, Const, Define, DefineAcc, EndLoop, Gemm, Index, Load, Loop, LoopIR,
                 Recurrence, Store, subexpressions)
from .render import CStyleRenderer

# work (output elements x reduce length) below which a kernel stays single-threaded: thread
# start-up costs more than it saves on small kernels
PARALLEL_GRAIN = 1 << 16
_SIMD_SUM_TYPES = ("float32", "float64", "int32", "int64", "bfloat16", "float16")  # (half sums add in float)
SPLIT_UNROLL = 4  # innermost loops this short are unrolled, not vectorized
COLUMN_CHUNK = 64  # fewest columns a thread takes of a sum over rows into columns
COLUMN_CHUNKS = 16  # at most this many column ranges, shared out among the threads

C_PREAMBLE_HEAD = """#include <math.h>
#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>
"""
C_PREAMBLE = r"""#ifdef FG_LIBMVEC
/* glibc's vector math (libmvec): lets loops calling these vectorize (within 4 ulp of the scalar ones) */
#pragma omp declare simd notinbranch
float expf(float);
#pragma omp declare simd notinbranch
float logf(float);
#pragma omp declare simd notinbranch
float sinf(float);
#pragma omp declare simd notinbranch
float cosf(float);
#pragma omp declare simd notinbranch
float erff(float);
#pragma omp declare simd notinbranch
double exp(double);
#pragma omp declare simd notinbranch
double log(double);
#pragma omp declare simd notinbranch
double sin(double);
#pragma omp declare simd notinbranch
double cos(double);
#pragma omp declare simd notinbranch
double erf(double);
#endif
""" + BF16_CONVERSIONS + \
    r"""/* bits of a float as an unsigned integer of its width and back (BITCAST; float16 computes as float) */
static inline uint32_t fg_f32_bits(float f) { union { uint32_t u; float f; } v; v.f = f; return v.u; }
static inline float fg_bits_f32(uint32_t u) { union { uint32_t u; float f; } v; v.u = u; return v.f; }
static inline uint64_t fg_f64_bits(double f) { union { uint64_t u; double f; } v; v.f = f; return v.u; }
static inline double fg_bits_f64(uint64_t u) { union { uint64_t u; double f; } v; v.u = u; return v.f; }
/* float <-> float16 bits, round to nearest even, NaN kept NaN (quiet, the payload's top bits), in selects
   rather than _Float16 conversions, which gcc does not vectorize: loops over float16 data then do.
   Subnormal results: |f| + 0.5 rounds |f| to a multiple of 2^-24, the float16 subnormals' spacing. */
static inline uint16_t fg_f16_bits(float f) {
  uint32_t x = fg_f32_bits(f), a = x & 0x7fffffffu, sign = (x >> 16) & 0x8000u;
  uint32_t r = (a - 0x38000000u + 0x0fffu + ((a >> 13) & 1u)) >> 13;  /* normal: rebias, round */
  uint32_t subnormal = fg_f32_bits(fg_bits_f32(a) + 0.5f) - 0x3f000000u;
  r = a >= 0x477ff000u ? 0x7c00u : r;  /* from 65520 on: inf (one select each: gcc vectorizes these) */
  r = a < 0x38800000u ? subnormal : r;
  r = a > 0x7f800000u ? 0x7e00u | ((a >> 13) & 0x3ffu) : r;
  return (uint16_t)(sign | r);
}
static inline float fg_bits_f16(uint16_t h) {
  uint32_t em = h & 0x7fffu, normal = (em << 13) + 0x38000000u;
  normal = em >= 0x7c00u ? normal + 0x38000000u : normal;  /* inf and NaN: the widest exponent */
  float subnormal = fg_bits_f32(normal + 0x00800000u) - 6.103515625e-05f;  /* 2^-14 (1 + m/1024) - 2^-14 */
  uint32_t r = em < 0x400u ? fg_f32_bits(subnormal) : normal;
  return fg_bits_f32(((uint32_t)(h & 0x8000u) << 16) | r);
}
/* e^x in float32 without branches, so loops of it vectorize whatever their inputs: libmvec's expf
   leaves its vector path for arguments outside its fast range (softmax's masked -inf), and a result
   that underflows costs a microcode assist, so x < -104 is computed as 0 and then replaced by 0.
   Cody-Waite reduction by ln 2 and a degree-7 polynomial: within 1.02 ulp of exp in double;
   denormal results, overflow to inf and NaN as expf. */
static inline float fg_expf(float x) {
  const int far = x < -104.0f;
  x = far ? 0.0f : (x > 89.0f ? 89.0f : x);
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* x / ln 2, rounded */
  float r = fmaf(n, -0.693145751953125f, x);
  r = fmaf(n, -1.428606765330187045e-06f, r);
  float p = 1.9875691500e-4f;
  p = fmaf(p, r, 1.3981999507e-3f);
  p = fmaf(p, r, 8.3334519073e-3f);
  p = fmaf(p, r, 4.1665795894e-2f);
  p = fmaf(p, r, 1.6666665459e-1f);
  p = fmaf(p, r, 5.0000001201e-1f);
  p = fmaf(p * r, r, r) + 1.0f;
  const int32_t i = (int32_t)n, h = i >> 1; /* 2^n as two factors: each stays a normal float */
  const float e = p * fg_bits_f32((uint32_t)(h + 127) << 23) * fg_bits_f32((uint32_t)(i - h + 127) << 23);
  return far ? 0.0f : e;
}
/* max propagating NaN from either side; written as two selects gcc turns into maxss + blend (the
   form `(a > b || a != a) ? a : b` compiled to data-dependent branches: 7x slower max-pooling) */
static inline float fg_maxf(float a, float b) { float m = a > b ? a : b; return a != a ? a : m; }
static inline double fg_max(double a, double b) { double m = a > b ? a : b; return a != a ? a : m; }
static inline float fg_fmodf(float a, float b) {
  float r = fmodf(a, b); return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
static inline double fg_fmod(double a, double b) {
  double r = fmod(a, b); return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
/* integer division and remainder round toward -inf like Python; x/0 gives 0 instead of a trap */
static inline int64_t fg_floordiv(int64_t a, int64_t b) {
  if (b == 0) return 0;
  if (b == -1) return (int64_t)(0ULL - (uint64_t)a);
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
static inline int64_t fg_floormod(int64_t a, int64_t b) {
  if (b == 0 || b == -1) return 0;
  int64_t r = a % b;
  return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
static inline int64_t fg_ipow(int64_t a, int64_t b) {
  if (b < 0) return a == 1 ? 1 : (a == -1 ? ((b & 1) ? -1 : 1) : 0);
  uint64_t r = 1, x = (uint64_t)a;
  while (b) { if (b & 1) r *= x; x *= x; b >>= 1; }
  return (int64_t)r;
}
/* a failed data check claims the error word (runtime/device_errors.py) unless one already has */
static inline void fg_check(const int64_t* word, int32_t code, int ok, int64_t value, int64_t position) {
  int32_t free_ = 0;
  if (__builtin_expect(!ok, 0) &&
      __atomic_compare_exchange_n((int32_t*)word, &free_, code, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    ((int64_t*)word)[1] = value; ((int64_t*)word)[2] = position;
  }
}
/* Philox4x32-10: element `ctr` of the stream `seed`, as a uniform float in [0, 1) */
static inline float fg_rand(uint64_t seed, uint64_t ctr) {
  uint32_t c0 = (uint32_t)ctr, c1 = (uint32_t)(ctr >> 32), c2 = 0x243F6A88u, c3 = 0x85A308D3u;
  uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  for (int i = 0; i < 10; i++) {
    uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
    c1 = (uint32_t)p1; c3 = (uint32_t)p0; c0 = n0; c2 = n2;
    k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;
  }
  return (float)(c0 >> 8) * (1.0f / 16777216.0f);
}

""" + float8.helpers("static inline")


def column_var(ir: LoopIR) -> Var | None:
    """The variable of a sum over rows into columns: a kernel with no parallel loops whose loops are
    reduce loops and `inner` loops over one variable (the interchange pass's layout, the columns
    innermost so they vectorize), storing only inside those. Its columns are independent outputs, so
    ranges of them can go to threads; without this the kernel ran on one thread (a bias gradient over
    2,048 rows). None for any other kernel, or one too small to share."""
    var, depth = None, 0
    for s in ir.stmts:
        if isinstance(s, Loop):
            if s.kind == "global" or (s.kind == "inner" and var not in (None, s.var)):
                return None
            if s.kind == "inner":
                var, depth = s.var, depth + 1
        elif isinstance(s, EndLoop):
            depth -= s.kind == "inner"
        elif not isinstance(s, (Define, DefineAcc, Accumulate, Store)) or (isinstance(s, Store) and not depth):
            return None
    if var is None or var.extent < 2 * COLUMN_CHUNK or ir.work < PARALLEL_GRAIN:
        return None
    return var


def _split_columns(source: str, var: Var) -> str:
    """The kernel's body run once per range of `var` (fg_lo to fg_hi), the ranges shared by the threads."""
    per = -(-var.extent // COLUMN_CHUNKS)
    chunk = max(COLUMN_CHUNK, -(-per // 16) * 16)  # whole vectors of 16 floats
    head, body = source.split("\n", 1)
    return "\n".join([head, "  #pragma omp parallel for schedule(static)",
                      f"  for (int64_t fg_c = 0; fg_c < {-(-var.extent // chunk)}; fg_c++) {{",
                      f"    const int64_t fg_lo = fg_c * {chunk}, fg_hi = fg_lo + {chunk} < {var.extent} ? "
                      f"fg_lo + {chunk} : {var.extent};",
                      *("  " + line for line in body.split("\n")[:-1]), "  }", "}"])


class CRenderer(CStyleRenderer):
    supports_gemm = True
    interchange_reductions = True
    peel_loops = True
    hoist_invariants = True
    tiled_attention = True
    blocked_recurrence = True
    local_align = " __attribute__((aligned(64)))"
    # whole rows per iteration (contiguous copies), the threads splitting 64 chunks of rows
    scatter_width = 1 << 31
    scatter_threads = 64
    # per kernel, set by render_kernel: GEMMs whose operand ("a"/"b") is packed before the batch loops,
    # reduce loops that are the inner dims of a window, and the columns a sum into columns splits
    hoisted: dict[int, str] = {}
    _window_rows: set[int] = set()
    _outermost: set[int] = set()
    _columns: Var | None = None

    def math_fn(self, name: str, dtype: DType) -> str:
        return "fg_expf" if name == "exp" and dtype.name != "float64" else super().math_fn(name, dtype)

    @property
    def preamble(self) -> str:  # the GEMM prototypes depend on this machine's vector registers
        return C_PREAMBLE_HEAD + gemm_declarations() + C_PREAMBLE

    @property
    def support_source(self) -> str:
        return gemm_source()

    def loop_open(self, loop: Loop, nest: int, work: int, body: list) -> list[str]:
        if loop.var == self._columns:  # this thread's range of the columns (_render)
            return [f"for (int64_t {loop.var.name} = fg_lo; {loop.var.name} < fg_hi; {loop.var.name}++) {{"]
        lines = super().loop_open(loop, nest, work, body)
        if nest and work >= PARALLEL_GRAIN:
            # every global loop of the nest but the innermost, which vectorizes; tiny innermost loops
            # (split by the merge pass) are unrolled by the compiler, so the loop above them vectorizes
            loops = [loop] + [s for s in body if isinstance(s, Loop)][:nest - 1]
            tiny = 0
            while tiny < nest - 2 and loops[nest - 1 - tiny].var.extent <= SPLIT_UNROLL:
                tiny += 1
            outer = max(1, nest - 1 - tiny)
            collapse = f" collapse({outer})" if outer > 1 else ""
            lines.insert(0, f"#pragma omp parallel for{collapse} schedule(static)")
        elif loop.kind == "reduce" and not any(isinstance(s, Loop) for s in body):
            # a sum of a few terms is left to gcc to unroll, so the loop around it vectorizes (measured on
            # the CNN step's kernels: 1.3-7x faster than as SIMD lanes), except the last dim of a small
            # window reduced over several dims whose terms compare (max-pool hit counts: 3x slower)
            lanes = loop.var.extent > SPLIT_UNROLL or (_compares(body) and id(loop) in self._window_rows)
            accs = [s for s in body if isinstance(s, Accumulate)]
            # a sum may be reassociated across SIMD lanes (as every vectorized BLAS/numpy sum is)
            if lanes and len(accs) == 1 and accs[0].op is Op.SUM and accs[0].dtype.name in _SIMD_SUM_TYPES:
                lines.insert(0, f"#pragma omp simd reduction(+:{accs[0].name})")
            elif len(accs) == 1 and accs[0].op is Op.RMAX and accs[0].dtype.name != "bool":
                # a max is a select per term; a NaN among the terms is remembered on the side and made
                # the result after the loop, as fg_maxf would. In SIMD lanes the flag is an OR over them;
                # over a few terms (a 2x2 max-pool window) the selects let gcc vectorize the loop around
                # them, which fg_maxf's NaN test per term kept scalar
                # (the flag is declared with the accumulator, `define_acc`: the peeling pass may split
                # the reduction into several loops, each adding to it)
                name = accs[0].name
                flag = f" reduction(|:{name}_nan)" if accs[0].dtype.is_floating_point else ""
                lines[:0] = [f"#pragma omp simd reduction(max:{name}){flag}"] if lanes else []
                self._select_max[id(loop)] = accs[0]
        return lines

    def define_acc(self, s: DefineAcc) -> list[str]:
        nan = [f"int {s.name}_nan = 0;"] if s.op is Op.RMAX and s.dtype.is_floating_point else []
        return super().define_acc(s) + nan

    def loop_close(self, loop: Loop) -> list[str]:
        acc = self._select_max.pop(id(loop), None)
        if acc is None or not acc.dtype.is_floating_point:
            return ["}"]
        return ["}", f"if ({acc.name}_nan) {acc.name} = NAN;"]

    def accumulate(self, s: Accumulate) -> str:
        if s.op is Op.RMAX and any(acc.name == s.name for acc in self._select_max.values()):
            v = self.expr(s.value)
            nan = f" {s.name}_nan |= {v} != {v};" if s.dtype.is_floating_point else ""
            return f"{s.name} = {v} > {s.name} ? {v} : {s.name};{nan}"
        return super().accumulate(s)

    def inner_pragma(self, reduction: str | None) -> str:
        return f"#pragma omp simd reduction(+:{reduction})" if reduction else "#pragma omp simd"

    def recurrence_product(self, s: Recurrence, out: str, inp: str, matrix: Load, x: Var, y: Var) -> list[str]:
        return c_recurrence.product(self, s, out, inp, matrix, x, y)

    def attention(self, s: Attention) -> list[str]:
        return c_attention.render_lines(self, s) if s.block > 1 else super().attention(s)

    def render_kernel(self, ir: LoopIR) -> str:
        if any((isinstance(s, Attention) and s.block > 1) or isinstance(s, Recurrence) for s in ir.stmts):
            # their products contract (c_attention, c_recurrence)
            return "\n".join([c_attention.CONTRACTED[0], self._render(ir), c_attention.CONTRACTED[1]])
        return self._render(ir)

    def _render(self, ir: LoopIR) -> str:
        self._columns = column_var(ir)
        self.hoisted = {}
        self._select_max: dict[int, Accumulate] = {}  # reduce loops whose max is a select per term: its accumulator
        pre = self._hoist_packing(ir)
        self._window_rows = set()  # reduce loops directly inside another reduce loop
        self._outermost = set()  # GEMMs in no loop: their threads may split K (a batch loop's are taken)
        open_loops: list[Loop] = []
        for s in ir.stmts:
            if isinstance(s, Gemm) and not open_loops:
                self._outermost.add(id(s))
            if isinstance(s, Loop):
                if s.kind == "reduce" and open_loops and open_loops[-1].kind == "reduce":
                    self._window_rows.add(id(s))
                open_loops.append(s)
            elif isinstance(s, EndLoop):
                open_loops.pop()
        source = super().render_kernel(ir)
        if self._columns is not None:  # no GEMM, so nothing hoisted
            return _split_columns(source, self._columns)
        if not pre:
            return source
        head, body = source.split("\n", 1)
        return "\n".join([head, "  {"] + ["  " + line for line in pre] + [body[:-1] + "  }", "}"])

    def _hoist_packing(self, ir: LoopIR) -> list[str]:
        """For a GEMM inside batch loops whose one operand the batch does not index (a convolution's
        weights), the lines packing that operand once, all panels, before the loops (into slot 2 of
        the calling thread; the batch loops' threads read it) instead of once per batch element."""
        i = next((j for j, s in enumerate(ir.stmts) if not isinstance(s, Loop)), 0)
        s = ir.stmts[i]
        if i == 0 or not isinstance(s, Gemm) or _vendor(s) or any(lp.kind != "global" for lp in ir.stmts[:i]):
            return []
        batch = {lp.var for lp in ir.stmts[:i]}
        if c_bf16.uses_bf16_panels(s):
            return c_bf16.hoist_packing(self, s, batch)
        t, nr = self.storage_type(s.dtype), gemm_c.nr(s.dtype.name)
        rows, depth = tiles_for(s.m, s.n, s.k, s.dtype.name)
        if not load_vars(s.a) & batch:
            which, (load, outer, width, size, rounded) = "a", (s.a, s.i_vars, rows, s.m, s.a_round)
        elif not load_vars(s.b) & batch:
            which, (load, outer, width, size, rounded) = "b", (s.b, s.j_vars, nr, s.n, s.b_round)
        else:
            return []
        self.hoisted[id(s)] = which
        blocks = -(-size // width)
        return [f"{t}* hp = ({t}*)fg_pack_scratch(2, sizeof({t}) * {blocks * width * s.k});",
                f"for (int64_t pc = 0; pc < {s.k}; pc += {depth}) {{",
                f"  const int64_t kc = {s.k} - pc < {depth} ? {s.k} - pc : {depth};",
                *["  " + line.removeprefix("    ") for line in
                  self.pack(f"(hp + pc * {blocks * width})", load, outer, s.k_vars, "0", str(blocks), width, size,
                             rounded=rounded)],
                "}"]

    def compute_type(self, dtype: DType) -> str:
        # bools are computed as int and stored as bytes of 0 or 1 (uint8_t, not _Bool): on _Bool values
        # gcc 12 branches for a select or a conversion to float (a ReLU mask, a max-pool hit), and does
        # not vectorize a loop loading _Bool, which with random masks mispredicts every other element
        return "int" if dtype is dtypes.bool_ else super().compute_type(dtype)

    def alu(self, e: Alu) -> str:
        if e.op is Op.WHERE and e.dtype.is_floating_point and all(isinstance(a, Const) for a in e.args[1:]) \
                and (e.args[1].value, e.args[2].value) == (1, 0):
            return f"(({self.compute_type(e.dtype)})({self.expr(e.args[0])}))"  # a mask as 1.0/0.0: a conversion
        if e.op in (Op.CMPLT, Op.CMPEQ) and all(_small_index(a) for a in e.args):
            # positions compared in 32 bits: 64-bit lanes halve the width of the float loop around them
            # (a causal mask's i < j in softmax kernels)
            a, b = (f"(int32_t){x.index.render()}" if isinstance(x, Index) else f"(int32_t){x.value}"
                    for x in e.args)
            return f"({a} {'<' if e.op is Op.CMPLT else '=='} {b})"
        return super().alu(e)

    def gemm(self, s: Gemm) -> str:
        """A packed GEMM for one batch element (all in one OpenMP team): per panel of depth K,
        pack all of B, then per block of A rows that fits in L2 pack that block and run the
        support library's micro-kernel on its tiles (each B sliver stays in L1 across a block)."""
        t = self.storage_type(s.dtype)  # the panels hold the product's type (half operands widen as packed)
        if _vendor(s):
            return self.vendor_gemm(s)
        if c_bf16.uses_bf16_panels(s):
            return c_bf16.render(self, s)
        if id(s) in self._outermost and k_splits(s.m, s.n, s.k, s.dtype.name) > 1:
            return self.split_gemm(s)
        nr = gemm_c.nr(s.dtype.name)
        rows, depth = tiles_for(s.m, s.n, s.k, s.dtype.name)
        micro = micro_kernel(s.dtype.name, rows)
        mb, nb = -(-s.m // rows), -(-s.n // nr)
        block = max(1, min(mb, L2_PANEL_BYTES // (rows * depth * s.dtype.itemsize)))  # row tiles per A block
        parallel = int(s.m * s.n * s.k >= PARALLEL_WORK)
        hoisted = self.hoisted.get(id(s))  # "a" or "b": packed once before the batch loops, into hp
        ap = f"hp + pc * {mb * rows}" if hoisted == "a" else "ap"
        bp = f"hp + pc * {nb * nr}" if hoisted == "b" else "bp"
        pack_b = [] if hoisted == "b" else ["    #pragma omp for schedule(static)",
                                            *self.pack("bp", s.b, s.j_vars, s.k_vars, "0", str(nb), nr, s.n,
                                                                rounded=s.b_round)]
        pack_a = [] if hoisted == "a" else ["      #pragma omp for schedule(static)",
                                            *self.pack("ap", s.a, s.i_vars, s.k_vars, "ic", "ie", rows, s.m,
                                                                rounded=s.a_round)]
        return "\n".join([
            "{",
            *([] if hoisted == "a" else [f"  {t}* ap = ({t}*)fg_pack_scratch(0, sizeof({t}) * {mb * rows * depth});"]),
            *([] if hoisted == "b" else [f"  {t}* bp = ({t}*)fg_pack_scratch(1, sizeof({t}) * {nb * nr * depth});"]),
            f"  #pragma omp parallel if({parallel})",  # one team for all panels
            f"  for (int64_t pc = 0; pc < {s.k}; pc += {depth}) {{",
            f"    const int64_t kc = {s.k} - pc < {depth} ? {s.k} - pc : {depth};",
            *pack_b,
            f"    for (int64_t ic = 0; ic < {mb}; ic += {block}) {{",
            f"      const int64_t ie = ic + {block} < {mb} ? ic + {block} : {mb};",
            *pack_a,
            "      #pragma omp for collapse(2) schedule(static)",
            *("      " + line for line in micro_tiles(micro, s.m, s.n, rows, nr, ("ic", "ie"), nb, ap, bp,
                                                     f"p{s.c_param} + {s.c_base.render()}", "kc", "pc == 0")),
            "    }",
            "  }",
            "}",
        ])

    def split_gemm(self, s: Gemm) -> str:
        """A GEMM with few C tiles and a long K: each K range (whole panels, a count fixed by the shape)
        is one thread's product of all tiles into its own C, with its own panels and no barrier; the
        partial Cs are then added in range order, so the result is the same at any thread count."""
        t, nr = self.storage_type(s.dtype), gemm_c.nr(s.dtype.name)
        rows, depth = tiles_for(s.m, s.n, s.k, s.dtype.name)
        splits, mn = k_splits(s.m, s.n, s.k, s.dtype.name), s.m * s.n
        mb, nb = -(-s.m // rows), -(-s.n // nr)
        span = -(-(-(-s.k // depth)) // splits) * depth  # K of one range
        c = f"p{s.c_param} + {s.c_base.render()}"
        return "\n".join([
            "{",
            f"  {t}* part = ({t}*)fg_pack_scratch(4, sizeof({t}) * {splits * mn});",
            "  #pragma omp parallel for schedule(static)",
            f"  for (int64_t sk = 0; sk < {splits}; sk++) {{",
            f"    {t}* ap = ({t}*)fg_pack_scratch(0, sizeof({t}) * {mb * rows * depth});",
            f"    {t}* bp = ({t}*)fg_pack_scratch(1, sizeof({t}) * {nb * nr * depth});",
            f"    {t}* cs = part + sk * {mn};",
            f"    const int64_t k0 = sk * {span}, k1 = k0 + {span} < {s.k} ? k0 + {span} : {s.k};",
            f"    for (int64_t pc = k0; pc < k1; pc += {depth}) {{",
            f"      const int64_t kc = k1 - pc < {depth} ? k1 - pc : {depth};",
            *["  " + line for line in self.pack("bp", s.b, s.j_vars, s.k_vars, "0", str(nb), nr, s.n,
                                                  rounded=s.b_round)],
            *["  " + line for line in self.pack("ap", s.a, s.i_vars, s.k_vars, "0", str(mb), rows, s.m,
                                                  rounded=s.a_round)],
            *("      " + line for line in micro_tiles(micro_kernel(s.dtype.name, rows), s.m, s.n, rows, nr,
                                                     ("0", str(mb)), nb, "ap", "bp", "cs", "kc", "pc == k0")),
            "    }",
            "  }",
            f"  for (int64_t e = 0; e < {mn}; e++) ({c})[e] = part[e];",
            f"  for (int64_t sk = 1; sk < {splits}; sk++) for (int64_t e = 0; e < {mn}; e++) "
            f"({c})[e] += part[sk * {mn} + e];",
            "}",
        ])

    def vendor_gemm(self, s: Gemm) -> str:
        """The product as one call of the vendor BLAS (row-major CBLAS; 111/112: no/transpose)."""
        (ta, lda, a_base), (tb, ldb, b_base) = blas_operands(s)
        single = s.dtype.name == "float32"
        fn, one, zero = ("fg_blas_sgemm", "1.0f", "0.0f") if single else ("fg_blas_dgemm", "1.0", "0.0")
        return (f"{fn}(101, {112 if ta else 111}, {112 if tb else 111}, {s.m}, {s.n}, {s.k}, {one}, "
                f"p{s.a.param} + {a_base.render()}, {lda}, p{s.b.param} + {b_base.render()}, {ldb}, {zero}, "
                f"p{s.c_param} + {s.c_base.render()}, {s.n});")

    def pack(self, buf: str, load: Load, outer: tuple, ks: tuple, first: str, end: str, width: int,
              size: int, slot: str | None = None, rounded: DType | None = None) -> list[str]:
        """Loops copying `load` into panels of `width` rows/columns: buf[(blk*kc + k)*width + w].
        Runs along one side with the padding as intervals (`c_pack_runs`: convolution windows) come
        first, except for the two plain layouts `_pack_gather` copies; a linear index in plain
        variables with short runs takes its gathers. Otherwise the loop over whichever
        of k and w reads memory contiguously runs innermost. Coordinates
        are decomposed from the flat index once per row or panel and then stepped with carries,
        so packing a convolution window costs no division per element. With `slot` (an index in
        blk, w and kk), the panels hold the stored bits at that index instead and K runs to `kp`
        (kc padded with zeros: the bfloat16 panels). `rounded`: the half type each value rounds to first."""
        coefficients = dict(load.index.terms)
        plain = not load.valid and all(isinstance(a, Var) for a in coefficients) and load.index.hi < 1 << 31
        whole_vectors = c_pack_runs.whole_vectors(self.storage_type(load.dtype), width)
        runs = None
        if slot is None and rounded is None and not (plain and (_contiguous(coefficients, outer) or (
                whole_vectors and _contiguous(coefficients, ks)))):  # (those two layouts are copies already)
            runs = c_pack_runs.choose(load, outer, ks, width)
        if runs is not None:
            return c_pack_runs.render(self, buf, load, outer, ks, first, end, width, size, *runs)
        if slot is None and rounded is None and plain:
            return self._pack_gather(buf, load, outer, ks, first, end, width, size)
        k_contiguous = coefficients.get(ks[-1]) == 1 and coefficients.get(outer[-1]) != 1
        store = f"{buf}[{slot or f'(blk * kc + kk) * {width} + w'}]"
        if rounded is None:
            value = self.load(load) if slot is None else self.stored(load)
        elif slot is None:  # the rounding as the kernel's CAST renders it
            value = self.expr(Alu(Op.CAST, (load,), rounded))
        else:  # bfloat16 panels: the bfloat16 bits of the rounded value
            value = f"fg_f32_to_bf16({self.load(load)})"
        k_start = declare(ks, "pc")
        if k_contiguous:  # e.g. the weight of x @ W.T: rows of W are contiguous along k
            return [f"      for (int64_t blk = {first}; blk < {end}; blk++) for (int64_t w = 0; w < {width}; w++) {{",
                    f"        const int64_t flat = blk * {width} + w;",
                    "        int64_t kk = 0;",
                    f"        if (flat < {size}) {{",
                    *["          " + line for line in declare(outer, "flat") + k_start],
                    "          for (; kk < kc; kk++) {",
                    f"            {store} = {value};",
                    *["            " + line for line in step(ks)],
                    "          }",
                    "        }",
                    f"        for (; kk < {'kc' if slot is None else 'kp'}; kk++) {store} = 0;",
                    "      }"]
        row_start = declare(outer, f"blk * {width}", suffix="_row")
        padding = [] if slot is None else [
            f"        for (int64_t kk = kc; kk < kp; kk++) for (int64_t w = 0; w < {width}; w++) {store} = 0;"]
        return [f"      for (int64_t blk = {first}; blk < {end}; blk++) {{",
                *["        " + line for line in row_start + k_start],
                "        for (int64_t kk = 0; kk < kc; kk++) {",
                *[f"          int64_t {v.name} = {v.name}_row;" for v in outer],
                f"          for (int64_t w = 0; w < {width}; w++) {{",
                f"            {store} = blk * {width} + w < {size} ? {value} : 0;",
                *["            " + line for line in step(outer)],
                "          }",
                *["          " + line for line in step(ks)],
                "        }",
                *padding,
                "      }"]

    def stored(self, load: Load) -> str:
        """The element's stored bits (a half type unconverted), 0 outside its guards."""
        text = f"p{load.param}[{load.index.render()}]"
        return f"(({' && '.join(b.render() for b in load.valid)}) ? {text} : 0)" if load.valid else text

    def _pack_gather(self, buf: str, load: Load, outer: tuple, ks: tuple, first: str, end: str, width: int,
                     size: int) -> list[str]:
        """Packing of an operand whose index is linear in plain variables: per panel, a table of
        the `width` rows'/columns' offsets (rows past the end repeat row 0: their sums are never
        stored), then per k step one vectorized gather of the whole panel row. With carries per
        element instead, packing cost about as much as the multiply-adds of a convolution's GEMM.
        Two layouts skip the gathers: rows contiguous along k are transposed in registers by the
        support library, and a panel of adjacent rows/columns is copied. On this AVX2 machine
        that took 64x784x128 products from 194 to 161-166 us (x @ W.T, x @ W) and dW = dy.T @ x
        from 170 to 153 us."""
        coef = dict(load.index.terms)
        rest, k_off = c_gather.offsets(load, outer, ks)
        t, wide = self.storage_type(load.dtype), self.compute_type(load.dtype)  # half types widen to float
        offsets = c_gather.table(load, outer, first, end, width, size)
        # rows contiguous along k, a whole number of 32-byte vectors wide (the transposing routine
        # measured no faster than gathers on 6-row panels, 14% faster on x @ W.T's 16-column ones)
        whole_vectors = c_pack_runs.whole_vectors(self.storage_type(load.dtype), width)
        if whole_vectors and _contiguous(coef, ks):
            return [*offsets,
                    f"        {pack_rows(load.dtype.name)}({buf} + blk * kc * {width}, p{load.param} + {rest.render()} "
                    f"+ pc, off, {width}, kc);",
                    "      }"]
        # a whole panel of rows/columns adjacent in memory (B of a row-major product) is a plain copy
        adjacent = _contiguous(coef, outer)
        gathered = self.widened("src[off[w]]", load.dtype)
        adjacent_row = self.widened(f"src[blk * {width} + w]", load.dtype)
        whole = f"blk * {width} + {width} <= {size} ? {adjacent_row} : {gathered}"
        copy = whole if adjacent else gathered
        # a true gather is left to the compiler's cost model for the target: forced into vector gathers
        # (omp simd), the CNN's window panels packed ~20% slower on Zen 3, whose gathers are microcoded
        return [*offsets,
                *["        " + line for line in declare(ks, "pc")],
                "        for (int64_t kk = 0; kk < kc; kk++) {",
                f"          const {t}* src = p{load.param} + {rest.render()} + ({k_off});",
                f"          {wide}* dst = {buf} + (blk * kc + kk) * {width};",
                *(["          #pragma omp simd"] if adjacent else []),
                f"          for (int64_t w = 0; w < {width}; w++) dst[w] = {copy};",
                *["          " + line for line in step(ks)],
                "        }",
                "      }"]


def _vendor(s: Gemm) -> bool:
    """Whether the product runs as one vendor BLAS call (chosen by the race in engine/tune.py)."""
    return (s.dtype.name, s.m, s.n, s.k) in gemm_c.VENDOR and blas_operands(s) is not None


def _small_index(e: object) -> bool:
    """An index expression or integer constant whose values all fit in 32 bits."""
    if isinstance(e, Index):
        return -2**31 <= e.index.lo and e.index.hi < 2**31
    return isinstance(e, Const) and not e.dtype.is_floating_point and e.dtype.name != "bool" and \
        -2**31 <= int(e.value) < 2**31


def _compares(body: list) -> bool:
    """Whether the statements compute a comparison (a mask that gcc may turn into branches)."""
    return any(isinstance(e, Alu) and e.op in (Op.CMPLT, Op.CMPEQ)
               for s in body if isinstance(s, (Define, Accumulate)) for e in subexpressions(s.value))


def _contiguous(coefficients: dict, ks: tuple) -> bool:
    """Whether the reduce variables step through memory as one contiguous run (flat k = offset)."""
    stride = 1
    for v in reversed(ks):
        if coefficients.get(v) != stride:
            return False
        stride *= v.extent
    return True
