// invariance_scores and group_invariance on the CPU (layouts and maths: scoring.h).
//
// invariance_scores is a cache-blocked GEMM z = (v - mu) A with the cosine / distance epilogue fused in:
//   - OpenMP over row tiles of MC view rows; each thread packs its tile's centred rows once (MC x D, in the
//     accumulation type: the only per-thread scratch besides an MC x NR block of z),
//   - for each panel of NR columns of A (packed once per call, shared read-only by every thread) and each depth
//     block of KC, a register-blocked MR x NR micro-kernel accumulates the tile's block of z,
//   - the epilogue folds that finished block of z into per-row sums of zc * zv, zv^2 and (zc - zv)^2, so the
//     (n k, D) whitened views never exist.
// The micro-kernel (common/cpu_gemm.h) and the row loops are compiled for each instruction set (common/cpu_isa.h).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <type_traits>
#include <vector>

#include <omp.h>

#include "common/checks.h"
#include "common/cpu_gemm.h"
#include "common/cpu_isa.h"
#include "common/dtype.h"
#include "scoring/scoring.h"

namespace inv {
namespace {

constexpr int kMR = 6;                       // rows of a micro-tile: 12 accumulator registers
constexpr std::int64_t kKC = 256;            // depth of a block of the K loop (the B slice stays in L1)
constexpr std::int64_t kMaxPanels = 32;      // micro-panels per row tile: MC <= 192 rows
constexpr std::int64_t kMinPanels = 4;       // MC >= 24 rows
constexpr std::int64_t kPackBytes = 768 << 10;  // target size of a thread's packed row tile (fits L2)
constexpr double kParallelFlops = 1 << 22;   // below this much work the OpenMP fork costs more than it saves

template <typename T>
constexpr bool is_half_v = std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>;

// 64-byte aligned scratch, freed on scope exit.
template <typename A>
class Scratch {
 public:
  explicit Scratch(std::size_t count) {
    const std::size_t bytes = std::max<std::size_t>(64, (count * sizeof(A) + 63) / 64 * 64);
    ptr_ = static_cast<A*>(std::aligned_alloc(64, bytes));
    if (ptr_ == nullptr) throw std::bad_alloc();
  }
  ~Scratch() { std::free(ptr_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  A* get() const { return ptr_; }

 private:
  A* ptr_ = nullptr;
};

// ----------------------------------------------------------------------------------------------------------------
// invariance_scores
// ----------------------------------------------------------------------------------------------------------------
template <typename T, typename A>
struct ScoresArgs {
  const T* views;
  std::int64_t s_img, s_view;
  const A* zc;       // (n, D)
  const A* zc_norm;  // (n,) max(|zc_i|, eps)
  const A* mean;     // (D,)
  const A* bp;       // (num_panels, D, NR) packed whitening matrix, zero beyond column D
  A* cos;            // (M,)
  A* dist;           // (M,)
  std::int64_t k, D, M, mc;
  A eps;
};

// Packs rows row0 .. row0 + rows of the views, centred, into micro-panels ap[(p D + kk) MR + i]; padding rows are 0.
template <typename T, typename A, int MR>
INV_INLINE void pack_rows(const ScoresArgs<T, A>& a, std::int64_t row0, std::int64_t rows, std::int64_t panels,
                          A* __restrict ap) {
  const std::int64_t D = a.D;
  for (std::int64_t p = 0; p < panels; ++p) {
    A* dst = ap + p * D * MR;
    for (int i = 0; i < MR; ++i) {
      const std::int64_t local = p * MR + i;
      if (local < rows) {
        const std::int64_t r = row0 + local;
        const T* src = a.views + (r / a.k) * a.s_img + (r % a.k) * a.s_view;
        for (std::int64_t kk = 0; kk < D; ++kk) dst[kk * MR + i] = load<A>(src[kk]) - a.mean[kk];
      } else {
        for (std::int64_t kk = 0; kk < D; ++kk) dst[kk * MR + i] = A(0);
      }
    }
  }
}

// One row tile: rows row0 .. row0 + mc (clipped at M). ap: kMaxPanels * MR * D scratch, cbuf: MC * NR scratch.
template <typename T, typename A, int MR, int NR>
INV_INLINE void scores_tile(const ScoresArgs<T, A>& a, std::int64_t row0, A* __restrict ap, A* __restrict cbuf) {
  const std::int64_t D = a.D;
  const std::int64_t rows = std::min(a.mc, a.M - row0);
  const std::int64_t panels = (rows + MR - 1) / MR;
  pack_rows<T, A, MR>(a, row0, rows, panels, ap);

  A dot[kMaxPanels * MR], nv[kMaxPanels * MR], dd[kMaxPanels * MR];
  for (std::int64_t i = 0; i < rows; ++i) dot[i] = nv[i] = dd[i] = A(0);

  const std::int64_t num_col_panels = (D + NR - 1) / NR;
  for (std::int64_t jp = 0; jp < num_col_panels; ++jp) {
    const A* bpanel = a.bp + jp * D * NR;
    std::fill(cbuf, cbuf + panels * MR * NR, A(0));
    for (std::int64_t k0 = 0; k0 < D; k0 += kKC) {
      const std::int64_t kc = std::min(kKC, D - k0);
      for (std::int64_t p = 0; p < panels; ++p)
        micro_kernel<A, MR, NR>(ap + (p * D + k0) * MR, 1, MR, bpanel + k0 * NR, NR, kc, cbuf + p * MR * NR, NR,
                                true);
    }
    // Fused epilogue: this block of z is final; fold it into the per-row sums.
    const std::int64_t j0 = jp * NR;
    const int ncols = static_cast<int>(std::min<std::int64_t>(NR, D - j0));
    for (std::int64_t i = 0; i < rows; ++i) {
      const std::int64_t r = row0 + i;
      const A* __restrict zr = a.zc + (r / a.k) * D + j0;
      const A* __restrict zv = cbuf + i * NR;
      A sd = 0, sn = 0, sq = 0;
#pragma omp simd reduction(+ : sd, sn, sq)
      for (int j = 0; j < ncols; ++j) {
        const A z = zv[j], q = zr[j];
        const A t = q - z;
        sd += q * z;
        sn += z * z;
        sq += t * t;
      }
      dot[i] += sd;
      nv[i] += sn;
      dd[i] += sq;
    }
  }
  for (std::int64_t i = 0; i < rows; ++i) {
    const std::int64_t r = row0 + i;
    a.cos[r] = dot[i] / (a.zc_norm[r / a.k] * std::max(std::sqrt(nv[i]), a.eps));
    a.dist[r] = std::sqrt(dd[i]);
  }
}

template <typename T, typename A, int NR>
using TileFn = void (*)(const ScoresArgs<T, A>&, std::int64_t, A*, A*);

template <typename T, typename A, int NR>
void run_scores(ScoresArgs<T, A> a, const A* w, TileFn<T, A, NR> tile) {
  const std::int64_t D = a.D;
  const std::int64_t num_col_panels = (D + NR - 1) / NR;
  const double flops = 2.0 * static_cast<double>(a.M) * static_cast<double>(D) * static_cast<double>(D);
  const bool parallel = flops > kParallelFlops;

  // Pack A once: panel jp holds columns jp NR .. jp NR + NR, k-major, zero-padded past column D.
  Scratch<A> bp(static_cast<std::size_t>(num_col_panels * D * NR));
#pragma omp parallel for schedule(static) if (parallel)
  for (std::int64_t jp = 0; jp < num_col_panels; ++jp) {
    A* dst = bp.get() + jp * D * NR;
    const std::int64_t j0 = jp * NR;
    const std::int64_t ncols = std::min<std::int64_t>(NR, D - j0);
    for (std::int64_t kk = 0; kk < D; ++kk) {
      for (std::int64_t j = 0; j < ncols; ++j) dst[kk * NR + j] = w[kk * D + j0 + j];
      for (std::int64_t j = ncols; j < NR; ++j) dst[kk * NR + j] = A(0);
    }
  }
  a.bp = bp.get();

  // Row tile height: the packed tile (MC x D) about kPackBytes, 4 to 32 micro-panels.
  const std::int64_t panels = std::clamp<std::int64_t>(
      kPackBytes / (D * static_cast<std::int64_t>(sizeof(A)) * kMR), kMinPanels, kMaxPanels);
  a.mc = panels * kMR;
  const std::int64_t num_tiles = (a.M + a.mc - 1) / a.mc;

  // Per-thread scratch, allocated before the parallel region (an exception inside it would terminate the process).
  const int threads = parallel ? std::max(1, omp_get_max_threads()) : 1;
  constexpr std::int64_t line = 64 / sizeof(A);  // keep every slice on its own 64-byte boundary
  const std::int64_t ap_size = (panels * kMR * D + line - 1) / line * line;
  const std::int64_t cbuf_size = (panels * kMR * NR + line - 1) / line * line;
  Scratch<A> scratch(static_cast<std::size_t>(threads * (ap_size + cbuf_size)));
#pragma omp parallel num_threads(threads) if (parallel)
  {
    A* ap = scratch.get() + omp_get_thread_num() * (ap_size + cbuf_size);
    A* cbuf = ap + ap_size;
#pragma omp for schedule(dynamic, 1)
    for (std::int64_t t = 0; t < num_tiles; ++t) tile(a, t * a.mc, ap, cbuf);
  }
}

template <typename T>
void scores_typed(const T* views, std::int64_t s_img, std::int64_t s_view, const typename Acc<T>::type* zc,
                  const typename Acc<T>::type* mean, const typename Acc<T>::type* w, typename Acc<T>::type* cos,
                  typename Acc<T>::type* dist, std::int64_t n, std::int64_t k, std::int64_t D, double eps) {
  using A = typename Acc<T>::type;
  const A e = static_cast<A>(eps);
  std::vector<A> zc_norm(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    A s = 0;
    for (std::int64_t j = 0; j < D; ++j) s += zc[i * D + j] * zc[i * D + j];
    zc_norm[i] = std::max(std::sqrt(s), e);
  }
  ScoresArgs<T, A> a{views, s_img, s_view, zc, zc_norm.data(), mean, nullptr, cos, dist, k, D, n * k, 0, e};
  with_cpu_isa([&](auto isa) {
    constexpr Isa I = decltype(isa)::value;
    constexpr int NR = kTileColumns<A, I>;
    run_scores<T, A, NR>(a, w, isa_copy<&scores_tile<T, A, kMR, NR>>(I));
  });
}

// ----------------------------------------------------------------------------------------------------------------
// group_invariance
// ----------------------------------------------------------------------------------------------------------------
template <typename A>
struct GroupArgs {
  const A* z;
  const std::int64_t* row_end;  // (N,) end of the row's group
  const A* norm;                // (N,) max(|z_a|, eps)
  A* part;                      // (N, 3) per row a: sum over b > a of cos and dist, and cos(z_a, z_a)
  std::int64_t D;
};

// Row a against every later row of its group, four rows b at a time (eight independent accumulators).
template <typename A>
INV_INLINE void group_row(const GroupArgs<A>& g, std::int64_t a) {
  const std::int64_t D = g.D, end = g.row_end[a];
  const A* __restrict za = g.z + a * D;
  const A na = g.norm[a];
  A sc = 0, sd = 0, self = 0;
#pragma omp simd reduction(+ : self)
  for (std::int64_t j = 0; j < D; ++j) self += za[j] * za[j];
  std::int64_t b = a + 1;
  for (; b + 4 <= end; b += 4) {
    const A* __restrict z0 = g.z + b * D;
    const A* __restrict z1 = z0 + D;
    const A* __restrict z2 = z1 + D;
    const A* __restrict z3 = z2 + D;
    A p0 = 0, p1 = 0, p2 = 0, p3 = 0, q0 = 0, q1 = 0, q2 = 0, q3 = 0;
#pragma omp simd reduction(+ : p0, p1, p2, p3, q0, q1, q2, q3)
    for (std::int64_t j = 0; j < D; ++j) {
      const A x = za[j];
      const A t0 = x - z0[j], t1 = x - z1[j], t2 = x - z2[j], t3 = x - z3[j];
      p0 += x * z0[j];
      p1 += x * z1[j];
      p2 += x * z2[j];
      p3 += x * z3[j];
      q0 += t0 * t0;
      q1 += t1 * t1;
      q2 += t2 * t2;
      q3 += t3 * t3;
    }
    sc += p0 / (na * g.norm[b]) + p1 / (na * g.norm[b + 1]) + p2 / (na * g.norm[b + 2]) +
          p3 / (na * g.norm[b + 3]);
    sd += std::sqrt(q0) + std::sqrt(q1) + std::sqrt(q2) + std::sqrt(q3);
  }
  for (; b < end; ++b) {
    const A* __restrict zb = g.z + b * D;
    A p = 0, q = 0;
#pragma omp simd reduction(+ : p, q)
    for (std::int64_t j = 0; j < D; ++j) {
      const A t = za[j] - zb[j];
      p += za[j] * zb[j];
      q += t * t;
    }
    sc += p / (na * g.norm[b]);
    sd += std::sqrt(q);
  }
  g.part[3 * a] = sc;
  g.part[3 * a + 1] = sd;
  g.part[3 * a + 2] = self / (na * na);
}

template <typename A>
void groups_typed(const char* op, const A* z, const std::int64_t* offsets, A* out, std::int64_t N, std::int64_t G,
                  std::int64_t D, double eps) {
  if (offsets[0] != 0 || offsets[G] != N)
    fail_argument(op, "offsets must start at 0 and end at N=" + std::to_string(N) + ", got " +
                          std::to_string(offsets[0]) + " and " + std::to_string(offsets[G]));
  std::vector<std::int64_t> row_end(static_cast<std::size_t>(N));
  for (std::int64_t g = 0; g < G; ++g) {
    if (offsets[g + 1] < offsets[g]) fail_argument(op, "offsets must be non-decreasing at group " + std::to_string(g));
    for (std::int64_t r = offsets[g]; r < offsets[g + 1]; ++r) row_end[r] = offsets[g + 1];
  }
  const A e = static_cast<A>(eps);
  std::vector<A> norm(static_cast<std::size_t>(N)), part(static_cast<std::size_t>(3 * N));
  for (std::int64_t a = 0; a < N; ++a) {
    A s = 0;
    for (std::int64_t j = 0; j < D; ++j) s += z[a * D + j] * z[a * D + j];
    norm[a] = std::max(std::sqrt(s), e);
  }
  const GroupArgs<A> args{z, row_end.data(), norm.data(), part.data(), D};
  const auto row_fn = isa_copy<&group_row<A>>(cpu_isa());
  double work = 0;  // pairs times D
  for (std::int64_t g = 0; g < G; ++g) {
    const double kg = static_cast<double>(offsets[g + 1] - offsets[g]);
    work += kg * kg * 0.5 * static_cast<double>(D);
  }
#pragma omp parallel for schedule(dynamic, 4) if (3.0 * work > kParallelFlops)
  for (std::int64_t a = 0; a < N; ++a) row_fn(args, a);
  // Per-group sums in row order: deterministic whatever the thread count.
  for (std::int64_t g = 0; g < G; ++g) {
    A sc = 0, sd = 0, ss = 0;
    for (std::int64_t r = offsets[g]; r < offsets[g + 1]; ++r) {
      sc += part[3 * r];
      sd += part[3 * r + 1];
      ss += part[3 * r + 2];
    }
    out[3 * g] = sc;
    out[3 * g + 1] = sd;
    out[3 * g + 2] = ss;
  }
}

}  // namespace

const char* scoring_cpu_isa() { return isa_name(cpu_isa()); }

void invariance_scores_fwd_cpu(std::uintptr_t views, std::int64_t s_img, std::int64_t s_view, std::uintptr_t zc,
                               std::uintptr_t mean, std::uintptr_t w, std::uintptr_t cos, std::uintptr_t dist,
                               std::int64_t n, std::int64_t k, std::int64_t D, int dtype, double eps) {
  const char* op = "invariance_scores_fwd (cpu)";
  check_positive(op, "n", n);
  check_positive(op, "k", k);
  check_positive(op, "D", D);
  check_not_less(op, "image stride of views", s_img, 0);
  check_not_less(op, "view stride of views", s_view, 0);
  for (auto [name, p] : {std::pair{"views", views}, {"zc", zc}, {"mean", mean}, {"w", w}, {"cos", cos},
                         {"dist", dist}})
    check_pointer(op, name, p);
  dispatch_dtype(op, dtype, [&](auto tag) {
    using T = decltype(tag);
    using A = typename Acc<T>::type;
    scores_typed<T>(reinterpret_cast<const T*>(views), s_img, s_view, reinterpret_cast<const A*>(zc),
                    reinterpret_cast<const A*>(mean), reinterpret_cast<const A*>(w), reinterpret_cast<A*>(cos),
                    reinterpret_cast<A*>(dist), n, k, D, eps);
  });
}

void group_invariance_fwd_cpu(std::uintptr_t z, std::uintptr_t offsets, std::uintptr_t out, std::int64_t N,
                              std::int64_t G, std::int64_t D, int dtype, double eps) {
  const char* op = "group_invariance_fwd (cpu)";
  check_positive(op, "N", N);
  check_positive(op, "G", G);
  check_positive(op, "D", D);
  for (auto [name, p] : {std::pair{"z", z}, {"offsets", offsets}, {"out", out}}) check_pointer(op, name, p);
  const auto* offs = reinterpret_cast<const std::int64_t*>(offsets);
  switch (dtype_from_code(op, dtype)) {
    case DType::Float32:
      groups_typed<float>(op, reinterpret_cast<const float*>(z), offs, reinterpret_cast<float*>(out), N, G, D, eps);
      break;
    case DType::Float64:
      groups_typed<double>(op, reinterpret_cast<const double*>(z), offs, reinterpret_cast<double*>(out), N, G, D,
                           eps);
      break;
    default: fail_argument(op, "z must be float32 or float64 (the whitened features), got dtype code " +
                                   std::to_string(dtype));
  }
}

}  // namespace inv
