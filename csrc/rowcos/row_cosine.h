// row_cosine: cosine similarity of matching rows, out[i] = <x_i, y_i> / (max(|x_i|, eps) * max(|y_i|, eps)).
//
// Layout shared by every backend (see inv_kernels/ops/row_cosine.py):
//   x, y   (M, D) storage dtype, unit column stride, row strides sx, sy >= 0 (in elements; 0 for a broadcast row)
//   out    (M,)   storage dtype, contiguous
//   stats  (M, 3) accumulation dtype (float, or double for float64), contiguous: cos, |x_i|, |y_i| before clamping,
//          saved by the forward so the backward is a single pass
//   grad   (M,)   storage dtype, element stride sg (0 when autograd hands over an expanded scalar)
//   gx, gy (M, D) storage dtype, contiguous
// Backward, with nx = max(|x|, eps), ny = max(|y|, eps) and c = cos:
//   gx = g * (y / (nx ny) - [|x| > eps] c x / nx^2),   gy = g * (x / (nx ny) - [|y| > eps] c y / ny^2)
#pragma once
#include <cstdint>

namespace inv {

void row_cosine_fwd_cpu(std::uintptr_t x, std::int64_t sx, std::uintptr_t y, std::int64_t sy, std::uintptr_t out,
                        std::uintptr_t stats, std::int64_t M, std::int64_t D, int dtype, double eps);

void row_cosine_bwd_cpu(std::uintptr_t grad, std::int64_t sg, std::uintptr_t x, std::int64_t sx, std::uintptr_t y,
                        std::int64_t sy, std::uintptr_t stats, std::uintptr_t gx, std::uintptr_t gy, std::int64_t M,
                        std::int64_t D, int dtype, double eps);

#ifdef INV_WITH_CUDA
void row_cosine_fwd_cuda(std::uintptr_t x, std::int64_t sx, std::uintptr_t y, std::int64_t sy, std::uintptr_t out,
                         std::uintptr_t stats, std::int64_t M, std::int64_t D, int dtype, double eps, int device,
                         std::uintptr_t stream);

void row_cosine_bwd_cuda(std::uintptr_t grad, std::int64_t sg, std::uintptr_t x, std::int64_t sx, std::uintptr_t y,
                         std::int64_t sy, std::uintptr_t stats, std::uintptr_t gx, std::uintptr_t gy, std::int64_t M,
                         std::int64_t D, int dtype, double eps, int device, std::uintptr_t stream);
#endif

}  // namespace inv
