// fused_augment on the CPU: one view per OpenMP work item, each thread with its own float32 buffers (the crop resized
// along its width, the S x S view, a padded row for the blur). Steps and layout: fused_augment.h. Every step rounds
// as torch does on the CPU in float32 (same operation order, same mixed float/double expressions in the resize
// taps), so the result matches fused_augment_ref to float32 rounding. Deterministic: each view is written by one
// thread in a fixed order.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "augment/augment_rules.h"
#include "augment/fused_augment.h"
#include "common/checks.h"
#include "common/dtype.h"

namespace inv {
namespace {

constexpr const char* kOp = "fused_augment (cpu)";
using MulAdd = UnfusedMulAdd;  // torch's CPU kernels round each product

// Output i of a 1-D resize reads inputs start[i] .. start[i] + count[i] - 1 with weights weight[i * stride + j].
struct Taps {
  std::int64_t stride = 0;
  std::vector<std::int64_t> start, count;
  std::vector<float> weight;
};

void compute_taps(int in, std::int64_t out, Taps& taps) {
  const AaAxis a = aa_axis(in, static_cast<int>(out));
  taps.stride = a.max_taps;
  taps.start.resize(out);
  taps.count.resize(out);
  taps.weight.assign(out * taps.stride, 0.0f);
  for (std::int64_t i = 0; i < out; ++i) {
    const AaWindow t = aa_window(a, static_cast<int>(i));
    const float total = aa_total(a, t);
    float* w = &taps.weight[i * taps.stride];
    for (int j = 0; j < t.count; ++j) w[j] = aa_weight(a, t, j, total);
    taps.start[i] = t.first;
    taps.count[i] = t.count;
  }
}

// One thread's scratch, sized for the largest view it may get.
struct Workspace {
  std::vector<float> row;    // one source row of the crop, or one padded view row for the blur
  std::vector<float> wide;   // (3, h, S): the crop resized along its width
  std::vector<float> view;   // (3, S, S)
  std::vector<float> kernel; // blur taps
  Taps tx, ty;
};

// crop, resize (width first, then height, as PyTorch's separable kernel), flip and / 255 into ws.view.
void crop_resize(const std::uint8_t* src, const std::int64_t* strides, const View& v, std::int64_t S,
                 const float* lut, Workspace& ws) {
  compute_taps(v.width, S, ws.tx);
  compute_taps(v.height, S, ws.ty);
  const std::int64_t h = v.height;
  for (int c = 0; c < 3; ++c) {
    const std::uint8_t* plane = src + v.source * strides[0] + c * strides[1];
    for (std::int64_t y = 0; y < h; ++y) {
      const std::uint8_t* line = plane + (v.top + y) * strides[2] + v.left * strides[3];
      for (std::int64_t x = 0; x < v.width; ++x) ws.row[x] = lut[line[x * strides[3]]];
      float* dst = &ws.wide[(c * h + y) * S];
      for (std::int64_t ox = 0; ox < S; ++ox) {
        const std::int64_t i = v.flip ? S - 1 - ox : ox;
        const float* w = &ws.tx.weight[i * ws.tx.stride];
        const float* in = &ws.row[ws.tx.start[i]];
        float acc = in[0] * w[0];
        for (std::int64_t j = 1; j < ws.tx.count[i]; ++j) acc += in[j] * w[j];
        dst[ox] = acc;
      }
    }
    for (std::int64_t oy = 0; oy < S; ++oy) {
      const float* w = &ws.ty.weight[oy * ws.ty.stride];
      const float* in = &ws.wide[(c * h + ws.ty.start[oy]) * S];
      float* dst = &ws.view[(c * S + oy) * S];
      for (std::int64_t x = 0; x < S; ++x) dst[x] = in[x] * w[0];
      for (std::int64_t j = 1; j < ws.ty.count[oy]; ++j) {
        const float* r = in + j * S;
        const float wj = w[j];
        for (std::int64_t x = 0; x < S; ++x) dst[x] += r[x] * wj;
      }
    }
  }
}

// Jitter op Op on every pixel of the (3, S, S) view x of n = S * S pixels (Op a constant, so the loop vectorises).
template <int Op>
void jitter_view(const View& v, std::int64_t n, float* x) {
  float* R = x;
  float* G = x + n;
  float* B = x + 2 * n;
  float mean = 0.0f;
  if (Op == kOpContrast) {
    double sum = 0.0;
    for (std::int64_t i = 0; i < n; ++i) sum += gray<MulAdd>({R[i], G[i], B[i]});
    mean = static_cast<float>(sum / static_cast<double>(n));
  }
  for (std::int64_t i = 0; i < n; ++i) {
    const Rgb c = jitter_op<MulAdd>(Op, {R[i], G[i], B[i]}, v.factor, mean);
    R[i] = c.r;
    G[i] = c.g;
    B[i] = c.b;
  }
}

// The four colour-jitter ops in the view's order, then grayscale, on the (3, S, S) view.
void colour(const View& v, std::int64_t S, float* x) {
  const std::int64_t n = S * S;
  for (int k = 0; v.jitter && k < 4; ++k) {
    switch (v.order[k]) {
      case kOpBrightness: jitter_view<kOpBrightness>(v, n, x); break;
      case kOpContrast: jitter_view<kOpContrast>(v, n, x); break;
      case kOpSaturation: jitter_view<kOpSaturation>(v, n, x); break;
      default: jitter_view<kOpHue>(v, n, x); break;
    }
  }
  if (v.grayscale) {
    float* R = x;
    float* G = x + n;
    float* B = x + 2 * n;
    for (std::int64_t i = 0; i < n; ++i) R[i] = G[i] = B[i] = gray<MulAdd>({R[i], G[i], B[i]});
  }
}

// Separable gaussian of odd size k <= 2 S - 1 with reflect padding, in place on the (3, S, S) view.
void blur(const View& v, std::int64_t S, Workspace& ws) {
  const std::int64_t k = v.ksize, r = k / 2;
  const float total = gaussian_taps_sum(static_cast<int>(k), v.sigma);
  for (std::int64_t t = 0; t < k; ++t) ws.kernel[t] = gaussian_tap(static_cast<int>(t), static_cast<int>(k), v.sigma) / total;
  const float* g = ws.kernel.data();
  float* tmp = ws.wide.data();  // (3, S, S): the row pass
  for (std::int64_t row = 0; row < 3 * S; ++row) {
    const float* in = &ws.view[row * S];
    float* padded = ws.row.data();
    for (std::int64_t x = -r; x < S + r; ++x) padded[x + r] = in[reflect(x, S)];
    float* dst = tmp + row * S;
    std::fill(dst, dst + S, 0.0f);
    for (std::int64_t t = 0; t < k; ++t) {
      const float* shifted = padded + t;
      const float gt = g[t];
      for (std::int64_t x = 0; x < S; ++x) dst[x] += shifted[x] * gt;
    }
  }
  for (int c = 0; c < 3; ++c) {
    for (std::int64_t y = 0; y < S; ++y) {
      float* dst = &ws.view[(c * S + y) * S];
      std::fill(dst, dst + S, 0.0f);
      for (std::int64_t t = 0; t < k; ++t) {
        const float* in = tmp + (c * S + reflect(y + t - r, S)) * S;
        for (std::int64_t x = 0; x < S; ++x) dst[x] += in[x] * g[t];
      }
    }
  }
}

// Every view's parameters against the ABI contract (the Python layer checks user input before this).
void check_views(const std::int32_t* ip, const float* fp, const std::int32_t* sizes, std::int64_t B_src,
                 std::int64_t V, std::int64_t S) {
  for (std::int64_t i = 0; i < V; ++i) {
    const View v = read_view(ip, fp, i);
    const std::string at = "view " + std::to_string(i) + ": ";
    if (v.source < 0 || v.source >= B_src) {
      fail_argument(kOp, at + "source index " + std::to_string(v.source) + " is outside [0, " +
                             std::to_string(B_src) + ")");
    }
    const std::int64_t H = sizes[2 * v.source], W = sizes[2 * v.source + 1];
    if (H < 1 || W < 1) {
      fail_argument(kOp, at + "source " + std::to_string(v.source) + " has size (" + std::to_string(H) + ", " +
                             std::to_string(W) + "), expected both >= 1");
    }
    if (v.top < 0 || v.left < 0 || v.height < 1 || v.width < 1 || v.top + v.height > H || v.left + v.width > W) {
      fail_argument(kOp, at + "crop box (top " + std::to_string(v.top) + ", left " + std::to_string(v.left) +
                             ", height " + std::to_string(v.height) + ", width " + std::to_string(v.width) +
                             ") does not fit its source of size (" + std::to_string(H) + ", " +
                             std::to_string(W) + ")");
    }
    int seen = 0;
    for (int o : v.order) seen |= (o >= 0 && o < 4) ? 1 << o : 1 << 4;
    if (seen != 0xF) fail_argument(kOp, at + "jitter order must be a permutation of 0, 1, 2, 3");
    const float hue = v.factor[kOpHue];
    if (v.jitter && !(hue >= -0.5f && hue <= 0.5f)) {
      fail_argument(kOp, at + "hue shift must lie in [-0.5, 0.5], got " + std::to_string(hue));
    }
    if (v.ksize != 0 && (v.ksize < 1 || v.ksize % 2 == 0 || v.ksize > 2 * S - 1)) {
      fail_argument(kOp, at + "blur kernel size must be 0 (no blur) or odd in [1, " + std::to_string(2 * S - 1) +
                             "] (2 S - 1 for S = " + std::to_string(S) + "), got " + std::to_string(v.ksize));
    }
    if (v.ksize != 0 && !(v.sigma > 0.0f)) {
      fail_argument(kOp, at + "blur sigma must be > 0 where blur is applied, got " + std::to_string(v.sigma));
    }
  }
}

template <typename T>
void augment_views(const std::uint8_t* src, const std::int64_t* strides, const std::int32_t* ip, const float* fp,
                   const float* norm, T* out, std::int64_t V, std::int64_t S) {
  std::int64_t max_h = 1, max_w = 1, max_tx = 1, max_ty = 1;
  for (std::int64_t i = 0; i < V; ++i) {
    const View v = read_view(ip, fp, i);
    max_h = std::max<std::int64_t>(max_h, v.height);
    max_w = std::max<std::int64_t>(max_w, v.width);
    max_tx = std::max<std::int64_t>(max_tx, aa_axis(v.width, static_cast<int>(S)).max_taps);
    max_ty = std::max<std::int64_t>(max_ty, aa_axis(v.height, static_cast<int>(S)).max_taps);
  }
  float lut[256];
  for (int u = 0; u < 256; ++u) lut[u] = unit_from_byte(static_cast<std::uint8_t>(u));

  // Allocated here, not in the parallel region, so that running out of memory raises instead of aborting.
  const int threads = static_cast<int>(std::min<std::int64_t>(omp_get_max_threads(), V));
  std::vector<Workspace> spaces(threads);
  for (Workspace& ws : spaces) {
    ws.row.resize(std::max(max_w, 3 * S));
    ws.wide.resize(3 * std::max(max_h, S) * S);
    ws.view.resize(3 * S * S);
    ws.kernel.resize(2 * S);
    for (auto [taps, n] : {std::pair{&ws.tx, max_tx}, {&ws.ty, max_ty}}) {
      taps->start.reserve(S);
      taps->count.reserve(S);
      taps->weight.reserve(S * n);
    }
  }
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (std::int64_t i = 0; i < V; ++i) {
    Workspace& ws = spaces[omp_get_thread_num()];
    const View v = read_view(ip, fp, i);
    crop_resize(src, strides, v, S, lut, ws);
    colour(v, S, ws.view.data());
    if (v.ksize > 0) blur(v, S, ws);
    T* dst = out + i * 3 * S * S;
    for (int c = 0; c < 3; ++c) {
      const float mean = norm[c], stdev = norm[3 + c];
      const float* x = &ws.view[c * S * S];
      for (std::int64_t j = 0; j < S * S; ++j) dst[c * S * S + j] = store<T>(normalise(x[j], mean, stdev));
    }
  }
}

}  // namespace

void fused_augment_cpu(std::uintptr_t src, std::int64_t s_b, std::int64_t s_c, std::int64_t s_h, std::int64_t s_w,
                       std::uintptr_t sizes, std::int64_t B_src, std::uintptr_t iparams, std::uintptr_t fparams,
                       std::uintptr_t norm, std::uintptr_t out, std::int64_t V, std::int64_t S, int dtype) {
  for (auto [name, p] : {std::pair{"src", src}, {"sizes", sizes}, {"iparams", iparams}, {"fparams", fparams},
                         {"norm", norm}, {"out", out}}) {
    check_pointer(kOp, name, p);
  }
  check_positive(kOp, "B_src", B_src);
  check_positive(kOp, "V", V);
  check_positive(kOp, "S", S);
  if (dtype_from_code(kOp, dtype) == DType::Float64) {
    fail_argument(kOp, "out dtype must be float32 (0), float16 (2) or bfloat16 (3), got float64 (1)");
  }
  const auto* ip = reinterpret_cast<const std::int32_t*>(iparams);
  const auto* fp = reinterpret_cast<const float*>(fparams);
  const auto* nm = reinterpret_cast<const float*>(norm);
  for (int c = 0; c < 3; ++c) {
    if (!(nm[3 + c] > 0.0f)) fail_argument(kOp, "std[" + std::to_string(c) + "] must be > 0");
  }
  check_views(ip, fp, reinterpret_cast<const std::int32_t*>(sizes), B_src, V, S);
  const std::int64_t strides[4] = {s_b, s_c, s_h, s_w};
  dispatch_dtype(kOp, dtype, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (!std::is_same_v<T, double>) {
      augment_views<T>(reinterpret_cast<const std::uint8_t*>(src), strides, ip, fp, nm, reinterpret_cast<T*>(out), V,
                       S);
    }
  });
}

}  // namespace inv
