"""C source of the CPU GEMM support library: register-blocked micro-kernels and packing buffers.

Compiled once per machine (kernel cache) and loaded with global symbols, so generated kernels
call `fg_micro_f32` / `fg_micro_f64` without recompiling them. A generated kernel packs its own
operands (any index arithmetic: strided, transposed, convolution windows with padding) into
MR-row and NR-column panels, then runs the micro-kernel on each MR x NR tile of C.
"""

MR = 6  # rows of a C tile
KC = 128  # depth of one packed panel: a B sliver of KC x NR stays in L1
NR = {"float32": 32, "float64": 16}  # columns of a C tile: two 64-byte vectors

GEMM_DECLARATIONS = r"""
void* fg_pack_scratch(int slot, size_t bytes);
void fg_micro_f32(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, int64_t mr, int64_t nr,
                  int first);
void fg_micro_f64(int64_t kc, const double* ap, const double* bp, double* c, int64_t ldc, int64_t mr, int64_t nr,
                  int first);
"""

GEMM_SOURCE = r"""
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FG_MR 6

/* per-thread packing buffers, grown on demand and kept: steady state allocates nothing */
static _Thread_local void* fg_pack_buf[2];
static _Thread_local size_t fg_pack_cap[2];

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
#define FG_DEFINE_MICRO(NAME, T, VL)                                                              \
typedef T NAME##_vec __attribute__((vector_size(VL * sizeof(T)), aligned(sizeof(T))));            \
void NAME(int64_t kc, const T* restrict ap, const T* restrict bp, T* c, int64_t ldc, int64_t mr,  \
          int64_t nr, int first) {                                                                \
  NAME##_vec acc[FG_MR][2];                                                                       \
  for (int r = 0; r < FG_MR; r++) { acc[r][0] = (NAME##_vec){0}; acc[r][1] = (NAME##_vec){0}; }  \
  for (int64_t k = 0; k < kc; k++) {                                                              \
    NAME##_vec b0 = *(const NAME##_vec*)(bp + k * 2 * VL);                                        \
    NAME##_vec b1 = *(const NAME##_vec*)(bp + k * 2 * VL + VL);                                   \
    _Pragma("GCC unroll 6")                                                                       \
    for (int r = 0; r < FG_MR; r++) {                                                             \
      T a = ap[k * FG_MR + r];                                                                    \
      acc[r][0] += b0 * a;                                                                        \
      acc[r][1] += b1 * a;                                                                        \
    }                                                                                             \
  }                                                                                               \
  if (mr == FG_MR && nr == 2 * VL) {                                                              \
    for (int r = 0; r < FG_MR; r++) {                                                             \
      NAME##_vec* row = (NAME##_vec*)(c + r * ldc);                                               \
      if (first) { row[0] = acc[r][0]; row[1] = acc[r][1]; }                                      \
      else { row[0] += acc[r][0]; row[1] += acc[r][1]; }                                          \
    }                                                                                             \
    return;                                                                                       \
  }                                                                                               \
  T tile[FG_MR][2 * VL];                                                                          \
  memcpy(tile, acc, sizeof(tile));                                                                \
  for (int64_t r = 0; r < mr; r++)                                                                \
    for (int64_t j = 0; j < nr; j++)                                                              \
      c[r * ldc + j] = first ? tile[r][j] : c[r * ldc + j] + tile[r][j];                          \
}

FG_DEFINE_MICRO(fg_micro_f32, float, 16)
FG_DEFINE_MICRO(fg_micro_f64, double, 8)
"""
