// row_cosine on the CPU: one row per loop iteration, rows spread over OpenMP threads, inner loops vectorised.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "common/checks.h"
#include "common/dtype.h"
#include "rowcos/row_cosine.h"

namespace inv {
namespace {

// Below this many elements the OpenMP fork costs more than it saves.
constexpr std::int64_t kParallelGrain = 1 << 15;

template <typename T>
void fwd_rows(const T* x, std::int64_t sx, const T* y, std::int64_t sy, T* out, typename Acc<T>::type* stats,
              std::int64_t M, std::int64_t D, double eps) {
  using A = typename Acc<T>::type;
  const A e = static_cast<A>(eps);
#pragma omp parallel for schedule(static) if (M * D > kParallelGrain)
  for (std::int64_t i = 0; i < M; ++i) {
    const T* xi = x + i * sx;
    const T* yi = y + i * sy;
    A dot = 0, xx = 0, yy = 0;
#pragma omp simd reduction(+ : dot, xx, yy)
    for (std::int64_t j = 0; j < D; ++j) {
      const A a = load<A>(xi[j]);
      const A b = load<A>(yi[j]);
      dot += a * b;
      xx += a * a;
      yy += b * b;
    }
    const A nx = std::sqrt(xx), ny = std::sqrt(yy);
    const A c = dot / (std::max(nx, e) * std::max(ny, e));
    out[i] = store<T>(c);
    stats[3 * i] = c;
    stats[3 * i + 1] = nx;
    stats[3 * i + 2] = ny;
  }
}

template <typename T>
void bwd_rows(const T* grad, std::int64_t sg, const T* x, std::int64_t sx, const T* y, std::int64_t sy,
              const typename Acc<T>::type* stats, T* gx, T* gy, std::int64_t M, std::int64_t D, double eps) {
  using A = typename Acc<T>::type;
  const A e = static_cast<A>(eps);
#pragma omp parallel for schedule(static) if (M * D > kParallelGrain)
  for (std::int64_t i = 0; i < M; ++i) {
    const A g = load<A>(grad[i * sg]);
    const A c = stats[3 * i], nx = stats[3 * i + 1], ny = stats[3 * i + 2];
    const A nxc = std::max(nx, e), nyc = std::max(ny, e);
    const A cross = g / (nxc * nyc);
    const A self_x = nx > e ? g * c / (nxc * nxc) : A(0);  // a clamped norm is a constant: no self term
    const A self_y = ny > e ? g * c / (nyc * nyc) : A(0);
    const T* xi = x + i * sx;
    const T* yi = y + i * sy;
    T* gxi = gx + i * D;
    T* gyi = gy + i * D;
#pragma omp simd
    for (std::int64_t j = 0; j < D; ++j) {
      const A a = load<A>(xi[j]);
      const A b = load<A>(yi[j]);
      gxi[j] = store<T>(cross * b - self_x * a);
      gyi[j] = store<T>(cross * a - self_y * b);
    }
  }
}

void check_shapes(const char* op, std::int64_t sx, std::int64_t sy, std::int64_t M, std::int64_t D) {
  check_positive(op, "M", M);
  check_positive(op, "D", D);
  check_not_less(op, "row stride of x", sx, 0);
  check_not_less(op, "row stride of y", sy, 0);
}

}  // namespace

void row_cosine_fwd_cpu(std::uintptr_t x, std::int64_t sx, std::uintptr_t y, std::int64_t sy, std::uintptr_t out,
                        std::uintptr_t stats, std::int64_t M, std::int64_t D, int dtype, double eps) {
  const char* op = "row_cosine_fwd (cpu)";
  check_shapes(op, sx, sy, M, D);
  for (auto [name, p] : {std::pair{"x", x}, {"y", y}, {"out", out}, {"stats", stats}}) check_pointer(op, name, p);
  dispatch_dtype(op, dtype, [&](auto tag) {
    using T = decltype(tag);
    using A = typename Acc<T>::type;
    fwd_rows<T>(reinterpret_cast<const T*>(x), sx, reinterpret_cast<const T*>(y), sy, reinterpret_cast<T*>(out),
                reinterpret_cast<A*>(stats), M, D, eps);
  });
}

void row_cosine_bwd_cpu(std::uintptr_t grad, std::int64_t sg, std::uintptr_t x, std::int64_t sx, std::uintptr_t y,
                        std::int64_t sy, std::uintptr_t stats, std::uintptr_t gx, std::uintptr_t gy, std::int64_t M,
                        std::int64_t D, int dtype, double eps) {
  const char* op = "row_cosine_bwd (cpu)";
  check_shapes(op, sx, sy, M, D);
  check_not_less(op, "stride of grad", sg, 0);
  for (auto [name, p] : {std::pair{"grad", grad}, {"x", x}, {"y", y}, {"stats", stats}, {"gx", gx}, {"gy", gy}})
    check_pointer(op, name, p);
  dispatch_dtype(op, dtype, [&](auto tag) {
    using T = decltype(tag);
    using A = typename Acc<T>::type;
    bwd_rows<T>(reinterpret_cast<const T*>(grad), sg, reinterpret_cast<const T*>(x), sx,
                reinterpret_cast<const T*>(y), sy, reinterpret_cast<const A*>(stats), reinterpret_cast<T*>(gx),
                reinterpret_cast<T*>(gy), M, D, eps);
  });
}

}  // namespace inv
