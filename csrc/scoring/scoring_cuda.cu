// invariance_scores and group_invariance on the GPU, launched on the caller's stream (layouts and maths: scoring.h).
//
// invariance_scores: a shared-memory tiled GEMM z = (v - mu) A on the CUDA cores with the cosine / distance epilogue
// fused in. A block of 256 threads computes a BM x BN = 64 x 64 tile of z (each thread 4 x 4 outputs, rows
// ty + 16 i and columns tx + 16 j so that shared-memory reads are conflict-free and the epilogue's zc loads are
// coalesced), looping over D in steps of BK = 16. The epilogue reduces each row's 64 columns of zc * zv, zv^2 and
// (zc - zv)^2 across the 16 threads that hold them (warp shuffles) and writes one partial triple per (row, column
// block); the caller sums the column blocks. No atomics: results are deterministic.
// Half inputs are converted to float on load; A arrives as float already rounded to the input dtype, so this computes
// the same (v - mu) A as the CPU kernel.
// TODO(performance): this is the simple correct version. The H100 targets (n=1000, k=256, D=2048 in <= 8 ms fp32 /
// 3.5 ms bf16) need tensor cores (WMMA / mma.sync or wgmma with a cp.async / TMA pipeline); until then the Triton
// backend is the fast one.
//
// group_invariance: one block per group; warp w takes rows a = w, w + 8, ... of the group and, for each, every later
// row b of the group (one warp-reduced dot product and squared difference over D per pair); the 8 warps' sums are
// added in a fixed order.
#include <cstdint>

#include "common/checks.h"
#include "common/cuda_utils.cuh"
#include "scoring/scoring.h"

namespace inv {
namespace {

constexpr int kBM = 64;
constexpr int kBN = static_cast<int>(kScoresCudaBlockN);
constexpr int kBK = 16;
constexpr int kThreads = 256;                          // 16 x 16
constexpr int kLoadsA = kBM * kBK / kThreads;          // 4 elements of the views tile per thread
constexpr int kLoadsB = kBK * kBN / kThreads;          // 4 elements of the A tile per thread
static_assert(kBN == 64 && kBM == 64, "the thread layout below assumes 64 x 64 tiles");

template <typename T, typename A>
__global__ void __launch_bounds__(kThreads)
    invariance_scores_fwd_kernel(const T* __restrict__ views, std::int64_t s_img, std::int64_t s_view,
                                 const A* __restrict__ zc, const A* __restrict__ mean, const A* __restrict__ w,
                                 A* __restrict__ partials, std::int64_t M, std::int64_t k, std::int64_t D,
                                 std::int64_t num_col_blocks) {
  __shared__ A as[kBK][kBM + 1];  // centred views tile, k-major; +1 spreads the transposing stores over banks
  __shared__ A bs[kBK][kBN];  // whitening tile
  const int tid = threadIdx.x;
  const int tx = tid % 16, ty = tid / 16;
  const std::int64_t row0 = static_cast<std::int64_t>(blockIdx.x) * kBM;
  const std::int64_t col0 = static_cast<std::int64_t>(blockIdx.y) * kBN;

  // The views rows this thread loads: element e = tid + 256 q of the tile is row e / BK, column e % BK.
  const T* load_row[kLoadsA];
#pragma unroll
  for (int q = 0; q < kLoadsA; ++q) {
    const std::int64_t r = row0 + (tid + kThreads * q) / kBK;
    load_row[q] = r < M ? views + (r / k) * s_img + (r % k) * s_view : nullptr;
  }

  A acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = A(0);

  for (std::int64_t k0 = 0; k0 < D; k0 += kBK) {
#pragma unroll
    for (int q = 0; q < kLoadsA; ++q) {
      const int e = tid + kThreads * q;
      const int lr = e / kBK, kk = e % kBK;
      const std::int64_t gk = k0 + kk;
      A v = A(0);
      if (load_row[q] != nullptr && gk < D) v = cuda_load<A>(load_row[q][gk]) - mean[gk];
      as[kk][lr] = v;
    }
#pragma unroll
    for (int q = 0; q < kLoadsB; ++q) {
      const int e = tid + kThreads * q;
      const int kk = e / kBN, c = e % kBN;
      const std::int64_t gk = k0 + kk, gc = col0 + c;
      bs[kk][c] = (gk < D && gc < D) ? w[gk * D + gc] : A(0);
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kBK; ++kk) {
      A a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = as[kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) b[j] = bs[kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * b[j];
    }
    __syncthreads();
  }

  // Fused epilogue. Lanes 0-15 and 16-31 of a warp are two rows' 16 column-threads, so xor-shuffles over offsets
  // 8, 4, 2, 1 reduce within a row. Every thread takes part in the shuffles (no early exit above).
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const std::int64_t r = row0 + ty + 16 * i;
    const bool valid = r < M;
    const A* zrow = valid ? zc + (r / k) * D : zc;
    A sd = A(0), sn = A(0), sq = A(0);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const std::int64_t c = col0 + tx + 16 * j;
      if (valid && c < D) {
        const A z = acc[i][j], q = zrow[c];
        const A t = q - z;
        sd += q * z;
        sn += z * z;
        sq += t * t;
      }
    }
#pragma unroll
    for (int offset = 8; offset > 0; offset >>= 1) {
      sd += __shfl_xor_sync(0xffffffffu, sd, offset);
      sn += __shfl_xor_sync(0xffffffffu, sn, offset);
      sq += __shfl_xor_sync(0xffffffffu, sq, offset);
    }
    if (tx == 0 && valid) {
      A* out = partials + (r * num_col_blocks + blockIdx.y) * 3;
      out[0] = sd;
      out[1] = sn;
      out[2] = sq;
    }
  }
}

constexpr int kGroupWarps = 8;

template <typename A>
__global__ void __launch_bounds__(32 * kGroupWarps)
    group_invariance_fwd_kernel(const A* __restrict__ z, const std::int64_t* __restrict__ offsets,
                                A* __restrict__ out, std::int64_t D, A eps) {
  const std::int64_t g = blockIdx.x;
  const std::int64_t start = offsets[g], end = offsets[g + 1];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  A sc = A(0), sd = A(0), ss = A(0);  // after warp_sum every lane holds the same values
  for (std::int64_t a = start + warp; a < end; a += kGroupWarps) {
    const A* za = z + a * D;
    A self = A(0);
    for (std::int64_t j = lane; j < D; j += 32) self += za[j] * za[j];
    self = warp_sum(self);
    const A na = max(sqrt(self), eps);
    ss += self / (na * na);
    for (std::int64_t b = a + 1; b < end; ++b) {
      const A* zb = z + b * D;
      A p = A(0), q = A(0), nb2 = A(0);
      for (std::int64_t j = lane; j < D; j += 32) {
        const A x = za[j], y = zb[j];
        const A t = x - y;
        p += x * y;
        q += t * t;
        nb2 += y * y;
      }
      p = warp_sum(p);
      q = warp_sum(q);
      nb2 = warp_sum(nb2);
      sc += p / (na * max(sqrt(nb2), eps));
      sd += sqrt(q);
    }
  }
  __shared__ A red[kGroupWarps][3];
  if (lane == 0) {
    red[warp][0] = sc;
    red[warp][1] = sd;
    red[warp][2] = ss;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    A t0 = A(0), t1 = A(0), t2 = A(0);
    for (int v = 0; v < kGroupWarps; ++v) {
      t0 += red[v][0];
      t1 += red[v][1];
      t2 += red[v][2];
    }
    out[3 * g] = t0;
    out[3 * g + 1] = t1;
    out[3 * g + 2] = t2;
  }
}

}  // namespace

