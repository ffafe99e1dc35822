// row_cosine on the GPU: one warp per row, ROWS_PER_BLOCK rows per block, fp32 accumulation for half types
// (double for float64), launched on the caller's stream. Layout and maths: row_cosine.h.
#include <cstdint>

#include "common/checks.h"
#include "common/cuda_utils.cuh"
#include "rowcos/row_cosine.h"

namespace inv {
namespace {

constexpr int kRowsPerBlock = 8;

template <typename T, typename A>
__global__ void row_cosine_fwd_kernel(const T* __restrict__ x, std::int64_t sx, const T* __restrict__ y,
                                      std::int64_t sy, T* __restrict__ out, A* __restrict__ stats, std::int64_t M,
                                      std::int64_t D, A eps) {
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.y;
  if (row >= M) return;  // the whole warp leaves together
  const T* xi = x + row * sx;
  const T* yi = y + row * sy;
  A dot = 0, xx = 0, yy = 0;
  for (std::int64_t j = threadIdx.x; j < D; j += 32) {
    const A a = cuda_load<A>(xi[j]);
    const A b = cuda_load<A>(yi[j]);
    dot += a * b;
    xx += a * a;
    yy += b * b;
  }
  dot = warp_sum(dot);
  xx = warp_sum(xx);
  yy = warp_sum(yy);
  if (threadIdx.x == 0) {
    const A nx = sqrt(xx), ny = sqrt(yy);
    const A c = dot / (max(nx, eps) * max(ny, eps));
    out[row] = cuda_store<T>(c);
    stats[3 * row] = c;
    stats[3 * row + 1] = nx;
    stats[3 * row + 2] = ny;
  }
}

template <typename T, typename A>
__global__ void row_cosine_bwd_kernel(const T* __restrict__ grad, std::int64_t sg, const T* __restrict__ x,
                                      std::int64_t sx, const T* __restrict__ y, std::int64_t sy,
                                      const A* __restrict__ stats, T* __restrict__ gx, T* __restrict__ gy,
                                      std::int64_t M, std::int64_t D, A eps) {
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.y;
  if (row >= M) return;
  const A g = cuda_load<A>(grad[row * sg]);
  const A c = stats[3 * row], nx = stats[3 * row + 1], ny = stats[3 * row + 2];
  const A nxc = max(nx, eps), nyc = max(ny, eps);
  const A cross = g / (nxc * nyc);
  const A self_x = nx > eps ? g * c / (nxc * nxc) : A(0);  // a clamped norm is a constant: no self term
  const A self_y = ny > eps ? g * c / (nyc * nyc) : A(0);
  const T* xi = x + row * sx;
  const T* yi = y + row * sy;
  for (std::int64_t j = threadIdx.x; j < D; j += 32) {
    const A a = cuda_load<A>(xi[j]);
    const A b = cuda_load<A>(yi[j]);
    gx[row * D + j] = cuda_store<T>(cross * b - self_x * a);
    gy[row * D + j] = cuda_store<T>(cross * a - self_y * b);
  }
}

void check_shapes(const char* op, std::int64_t sx, std::int64_t sy, std::int64_t M, std::int64_t D) {
  check_positive(op, "M", M);
  check_positive(op, "D", D);
  check_not_less(op, "row stride of x", sx, 0);
  check_not_less(op, "row stride of y", sy, 0);
}

dim3 grid_for(std::int64_t M) { return dim3(static_cast<unsigned>((M + kRowsPerBlock - 1) / kRowsPerBlock)); }

}  // namespace

void row_cosine_fwd_cuda(std::uintptr_t x, std::int64_t sx, std::uintptr_t y, std::int64_t sy, std::uintptr_t out,
                         std::uintptr_t stats, std::int64_t M, std::int64_t D, int dtype, double eps, int device,
                         std::uintptr_t stream) {
  const char* op = "row_cosine_fwd (cuda)";
  check_shapes(op, sx, sy, M, D);
  cudaStream_t s = enter_device(op, device, stream);
  dispatch_cuda_dtype(op, dtype, [&](auto tag) {
    using T = decltype(tag);
    using A = typename CudaAcc<T>::type;
    row_cosine_fwd_kernel<T, A><<<grid_for(M), dim3(32, kRowsPerBlock), 0, s>>>(
        reinterpret_cast<const T*>(x), sx, reinterpret_cast<const T*>(y), sy, reinterpret_cast<T*>(out),
        reinterpret_cast<A*>(stats), M, D, static_cast<A>(eps));
  });
  check_launch(op);
}

void row_cosine_bwd_cuda(std::uintptr_t grad, std::int64_t sg, std::uintptr_t x, std::int64_t sx, std::uintptr_t y,
                         std::int64_t sy, std::uintptr_t stats, std::uintptr_t gx, std::uintptr_t gy, std::int64_t M,
                         std::int64_t D, int dtype, double eps, int device, std::uintptr_t stream) {
  const char* op = "row_cosine_bwd (cuda)";
  check_shapes(op, sx, sy, M, D);
  check_not_less(op, "stride of grad", sg, 0);
  cudaStream_t s = enter_device(op, device, stream);
  dispatch_cuda_dtype(op, dtype, [&](auto tag) {
    using T = decltype(tag);
    using A = typename CudaAcc<T>::type;
    row_cosine_bwd_kernel<T, A><<<grid_for(M), dim3(32, kRowsPerBlock), 0, s>>>(
        reinterpret_cast<const T*>(grad), sg, reinterpret_cast<const T*>(x), sx, reinterpret_cast<const T*>(y), sy,
        reinterpret_cast<const A*>(stats), reinterpret_cast<T*>(gx), reinterpret_cast<T*>(gy), M, D,
        static_cast<A>(eps));
  });
  check_launch(op);
}

}  // namespace inv
