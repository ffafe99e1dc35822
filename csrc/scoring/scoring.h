// The scoring ops of the invariance measures (Ericsson et al., BMVC 2022, section 4; docs/METHOD.md section 4).
//
// invariance_scores: per (clean image i, view j) pair, the whitened cosine and the Mahalanobis distance
//   zc_i = (c_i - mu) A,  zv_r = (v_r - mu) A   (A A^T = Sigma^-1; view row r = i * k + j belongs to clean row i)
//   cos_r  = <zc_i, zv_r> / (max(|zc_i|, eps) max(|zv_r|, eps)),   dist_r = |zc_i - zv_r|
// computed tile by tile: zv is never written out. The distance is the norm of the difference (not
// |zc|^2 + |zv|^2 - 2 <zc, zv>), so an identical view gives ~0 without cancellation.
//
//   views   (n, k, D) storage dtype T, unit column stride, strides s_img, s_view >= 0 (elements)
//   zc      (n, D)    accumulation dtype Acc (float, or double for float64), contiguous: the whitened clean rows
//   mean    (D,)      Acc, contiguous
//   w       (D, D)    Acc, contiguous, row-major: the whitening matrix A (for half inputs, A rounded to T)
//   CPU outputs: cos, dist (n * k,) Acc, contiguous
//   CUDA output: partials (n * k, num_col_blocks, 3) Acc, contiguous: per view row and block of
//                kScoresCudaBlockN columns of z, the partial sums of zc * zv, zv * zv and (zc - zv)^2; summed
//                and finished by the caller (deterministic: no atomics)
//
// group_invariance: per group of whitened rows (rows sorted by group, group g = rows offsets[g] .. offsets[g+1]),
//   out[g, 0] = sum over a < b of cos(z_a, z_b),  out[g, 1] = sum over a < b of |z_a - z_b|,
//   out[g, 2] = sum over a of cos(z_a, z_a) (1, or 0 for a row with |z| <= eps)
//   z (N, D) Acc contiguous; offsets (G + 1,) int64, non-decreasing, offsets[0] = 0, offsets[G] = N;
//   out (G, 3) Acc contiguous. dtype codes: 0 (float) or 1 (double) only.
#pragma once
#include <cstdint>

namespace inv {

constexpr std::int64_t kScoresCudaBlockN = 64;  // columns of z per CUDA program: num_col_blocks = ceil(D / 64)

void invariance_scores_fwd_cpu(std::uintptr_t views, std::int64_t s_img, std::int64_t s_view, std::uintptr_t zc,
                               std::uintptr_t mean, std::uintptr_t w, std::uintptr_t cos, std::uintptr_t dist,
                               std::int64_t n, std::int64_t k, std::int64_t D, int dtype, double eps);

// The instruction set the CPU kernels run with on this machine: "avx512", "avx2" or "generic".
const char* scoring_cpu_isa();

void group_invariance_fwd_cpu(std::uintptr_t z, std::uintptr_t offsets, std::uintptr_t out, std::int64_t N,
                              std::int64_t G, std::int64_t D, int dtype, double eps);

#ifdef INV_WITH_CUDA
void invariance_scores_fwd_cuda(std::uintptr_t views, std::int64_t s_img, std::int64_t s_view, std::uintptr_t zc,
                                std::uintptr_t mean, std::uintptr_t w, std::uintptr_t partials,
                                std::int64_t num_col_blocks, std::int64_t n, std::int64_t k, std::int64_t D,
                                int dtype, int device, std::uintptr_t stream);

void group_invariance_fwd_cuda(std::uintptr_t z, std::uintptr_t offsets, std::uintptr_t out, std::int64_t N,
                               std::int64_t G, std::int64_t D, int dtype, double eps, int device,
                               std::uintptr_t stream);
#endif

}  // namespace inv