void invariance_scores_fwd_cuda(std::uintptr_t views, std::int64_t s_img, std::int64_t s_view, std::uintptr_t zc,
                                std::uintptr_t mean, std::uintptr_t w, std::uintptr_t partials,
                                std::int64_t num_col_blocks, std::int64_t n, std::int64_t k, std::int64_t D,
                                int dtype, int device, std::uintptr_t stream) {
  const char* op = "invariance_scores_fwd (cuda)";
  check_positive(op, "n", n);
  check_positive(op, "k", k);
  check_positive(op, "D", D);
  check_not_less(op, "image stride of views", s_img, 0);
  check_not_less(op, "view stride of views", s_view, 0);
  for (auto [name, p] : {std::pair{"views", views}, {"zc", zc}, {"mean", mean}, {"w", w}, {"partials", partials}})
    check_pointer(op, name, p);
  const std::int64_t expected_blocks = (D + kBN - 1) / kBN;
  if (num_col_blocks != expected_blocks)
    fail_argument(op, "num_col_blocks must be ceil(D / " + std::to_string(kBN) + ") = " +
                          std::to_string(expected_blocks) + ", got " + std::to_string(num_col_blocks));
  const std::int64_t M = n * k;
  const std::int64_t row_blocks = (M + kBM - 1) / kBM;
  if (row_blocks > 0x7fffffff || num_col_blocks > 65535) fail_argument(op, "the problem is too large for one launch");
  cudaStream_t s = enter_device(op, device, stream);
  const dim3 grid(static_cast<unsigned>(row_blocks), static_cast<unsigned>(num_col_blocks));
  dispatch_cuda_dtype(op, dtype, [&](auto tag) {
    using T = decltype(tag);
    using A = typename CudaAcc<T>::type;
    invariance_scores_fwd_kernel<T, A><<<grid, kThreads, 0, s>>>(
        reinterpret_cast<const T*>(views), s_img, s_view, reinterpret_cast<const A*>(zc),
        reinterpret_cast<const A*>(mean), reinterpret_cast<const A*>(w), reinterpret_cast<A*>(partials), M, k, D,
        num_col_blocks);
  });
  check_launch(op);
}

void group_invariance_fwd_cuda(std::uintptr_t z, std::uintptr_t offsets, std::uintptr_t out, std::int64_t N,
                               std::int64_t G, std::int64_t D, int dtype, double eps, int device,
                               std::uintptr_t stream) {
  const char* op = "group_invariance_fwd (cuda)";
  check_positive(op, "N", N);
  check_positive(op, "G", G);
  check_positive(op, "D", D);
  for (auto [name, p] : {std::pair{"z", z}, {"offsets", offsets}, {"out", out}}) check_pointer(op, name, p);
  if (G > 0x7fffffff) fail_argument(op, "too many groups for one launch: " + std::to_string(G));
  cudaStream_t s = enter_device(op, device, stream);
  const auto* offs = reinterpret_cast<const std::int64_t*>(offsets);
  if (dtype == 0) {
    group_invariance_fwd_kernel<float><<<static_cast<unsigned>(G), 32 * kGroupWarps, 0, s>>>(
        reinterpret_cast<const float*>(z), offs, reinterpret_cast<float*>(out), D, static_cast<float>(eps));
  } else if (dtype == 1) {
    group_invariance_fwd_kernel<double><<<static_cast<unsigned>(G), 32 * kGroupWarps, 0, s>>>(
        reinterpret_cast<const double*>(z), offs, reinterpret_cast<double*>(out), D, eps);
  } else {
    fail_argument(op, "z must be float32 or float64 (the whitened features), got dtype code " +
                          std::to_string(dtype));
  }
  check_launch(op);
}

}  // namespace inv
