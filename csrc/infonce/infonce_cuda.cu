// Fused InfoNCE / NT-Xent on the GPU: a simple, carefully bounds-checked tiled kernel (not yet tuned; the Triton
// kernels are the fast GPU path). One block of kWarps warps handles kWarps rows, one row per warp; the candidates
// stream through shared memory in tiles of 32 (one per lane) and D-chunks of kChunk; each lane accumulates the logit
// of its candidate, then the warp updates the row's online log-sum-exp (log2 units, fp32 or fp64 accumulation).
// The backward recomputes each tile's logits and accumulates the row's gradient in shared memory.
// Launched on the caller's stream. Layout and maths: infonce.h.
#include <cstdint>
#include <string>

#include "common/checks.h"
#include "common/cuda_utils.cuh"
#include "infonce/infonce.h"

namespace inv {
namespace {

constexpr int kWarps = 8;   // rows per block
constexpr int kTile = 32;   // candidates per tile: one per lane
constexpr int kChunk = 64;  // columns of D per shared-memory step
constexpr double kLog2e = 1.4426950408889634;
constexpr double kLn2 = 0.6931471805599453;

template <typename A> __device__ __forceinline__ A warp_max(A v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

template <typename A> __device__ __forceinline__ A neg_inf();
template <> __device__ __forceinline__ float neg_inf<float>() { return -__int_as_float(0x7f800000); }
template <> __device__ __forceinline__ double neg_inf<double>() { return -__longlong_as_double(0x7ff0000000000000LL); }

// The logit (log2 units) of this warp's row against candidate j0 + lane, every thread of the block taking part
// in the shared-memory loads. Rows or candidates out of range read as zeros.
template <typename T, typename A>
__device__ A tile_logits(const T* __restrict__ x, const T* __restrict__ c, std::int64_t M, std::int64_t K,
                         std::int64_t D, std::int64_t j0, A (*tile)[kChunk + 1], A (*rows)[kChunk]) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const std::int64_t row0 = static_cast<std::int64_t>(blockIdx.x) * kWarps;
  A dot = 0;
  for (std::int64_t d0 = 0; d0 < D; d0 += kChunk) {
    __syncthreads();
    for (int e = threadIdx.x; e < kTile * kChunk; e += blockDim.x) {
      const int j = e / kChunk, d = e % kChunk;
      const std::int64_t col = j0 + j, dd = d0 + d;
      tile[j][d] = (col < K && dd < D) ? cuda_load<A>(c[col * D + dd]) : A(0);
    }
    for (int e = threadIdx.x; e < kWarps * kChunk; e += blockDim.x) {
      const int w = e / kChunk, d = e % kChunk;
      const std::int64_t r = row0 + w, dd = d0 + d;
      rows[w][d] = (r < M && dd < D) ? cuda_load<A>(x[r * D + dd]) : A(0);
    }
    __syncthreads();
#pragma unroll 8
    for (int d = 0; d < kChunk; ++d) dot += rows[warp][d] * tile[lane][d];
  }
  return dot;
}

// The positive's logit (unscaled dot) of this warp's row; rows out of range give 0.
template <typename T, typename A>
__device__ A positive_dot(const T* __restrict__ x, const T* __restrict__ p, std::int64_t row, bool active,
                          std::int64_t D) {
  const int lane = threadIdx.x % 32;
  A acc = 0;
  if (active)
    for (std::int64_t d = lane; d < D; d += 32) acc += cuda_load<A>(x[row * D + d]) * cuda_load<A>(p[d]);
  return warp_sum(acc);
}

template <typename T, typename A>
__global__ void __launch_bounds__(kWarps * 32)
    infonce_fwd_kernel(const T* __restrict__ x, const T* __restrict__ k, const T* __restrict__ c, A* __restrict__ loss,
                       A* __restrict__ lse, A* __restrict__ correct, std::int64_t M, std::int64_t K, std::int64_t D,
                       std::int64_t half, bool sym, A scale2) {
  __shared__ A tile[kTile][kChunk + 1];
  __shared__ A rows[kWarps][kChunk];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * kWarps + warp;
  const bool active = row < M;
  const std::int64_t prow = active ? (sym ? (row + half) % M : row) : 0;
  const T* pvec = sym ? x + prow * D : k + prow * D;
  const A pos2 = positive_dot<T, A>(x, pvec, row, active, D) * scale2;
  A m = pos2, l = 1, mneg = neg_inf<A>();  // the positive starts the running max
  for (std::int64_t j0 = 0; j0 < K; j0 += kTile) {
    const A dot = tile_logits<T, A>(x, c, M, K, D, j0, tile, rows);
    const std::int64_t col = j0 + lane;
    const bool keep = col < K && !(sym && (col == row || col == prow));
    const A v = keep ? dot * scale2 : neg_inf<A>();
    const A tmax = warp_max(v);
    mneg = max(mneg, tmax);
    const A mnew = max(m, tmax);
    const A sum = warp_sum(keep ? A(exp2(v - mnew)) : A(0));
    l = l * A(exp2(m - mnew)) + sum;
    m = mnew;
  }
  if (active && lane == 0) {
    const A lse2 = m + A(log2(l));
    lse[row] = lse2 * A(kLn2);
    loss[row] = (lse2 - pos2) * A(kLn2);
    correct[row] = pos2 >= mneg ? A(1) : A(0);  // ties count as correct
  }
}

template <typename T, typename A>
__global__ void __launch_bounds__(kWarps * 32)
    infonce_bwd_kernel(const A* __restrict__ grad, const T* __restrict__ x, const T* __restrict__ k,
                       const T* __restrict__ c, const A* __restrict__ lse, T* __restrict__ gx, T* __restrict__ gk,
                       std::int64_t M, std::int64_t K, std::int64_t D, std::int64_t half, bool sym, A scale2,
                       A inv_t) {
  __shared__ A tile[kTile][kChunk + 1];
  __shared__ A rows[kWarps][kChunk];
  extern __shared__ __align__(16) unsigned char dynamic_smem[];
  A* acc = reinterpret_cast<A*>(dynamic_smem);  // (kWarps, D): each warp's gradient row
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * kWarps + warp;
  const bool active = row < M;
  const std::int64_t prow = active ? (sym ? (row + half) % M : row) : 0;
  A* my_acc = acc + static_cast<std::int64_t>(warp) * D;
  for (std::int64_t d = lane; d < D; d += 32) my_acc[d] = A(0);
  const A g = active ? grad[row] : A(0);
  const A lse2 = active ? lse[row] * A(kLog2e) : A(0);
  for (std::int64_t j0 = 0; j0 < K; j0 += kTile) {
    const A dot = tile_logits<T, A>(x, c, M, K, D, j0, tile, rows);
    const std::int64_t col = j0 + lane;
    const bool keep = active && col < K && !(sym && col == row);
    const A v = dot * scale2;
    A w = 0;
    if (keep) {
      w = g * A(exp2(min(v - lse2, A(0))));
      if (sym) w += grad[col] * A(exp2(min(v - lse[col] * A(kLog2e), A(0))));  // column term: p_jm
    }
    // acc += sum over the tile's candidates of w_j c_j, chunk by chunk.
    for (std::int64_t d0 = 0; d0 < D; d0 += kChunk) {
      __syncthreads();
      for (int e = threadIdx.x; e < kTile * kChunk; e += blockDim.x) {
        const int j = e / kChunk, d = e % kChunk;
        const std::int64_t cc = j0 + j, dd = d0 + d;
        tile[j][d] = (cc < K && dd < D) ? cuda_load<A>(c[cc * D + dd]) : A(0);
      }
      __syncthreads();
      for (int d = lane; d < kChunk; d += 32) {
        A s = 0;
#pragma unroll 8
        for (int j = 0; j < kTile; ++j) s += __shfl_sync(0xffffffffu, w, j) * tile[j][d];
        if (d0 + d < D) my_acc[d0 + d] += s;
      }
    }
  }
  if (!active) return;  // no barrier follows
  if (sym) {
    const A coef = -(g + grad[prow]);
    for (std::int64_t d = lane; d < D; d += 32)
      gx[row * D + d] = cuda_store<T>(inv_t * (my_acc[d] + coef * cuda_load<A>(x[prow * D + d])));
  } else {
    const A pos2 = positive_dot<T, A>(x, k + row * D, row, true, D) * scale2;
    const A coef = g * (A(exp2(min(pos2 - lse2, A(0)))) - A(1));
    for (std::int64_t d = lane; d < D; d += 32) {
      gx[row * D + d] = cuda_store<T>(inv_t * (my_acc[d] + coef * cuda_load<A>(k[row * D + d])));
      gk[row * D + d] = cuda_store<T>(inv_t * coef * cuda_load<A>(x[row * D + d]));
    }
  }
}

void check_sizes(const char* op, std::int64_t M, std::int64_t K, std::int64_t D, double inv_t, bool sym) {
  check_positive(op, "M", M);
  check_positive(op, "D", D);
  check_not_less(op, "K", K, 0);
  if (sym && M % 2 != 0) fail_argument(op, "M must be even (2N rows), got " + std::to_string(M));
  if (!(inv_t > 0)) fail_argument(op, "inv_temperature must be > 0");
  if ((M + kWarps - 1) / kWarps > 0x7fffffffLL) fail_argument(op, "too many rows for one grid");
}

dim3 grid_for(std::int64_t M) { return dim3(static_cast<unsigned>((M + kWarps - 1) / kWarps)); }

void fwd(const char* op, std::uintptr_t x, std::uintptr_t k, std::uintptr_t c, std::uintptr_t loss,
         std::uintptr_t lse, std::uintptr_t correct, std::int64_t M, std::int64_t K, std::int64_t D, bool sym,
         int dtype, double inv_t, int device, std::uintptr_t stream) {
  check_sizes(op, M, K, D, inv_t, sym);
  cudaStream_t s = enter_device(op, device, stream);
  dispatch_cuda_dtype(op, dtype, [&](auto tag) {
    using T = decltype(tag);
    using A = typename CudaAcc<T>::type;
    infonce_fwd_kernel<T, A><<<grid_for(M), kWarps * 32, 0, s>>>(
        reinterpret_cast<const T*>(x), reinterpret_cast<const T*>(k), reinterpret_cast<const T*>(c),
        reinterpret_cast<A*>(loss), reinterpret_cast<A*>(lse), reinterpret_cast<A*>(correct), M, K, D, M / 2, sym,
        static_cast<A>(kLog2e * inv_t));
  });
  check_launch(op);
}

void bwd(const char* op, std::uintptr_t grad, std::uintptr_t x, std::uintptr_t k, std::uintptr_t c,
         std::uintptr_t lse, std::uintptr_t gx, std::uintptr_t gk, std::int64_t M, std::int64_t K, std::int64_t D,
         bool sym, int dtype, double inv_t, int device, std::uintptr_t stream) {
  check_sizes(op, M, K, D, inv_t, sym);
  cudaStream_t s = enter_device(op, device, stream);
  dispatch_cuda_dtype(op, dtype, [&](auto tag) {
    using T = decltype(tag);
    using A = typename CudaAcc<T>::type;
    const std::size_t dyn = static_cast<std::size_t>(kWarps) * static_cast<std::size_t>(D) * sizeof(A);
    auto kernel = &infonce_bwd_kernel<T, A>;
    // A block gets 48 KiB of shared memory, its static tiles and the dynamic rows together, unless the kernel opts in.
    const std::size_t fixed = sizeof(A) * (kTile * (kChunk + 1) + kWarps * kChunk);
    if (dyn + fixed > 48 * 1024) {
      int limit = 0;
      cuda_check(cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device), op,
                 "cudaDeviceGetAttribute");
      if (dyn + fixed > static_cast<std::size_t>(limit))
        fail_argument(op, "D = " + std::to_string(D) + " is too large for the CUDA backward's shared memory");
      cuda_check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(dyn)),
                 op, "cudaFuncSetAttribute");
    }
    kernel<<<grid_for(M), kWarps * 32, dyn, s>>>(
        reinterpret_cast<const A*>(grad), reinterpret_cast<const T*>(x), reinterpret_cast<const T*>(k),
        reinterpret_cast<const T*>(c), reinterpret_cast<const A*>(lse), reinterpret_cast<T*>(gx),
        reinterpret_cast<T*>(gk), M, K, D, M / 2, sym, static_cast<A>(kLog2e * inv_t), static_cast<A>(inv_t));
  });
  check_launch(op);
}

}  // namespace

