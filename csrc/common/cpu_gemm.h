// The register tile of the CPU kernels' matrix products (InfoNCE's similarity tiles, invariance_scores' whitening).
#pragma once
#include <cstdint>

#include "common/cpu_isa.h"

namespace inv {

// c[i ldc + j] (+)= sum_p a[i a_row + p a_col] b[p ldb + j] for i < MR, j < NR, the sum in order of p: a row-major
// block of A (a_row = lda, a_col = 1) or a packed k-major panel (a_row = 1, a_col = MR). GCC keeps acc in registers
// and turns the j loops into vector FMAs with a broadcast of a.
template <typename A, int MR, int NR>
INV_INLINE void micro_kernel(const A* __restrict a, std::int64_t a_row, std::int64_t a_col, const A* __restrict b,
                             std::int64_t ldb, std::int64_t kdim, A* __restrict c, std::int64_t ldc, bool accumulate) {
  static_assert(MR <= 8, "the row loops are unrolled 8 times");
  A acc[MR][NR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma omp simd
    for (int j = 0; j < NR; ++j) acc[i][j] = accumulate ? c[i * ldc + j] : A(0);
  for (std::int64_t p = 0; p < kdim; ++p) {
    const A* bp = b + p * ldb;
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const A av = a[i * a_row + p * a_col];
#pragma omp simd
      for (int j = 0; j < NR; ++j) acc[i][j] += av * bp[j];
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma omp simd
    for (int j = 0; j < NR; ++j) c[i * ldc + j] = acc[i][j];
}

}  // namespace inv
