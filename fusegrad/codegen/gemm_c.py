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
"""
from __future__ import annotations

import functools

from ..runtime import registry
from ..runtime.cpu import Simd

ROW_PREFERENCE = (8, 6, 12, 14, 4)  # C tile heights with a micro-kernel, preferred first on padding ties
_ITEMSIZE = {"float32": 4, "float64": 8}


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
    return f"fg_micro_{'f32' if dtype_name == 'float32' else 'f64'}_m{rows}"


# (dtype, m, n, k) -> (rows, depth) measured by the tile search (engine/tune.py); heuristic otherwise
TUNED: dict[tuple[str, int, int, int], tuple[int, int]] = {}
# (dtype, m, n, k) of products that call the vendor BLAS instead (measured faster on first use)
VENDOR: set[tuple[str, int, int, int]] = set()


def tiles_for(m: int, n: int, k: int, dtype_name: str) -> tuple[int, int]:
    return TUNED.get((dtype_name, m, n, k)) or default_tiles(m, n, k)


def default_tiles(m: int, n: int, k: int) -> tuple[int, int]:
    """(rows of a C tile, panel depth) by heuristic. Measured on AVX-512 (Zen 4), tile heights of
    6-14 rows run within ~10% of each other on the MNIST and square products, so the height that
    pads the last row block least wins (the first of ROW_PREFERENCE on ties), except that the
    preferred height wins outright while it pads at most 1/12 of m: the 4-row tile that least
    padding picked for a convolution's 121 positions ran 20% slower than 8 rows. The depth splits
    K into equal panels of at most 256 (a KC x NR sliver of B, at most 32 KB, stays in L1), rounded
    up to 16."""
    def pad(r: int) -> int:
        return -(-m // r) * r - m
    choices = [r for r in ROW_PREFERENCE if r in micro_rows()]
    rows = choices[0] if pad(choices[0]) <= m // 12 else min(choices, key=pad)
    panels = -(-k // 256)
    depth = -(-(-(-k // panels)) // 16) * 16
    return rows, depth


# The vendor BLAS (numpy's OpenBLAS, ILP64 CBLAS) is reached through pointers the runtime sets once
# it has found the library already loaded in the process: never a second copy.
BLAS_DECLARATIONS = "".join(
    f"extern void (*fg_blas_{p}gemm)(int order, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, "
    f"{t} alpha, const {t}* a, int64_t lda, const {t}* b, int64_t ldb, {t} beta, {t}* c, int64_t ldc);\n"
    for p, t in (("s", "float"), ("d", "double")))
_TYPES = (("float32", "float"), ("float64", "double"))


def gemm_declarations() -> str:
    """Prototypes of the support library for generated kernels."""
    return BLAS_DECLARATIONS + "void* fg_pack_scratch(int slot, size_t bytes);\n" + "".join(
        f"void {micro_kernel(dt, rows)}(int64_t kc, const {t}* ap, const {t}* bp, {t}* c, int64_t ldc, int64_t mr, "
        f"int64_t nr, int first);\n" for dt, t in _TYPES for rows in micro_rows())


def gemm_source() -> str:
    """The support library, with micro-kernels for this machine's vector registers."""
    return _GEMM_LIBRARY + "".join(f"FG_DEFINE_MICRO({micro_kernel(dt, rows)}, {t}, {nr(dt) // 2}, {rows})\n"
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
   the panels of A and B; 2: an operand packed once for every batch element of a batched product) */
static _Thread_local void* fg_pack_buf[3];
static _Thread_local size_t fg_pack_cap[3];

void* fg_pack_scratch(int slot, size_t bytes) {
  if (fg_pack_cap[slot] < bytes) {
    free(fg_pack_buf[slot]);
    fg_pack_buf[slot] = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!fg_pack_buf[slot]) abort();
    fg_pack_cap[slot] = bytes;
  }
  return fg_pack_buf[slot];
}

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
