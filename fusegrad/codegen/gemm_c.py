"""C source of the CPU GEMM support library: register-blocked micro-kernels and packing buffers.

Compiled once per machine (kernel cache) and loaded with global symbols, so generated kernels
call `fg_micro_f32` / `fg_micro_f64` without recompiling them. A generated kernel packs its own
operands (any index arithmetic: strided, transposed, convolution windows with padding) into
MR-row and NR-column panels, then runs the micro-kernel on each MR x NR tile of C.

Tile sizes follow the vector registers the compiler targets (runtime.cpu.Simd): a tile is two
registers wide, and as many rows as leave room for its accumulators (2 per row), two registers of B
and one broadcast of A. With AVX-512 (32 x 64 bytes) that is 32 floats by up to 14 rows; with
AVX2 (16 x 32 bytes) 16 floats by up to 6 rows. Tiles sized for AVX-512 on an AVX2 machine spill
their accumulators on every step: measured 6.4 ms instead of 0.16 ms for a 64x784 @ 784x128 product.

bfloat16 products run on panels of bfloat16 bits, a 32 x 32 float32 C tile per micro-kernel call (the
section at the end), where the CPU has a unit that multiplies them: the AMX tiles (where Linux grants
them), else AVX-512's bfloat16 dot products. Elsewhere their operands widen to float32 as packed.
"""
from __future__ import annotations

import functools

from ..runtime import registry
from ..runtime.cpu import Simd

ROW_PREFERENCE = (8, 6, 12, 14, 4)  # C tile heights with a micro-kernel, preferred first on padding ties
_ITEMSIZE = {"float32": 4, "float64": 8}
L1_BYTES = 32 << 10
L2_PANEL_BYTES = 256 << 10  # packed A rows reused across all of B: a quarter to half of a core's L2
PARALLEL_WORK = 1 << 19  # multiply-adds from which a product runs on all threads
SPLIT_TILES = 16  # products with fewer C tiles than this split a long K among the threads
SPLIT_MAX = 16  # at most this many K ranges: a fixed count, so the sum's order does not depend on the threads
SPLIT_PANELS = 2 * SPLIT_MAX  # products of this many K panels split K whatever their tiles...
SPLIT_PARTIALS_BYTES = 16 << 20  # ...while their partial Cs take no more than this


@functools.cache
def simd() -> Simd:
    """The vector registers of this machine's compiled kernels."""
    return registry.get("cpu").simd()


def nr(dtype_name: str) -> int:
    """Columns of a C tile: two vector registers."""
    return 2 * simd().width // _ITEMSIZE[dtype_name]


def micro_rows() -> tuple[int, ...]:
    """Tile heights whose accumulators, two B vectors and one A broadcast fit in the registers."""
    return tuple(sorted(r for r in ROW_PREFERENCE if 2 * r + 3 <= simd().registers))


def micro_kernel(dtype_name: str, rows: int) -> str:
    return f"fg_micro_{_suffix(dtype_name)}_m{rows}"


def pack_rows(dtype_name: str) -> str:
    """The support routine packing rows that are contiguous along k (transposed in registers)."""
    return f"fg_pack_rows_{_suffix(dtype_name)}"


def _suffix(dtype_name: str) -> str:
    return "f32" if dtype_name == "float32" else "f64"


# (dtype, m, n, k) -> (rows, depth) measured by the tile search (engine/tune.py); heuristic otherwise
TUNED: dict[tuple[str, int, int, int], tuple[int, int]] = {}
# (dtype, m, n, k) of products that call the vendor BLAS instead (measured faster on first use)
VENDOR: set[tuple[str, int, int, int]] = set()


def tiles_for(m: int, n: int, k: int, dtype_name: str) -> tuple[int, int]:
    return TUNED.get((dtype_name, m, n, k)) or default_tiles(m, n, k, dtype_name)