void infonce_fwd_cuda(std::uintptr_t x, std::uintptr_t k, std::uintptr_t c, std::uintptr_t loss, std::uintptr_t lse,
                      std::uintptr_t correct, std::int64_t M, std::int64_t K, std::int64_t D, int dtype,
                      double inv_temperature, int device, std::uintptr_t stream) {
  const char* op = "infonce_fwd (cuda)";
  for (auto [name, p] : {std::pair{"x", x}, {"k", k}, {"loss", loss}, {"lse", lse}, {"correct", correct}})
    check_pointer(op, name, p);
  if (K > 0) check_pointer(op, "c", c);
  fwd(op, x, k, c, loss, lse, correct, M, K, D, false, dtype, inv_temperature, device, stream);
}

void infonce_bwd_cuda(std::uintptr_t grad, std::uintptr_t x, std::uintptr_t k, std::uintptr_t c, std::uintptr_t lse,
                      std::uintptr_t gx, std::uintptr_t gk, std::int64_t M, std::int64_t K, std::int64_t D,
                      int dtype, double inv_temperature, int device, std::uintptr_t stream) {
  const char* op = "infonce_bwd (cuda)";
  for (auto [name, p] : {std::pair{"grad", grad}, {"x", x}, {"k", k}, {"lse", lse}, {"gx", gx}, {"gk", gk}})
    check_pointer(op, name, p);
  if (K > 0) check_pointer(op, "c", c);
  bwd(op, grad, x, k, c, lse, gx, gk, M, K, D, false, dtype, inv_temperature, device, stream);
}

void ntxent_fwd_cuda(std::uintptr_t z, std::uintptr_t loss, std::uintptr_t lse, std::uintptr_t correct,
                     std::int64_t M, std::int64_t D, int dtype, double inv_temperature, int device,
                     std::uintptr_t stream) {
  const char* op = "ntxent_fwd (cuda)";
  for (auto [name, p] : {std::pair{"z", z}, {"loss", loss}, {"lse", lse}, {"correct", correct}})
    check_pointer(op, name, p);
  fwd(op, z, z, z, loss, lse, correct, M, M, D, true, dtype, inv_temperature, device, stream);
}

void ntxent_bwd_cuda(std::uintptr_t grad, std::uintptr_t z, std::uintptr_t lse, std::uintptr_t gz, std::int64_t M,
                     std::int64_t D, int dtype, double inv_temperature, int device, std::uintptr_t stream) {
  const char* op = "ntxent_bwd (cuda)";
  for (auto [name, p] : {std::pair{"grad", grad}, {"z", z}, {"lse", lse}, {"gz", gz}}) check_pointer(op, name, p);
  bwd(op, grad, z, z, z, lse, gz, gz, M, M, D, true, dtype, inv_temperature, device, stream);
}

}  // namespace inv
