"""C source of the CPU GEMM support library: packed panels + a register-blocked micro-kernel.

Compiled once per machine (kernel cache) and loaded globally, so generated kernels call
`fg_gemm_f32` / `fg_gemm_f64` without recompiling it in every translation unit.
C[i, j] = sum_k A[i*sai + k*sak] * B[k*sbk + j*sbj]; C has rows of stride ldc. Packing makes any
strides (transposed operands of the backward pass) run at the same speed.
"""

GEMM_DECLARATIONS = r"""
void fg_gemm_f32(int64_t M, int64_t N, int64_t K, const float* A, int64_t sai, int64_t sak,
                 const float* B, int64_t sbk, int64_t sbj, float* C, int64_t ldc);
void fg_gemm_f64(int64_t M, int64_t N, int64_t K, const double* A, int64_t sai, int64_t sak,
                 const double* B, int64_t sbk, int64_t sbj, double* C, int64_t ldc);
"""

GEMM_SOURCE = r"""
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FG_MR 6
#define FG_KC 128

/* per-thread packing buffers, grown on demand and kept: steady state allocates nothing */
static _Thread_local void* fg_pack_buf[2];
static _Thread_local size_t fg_pack_cap[2];

static void* fg_pack_scratch(int slot, size_t bytes) {
  if (fg_pack_cap[slot] < bytes) {
    free(fg_pack_buf[slot]);
    fg_pack_buf[slot] = aligned_alloc(64, (bytes + 63) / 64 * 64);
    fg_pack_cap[slot] = fg_pack_buf[slot] ? bytes : 0;
  }
  return fg_pack_buf[slot];
}

#define FG_DEFINE_GEMM(NAME, T, VL)                                                              \
typedef T NAME##_vec __attribute__((vector_size(VL * sizeof(T)), aligned(sizeof(T))));            \
enum { NAME##_NR = 2 * VL };                                                                      \
static inline void NAME##_micro(int64_t kc, const T* restrict ap, const T* restrict bp, T* c,     \
                                int64_t ldc, int64_t mr, int64_t nr, int first) {                 \
  NAME##_vec acc[FG_MR][2];                                                                       \
  for (int r = 0; r < FG_MR; r++) { acc[r][0] = (NAME##_vec){0}; acc[r][1] = (NAME##_vec){0}; }  \
  for (int64_t k = 0; k < kc; k++) {                                                              \
    NAME##_vec b0 = *(const NAME##_vec*)(bp + k * NAME##_NR);                                     \
    NAME##_vec b1 = *(const NAME##_vec*)(bp + k * NAME##_NR + VL);                                \
    _Pragma("GCC unroll 6")                                                                       \
    for (int r = 0; r < FG_MR; r++) {                                                             \
      T a = ap[k * FG_MR + r];                                                                    \
      acc[r][0] += b0 * a;                                                                        \
      acc[r][1] += b1 * a;                                                                        \
    }                                                                                             \
  }                                                                                               \
  if (mr == FG_MR && nr == NAME##_NR) {                                                           \
    for (int r = 0; r < FG_MR; r++) {                                                             \
      NAME##_vec* row = (NAME##_vec*)(c + r * ldc);                                               \
      if (first) { row[0] = acc[r][0]; row[1] = acc[r][1]; }                                      \
      else { row[0] += acc[r][0]; row[1] += acc[r][1]; }                                          \
    }                                                                                             \
    return;                                                                                       \
  }                                                                                               \
  T tile[FG_MR][NAME##_NR];                                                                       \
  memcpy(tile, acc, sizeof(tile));                                                                \
  for (int64_t r = 0; r < mr; r++)                                                                \
    for (int64_t j = 0; j < nr; j++)                                                              \
      c[r * ldc + j] = first ? tile[r][j] : c[r * ldc + j] + tile[r][j];                          \
}                                                                                                 \
void NAME(int64_t M, int64_t N, int64_t K, const T* A, int64_t sai, int64_t sak,                  \
          const T* B, int64_t sbk, int64_t sbj, T* C, int64_t ldc) {                              \
  if (M <= 0 || N <= 0) return;                                                                   \
  if (K <= 0) { for (int64_t i = 0; i < M; i++) memset(C + i * ldc, 0, N * sizeof(T)); return; } \
  const int64_t mb = (M + FG_MR - 1) / FG_MR, nb = (N + NAME##_NR - 1) / NAME##_NR;               \
  T* ap = (T*)fg_pack_scratch(0, (size_t)mb * FG_MR * FG_KC * sizeof(T));                        \
  T* bp = (T*)fg_pack_scratch(1, (size_t)nb * NAME##_NR * FG_KC * sizeof(T));                    \
  if (!ap || !bp) abort();                                                                        \
  const int parallel = M * N * K >= (1 << 18);                                                    \
  for (int64_t pc = 0; pc < K; pc += FG_KC) {                                                     \
    const int64_t kc = K - pc < FG_KC ? K - pc : FG_KC;                                           \
    _Pragma("omp parallel if(parallel)")                                                          \
    {                                                                                             \
      _Pragma("omp for schedule(static)")                                                         \
      for (int64_t ib = 0; ib < mb; ib++)                                                         \
        for (int64_t k = 0; k < kc; k++)                                                          \
          for (int64_t r = 0; r < FG_MR; r++) {                                                   \
            int64_t i = ib * FG_MR + r;                                                           \
            ap[(ib * kc + k) * FG_MR + r] = i < M ? A[i * sai + (pc + k) * sak] : (T)0;           \
          }                                                                                       \
      _Pragma("omp for schedule(static)")                                                         \
      for (int64_t jb = 0; jb < nb; jb++)                                                         \
        for (int64_t k = 0; k < kc; k++)                                                          \
          for (int64_t q = 0; q < NAME##_NR; q++) {                                               \
            int64_t j = jb * NAME##_NR + q;                                                       \
            bp[(jb * kc + k) * NAME##_NR + q] = j < N ? B[(pc + k) * sbk + j * sbj] : (T)0;       \
          }                                                                                       \
      _Pragma("omp for collapse(2) schedule(static)")                                             \
      for (int64_t jb = 0; jb < nb; jb++)                                                         \
        for (int64_t ib = 0; ib < mb; ib++) {                                                     \
          int64_t mr = M - ib * FG_MR < FG_MR ? M - ib * FG_MR : FG_MR;                           \
          int64_t nr = N - jb * NAME##_NR < NAME##_NR ? N - jb * NAME##_NR : NAME##_NR;           \
          NAME##_micro(kc, ap + ib * FG_MR * kc, bp + jb * NAME##_NR * kc,                        \
                       C + ib * FG_MR * ldc + jb * NAME##_NR, ldc, mr, nr, pc == 0);              \
        }                                                                                         \
    }                                                                                             \
  }                                                                                               \
}

FG_DEFINE_GEMM(fg_gemm_f32, float, 16)
FG_DEFINE_GEMM(fg_gemm_f64, double, 8)
"""
