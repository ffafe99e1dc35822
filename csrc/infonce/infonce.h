// Fused InfoNCE (MoCo, against a queue) and NT-Xent (SimCLR, 2N x 2N) losses without materialising the logits:
// candidate tiles, an online log-sum-exp in log2 units (exp2 with log2(e) folded into 1/temperature), and a
// backward that recomputes the similarities tile by tile from the saved log-sum-exp.
//
// Layout shared by every backend (see inv_kernels/ops/infonce.py):
//   x       (M, D) storage dtype, contiguous: the rows (MoCo: queries q; NT-Xent: z = [z1; z2], M = 2N)
//   k       (M, D) storage dtype, contiguous: MoCo's positive keys (unused, 0, for NT-Xent)
//   c       (K, D) storage dtype, contiguous: MoCo's queue (K may be 0); NT-Xent uses x itself (K = M)
//   loss    (M,)   accumulation dtype (float, or double for float64): lse_i - s_i+
//   lse     (M,)   accumulation dtype: natural log-sum-exp of row i over its candidates, saved for the backward
//   correct (M,)   accumulation dtype: 1 where the positive logit is >= every other candidate (ties count), else 0
//   grad    (M,)   accumulation dtype, contiguous: upstream gradient of loss
//   gx, gk  (M, D) storage dtype, contiguous
// Maths, with s_ij = x_i . c_j / T and p_ij = exp(s_ij - lse_i):
//   MoCo:    candidates of row i are k_i (the positive) and every queue row;
//            gx_i = (g_i / T) (sum_j p_ij c_j + (p_i+ - 1) k_i),   gk_i = (g_i / T) (p_i+ - 1) x_i
//   NT-Xent: candidates of row i are every row but i; the positive is row (i + N) mod 2N;
//            gz_m = (1 / T) (sum_{j != m} (g_m p_mj + g_j p_jm) z_j - (g_m + g_pos(m)) z_pos(m))
//            (row and column terms in one pass: s is symmetric, so p_jm = exp(s_mj - lse_j)).
#pragma once
#include <cstdint>

namespace inv {

void infonce_fwd_cpu(std::uintptr_t x, std::uintptr_t k, std::uintptr_t c, std::uintptr_t loss, std::uintptr_t lse,
                     std::uintptr_t correct, std::int64_t M, std::int64_t K, std::int64_t D, int dtype,
                     double inv_temperature);
void infonce_bwd_cpu(std::uintptr_t grad, std::uintptr_t x, std::uintptr_t k, std::uintptr_t c, std::uintptr_t lse,
                     std::uintptr_t gx, std::uintptr_t gk, std::int64_t M, std::int64_t K, std::int64_t D, int dtype,
                     double inv_temperature);
void ntxent_fwd_cpu(std::uintptr_t z, std::uintptr_t loss, std::uintptr_t lse, std::uintptr_t correct,
                    std::int64_t M, std::int64_t D, int dtype, double inv_temperature);
void ntxent_bwd_cpu(std::uintptr_t grad, std::uintptr_t z, std::uintptr_t lse, std::uintptr_t gz, std::int64_t M,
                    std::int64_t D, int dtype, double inv_temperature);

#ifdef INV_WITH_CUDA
void infonce_fwd_cuda(std::uintptr_t x, std::uintptr_t k, std::uintptr_t c, std::uintptr_t loss, std::uintptr_t lse,
                      std::uintptr_t correct, std::int64_t M, std::int64_t K, std::int64_t D, int dtype,
                      double inv_temperature, int device, std::uintptr_t stream);
void infonce_bwd_cuda(std::uintptr_t grad, std::uintptr_t x, std::uintptr_t k, std::uintptr_t c, std::uintptr_t lse,
                      std::uintptr_t gx, std::uintptr_t gk, std::int64_t M, std::int64_t K, std::int64_t D,
                      int dtype, double inv_temperature, int device, std::uintptr_t stream);
void ntxent_fwd_cuda(std::uintptr_t z, std::uintptr_t loss, std::uintptr_t lse, std::uintptr_t correct,
                     std::int64_t M, std::int64_t D, int dtype, double inv_temperature, int device,
                     std::uintptr_t stream);
void ntxent_bwd_cuda(std::uintptr_t grad, std::uintptr_t z, std::uintptr_t lse, std::uintptr_t gz, std::int64_t M,
                     std::int64_t D, int dtype, double inv_temperature, int device, std::uintptr_t stream);
#endif

}  // namespace inv