def k_splits(m: int, n: int, k: int, dtype_name: str) -> int:
    """How many K ranges a product's threads take, each into a C of its own that are then added in
    order: 1 (tiles shared out per panel, a barrier after each packing step) unless C has few tiles and
    K many panels (a first convolution layer's weight gradient: 9 x 32 outputs over batch x positions
    terms), whose threads would otherwise wait at every panel's barrier for one or two tiles' work, or K
    is long next to a small C (a weight gradient's sum over batch x positions): its hundreds of barriers
    stall every thread whenever one is descheduled, where the partial Cs cost a sum over m x n per
    range. Each range spans at least two panels."""
    rows, depth = tiles_for(m, n, k, dtype_name)
    panels = -(-k // depth)
    few_tiles = -(-m // rows) * -(-n // nr(dtype_name)) < SPLIT_TILES
    long_k = panels >= SPLIT_PANELS and m * n * SPLIT_MAX * _ITEMSIZE[dtype_name] <= SPLIT_PARTIALS_BYTES
    if not (few_tiles or long_k) or panels < 4 or m * n * k < PARALLEL_WORK:
        return 1
    per = -(-panels // min(SPLIT_MAX, panels // 2))
    return -(-panels // per)


def micro_tiles(micro: str, m: int, n: int, rows: int, cols: int, row_blocks: tuple[str, str], nb: int, ap: str,
                bp: str, c: str, depth: str, first: str) -> list[str]:
    """The loop over C's tiles in row blocks row_blocks[0] up to row_blocks[1] and all nb column blocks: one
    call of micro-kernel `micro` per tile on its slivers of the panels ap and bp (`depth` deep) into C at
    `c` (row stride n), storing where `first` holds, else adding."""
    lo, hi = row_blocks
    return [f"for (int64_t jb = 0; jb < {nb}; jb++) for (int64_t ib = {lo}; ib < {hi}; ib++) {{",
            f"  const int64_t mr = {m} - ib * {rows} < {rows} ? {m} - ib * {rows} : {rows};",
            f"  const int64_t nr = {n} - jb * {cols} < {cols} ? {n} - jb * {cols} : {cols};",
            f"  {micro}({depth}, {ap} + ib * {rows} * {depth}, {bp} + jb * {cols} * {depth}, "
            f"{c} + ib * {rows * n} + jb * {cols}, {n}, mr, nr, {first});",
            "}"]


def max_depth(dtype_name: str) -> int:
    """The deepest panel whose KC x NR sliver of B fits in a 32 KiB L1 (256 with AVX-512 floats,
    512 with AVX2's half-width tiles: 2-5% faster than 256 on the MLP's and square products)."""
    return L1_BYTES // (nr(dtype_name) * _ITEMSIZE[dtype_name])


def default_tiles(m: int, n: int, k: int, dtype_name: str = "float32") -> tuple[int, int]:
    """(rows of a C tile, panel depth) by heuristic. Measured on AVX-512 (Zen 4), tile heights of
    6-14 rows run within ~10% of each other on the MNIST and square products, so the height that
    pads the last row block least wins (the first of ROW_PREFERENCE on ties), except that the
    preferred height wins outright while it pads at most 1/12 of m: the 4-row tile that least
    padding picked for a convolution's 121 positions ran 20% slower than 8 rows. The depth splits
    K into equal panels of at most `max_depth`, rounded up to 16."""
    def pad(r: int) -> int:
        return -(-m // r) * r - m
    choices = [r for r in ROW_PREFERENCE if r in micro_rows()]
    rows = choices[0] if pad(choices[0]) <= m // 12 else min(choices, key=pad)
    panels = -(-k // max_depth(dtype_name))
    depth = -(-(-(-k // panels)) // 16) * 16
    return rows, depth


# The vendor BLAS (numpy's OpenBLAS, ILP64 CBLAS) is reached through pointers the runtime sets once
# it has found the library already loaded in the process: never a second copy.
BLAS_DECLARATIONS = "".join(
    f"extern void (*fg_blas_{p}gemm)(int order, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, "
    f"{t} alpha, const {t}* a, int64_t lda, const {t}* b, int64_t ldb, {t} beta, {t}* c, int64_t ldc);\n"
    for p, t in (("s", "float"), ("d", "double")))
_TYPES = (("float32", "float"), ("float64", "double"))


def bf16_units() -> tuple[str, ...]:
    """The units of this machine that multiply bfloat16 panels, preferred first: "amx" (the AMX tile
    unit), "avx512_bf16" (AVX-512's bfloat16 dot products)."""
    s = simd()
    return tuple(unit for unit, present in (("amx", s.amx), ("avx512_bf16", s.avx512_bf16)) if present)


def bf16_unit() -> str | None:
    """What multiplies bfloat16 panels, or None: the operands widen to float32 as packed, for the float32
    micro-kernels."""
    return next(iter(bf16_units()), None)


def gemm_declarations() -> str:
    """Prototypes of the support library for generated kernels."""
    return BLAS_DECLARATIONS + bf16_declarations(bf16_units()) + \
        "void* fg_pack_scratch(int slot, size_t bytes);\n" + "".join(
        f"void {pack_rows(dt)}({t}* dst, const {t}* src, const int32_t* off, int64_t width, int64_t kc);\n"
        for dt, t in _TYPES) + "".join(
        f"void {micro_kernel(dt, rows)}(int64_t kc, const {t}* ap, const {t}* bp, {t}* c, int64_t ldc, int64_t mr, "
        f"int64_t nr, int first);\n" for dt, t in _TYPES for rows in micro_rows())


def gemm_source() -> str:
    """The support library, with micro-kernels for this machine's vector registers and bfloat16 units."""
    units = bf16_units()
    return _GEMM_LIBRARY + (BF16_CONVERSIONS + _BF16_PACKING if units else "") + "".join(
        _BF16_UNITS[unit] for unit in units) + "".join(
        f"FG_DEFINE_MICRO({micro_kernel(dt, rows)}, {t}, {nr(dt) // 2}, {rows})\n"
        for dt, t in _TYPES for rows in micro_rows())


_GEMM_LIBRARY = r"""
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void (*fg_blas_sgemm)(int, int, int, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*,
                     int64_t, float, float*, int64_t);
void (*fg_blas_dgemm)(int, int, int, int64_t, int64_t, int64_t, double, const double*, int64_t, const double*,
                     int64_t, double, double*, int64_t);

/* per-thread packing buffers, grown on demand and kept: steady state allocates nothing (slots 0 and 1:
   the panels of A and B; 2: an operand packed once for every batch element of a batched product;
   3: rows packed by runs along k before their transpose into a panel; 4: the partial C of each K range
   of a split product) */
static _Thread_local void* fg_pack_buf[5];
static _Thread_local size_t fg_pack_cap[5];

void* fg_pack_scratch(int slot, size_t bytes) {
  if (fg_pack_cap[slot] < bytes) {
    free(fg_pack_buf[slot]);
    fg_pack_buf[slot] = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!fg_pack_buf[slot]) abort();
    fg_pack_cap[slot] = bytes;
  }
  return fg_pack_buf[slot];
}

/* Packing of rows that are contiguous along k (A of any row-major product, the weight of x @ W.T):
   dst[kk * width + w] = src[off[w] + kk]. Blocks of B rows x B k-steps (B: one 32-byte vector) are
   loaded as vectors and transposed in registers; per-element gathers cost 3-4x as much. */
typedef float fg_v8f __attribute__((vector_size(32), aligned(4)));
typedef double fg_v4d __attribute__((vector_size(32), aligned(8)));

static inline void fg_transpose_f32(fg_v8f r[8]) {
  fg_v8f t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = __builtin_shufflevector(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
    t[i + 1] = __builtin_shufflevector(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = __builtin_shufflevector(t[i], t[i + 2], 0, 1, 8, 9, 4, 5, 12, 13);
    u[i + 1] = __builtin_shufflevector(t[i], t[i + 2], 2, 3, 10, 11, 6, 7, 14, 15);
    u[i + 2] = __builtin_shufflevector(t[i + 1], t[i + 3], 0, 1, 8, 9, 4, 5, 12, 13);
    u[i + 3] = __builtin_shufflevector(t[i + 1], t[i + 3], 2, 3, 10, 11, 6, 7, 14, 15);
  }
  for (int i = 0; i < 4; i++) {
    r[i] = __builtin_shufflevector(u[i], u[i + 4], 0, 1, 2, 3, 8, 9, 10, 11);
    r[i + 4] = __builtin_shufflevector(u[i], u[i + 4], 4, 5, 6, 7, 12, 13, 14, 15);
  }
}

static inline void fg_transpose_f64(fg_v4d r[4]) {
  fg_v4d t0 = __builtin_shufflevector(r[0], r[1], 0, 4, 2, 6), t1 = __builtin_shufflevector(r[0], r[1], 1, 5, 3, 7);
  fg_v4d t2 = __builtin_shufflevector(r[2], r[3], 0, 4, 2, 6), t3 = __builtin_shufflevector(r[2], r[3], 1, 5, 3, 7);
  r[0] = __builtin_shufflevector(t0, t2, 0, 1, 4, 5);
  r[1] = __builtin_shufflevector(t1, t3, 0, 1, 4, 5);
  r[2] = __builtin_shufflevector(t0, t2, 2, 3, 6, 7);
  r[3] = __builtin_shufflevector(t1, t3, 2, 3, 6, 7);
}

#define FG_DEFINE_PACK_ROWS(NAME, T, VEC, B)                                                      \
void NAME(T* restrict dst, const T* restrict src, const int32_t* off, int64_t width, int64_t kc) { \
  for (int64_t w0 = 0; w0 < width; w0 += B) {                                                    \
    const int64_t n = width - w0 < B ? width - w0 : B;                                            \
    const T* row[B];                                                                              \
    for (int i = 0; i < B; i++) row[i] = src + off[w0 + (i < n ? i : 0)];                        \
    int64_t kk = 0;                                                                               \
    for (; kk + B <= kc; kk += B) {                                                               \
      VEC r[B];                                                                                   \
      for (int i = 0; i < B; i++) r[i] = *(const VEC*)(row[i] + kk);                              \
      fg_transpose_##T(r);                                                                        \
      for (int j = 0; j < B; j++) {                                                               \
        T* d = dst + (kk + j) * width + w0;                                                       \
        switch (n * (int)sizeof(T)) { /* constant sizes: vector moves, no per-element extracts */ \
          case 32: *(VEC*)d = r[j]; break;                                                        \
          case 24: memcpy(d, &r[j], 24); break;                                                   \
          case 16: memcpy(d, &r[j], 16); break;                                                   \
          case 8: memcpy(d, &r[j], 8); break;                                                     \
          default: memcpy(d, &r[j], n * sizeof(T));                                               \
        }                                                                                         \
      }                                                                                           \
    }                                                                                             \
    for (; kk < kc; kk++) for (int i = 0; i < n; i++) dst[kk * width + w0 + i] = row[i][kk];      \
  }                                                                                               \
}
#define fg_transpose_float fg_transpose_f32
#define fg_transpose_double fg_transpose_f64
FG_DEFINE_PACK_ROWS(fg_pack_rows_f32, float, fg_v8f, 8)
FG_DEFINE_PACK_ROWS(fg_pack_rows_f64, double, fg_v4d, 4)

/* C[0:mr, 0:nr] (=, or += unless first) A_panel (kc x MR) * B_panel (kc x 2*VL) */
#define FG_DEFINE_MICRO(NAME, T, VL, FG_MR)                                                        \
typedef T NAME##_vec __attribute__((vector_size(VL * sizeof(T)), aligned(sizeof(T))));            \
void NAME(int64_t kc, const T* restrict ap, const T* restrict bp, T* c, int64_t ldc, int64_t mr,  \
          int64_t nr, int first) {                                                                \
  NAME##_vec acc[FG_MR][2];                                                                       \
  for (int r = 0; r < FG_MR; r++) { acc[r][0] = (NAME##_vec){0}; acc[r][1] = (NAME##_vec){0}; }  \
  for (int64_t k = 0; k < kc; k++) {                                                              \
    NAME##_vec b0 = *(const NAME##_vec*)(bp + k * 2 * VL);                                        \
    NAME##_vec b1 = *(const NAME##_vec*)(bp + k * 2 * VL + VL);                                   \
    _Pragma("GCC unroll 16")                                                                       \
    for (int r = 0; r < FG_MR; r++) {                                                             \
      T a = ap[k * FG_MR + r];                                                                    \
      acc[r][0] += b0 * a;                                                                        \
      acc[r][1] += b1 * a;                                                                        \
    }                                                                                             \
  }                                                                                               \
  if (nr == 2 * VL) {  /* full-width rows (the usual case; only the last row block is short) */        \
    for (int r = 0; r < FG_MR; r++) {                                                             \
      if (r >= mr) break;                                                                         \
      NAME##_vec* row = (NAME##_vec*)(c + r * ldc);                                               \
      if (first) { row[0] = acc[r][0]; row[1] = acc[r][1]; }                                      \
      else { row[0] += acc[r][0]; row[1] += acc[r][1]; }                                          \
    }                                                                                             \
    return;                                                                                       \
  }                                                                                               \
  T tile[FG_MR][2 * VL];                                                                          \
  memcpy(tile, acc, sizeof(tile));                                                                \
  /* the branch on `first` outside the column loops lets them vectorize (masked remainders) */   \
  for (int64_t r = 0; r < mr; r++) {                                                              \
    T* row = c + r * ldc;                                                                         \
    if (first) for (int64_t j = 0; j < nr; j++) row[j] = tile[r][j];                              \
    else for (int64_t j = 0; j < nr; j++) row[j] += tile[r][j];                                   \
  }                                                                                               \
}

"""

# ---- bfloat16 products on bfloat16 panels -------------------------------------------------------
# A C tile of the micro-kernels is BF16_ROWS x BF16_COLS float32. Panels hold bfloat16 bits, K padded
# with zeros to whole BF16_K steps, in the layouts AMX's tile loads read, which AVX-512's dot products
# read as well (a broadcast pair of k of one row of A, times 16 columns' pairs of B):
#   A: [block of 32 rows][k / 32][row][k % 32]          (each 16-row half: 16 rows of 64 bytes)
#   B: [block of 32 columns][k / 2][column][k % 2]      (pairs of k side by side, as both units read them)
BF16_ROWS, BF16_COLS, BF16_K = 32, 32, 32
# K per panel, by unit: AMX's block of B (32 columns) stays within 64 KiB, AVX-512's within half an L1
BF16_MAX_DEPTH = {"amx": 1024, "avx512_bf16": 256}
BF16_MICRO = {"amx": "fg_micro_amx_bf16", "avx512_bf16": "fg_micro_avx512_bf16"}
# the shallowest K a unit takes: K is padded to whole BF16_K steps, so AVX-512's products of a shorter K
# (a first convolution's 3x3 taps of one channel) spend more on zeros than its doubled rate saves
BF16_MIN_DEPTH = {"amx": 1, "avx512_bf16": BF16_K // 2}


def bf16_declarations(units: tuple[str, ...]) -> str:
    """Prototypes of the bfloat16 panels' packing routines and the micro-kernels of `units`."""
    if not units:
        return ""
    return ("void fg_amx_begin(void);\nvoid fg_amx_end(void);\n" if "amx" in units else "") + "".join(
        f"void {name}(uint16_t* dst, const {t}* src, int64_t ws, int64_t ks, int64_t count, int64_t kc, "
        "int64_t kp, int pairs);\n" for name, t in (("fg_bf16_pack", "uint16_t"), ("fg_bf16_pack_f32", "float"))) + \
        "".join(f"void {BF16_MICRO[unit]}(int64_t kp, const uint16_t* ap, const uint16_t* bp, float* c, "
                "int64_t ldc, int64_t mr, int64_t nr, int first);\n" for unit in units)


# bfloat16 <-> float32 (round to nearest even, NaN kept NaN), shared by the kernels' preamble (codegen/c.py)
BF16_CONVERSIONS = r"""static inline float fg_bf16_to_f32(uint16_t x) {
  union { uint32_t u; float f; } v; v.u = (uint32_t)x << 16; return v.f;
}
static inline uint16_t fg_f32_to_bf16(float f) {  /* a select, not a branch: loops of it vectorize */
  union { uint32_t u; float f; } v; v.f = f;
  const uint32_t rounded = (v.u + 0x7fffu + ((v.u >> 16) & 1u)) >> 16, quiet = (v.u >> 16) | 0x40u;
  return (uint16_t)((v.u & 0x7fffffffu) > 0x7f800000u ? quiet : rounded);
}
"""

_BF16_PACKING = r"""
/* One block of 32 rows (A's layout) or, with `pairs`, 32 columns (B's) of an operand whose element (w, k)
   is src[w * ws + k * ks], one of the strides 1: `count` of the 32 exist, k runs to kc, zeros to kp.
   Each case walks the source contiguously (packed element by element with carries, a large product
   spent much of its time packing). fg_bf16_pack reads bfloat16 bits; fg_bf16_pack_f32 rounds
   float32 values to them (a float32 weight that autocast casts inside the product's kernel). */
#define FG_DEFINE_BF16_PACK(NAME, T, BITS)                                                               \
void NAME(uint16_t* restrict dst, const T* restrict src, int64_t ws, int64_t ks, int64_t count,         \
          int64_t kc, int64_t kp, int pairs) {                                                          \
  memset(dst, 0, 2 * 32 * kp);                                                                          \
  if (!pairs && ks == 1) {  /* A's rows contiguous along k: runs of 32 */                               \
    for (int64_t w = 0; w < count; w++)                                                                 \
      for (int64_t k0 = 0; k0 < kc; k0 += 32) {                                                         \
        const int64_t n = kc - k0 < 32 ? kc - k0 : 32;                                                  \
        for (int64_t t = 0; t < n; t++) dst[k0 * 32 + w * 32 + t] = BITS(src[w * ws + k0 + t]);         \
      }                                                                                                 \
  } else if (!pairs) {  /* A stored k-major */                                                          \
    for (int64_t k = 0; k < kc; k++)                                                                    \
      for (int64_t w = 0; w < count; w++) dst[(k >> 5) * 1024 + w * 32 + (k & 31)] = BITS(src[w + k * ks]); \
  } else if (ws == 1) {  /* B's rows along the columns: two rows of k interleaved into 32-bit words */ \
    for (int64_t k = 0; k < kc; k += 2) {                                                               \
      uint32_t* d = (uint32_t*)(dst + k * 32);                                                          \
      const T* r0 = src + k * ks;                                                                       \
      if (k + 1 < kc) for (int64_t w = 0; w < count; w++)                                               \
        d[w] = (uint32_t)BITS(r0[w]) | (uint32_t)BITS(r0[w + ks]) << 16;                                \
      else for (int64_t w = 0; w < count; w++) d[w] = BITS(r0[w]);                                     \
    }                                                                                                   \
  } else {  /* B's columns contiguous along k (W of x @ W.T): a pair of k is one 32-bit word */         \
    uint32_t* d = (uint32_t*)dst;                                                                       \
    for (int64_t w = 0; w < count; w++) {                                                               \
      const T* col = src + w * ws;                                                                      \
      int64_t k = 0;                                                                                    \
      for (; k + 1 < kc; k += 2) d[k * 16 + w] = (uint32_t)BITS(col[k]) | (uint32_t)BITS(col[k + 1]) << 16; \
      if (k < kc) d[k * 16 + w] = BITS(col[k]);                                                         \
    }                                                                                                   \
  }                                                                                                     \
}
#define FG_BF16_SAME(x) (x)
FG_DEFINE_BF16_PACK(fg_bf16_pack, uint16_t, FG_BF16_SAME)
FG_DEFINE_BF16_PACK(fg_bf16_pack_f32, float, fg_f32_to_bf16)

"""

_AMX_LIBRARY = r"""
#include <immintrin.h>

/* the tile shapes, loaded per thread at the start of each product's parallel region (another library
   in the process may configure the tiles otherwise between two products) */
typedef struct { uint8_t palette, start_row, reserved[14]; uint16_t colsb[16]; uint8_t rows[16]; } fg_amx_config;

/* (a static object: gcc drops stores to a local one that only the tile instruction reads) */
static const fg_amx_config fg_amx_tiles = {1, 0, {0}, {64, 64, 64, 64, 64, 64, 64, 64},
                                           {16, 16, 16, 16, 16, 16, 16, 16}};

__attribute__((target("amx-tile")))
void fg_amx_begin(void) { _tile_loadconfig(&fg_amx_tiles); }

__attribute__((target("amx-tile")))
void fg_amx_end(void) { _tile_release(); }

/* C[0:mr, 0:nr] (=, or += unless first) A (kp x 32 rows) * B (kp x 32 columns), kp a multiple of 32:
   tiles 0-3 accumulate C's four 16 x 16 quarters, 4-5 hold A's two row halves, 6-7 B's column halves */
__attribute__((target("amx-tile,amx-bf16")))
void fg_micro_amx_bf16(int64_t kp, const uint16_t* restrict ap, const uint16_t* restrict bp, float* c,
                       int64_t ldc, int64_t mr, int64_t nr, int first) {
  float tile[32 * 32] __attribute__((aligned(64)));
  const int whole = mr == 32 && nr == 32;
  float* out = whole ? c : tile;
  const int64_t ld = whole ? ldc : 32;
  if (first || !whole) { _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3); }
  else {
    _tile_loadd(0, out, ld * 4); _tile_loadd(1, out + 16, ld * 4);
    _tile_loadd(2, out + 16 * ld, ld * 4); _tile_loadd(3, out + 16 * ld + 16, ld * 4);
  }
  for (int64_t k = 0; k < kp; k += 32) {
    _tile_loadd(4, ap + k * 32, 64);
    _tile_loadd(5, ap + k * 32 + 512, 64);
    _tile_loadd(6, bp + k * 32, 128);
    _tile_loadd(7, bp + k * 32 + 32, 128);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, out, ld * 4); _tile_stored(1, out + 16, ld * 4);
  _tile_stored(2, out + 16 * ld, ld * 4); _tile_stored(3, out + 16 * ld + 16, ld * 4);
  if (!whole) {
    for (int64_t r = 0; r < mr; r++) {
      float* row = c + r * ldc;
      if (first) for (int64_t j = 0; j < nr; j++) row[j] = tile[r * 32 + j];
      else for (int64_t j = 0; j < nr; j++) row[j] += tile[r * 32 + j];
    }
  }
}
"""

_AVX512_BF16_LIBRARY = r"""
#include <immintrin.h>

/* C[0:mr, 0:nr] (=, or += unless first) A (kp x 32 rows) * B (kp x 32 columns), kp even, in groups of
   8 rows: 16 float32 accumulators, each step one pair of k (two B vectors, 8 broadcast A pairs) */
__attribute__((target("avx512f,avx512bf16")))
void fg_micro_avx512_bf16(int64_t kp, const uint16_t* restrict ap, const uint16_t* restrict bp, float* c,
                          int64_t ldc, int64_t mr, int64_t nr, int first) {
  const __mmask16 m0 = nr >= 16 ? 0xffff : (__mmask16)((1u << nr) - 1);
  const __mmask16 m1 = nr >= 32 ? 0xffff : nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1);
  for (int64_t r0 = 0; r0 < mr; r0 += 8) {
    __m512 acc[8][2];
    for (int r = 0; r < 8; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kp; k += 2) {
      const __m512bh b0 = (__m512bh)_mm512_loadu_si512(bp + k * 32);
      const __m512bh b1 = (__m512bh)_mm512_loadu_si512(bp + k * 32 + 32);
      const uint16_t* a = ap + (k >> 5) * 1024 + r0 * 32 + (k & 31);
      for (int r = 0; r < 8; r++) {
        int32_t pair;
        memcpy(&pair, a + r * 32, 4);
        const __m512bh av = (__m512bh)_mm512_set1_epi32(pair);
        acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, b0);
        acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, b1);
      }
    }
    for (int r = 0; r < 8 && r0 + r < mr; r++) {
      float* row = c + (r0 + r) * ldc;
      if (!first) {
        acc[r][0] = _mm512_add_ps(acc[r][0], _mm512_maskz_loadu_ps(m0, row));
        acc[r][1] = _mm512_add_ps(acc[r][1], _mm512_maskz_loadu_ps(m1, row + 16));
      }
      _mm512_mask_storeu_ps(row, m0, acc[r][0]);
      _mm512_mask_storeu_ps(row + 16, m1, acc[r][1]);
    }
  }
}
"""

_BF16_UNITS = {"amx": _AMX_LIBRARY, "avx512_bf16": _AVX512_BF16_LIBRARY}
