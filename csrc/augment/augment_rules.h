// The per-view and per-pixel rules of fused_augment (fused_augment.h), written once for the CPU and the CUDA kernels:
// the packed parameters of a view, the uint8 -> [0, 1] conversion, the antialiased resize's taps and weights, the
// colour-jitter ops, grayscale, the blur's reflect padding and the normalisation.
//
// Both backends follow torch's float32 arithmetic step by step. They differ only in how a product and a sum round:
// once on the GPU (fmaf, as nvcc compiles torch's CUDA kernels), twice on the CPU (as torch's CPU kernels); the rules
// that add a product take that choice as their MulAdd parameter (FusedMulAdd or UnfusedMulAdd).
#pragma once
#include <cmath>
#include <cstdint>

#include "augment/fused_augment.h"
#include "common/host_device.h"

namespace inv {

// ---- the packed parameters of a view ------------------------------------------------------------------------------

// Columns of iparams and fparams (fused_augment.h).
enum IntParam { kSource, kTop, kLeft, kHeight, kWidth, kFlip, kJitter, kOrder, kGrayscale = kOrder + 4, kBlurSize };
enum FloatParam { kFactors, kSigma = kFactors + 4 };  // factors by op, then the blur sigma
enum JitterOp { kOpBrightness, kOpContrast, kOpSaturation, kOpHue };

struct View {
  int source, top, left, height, width;
  bool flip, jitter, grayscale;
  int order[4];     // jitter ops in the order applied
  float factor[4];  // by op: brightness, contrast, saturation, hue shift
  int ksize;        // blur kernel size, 0: no blur
  float sigma;
};

// View v of the packed parameters.
INV_HOST_DEVICE inline View read_view(const std::int32_t* iparams, const float* fparams, std::int64_t v) {
  const std::int32_t* ip = iparams + v * kAugmentIntParams;
  const float* fp = fparams + v * kAugmentFloatParams;
  View view;
  view.source = ip[kSource];
  view.top = ip[kTop];
  view.left = ip[kLeft];
  view.height = ip[kHeight];
  view.width = ip[kWidth];
  view.flip = ip[kFlip] != 0;
  view.jitter = ip[kJitter] != 0;
  view.grayscale = ip[kGrayscale] != 0;
  for (int i = 0; i < 4; ++i) {
    view.order[i] = ip[kOrder + i];
    view.factor[i] = fp[kFactors + i];
  }
  view.ksize = ip[kBlurSize];
  view.sigma = fp[kSigma];
  return view;
}

// ---- rounding of a product and a sum ------------------------------------------------------------------------------

struct FusedMulAdd {  // a * b + c rounded once
  INV_HOST_DEVICE static float mul_add(float a, float b, float c) { return fmaf(a, b, c); }
};
struct UnfusedMulAdd {  // a * b rounded, then the sum
  INV_HOST_DEVICE static float mul_add(float a, float b, float c) { return a * b + c; }
};

// ---- crop and antialiased bilinear resize ---------------------------------------------------------------------------
// The taps and weights of PyTorch's CPU kernel for float32 (_compute_indices_min_size_weights_aa): its expressions
// mix float and double (`centre - support + 0.5` adds a double to a float difference); the casts below reproduce them,
// so the boxes and weights are the same numbers.

// to_dtype(float32, scale=True) of a uint8 value.
INV_HOST_DEVICE inline float unit_from_byte(std::uint8_t u) {
  return static_cast<float>(u) * static_cast<float>(1.0 / 255.0);
}

// One axis of a resize in -> out.
struct AaAxis {
  int in;
  float scale, support, invscale;
  int max_taps;  // the most taps of an output position (PyTorch's max_interp_size)
};

INV_HOST_DEVICE inline AaAxis aa_axis(int in, int out) {
  AaAxis a;
  a.in = in;
  a.scale = static_cast<float>(in) / static_cast<float>(out);
  a.support = a.scale >= 1.0f ? a.scale : 1.0f;
  a.invscale = a.scale >= 1.0f ? static_cast<float>(1.0 / a.scale) : 1.0f;
  a.max_taps = static_cast<int>(ceilf(a.support)) * 2 + 1;
  return a;
}

// The taps of output position i: inputs first .. first + count - 1 around centre.
struct AaWindow {
  int first, count;
  float centre;
};

INV_HOST_DEVICE inline AaWindow aa_window(const AaAxis& a, int i) {
  AaWindow t;
  t.centre = a.scale * (static_cast<float>(i) + 0.5f);  // i + 0.5 is exact: one rounding, as PyTorch's double product
  const int first = static_cast<int>(static_cast<double>(t.centre - a.support) + 0.5);
  const int end = static_cast<int>(static_cast<double>(t.centre + a.support) + 0.5);
  t.first = first > 0 ? first : 0;
  const int count = (end < a.in ? end : a.in) - t.first;
  t.count = count < 0 ? 0 : (count > a.max_taps ? a.max_taps : count);
  return t;
}

// The unnormalised weight of input j for a window centred at centre.
INV_HOST_DEVICE inline float aa_filter(const AaAxis& a, int j, float centre) {
  const float x = fabsf(static_cast<float>((static_cast<double>(static_cast<float>(j) - centre) + 0.5) * a.invscale));
  return x < 1.0f ? 1.0f - x : 0.0f;
}

// The sum of a window's unnormalised weights, in tap order.
INV_HOST_DEVICE inline float aa_total(const AaAxis& a, const AaWindow& t) {
  float total = 0.0f;
  for (int j = 0; j < t.count; ++j) total += aa_filter(a, t.first + j, t.centre);
  return total;
}

// Tap j's weight, normalised by the window's total.
INV_HOST_DEVICE inline float aa_weight(const AaAxis& a, const AaWindow& t, int j, float total) {
  const float w = aa_filter(a, t.first + j, t.centre);
  return total != 0.0f ? w / total : w;
}

// ---- colour steps, as torchvision.transforms.v2.functional on float32 images ---------------------------------------

struct Rgb {
  float r, g, b;
};

// clamp(x, 0, 1) as torch.clamp (a NaN stays NaN).
INV_HOST_DEVICE inline float clamp01(float x) {
  const float lower = x < 0.0f ? 0.0f : x;
  return 1.0f < lower ? 1.0f : lower;
}

// r * 0.2989 + g * 0.587 + b * 0.114, accumulated as torch's mul / add_(alpha) sequence.
template <class MulAdd>
INV_HOST_DEVICE inline float gray(Rgb x) {
  return MulAdd::mul_add(x.b, 0.114f, MulAdd::mul_add(x.g, 0.587f, x.r * 0.2989f));
}

// _blend: image * ratio + other * (1 - ratio), clamped.
template <class MulAdd>
INV_HOST_DEVICE inline float blend(float x, float other, float ratio) {
  return clamp01(MulAdd::mul_add(other, 1.0f - ratio, x * ratio));
}

// torch.remainder(h + shift, 1) for h in [0, 1): fmod, then the divisor's sign. For a valid hue shift (|shift| <= 1/2)
// h + shift lies in [-1/2, 3/2], where one comparison gives the same number (fmod is exact); the test on shift alone
// lets the compiler take it out of a loop over pixels.
INV_HOST_DEVICE inline float shift_unit(float h, float shift) {
  const float x = h + shift;
  if (shift >= -0.5f && shift <= 0.5f) return x < 0.0f ? x + 1.0f : (x >= 1.0f ? x - 1.0f : x);
  const float r = fmodf(x, 1.0f);
  return r < 0.0f ? r + 1.0f : r;
}

// adjust_hue: _rgb_to_hsv, h = (h + shift) mod 1, _hsv_to_rgb, with torchvision's guards against dividing by zero.
INV_HOST_DEVICE inline Rgb adjust_hue(Rgb x, float shift) {
  const float maxgb = x.g < x.b ? x.b : x.g, mingb = x.b < x.g ? x.b : x.g;
  const float maxc = x.r < maxgb ? maxgb : x.r, minc = mingb < x.r ? mingb : x.r;
  const bool flat = maxc == minc;
  const float range = maxc - minc;
  const float s = range / (flat ? 1.0f : maxc);
  const float divisor = flat ? 1.0f : range;
  const float rc = (maxc - x.r) / divisor, gc = (maxc - x.g) / divisor, bc = (maxc - x.b) / divisor;
  const float h6ths = maxc == x.r ? bc - gc : (maxc == x.g ? (rc + 2.0f) - bc : (gc + 4.0f) - rc);
  float h = h6ths * static_cast<float>(1.0 / 6.0) + 1.0f;  // in [5/6, 11/6]
  h = shift_unit(h >= 1.0f ? h - 1.0f : h, shift);          // (h mod 1 + shift) mod 1, in [0, 1]

  const float v = maxc;
  const float h6 = h * 6.0f;
  const int sector = static_cast<int>(h6);  // floor, as h6 >= 0
  const float f = h6 - static_cast<float>(sector);
  const float sxf = s * f;
  const float one_minus_s = 1.0f - s;
  const float q = clamp01((1.0f - sxf) * v);
  const float t = clamp01((sxf + one_minus_s) * v);
  const float p = clamp01(one_minus_s * v);
  switch (sector) {  // sector 6 (h rounded up to 1) is sector 0, as torch's i % 6
    case 1: return {q, v, p};
    case 2: return {p, v, t};
    case 3: return {p, q, v};
    case 4: return {t, p, v};
    case 5: return {v, p, q};
    default: return {v, t, p};
  }
}

// Jitter op `op` with its factor from `factor`; `mean` is the view's gray mean before it (read only by contrast).
template <class MulAdd>
INV_HOST_DEVICE inline Rgb jitter_op(int op, Rgb x, const float (&factor)[4], float mean) {
  switch (op) {
    case kOpBrightness: {
      const float f = factor[kOpBrightness];
      return {clamp01(x.r * f), clamp01(x.g * f), clamp01(x.b * f)};
    }
    case kOpContrast: {
      const float f = factor[kOpContrast];
      return {blend<MulAdd>(x.r, mean, f), blend<MulAdd>(x.g, mean, f), blend<MulAdd>(x.b, mean, f)};
    }
    case kOpSaturation: {
      const float f = factor[kOpSaturation], l = gray<MulAdd>(x);
      return {blend<MulAdd>(x.r, l, f), blend<MulAdd>(x.g, l, f), blend<MulAdd>(x.b, l, f)};
    }
    default:
      return adjust_hue(x, factor[kOpHue]);
  }
}

// ---- blur and normalisation ----------------------------------------------------------------------------------------

// Reflect padding of index i into [0, S) (-1 -> 1, S -> S - 2); i within S - 1 of the edges.
template <typename I>
INV_HOST_DEVICE inline I reflect(I i, I S) {
  return i < 0 ? -i : (i >= S ? 2 * S - 2 - i : i);
}

// Tap t of torchvision's 1D gaussian of odd size k, before normalisation, in its float32 arithmetic:
// x = linspace(-(k - 1) / 2, (k - 1) / 2, k), exp(-0.5 (x / sigma)^2). The kernel is these taps over their sum.
INV_HOST_DEVICE inline float gaussian_tap(int t, int k, float sigma) {
  const float half = 0.5f * static_cast<float>(k - 1);
  const float step = k > 1 ? (half + half) / static_cast<float>(k - 1) : 0.0f;
  const float x = t < k / 2 ? -half + step * static_cast<float>(t) : half - step * static_cast<float>(k - 1 - t);
  const float z = x / sigma;
  return expf(-0.5f * (z * z));
}

// The sum of the k taps, added in order.
INV_HOST_DEVICE inline float gaussian_taps_sum(int k, float sigma) {
  float sum = 0.0f;
  for (int t = 0; t < k; ++t) sum += gaussian_tap(t, k, sigma);
  return sum;
}

// (x - mean) / std, as torchvision's normalize.
INV_HOST_DEVICE inline float normalise(float x, float mean, float std) { return (x - mean) / std; }

}  // namespace inv
