// Fused InfoNCE / NT-Xent on the CPU: row blocks spread over OpenMP threads; each thread streams the candidates in
// tiles through its own buffers (O((rows + candidates per tile) D) per thread, nothing of size M x K), keeps an
// online log-sum-exp per row, and the backward recomputes each similarity tile. Deterministic: every output row is
// written by one thread in a fixed order. Layout and maths: infonce.h.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "common/checks.h"
#include "common/cpu_gemm.h"
#include "common/cpu_isa.h"
#include "common/dtype.h"
#include "infonce/infonce.h"

namespace inv {
namespace {

constexpr double kLog2e = 1.4426950408889634;
constexpr double kLn2 = 0.6931471805599453;
constexpr int kMR = 4;             // rows of the register tile
constexpr std::int64_t kBM = 64;   // rows per block (one block per OpenMP work item)
constexpr std::int64_t kBN = 64;   // candidates per tile
constexpr double kParallelFlops = 1 << 18;

// 2^t for t <= 0 (clamped to [-126, 127]): Cephes' exp2f polynomial, about 2e-7 relative; vectorises.
INV_INLINE float exp2_acc(float t) {
  t = std::min(std::max(t, -126.0f), 127.0f);
  const float n = std::floor(t + 0.5f);
  const float f = t - n;  // [-0.5, 0.5]
  float p = 1.535336188319500e-4f;
  p = p * f + 1.339887440266574e-3f;
  p = p * f + 9.618437357674640e-3f;
  p = p * f + 5.550332471162809e-2f;
  p = p * f + 2.402264791363012e-1f;
  p = p * f + 6.931472028550421e-1f;
  p = p * f + 1.0f;
  const std::int32_t bits = (static_cast<std::int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}
INV_INLINE double exp2_acc(double t) { return std::exp2(std::max(t, -1022.0)); }

template <typename A>
struct Args {
  const void* x;
  const void* k;      // MoCo positives (null for NT-Xent)
  const void* c;      // candidates: the queue, or x for NT-Xent
  const A* grad;      // backward only
  const A* lse_in;    // backward only
  A* loss;
  A* lse;
  A* correct;
  void* gx;
  void* gk;
  std::int64_t M, K, D, Dp, half;
  bool sym;
  A scale2;  // log2(e) / T: logits in log2 units
  A inv_t;   // 1 / T
};

// out (rows x cols) (+)= a (rows x kdim) b (kdim x cols); rows a multiple of kMR, cols of NR.
template <typename A, int NR>
INV_INLINE void gemm(const A* a, std::int64_t lda, const A* b, std::int64_t ldb, std::int64_t kdim, A* out,
                     std::int64_t ldo, std::int64_t rows, std::int64_t cols, bool accumulate) {
  for (std::int64_t j0 = 0; j0 < cols; j0 += NR)
    for (std::int64_t r0 = 0; r0 < rows; r0 += kMR)
      micro_kernel<A, kMR, NR>(a + r0 * lda, lda, 1, b + j0, ldb, kdim, out + r0 * ldo + j0, ldo, accumulate);
}

// Rows [i0, i0 + bm) of x into xb (bmp x Dp, zero-padded).
template <typename T, typename A>
INV_INLINE void load_rows(const T* x, std::int64_t i0, std::int64_t bm, std::int64_t bmp, std::int64_t D,
                          std::int64_t Dp, A* xb) {
  for (std::int64_t r = 0; r < bmp; ++r) {
    A* dst = xb + r * Dp;
    if (r < bm) {
      const T* src = x + (i0 + r) * D;
      for (std::int64_t d = 0; d < D; ++d) dst[d] = load<A>(src[d]);
      for (std::int64_t d = D; d < Dp; ++d) dst[d] = A(0);
    } else {
      for (std::int64_t d = 0; d < Dp; ++d) dst[d] = A(0);
    }
  }
}

// Candidates [j0, j0 + bn) transposed into ct (D x kBN) and, when cf is given, row-major into cf (kBN x Dp).
template <typename T, typename A>
INV_INLINE void load_tile(const T* c, std::int64_t j0, std::int64_t bn, std::int64_t D, std::int64_t Dp, A* ct,
                          A* cf) {
  for (std::int64_t j = 0; j < kBN; ++j) {
    if (j < bn) {
      const T* src = c + (j0 + j) * D;
      for (std::int64_t d = 0; d < D; ++d) ct[d * kBN + j] = load<A>(src[d]);
      if (cf != nullptr) {
        for (std::int64_t d = 0; d < D; ++d) cf[j * Dp + d] = load<A>(src[d]);
        for (std::int64_t d = D; d < Dp; ++d) cf[j * Dp + d] = A(0);
      }
    } else {
      for (std::int64_t d = 0; d < D; ++d) ct[d * kBN + j] = A(0);
      if (cf != nullptr)
        for (std::int64_t d = 0; d < Dp; ++d) cf[j * Dp + d] = A(0);
    }
  }
}

template <typename T, typename A>
INV_INLINE A positive_logit2(const Args<A>& a, const A* xrow, std::int64_t row) {
  const T* p = a.sym ? static_cast<const T*>(a.x) + ((row + a.half) % a.M) * a.D
                     : static_cast<const T*>(a.k) + row * a.D;
  A dot = 0;
  for (std::int64_t d = 0; d < a.D; ++d) dot += xrow[d] * load<A>(p[d]);
  return dot * a.scale2;
}

// Per-thread buffers: xb (kBM x Dp), ct (Dp x kBN), cf (kBN x Dp), s (kBM x kBN), dx (kBM x Dp), rows (4 kBM).
template <typename A>
std::int64_t work_size(std::int64_t Dp) {
  return kBM * Dp + Dp * kBN + kBN * Dp + kBM * kBN + kBM * Dp + 4 * kBM + 64;
}

template <typename T, typename A, int NR>
INV_INLINE void fwd_block(const Args<A>& a, std::int64_t i0, A* work) {
  const std::int64_t D = a.D, Dp = a.Dp, Kc = a.K;
  const std::int64_t bm = std::min(kBM, a.M - i0), bmp = (bm + kMR - 1) / kMR * kMR;
  A* xb = work;
  A* ct = xb + kBM * Dp;
  A* s = ct + Dp * kBN;
  A* m = s + kBM * kBN;
  A* l = m + kBM;
  A* mneg = l + kBM;
  A* pos2 = mneg + kBM;
  const T* c = static_cast<const T*>(a.c);
  const A ninf = -std::numeric_limits<A>::infinity();
  load_rows<T, A>(static_cast<const T*>(a.x), i0, bm, bmp, D, Dp, xb);
  for (std::int64_t r = 0; r < bm; ++r) {
    pos2[r] = positive_logit2<T, A>(a, xb + r * Dp, i0 + r);
    m[r] = pos2[r];  // the positive starts the running max, so it is finite from the first step
    l[r] = A(1);
    mneg[r] = ninf;
  }
  for (std::int64_t j0 = 0; j0 < Kc; j0 += kBN) {
    const std::int64_t bn = std::min(kBN, Kc - j0);
    load_tile<T, A>(c, j0, bn, D, Dp, ct, nullptr);
    gemm<A, NR>(xb, Dp, ct, kBN, D, s, kBN, bmp, kBN, false);
    for (std::int64_t r = 0; r < bm; ++r) {
      A* srow = s + r * kBN;
      const std::int64_t row = i0 + r, prow = a.sym ? (row + a.half) % a.M : -1;
      A tmax = ninf;
#pragma omp simd reduction(max : tmax)
      for (std::int64_t j = 0; j < kBN; ++j) {
        const std::int64_t col = j0 + j;
        const bool keep = j < bn && !(a.sym && (col == row || col == prow));
        const A v = keep ? srow[j] * a.scale2 : ninf;
        srow[j] = v;
        tmax = std::max(tmax, v);
      }
      mneg[r] = std::max(mneg[r], tmax);
      const A mnew = std::max(m[r], tmax);
      A sum = 0;
#pragma omp simd reduction(+ : sum)
      for (std::int64_t j = 0; j < kBN; ++j) sum += exp2_acc(srow[j] - mnew);
      l[r] = l[r] * exp2_acc(m[r] - mnew) + sum;
      m[r] = mnew;
    }
  }
  for (std::int64_t r = 0; r < bm; ++r) {
    const A lse2 = m[r] + std::log2(l[r]);
    a.lse[i0 + r] = lse2 * A(kLn2);
    a.loss[i0 + r] = (lse2 - pos2[r]) * A(kLn2);
    a.correct[i0 + r] = pos2[r] >= mneg[r] ? A(1) : A(0);  // ties count as correct
  }
}

template <typename T, typename A, int NR>
INV_INLINE void bwd_block(const Args<A>& a, std::int64_t i0, A* work) {
  const std::int64_t D = a.D, Dp = a.Dp, Kc = a.K;
  const std::int64_t bm = std::min(kBM, a.M - i0), bmp = (bm + kMR - 1) / kMR * kMR;
  A* xb = work;
  A* ct = xb + kBM * Dp;
  A* cf = ct + Dp * kBN;
  A* s = cf + kBN * Dp;
  A* dx = s + kBM * kBN;
  A* g = dx + kBM * Dp;
  A* lse2 = g + kBM;
  const T* c = static_cast<const T*>(a.c);
  const T* x = static_cast<const T*>(a.x);
  const A log2e = A(kLog2e);
  load_rows<T, A>(x, i0, bm, bmp, D, Dp, xb);
  std::fill(dx, dx + bmp * Dp, A(0));
  for (std::int64_t r = 0; r < bm; ++r) {
    g[r] = a.grad[i0 + r];
    lse2[r] = a.lse_in[i0 + r] * log2e;
  }
  for (std::int64_t j0 = 0; j0 < Kc; j0 += kBN) {
    const std::int64_t bn = std::min(kBN, Kc - j0);
    load_tile<T, A>(c, j0, bn, D, Dp, ct, cf);
    gemm<A, NR>(xb, Dp, ct, kBN, D, s, kBN, bmp, kBN, false);
    for (std::int64_t r = 0; r < bmp; ++r) {
      A* srow = s + r * kBN;
      if (r >= bm) {
        std::fill(srow, srow + kBN, A(0));
        continue;
      }
      const std::int64_t row = i0 + r;
      const A gr = g[r], lr = lse2[r];
      if (a.sym) {
#pragma omp simd
        for (std::int64_t j = 0; j < kBN; ++j) {
          const std::int64_t col = j0 + j;
          const bool keep = j < bn && col != row;
          const std::int64_t cc = keep ? col : row;  // a safe index for masked columns
          const A v = srow[j] * a.scale2;
          const A w = gr * exp2_acc(v - lr) + a.grad[cc] * exp2_acc(v - a.lse_in[cc] * log2e);
          srow[j] = keep ? w : A(0);
        }
      } else {
#pragma omp simd
        for (std::int64_t j = 0; j < kBN; ++j) {
          const A w = gr * exp2_acc(srow[j] * a.scale2 - lr);
          srow[j] = j < bn ? w : A(0);
        }
      }
    }
    gemm<A, NR>(s, kBN, cf, Dp, kBN, dx, Dp, bmp, Dp, true);
  }
  T* gx = static_cast<T*>(a.gx);
  for (std::int64_t r = 0; r < bm; ++r) {
    const std::int64_t row = i0 + r;
    const A* dxr = dx + r * Dp;
    T* gxr = gx + row * D;
    if (a.sym) {
      const std::int64_t prow = (row + a.half) % a.M;
      const T* zp = x + prow * D;
      const A coef = -(g[r] + a.grad[prow]);
      for (std::int64_t d = 0; d < D; ++d) gxr[d] = store<T>(a.inv_t * (dxr[d] + coef * load<A>(zp[d])));
    } else {
      const T* kr = static_cast<const T*>(a.k) + row * D;
      const A pos2 = positive_logit2<T, A>(a, xb + r * Dp, row);
      const A coef = g[r] * (exp2_acc(std::min(pos2 - lse2[r], A(0))) - A(1));
      T* gkr = static_cast<T*>(a.gk) + row * D;
      for (std::int64_t d = 0; d < D; ++d) {
        gxr[d] = store<T>(a.inv_t * (dxr[d] + coef * load<A>(kr[d])));
        gkr[d] = store<T>(a.inv_t * coef * xb[r * Dp + d]);
      }
    }
  }
}

template <typename T, typename A, int NR, bool BWD>
INV_INLINE void process_block(const Args<A>& a, std::int64_t i0, A* work) {
  if constexpr (BWD) bwd_block<T, A, NR>(a, i0, work); else fwd_block<T, A, NR>(a, i0, work);
}

template <typename T, typename A, int NR, bool BWD>
void run_blocks(Args<A> a, void (*block)(const Args<A>&, std::int64_t, A*)) {
  a.Dp = (a.D + NR - 1) / NR * NR;
  const std::int64_t num_blocks = (a.M + kBM - 1) / kBM;
  const double flops = 2.0 * static_cast<double>(a.M) * static_cast<double>(a.K + 1) * static_cast<double>(a.D);
  const bool parallel = flops > kParallelFlops && num_blocks > 1;
  const int threads = parallel ? std::max(1, omp_get_max_threads()) : 1;
  const std::int64_t per_thread = (work_size<A>(a.Dp) + 15) / 16 * 16;
  // Allocated before the parallel region: an exception inside it would terminate the process.
  std::vector<A> work(static_cast<std::size_t>(threads * per_thread));
#pragma omp parallel num_threads(threads) if (parallel)
  {
    A* mine = work.data() + omp_get_thread_num() * per_thread;
#pragma omp for schedule(dynamic, 1)
    for (std::int64_t b = 0; b < num_blocks; ++b) block(a, b * kBM, mine);
  }
}

template <typename T, bool BWD>
void dispatch_isa(const Args<typename Acc<T>::type>& a) {
  using A = typename Acc<T>::type;
  with_cpu_isa([&](auto isa) {
    constexpr Isa I = decltype(isa)::value;
    constexpr int NR = kTileColumns<A, I>;
    run_blocks<T, A, NR, BWD>(a, isa_copy<&process_block<T, A, NR, BWD>>(I));
  });
}

void check_sizes(const char* op, std::int64_t M, std::int64_t K, std::int64_t D, double inv_t, bool sym) {
  check_positive(op, "M", M);
  check_positive(op, "D", D);
  check_not_less(op, "K", K, 0);
  if (sym && M % 2 != 0) fail_argument(op, "M must be even (2N rows), got " + std::to_string(M));
  if (!(inv_t > 0) || !std::isfinite(inv_t)) fail_argument(op, "inv_temperature must be finite and > 0");
}

template <bool BWD>
void launch(const char* op, int dtype, std::uintptr_t x, std::uintptr_t k, std::uintptr_t c, std::uintptr_t grad,
            std::uintptr_t lse_in, std::uintptr_t loss, std::uintptr_t lse, std::uintptr_t correct,
            std::uintptr_t gx, std::uintptr_t gk, std::int64_t M, std::int64_t K, std::int64_t D, bool sym,
            double inv_t) {
  dispatch_dtype(op, dtype, [&](auto tag) {
    using T = decltype(tag);
    using A = typename Acc<T>::type;
    Args<A> a{};
    a.x = reinterpret_cast<const void*>(x);
    a.k = reinterpret_cast<const void*>(k);
    a.c = reinterpret_cast<const void*>(c);
    a.grad = reinterpret_cast<const A*>(grad);
    a.lse_in = reinterpret_cast<const A*>(lse_in);
    a.loss = reinterpret_cast<A*>(loss);
    a.lse = reinterpret_cast<A*>(lse);
    a.correct = reinterpret_cast<A*>(correct);
    a.gx = reinterpret_cast<void*>(gx);
    a.gk = reinterpret_cast<void*>(gk);
    a.M = M;
    a.K = K;
    a.D = D;
    a.half = M / 2;
    a.sym = sym;
    a.scale2 = static_cast<A>(kLog2e * inv_t);
    a.inv_t = static_cast<A>(inv_t);
    dispatch_isa<T, BWD>(a);
  });
}

}  // namespace

void infonce_fwd_cpu(std::uintptr_t x, std::uintptr_t k, std::uintptr_t c, std::uintptr_t loss, std::uintptr_t lse,
                     std::uintptr_t correct, std::int64_t M, std::int64_t K, std::int64_t D, int dtype,
                     double inv_temperature) {
  const char* op = "infonce_fwd (cpu)";
  check_sizes(op, M, K, D, inv_temperature, false);
  for (auto [name, p] : {std::pair{"x", x}, {"k", k}, {"loss", loss}, {"lse", lse}, {"correct", correct}})
    check_pointer(op, name, p);
  if (K > 0) check_pointer(op, "c", c);
  launch<false>(op, dtype, x, k, c, 0, 0, loss, lse, correct, 0, 0, M, K, D, false, inv_temperature);
}

void infonce_bwd_cpu(std::uintptr_t grad, std::uintptr_t x, std::uintptr_t k, std::uintptr_t c, std::uintptr_t lse,
                     std::uintptr_t gx, std::uintptr_t gk, std::int64_t M, std::int64_t K, std::int64_t D, int dtype,
                     double inv_temperature) {
  const char* op = "infonce_bwd (cpu)";
  check_sizes(op, M, K, D, inv_temperature, false);
  for (auto [name, p] : {std::pair{"grad", grad}, {"x", x}, {"k", k}, {"lse", lse}, {"gx", gx}, {"gk", gk}})
    check_pointer(op, name, p);
  if (K > 0) check_pointer(op, "c", c);
  launch<true>(op, dtype, x, k, c, grad, lse, 0, 0, 0, gx, gk, M, K, D, false, inv_temperature);
}

void ntxent_fwd_cpu(std::uintptr_t z, std::uintptr_t loss, std::uintptr_t lse, std::uintptr_t correct,
                    std::int64_t M, std::int64_t D, int dtype, double inv_temperature) {
  const char* op = "ntxent_fwd (cpu)";
  check_sizes(op, M, M, D, inv_temperature, true);
  for (auto [name, p] : {std::pair{"z", z}, {"loss", loss}, {"lse", lse}, {"correct", correct}})
    check_pointer(op, name, p);
  launch<false>(op, dtype, z, 0, z, 0, 0, loss, lse, correct, 0, 0, M, M, D, true, inv_temperature);
}

void ntxent_bwd_cpu(std::uintptr_t grad, std::uintptr_t z, std::uintptr_t lse, std::uintptr_t gz, std::int64_t M,
                    std::int64_t D, int dtype, double inv_temperature) {
  const char* op = "ntxent_bwd (cpu)";
  check_sizes(op, M, M, D, inv_temperature, true);
  for (auto [name, p] : {std::pair{"grad", grad}, {"z", z}, {"lse", lse}, {"gz", gz}}) check_pointer(op, name, p);
  launch<true>(op, dtype, z, 0, z, grad, lse, 0, 0, 0, gz, 0, M, M, D, true, inv_temperature);
}

}  // namespace inv
