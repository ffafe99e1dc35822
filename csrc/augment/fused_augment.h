// fused_augment: one augmented, normalised view per row of the packed parameters, from uint8 sources.
// The specification is inv_kernels/ops/fused_augment_ref.py (fused_augment_ref); inv_kernels/ops/fused_augment.py packs
// the arguments. Per view v, with s = iparams[v][0] its source image and S the output side:
//
//   crop      box (top, left, h, w) of source s, values / 255 as float32
//   resize    h x w -> S x S, bilinear with antialias as torch.nn.functional.interpolate(mode="bilinear",
//             antialias=True, align_corners=False): separable triangle filter of support max(scale, 1), scale = in/out,
//             centre scale * (i + 0.5), taps xmin = max(int(centre - support + 0.5), 0) .. min(int(centre + support
//             + 0.5), in) - 1, weight tri((j - centre + 0.5) / max(scale, 1)), weights normalised to sum 1
//   flip      output column x reads resized column S - 1 - x
//   jitter    when jitter_applied: the four ops in order[0..3] (0 brightness, 1 contrast, 2 saturation, 3 hue),
//             each as torchvision.transforms.v2.functional on float images, each clamping to [0, 1]:
//               brightness  x * b;  contrast  c * x + (1 - c) * mean(gray(view));  saturation  s * x + (1 - s) * gray(x)
//               hue  RGB -> HSV (torchvision's _rgb_to_hsv), h = (h + shift) mod 1, HSV -> RGB (_hsv_to_rgb)
//             gray(x) = 0.2989 r + 0.587 g + 0.114 b; the contrast mean is over the whole S x S view at that point
//   grayscale when grayscale: every channel = gray(x)
//   blur      when blur_ksize > 0: separable gaussian, kernel k = blur_ksize (odd, <= 2 S - 1), taps at offsets
//             -k/2 .. k/2 with weight exp(-0.5 (t / sigma)^2) normalised to sum 1, reflect padding (index -1 -> 1)
//   out       (x - mean[c]) / std[c], stored in the output dtype
//
// Layout shared by every backend:
//   src      uint8, element strides (s_b, s_c, s_h, s_w) of a padded (B_src, 3, Hmax, Wmax) batch (NCHW or NHWC)
//   sizes    int32 (B_src, 2) contiguous: (H, W) of each source's valid region
//   iparams  int32 (V, 13) contiguous: source, top, left, h, w, flip, jitter_applied, order0, order1, order2, order3,
//            grayscale, blur_ksize (0: no blur)
//   fparams  float32 (V, 5) contiguous: brightness, contrast, saturation, hue shift, blur sigma
//   norm     float32 (6,) contiguous: mean[3], std[3]
//   out      (V, 3, S, S) contiguous, dtype code 0 (float32), 2 (float16) or 3 (bfloat16)
//   workspace (CUDA) float32 (V,) scratch for the per-view contrast means; the launcher overwrites it
#pragma once
#include <cstdint>

namespace inv {

constexpr int kAugmentIntParams = 13;
constexpr int kAugmentFloatParams = 5;

void fused_augment_cpu(std::uintptr_t src, std::int64_t s_b, std::int64_t s_c, std::int64_t s_h, std::int64_t s_w,
                       std::uintptr_t sizes, std::int64_t B_src, std::uintptr_t iparams, std::uintptr_t fparams,
                       std::uintptr_t norm, std::uintptr_t out, std::int64_t V, std::int64_t S, int dtype);

#ifdef INV_WITH_CUDA
void fused_augment_cuda(std::uintptr_t src, std::int64_t s_b, std::int64_t s_c, std::int64_t s_h, std::int64_t s_w,
                        std::uintptr_t sizes, std::int64_t B_src, std::uintptr_t iparams, std::uintptr_t fparams,
                        std::uintptr_t norm, std::uintptr_t out, std::uintptr_t workspace, std::int64_t V,
                        std::int64_t S, int dtype, int device, std::uintptr_t stream);
#endif

}  // namespace inv
