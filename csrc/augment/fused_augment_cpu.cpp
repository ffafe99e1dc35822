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

#include "augment/fused_augment.h"
#include "common/checks.h"
#include "common/dtype.h"

namespace inv {
namespace {

constexpr const char* kOp = "fused_augment (cpu)";
constexpr float kGrayR = 0.2989f, kGrayG = 0.587f, kGrayB = 0.114f;

struct View {
  std::int64_t source, top, left, h, w;
  bool flip, jitter, grayscale;
  int order[4];
  std::int64_t ksize;
  float brightness, contrast, saturation, hue, sigma;
};

View read_view(const std::int32_t* ip, const float* fp) {
  return View{ip[0], ip[1], ip[2], ip[3], ip[4], ip[5] != 0, ip[6] != 0, ip[11] != 0,
              {ip[7], ip[8], ip[9], ip[10]}, ip[12], fp[0], fp[1], fp[2], fp[3], fp[4]};
}

// Largest tap count of a 1-D antialiased resize in -> out (PyTorch's max_interp_size for bilinear).
std::int64_t max_taps(std::int64_t in, std::int64_t out) {
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  return static_cast<std::int64_t>(std::ceil(std::max(scale, 1.0f))) * 2 + 1;
}

// Output i of a 1-D resize reads inputs start[i] .. start[i] + count[i] - 1 with weights weight[i * stride + j].
struct Taps {
  std::int64_t stride = 0;
  std::vector<std::int64_t> start, count;
  std::vector<float> weight;
};

inline float triangle(float x) {
  x = std::fabs(x);
  return x < 1.0f ? 1.0f - x : 0.0f;
}

// PyTorch's CPU antialiased bilinear taps in float32. Its expressions mix float and double (`centre - support + 0.5`
// adds a double to a float difference); the casts below reproduce them, so the boxes and weights are the same.
void compute_taps(std::int64_t in, std::int64_t out, Taps& taps) {
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  const float support = std::max(scale, 1.0f);
  const float invscale = scale >= 1.0f ? static_cast<float>(1.0 / static_cast<double>(scale)) : 1.0f;
  taps.stride = max_taps(in, out);
  taps.start.resize(out);
  taps.count.resize(out);
  taps.weight.assign(out * taps.stride, 0.0f);
  for (std::int64_t i = 0; i < out; ++i) {
    const float centre = scale * (static_cast<float>(i) + 0.5f);
    const auto lo = std::max<std::int64_t>(static_cast<std::int64_t>(static_cast<double>(centre - support) + 0.5), 0);
    const auto hi = std::min<std::int64_t>(static_cast<std::int64_t>(static_cast<double>(centre + support) + 0.5), in);
    const std::int64_t n = std::clamp<std::int64_t>(hi - lo, 0, taps.stride);
    float* w = &taps.weight[i * taps.stride];
    float total = 0.0f;
    for (std::int64_t j = 0; j < n; ++j) {
      const double x = (static_cast<double>(static_cast<float>(j + lo) - centre) + 0.5) * invscale;
      w[j] = triangle(static_cast<float>(x));
      total += w[j];
    }
    if (total != 0.0f) {
      for (std::int64_t j = 0; j < n; ++j) w[j] /= total;
    }
    taps.start[i] = lo;
    taps.count[i] = n;
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

inline float gray(float r, float g, float b) { return r * kGrayR + g * kGrayG + b * kGrayB; }
inline float clamp01(float x) { return std::min(std::max(x, 0.0f), 1.0f); }

// crop, resize (width first, then height, as PyTorch's separable kernel), flip and / 255 into ws.view.
void crop_resize(const std::uint8_t* src, const std::int64_t* strides, const View& v, std::int64_t S,
                 const float* lut, Workspace& ws) {
  compute_taps(v.w, S, ws.tx);
  compute_taps(v.h, S, ws.ty);
  const std::int64_t h = v.h;
  for (int c = 0; c < 3; ++c) {
    const std::uint8_t* plane = src + v.source * strides[0] + c * strides[1];
    for (std::int64_t y = 0; y < h; ++y) {
      const std::uint8_t* line = plane + (v.top + y) * strides[2] + v.left * strides[3];
      for (std::int64_t x = 0; x < v.w; ++x) ws.row[x] = lut[line[x * strides[3]]];
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

// torchvision's _rgb_to_hsv, hue shift with remainder 1, _hsv_to_rgb, on one pixel. The remainders are exact as
// written: h / 6 + 1 lies in [5/6, 11/6] and, with |shift| <= 1/2 (checked), h + shift in [-1/2, 3/2), where
// torch.remainder(x, 1) is x + 1, x or x - 1.
inline void shift_hue(float& r, float& g, float& b, float shift) {
  const float maxc = std::max(r, std::max(g, b)), minc = std::min(r, std::min(g, b));
  const bool eqc = maxc == minc;
  const float range = maxc - minc;
  const float s = range / (eqc ? 1.0f : maxc);
  const float div = eqc ? 1.0f : range;
  const float rc = (maxc - r) / div, gc = (maxc - g) / div, bc = (maxc - b) / div;
  const float h6ths = maxc == r ? bc - gc : (maxc == g ? (rc + 2.0f) - bc : (gc + 4.0f) - rc);
  float h = h6ths * static_cast<float>(1.0 / 6.0) + 1.0f;
  h = h >= 1.0f ? h - 1.0f : h;
  h += shift;
  h = h < 0.0f ? h + 1.0f : (h >= 1.0f ? h - 1.0f : h);
  const float h6 = h * 6.0f;
  const int i = static_cast<int>(h6);  // floor, as h6 >= 0
  const float f = h6 - static_cast<float>(i);
  const float v = maxc, sxf = s * f, one_minus_s = 1.0f - s;
  const float q = clamp01((1.0f - sxf) * v);
  const float t = clamp01((sxf + one_minus_s) * v);
  const float p = clamp01(one_minus_s * v);
  switch (i) {  // i == 6 (h rounded up to 1) is sector 0, as torch's i % 6
    case 1: r = q; g = v; b = p; break;
    case 2: r = p; g = v; b = t; break;
    case 3: r = p; g = q; b = v; break;
    case 4: r = t; g = p; b = v; break;
    case 5: r = v; g = p; b = q; break;
    default: r = v; g = t; b = p; break;
  }
}

// The four colour-jitter ops in the view's order, then grayscale, on the (3, S, S) view.
void colour(const View& v, std::int64_t S, float* x) {
  const std::int64_t n = S * S;
  float* R = x;
  float* G = x + n;
  float* B = x + 2 * n;
  for (int k = 0; v.jitter && k < 4; ++k) {
    switch (v.order[k]) {
      case 0:
        for (std::int64_t i = 0; i < 3 * n; ++i) x[i] = clamp01(x[i] * v.brightness);
        break;
      case 1: {
        double sum = 0.0;
        for (std::int64_t i = 0; i < n; ++i) sum += gray(R[i], G[i], B[i]);
        const float mean = static_cast<float>(sum / static_cast<double>(n));
        const float m = mean * (1.0f - v.contrast);
        for (std::int64_t i = 0; i < 3 * n; ++i) x[i] = clamp01(x[i] * v.contrast + m);
        break;
      }
      case 2: {
        const float a = 1.0f - v.saturation;
        for (std::int64_t i = 0; i < n; ++i) {
          const float l = gray(R[i], G[i], B[i]) * a;
          R[i] = clamp01(R[i] * v.saturation + l);
          G[i] = clamp01(G[i] * v.saturation + l);
          B[i] = clamp01(B[i] * v.saturation + l);
        }
        break;
      }
      default:
        for (std::int64_t i = 0; i < n; ++i) shift_hue(R[i], G[i], B[i], v.hue);
        break;
    }
  }
  if (v.grayscale) {
    for (std::int64_t i = 0; i < n; ++i) R[i] = G[i] = B[i] = gray(R[i], G[i], B[i]);
  }
}

// Separable gaussian of odd size k <= 2 S - 1 with reflect padding, in place on the (3, S, S) view.
void blur(const View& v, std::int64_t S, Workspace& ws) {
  const std::int64_t k = v.ksize, r = k / 2;
  double total = 0.0;
  for (std::int64_t t = 0; t < k; ++t) {
    const double z = static_cast<double>(t - r) / v.sigma;
    total += std::exp(-0.5 * z * z);
  }
  for (std::int64_t t = 0; t < k; ++t) {
    const double z = static_cast<double>(t - r) / v.sigma;
    ws.kernel[t] = static_cast<float>(std::exp(-0.5 * z * z) / total);
  }
  const float* g = ws.kernel.data();
  auto reflect = [S](std::int64_t i) { return i < 0 ? -i : (i >= S ? 2 * (S - 1) - i : i); };
  float* tmp = ws.wide.data();  // (3, S, S): the row pass
  for (std::int64_t row = 0; row < 3 * S; ++row) {
    const float* in = &ws.view[row * S];
    float* padded = ws.row.data();
    for (std::int64_t x = -r; x < S + r; ++x) padded[x + r] = in[reflect(x)];
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
        const float* in = tmp + (c * S + reflect(y + t - r)) * S;
        for (std::int64_t x = 0; x < S; ++x) dst[x] += in[x] * g[t];
      }
    }
  }
}

// Every view's parameters against the ABI contract (the Python layer checks user input before this).
void check_views(const std::int32_t* ip, const float* fp, const std::int32_t* sizes, std::int64_t B_src,
                 std::int64_t V, std::int64_t S) {
  for (std::int64_t i = 0; i < V; ++i) {
    const View v = read_view(ip + i * kAugmentIntParams, fp + i * kAugmentFloatParams);
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
    if (v.top < 0 || v.left < 0 || v.h < 1 || v.w < 1 || v.top + v.h > H || v.left + v.w > W) {
      fail_argument(kOp, at + "crop box (top " + std::to_string(v.top) + ", left " + std::to_string(v.left) +
                             ", height " + std::to_string(v.h) + ", width " + std::to_string(v.w) +
                             ") does not fit its source of size (" + std::to_string(H) + ", " +
                             std::to_string(W) + ")");
    }
    int seen = 0;
    for (int o : v.order) seen |= (o >= 0 && o < 4) ? 1 << o : 1 << 4;
    if (seen != 0xF) fail_argument(kOp, at + "jitter order must be a permutation of 0, 1, 2, 3");
    if (v.jitter && !(v.hue >= -0.5f && v.hue <= 0.5f)) {
      fail_argument(kOp, at + "hue shift must lie in [-0.5, 0.5], got " + std::to_string(v.hue));
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
    const View v = read_view(ip + i * kAugmentIntParams, fp + i * kAugmentFloatParams);
    max_h = std::max(max_h, v.h);
    max_w = std::max(max_w, v.w);
    max_tx = std::max(max_tx, max_taps(v.w, S));
    max_ty = std::max(max_ty, max_taps(v.h, S));
  }
  float lut[256];
  for (int u = 0; u < 256; ++u) lut[u] = static_cast<float>(u) * static_cast<float>(1.0 / 255.0);

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
    const View v = read_view(ip + i * kAugmentIntParams, fp + i * kAugmentFloatParams);
    crop_resize(src, strides, v, S, lut, ws);
    colour(v, S, ws.view.data());
    if (v.ksize > 0) blur(v, S, ws);
    T* dst = out + i * 3 * S * S;
    for (int c = 0; c < 3; ++c) {
      const float mean = norm[c], stdev = norm[3 + c];
      const float* x = &ws.view[c * S * S];
      for (std::int64_t j = 0; j < S * S; ++j) dst[c * S * S + j] = store<T>((x[j] - mean) / stdev);
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
