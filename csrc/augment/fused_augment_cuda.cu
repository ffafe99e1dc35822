// fused_augment on the GPU, launched on the caller's stream. Arithmetic and packed layout: fused_augment.h; the
// per-pixel rules it shares with the CPU kernel: augment_rules.h.
//
// Each block makes one kTile x kTile output tile of one view (grid: tiles x views) in shared memory:
//   1. resize: the crop's antialiased bilinear resize at the view pixels the tile needs (the tile plus the blur
//      radius on each side, clipped to the view, since reflect padding only re-reads view pixels), separable:
//      horizontal taps over a window of source rows, then vertical taps, window after window;
//   2. the per-pixel colour steps (flip is folded into the resize's column index);
//   3. the separable gaussian blur, reflect indices precomputed per tile;
//   4. normalise and store.
// The contrast op needs the mean gray level of the whole view at its place in the jitter order, so a first kernel
// makes the same tiles up to that op and sums their gray levels per view into the workspace. It sums in 32-bit fixed
// point (units of 2^-31 of the view's mean), so the integer atomics make the mean independent of block order.
// Blur radii over kMaxBlurRadius exceed the tile's shared memory; a third kernel makes those views tile by tile,
// accumulating the blur over chunks of the blurred region (slower; the same sums up to rounding).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "augment/augment_rules.h"
#include "augment/fused_augment.h"
#include "common/checks.h"
#include "common/cuda_utils.cuh"

namespace inv {
namespace {

constexpr int kTile = 32;                      // output tile side
constexpr int kThreadsX = 32;                  // a warp spans a tile row
constexpr int kThreadsY = 8;
constexpr int kThreads = kThreadsX * kThreadsY;
constexpr int kMaxBlurRadius = 11;             // blur kernels up to 23 taps stay in the tiled path
constexpr int kMaxRegion = kTile + 2 * kMaxBlurRadius;  // side of the pre-blur region a block holds
constexpr int kWindowRows = kTile;             // source rows per horizontal-resize window
constexpr int kCachedTaps = 8;                 // resize weights kept per row / column (scale < 3); more are recomputed
constexpr int kMaxGridY = 65535;
static_assert(kMaxRegion <= kThreads / 2, "resize_rect computes row and column taps with half the block each");
static_assert(kWindowRows == kTile, "the resize window and the horizontal blur share the work buffer");
constexpr double kMeanUnit = 2147483648.0;     // 2^31 fixed-point units per unit of mean gray level

using MulAdd = FusedMulAdd;  // torch's CUDA kernels round a product and a sum once

struct Source {
  const std::uint8_t* data;
  std::int64_t s_b, s_c, s_h, s_w;
  std::int64_t count;
  const std::int32_t* sizes;  // (count, 2)
};

__device__ int blur_radius(const View& view) { return view.ksize > 1 ? view.ksize / 2 : 0; }

// Parameters the Python layer validates; checked again so that a bad row cannot read outside the source.
__device__ bool view_is_valid(const View& view, const Source& src, int S) {
  if (view.source < 0 || view.source >= src.count) return false;
  const int H = src.sizes[2 * view.source], W = src.sizes[2 * view.source + 1];
  if (view.top < 0 || view.left < 0 || view.height < 1 || view.width < 1) return false;
  if (view.top + view.height > H || view.left + view.width > W) return false;
  if (view.ksize < 0 || (view.ksize > 1 && (view.ksize % 2 == 0 || view.ksize > 2 * S - 1 || !(view.sigma > 0.f))))
    return false;
  if (view.jitter) {
    unsigned seen = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) seen |= view.order[i] >= 0 && view.order[i] < 4 ? 1u << view.order[i] : 0u;
    if (seen != 0xfu) return false;  // not a permutation of the four ops
  }
  return true;
}

// ---- antialiased bilinear resize weights (augment_rules.h), kept in shared memory ------------------------------

// The taps of one axis's output positions i, structure of arrays in shared memory (n positions, stride n).
struct Taps {
  int* first;
  int* count;
  float* center;
  float* total;
  float* w;  // [kCachedTaps][n]: normalised weights of the first taps
  int n;
};

__device__ void compute_taps(const AaAxis& a, int i, Taps t, int slot) {
  const AaWindow window = aa_window(a, i);
  const float total = aa_total(a, window);
  for (int j = 0; j < kCachedTaps; ++j) {
    t.w[j * t.n + slot] = j < window.count ? aa_weight(a, window, j, total) : 0.0f;
  }
  t.first[slot] = window.first;
  t.count[slot] = window.count;
  t.center[slot] = window.centre;
  t.total[slot] = total;
}

__device__ __forceinline__ float tap_weight(const AaAxis& a, const Taps& t, int slot, int j) {
  if (j < kCachedTaps) return t.w[j * t.n + slot];
  return aa_weight(a, AaWindow{t.first[slot], t.count[slot], t.center[slot]}, j, t.total[slot]);
}

// ---- shared memory -----------------------------------------------------------------------------------------------

// Carves the dynamic shared memory of a block whose pre-blur region has side at most `region` (>= kTile).
struct Smem {
  float* q;       // [3][region][region]: the pre-blur values of the region (row stride `region`)
  float* work;    // [3][kWindowRows][region] resized source rows, later [3][region][kTile] the horizontal blur
  float* gauss;   // [2 * kMaxBlurRadius + 1]
  int* row_src;   // [region]: blur tap row i -> region row of the reflected view row
  int* col_src;   // [region]
  float* reduce;  // [kThreadsY]
  Taps rows, cols;
};

__host__ __device__ constexpr std::size_t smem_bytes(int region) {
  return sizeof(float) * (3 * static_cast<std::size_t>(region) * region + 3 * static_cast<std::size_t>(region) * kTile +
                          (2 * kMaxBlurRadius + 1) + kThreadsY) +
         sizeof(int) * 2 * static_cast<std::size_t>(region) +
         2 * static_cast<std::size_t>(region) * (2 * sizeof(int) + (2 + kCachedTaps) * sizeof(float));
}

__device__ Smem carve_smem(void* base, int region) {
  Smem m;
  float* f = static_cast<float*>(base);
  m.q = f;
  f += 3 * region * region;
  m.work = f;
  f += 3 * region * kTile;
  m.gauss = f;
  f += 2 * kMaxBlurRadius + 1;
  m.reduce = f;
  f += kThreadsY;
  for (Taps* t : {&m.rows, &m.cols}) {
    t->n = region;
    t->center = f;
    f += region;
    t->total = f;
    f += region;
    t->w = f;
    f += kCachedTaps * region;
  }
  int* i = reinterpret_cast<int*>(f);
  m.row_src = i;
  i += region;
  m.col_src = i;
  i += region;
  for (Taps* t : {&m.rows, &m.cols}) {
    t->first = i;
    i += region;
    t->count = i;
    i += region;
  }
  return m;
}

// ---- step 1 (+ 2): the resized, colour-adjusted view on a rectangle --------------------------------------------

// The rectangle of view rows [y0, y0 + h) x columns [x0, x0 + w) (h, w <= the carved region) of view `view`:
// resized crop (flip applied) in m.q[c][y - y0][x - x0]. Ends with a barrier.
__device__ void resize_rect(const Source& src, const View& view, int S, int y0, int h, int x0, int w, const Smem& m) {
  const int tid = threadIdx.y * kThreadsX + threadIdx.x;
  const int region = m.rows.n;
  const AaAxis ay = aa_axis(view.height, S);
  const AaAxis ax = aa_axis(view.width, S);
  if (tid < h) compute_taps(ay, y0 + tid, m.rows, tid);
  const int col = tid - kThreads / 2;
  if (col >= 0 && col < w) compute_taps(ax, view.flip ? S - 1 - (x0 + col) : x0 + col, m.cols, col);
  for (int i = tid; i < 3 * region * region; i += kThreads) m.q[i] = 0.0f;
  __syncthreads();

  // Source rows (from the crop's top) the rectangle reads: the taps' first index never decreases with the row.
  const int src_first = m.rows.first[0];
  int src_end = 0;
  for (int y = 0; y < h; ++y) src_end = max(src_end, m.rows.first[y] + m.rows.count[y]);

  const std::uint8_t* base = src.data + view.source * src.s_b + static_cast<std::int64_t>(view.top) * src.s_h +
                             static_cast<std::int64_t>(view.left) * src.s_w;  // the crop's top-left pixel
  const int plane = kWindowRows * region;
  for (int s0 = src_first; s0 < src_end; s0 += kWindowRows) {
    const int rows = min(kWindowRows, src_end - s0);
    // horizontal: work[c][i][x] = sum_j w_x[x][j] * crop[c][s0 + i][first_x + j]
    for (int i = threadIdx.y; i < rows; i += kThreadsY) {
      const std::uint8_t* line = base + static_cast<std::int64_t>(s0 + i) * src.s_h;
      for (int x = threadIdx.x; x < w; x += kThreadsX) {
        const std::uint8_t* p = line + static_cast<std::int64_t>(m.cols.first[x]) * src.s_w;
        const int count = m.cols.count[x];
        float r = 0.0f, g = 0.0f, b = 0.0f;
        for (int j = 0; j < count; ++j, p += src.s_w) {
          const float wj = tap_weight(ax, m.cols, x, j);
          r = fmaf(unit_from_byte(__ldg(p)), wj, r);
          g = fmaf(unit_from_byte(__ldg(p + src.s_c)), wj, g);
          b = fmaf(unit_from_byte(__ldg(p + 2 * src.s_c)), wj, b);
        }
        m.work[i * region + x] = r;
        m.work[plane + i * region + x] = g;
        m.work[2 * plane + i * region + x] = b;
      }
    }
    __syncthreads();
    // vertical: q[c][y][x] += the window's taps of row y, continuing the previous windows' sum in tap order
    for (int y = threadIdx.y; y < h; y += kThreadsY) {
      const int first = m.rows.first[y];
      const int j0 = max(0, s0 - first), j1 = min(m.rows.count[y], s0 + rows - first);
      if (j0 >= j1) continue;
      for (int x = threadIdx.x; x < w; x += kThreadsX) {
        float* q = m.q + y * region + x;
        float r = q[0], g = q[region * region], b = q[2 * region * region];
        for (int j = j0; j < j1; ++j) {
          const float wj = tap_weight(ay, m.rows, y, j);
          const int k = (first + j - s0) * region + x;
          r = fmaf(m.work[k], wj, r);
          g = fmaf(m.work[plane + k], wj, g);
          b = fmaf(m.work[2 * plane + k], wj, b);
        }
        q[0] = r;
        q[region * region] = g;
        q[2 * region * region] = b;
      }
    }
    __syncthreads();
  }
}

// Jitter steps order[first_op .. end_op) and, if `grayscale`, the final gray conversion, in place on the h x w
// rectangle of m.q. Each element stays with the thread that resized it, so no barrier is needed before.
__device__ void colour_rect(const View& view, int first_op, int end_op, bool grayscale, float mean, int h, int w,
                            const Smem& m) {
  const int region = m.rows.n;
  const int plane = region * region;
  for (int y = threadIdx.y; y < h; y += kThreadsY) {
    for (int x = threadIdx.x; x < w; x += kThreadsX) {
      float* q = m.q + y * region + x;
      Rgb c{q[0], q[plane], q[2 * plane]};
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        if (i >= first_op && i < end_op) c = jitter_op<MulAdd>(view.order[i], c, view.factor, mean);
      }
      if (grayscale) {
        const float l = gray<MulAdd>(c);
        c = {l, l, l};
      }
      q[0] = c.r;
      q[plane] = c.g;
      q[2 * plane] = c.b;
    }
  }
}

// Position of the contrast op in the view's jitter order (4 when the view has no jitter).
__device__ int contrast_position(const View& view) {
  int position = 4;
  if (view.jitter) {
#pragma unroll
    for (int i = 3; i >= 0; --i) position = view.order[i] == kOpContrast ? i : position;
  }
  return position;
}

__device__ float contrast_mean(const std::uint32_t* workspace, std::int64_t v) {
  return static_cast<float>(static_cast<double>(workspace[v]) / kMeanUnit);
}

template <typename T>
__device__ __forceinline__ void store_normalised(T* out, std::int64_t v, int S, int y, int x, Rgb c,
                                                 const float* __restrict__ norm) {
  const std::int64_t plane = static_cast<std::int64_t>(S) * S;
  T* o = out + v * 3 * plane + static_cast<std::int64_t>(y) * S + x;
  o[0] = cuda_store<T>(normalise(c.r, norm[0], norm[3]));
  o[plane] = cuda_store<T>(normalise(c.g, norm[1], norm[4]));
  o[2 * plane] = cuda_store<T>(normalise(c.b, norm[2], norm[5]));
}

// A view whose packed parameters are out of range comes out as NaN rather than reading outside its source.
template <typename T>
__device__ void fill_nan_tile(T* out, std::int64_t v, int S, int y0, int x0) {
  const std::int64_t plane = static_cast<std::int64_t>(S) * S;
  const T nan = cuda_store<T>(__int_as_float(0x7fc00000));
  for (int y = y0 + threadIdx.y; y < min(y0 + kTile, S); y += kThreadsY) {
    for (int x = x0 + threadIdx.x; x < min(x0 + kTile, S); x += kThreadsX) {
      T* o = out + v * 3 * plane + static_cast<std::int64_t>(y) * S + x;
      o[0] = nan;
      o[plane] = nan;
      o[2 * plane] = nan;
    }
  }
}

struct Tile {
  int y0, x0, h, w;  // origin and size (clipped to the view) of the block's output tile
};

__device__ Tile block_tile(int S, int tiles_x) {
  Tile t;
  t.y0 = static_cast<int>(blockIdx.x) / tiles_x * kTile;
  t.x0 = static_cast<int>(blockIdx.x) % tiles_x * kTile;
  t.h = min(kTile, S - t.y0);
  t.w = min(kTile, S - t.x0);
  return t;
}

// ---- kernels -----------------------------------------------------------------------------------------------------

// Sums the gray level of each tile of the views with a contrast op, taken just before that op, into workspace[v]
// (zeroed by the launcher) in units of 2^-31 of the view's mean.
__global__ void contrast_mean_kernel(Source src, const std::int32_t* __restrict__ iparams,
                                     const float* __restrict__ fparams, std::uint32_t* __restrict__ workspace,
                                     std::int64_t v0, int S, int tiles_x) {
  extern __shared__ float4 smem_raw[];
  const std::int64_t v = v0 + blockIdx.y;
  const View view = read_view(iparams, fparams, v);
  const int position = contrast_position(view);
  if (position == 4 || !view_is_valid(view, src, S)) return;
  const Smem m = carve_smem(smem_raw, kTile);
  const Tile t = block_tile(S, tiles_x);
  resize_rect(src, view, S, t.y0, t.h, t.x0, t.w, m);
  colour_rect(view, 0, position, false, 0.0f, t.h, t.w, m);

  const int plane = kTile * kTile;
  float sum = 0.0f;
  for (int y = threadIdx.y; y < t.h; y += kThreadsY) {
    for (int x = threadIdx.x; x < t.w; x += kThreadsX) {
      const float* q = m.q + y * kTile + x;
      sum += gray<MulAdd>({q[0], q[plane], q[2 * plane]});
    }
  }
  sum = warp_sum(sum);
  if (threadIdx.x == 0) m.reduce[threadIdx.y] = sum;
  __syncthreads();
  if (threadIdx.x == 0 && threadIdx.y == 0) {
    float tile_sum = 0.0f;
    for (int i = 0; i < kThreadsY; ++i) tile_sum += m.reduce[i];
    const double units = static_cast<double>(tile_sum) * (kMeanUnit / (static_cast<double>(S) * S));
    atomicAdd(workspace + v, static_cast<std::uint32_t>(__double2uint_rn(units)));
  }
}

// The horizontal blur of rows y < h of m.q, for the tile's columns x < w: work[c][y][x] = the sum over taps i < taps,
// in order, of g * q[c][y][col] where tap(x, i, g, col) gives g and col and returns false for a tap to skip.
template <typename Tap>
__device__ void blur_rows(const Smem& m, int h, int w, int taps, Tap tap) {
  const int region = m.rows.n;
  const int plane = region * region, work_plane = region * kTile;
  for (int y = threadIdx.y; y < h; y += kThreadsY) {
    for (int x = threadIdx.x; x < w; x += kThreadsX) {
      const float* q = m.q + y * region;
      float cr = 0.0f, cg = 0.0f, cb = 0.0f;
      for (int i = 0; i < taps; ++i) {
        float g;
        int c;
        if (!tap(x, i, g, c)) continue;
        cr = fmaf(g, q[c], cr);
        cg = fmaf(g, q[plane + c], cg);
        cb = fmaf(g, q[2 * plane + c], cb);
      }
      m.work[y * kTile + x] = cr;
      m.work[work_plane + y * kTile + x] = cg;
      m.work[2 * work_plane + y * kTile + x] = cb;
    }
  }
}

// Makes one output tile of one view whose blur radius fits the carved region (side `region`).
template <typename T>
__global__ void fused_augment_kernel(Source src, const std::int32_t* __restrict__ iparams,
                                     const float* __restrict__ fparams, const float* __restrict__ norm,
                                     const std::uint32_t* __restrict__ workspace, T* __restrict__ out,
                                     std::int64_t v0, int S, int tiles_x, int region) {
  extern __shared__ float4 smem_raw[];
  const std::int64_t v = v0 + blockIdx.y;
  const View view = read_view(iparams, fparams, v);
  const Tile t = block_tile(S, tiles_x);
  if (!view_is_valid(view, src, S)) {
    fill_nan_tile(out, v, S, t.y0, t.x0);
    return;
  }
  const int r = blur_radius(view);
  if (2 * r > region - kTile) return;  // wide_blur_kernel makes this view
  const Smem m = carve_smem(smem_raw, region);

  // The view rectangle the tile's blur reads: reflect padding maps every tap into it.
  const int ylo = max(t.y0 - r, 0), yhi = min(t.y0 + t.h - 1 + r, S - 1);
  const int xlo = max(t.x0 - r, 0), xhi = min(t.x0 + t.w - 1 + r, S - 1);
  const int h = yhi - ylo + 1, w = xhi - xlo + 1;
  const int tid = threadIdx.y * kThreadsX + threadIdx.x;
  if (r > 0) {  // read only after resize_rect's barriers
    const int k = 2 * r + 1;
    if (tid < k) m.gauss[tid] = gaussian_tap(tid, k, view.sigma) / gaussian_taps_sum(k, view.sigma);
    for (int i = tid; i < t.h + 2 * r; i += kThreads) m.row_src[i] = reflect(t.y0 - r + i, S) - ylo;
    for (int i = tid; i < t.w + 2 * r; i += kThreads) m.col_src[i] = reflect(t.x0 - r + i, S) - xlo;
  }
  resize_rect(src, view, S, ylo, h, xlo, w, m);
  const float mean = contrast_position(view) < 4 ? contrast_mean(workspace, v) : 0.0f;
  colour_rect(view, 0, view.jitter ? 4 : 0, view.grayscale, mean, h, w, m);

  const int plane = region * region;
  if (r == 0) {  // the region is the tile, each element still with the thread that made it
    for (int y = threadIdx.y; y < t.h; y += kThreadsY) {
      for (int x = threadIdx.x; x < t.w; x += kThreadsX) {
        const float* q = m.q + y * region + x;
        store_normalised(out, v, S, t.y0 + y, t.x0 + x, {q[0], q[plane], q[2 * plane]}, norm);
      }
    }
    return;
  }
  __syncthreads();

  // horizontal blur: work[c][y][x] = sum_i gauss[i] * q[c][y][col_src[x + i]]
  const int k = 2 * r + 1;
  blur_rows(m, h, t.w, k, [&](int x, int i, float& g, int& c) {
    g = m.gauss[i];
    c = m.col_src[x + i];
    return true;
  });
  __syncthreads();

  // vertical blur: out[c][y][x] = sum_i gauss[i] * work[c][row_src[y + i]][x]
  const int work_plane = region * kTile;
  for (int y = threadIdx.y; y < t.h; y += kThreadsY) {
    for (int x = threadIdx.x; x < t.w; x += kThreadsX) {
      float cr = 0.0f, cg = 0.0f, cb = 0.0f;
      for (int i = 0; i < k; ++i) {
        const float g = m.gauss[i];
        const int e = m.row_src[y + i] * kTile + x;
        cr = fmaf(g, m.work[e], cr);
        cg = fmaf(g, m.work[work_plane + e], cg);
        cb = fmaf(g, m.work[2 * work_plane + e], cb);
      }
      store_normalised(out, v, S, t.y0 + y, t.x0 + x, {cr, cg, cb}, norm);
    }
  }
}

// Sum of the gaussian taps i in [0, k) that reflect padding sends from output position x to view position p:
// the direct tap, and the taps reflected at either edge (each index reflects at most once as r < S).
__device__ float reflected_gauss(const float* gauss, int k, int r, int S, int x, int p) {
  float g = 0.0f;
  int i = p - x + r;
  if (i >= 0 && i < k) g += gauss[i];
  if (p > 0) {  // x + i - r = -p
    i = r - x - p;
    if (i >= 0 && i < k) g += gauss[i];
  }
  if (p < S - 1) {  // x + i - r = 2 S - 2 - p
    i = 2 * S - 2 - p - x + r;
    if (i >= 0 && i < k) g += gauss[i];
  }
  return g;
}

// Views whose blur radius exceeds the tiled kernel's region: one block per view, tile after tile, the blurred region
// made kMaxRegion x kMaxRegion chunk by chunk with each chunk's blur contribution added to the tile.
template <typename T>
__global__ void wide_blur_kernel(Source src, const std::int32_t* __restrict__ iparams,
                                 const float* __restrict__ fparams, const float* __restrict__ norm,
                                 const std::uint32_t* __restrict__ workspace, T* __restrict__ out, int S,
                                 int tiles_x, int tiled_region) {
  extern __shared__ float4 smem_raw[];
  const std::int64_t v = blockIdx.x;
  const View view = read_view(iparams, fparams, v);
  const int r = blur_radius(view);
  if (2 * r <= tiled_region - kTile || !view_is_valid(view, src, S)) return;
  const Smem m = carve_smem(smem_raw, kMaxRegion);
  float* gauss = reinterpret_cast<float*>(reinterpret_cast<char*>(smem_raw) + smem_bytes(kMaxRegion));  // [k]
  const int k = 2 * r + 1;
  const float gauss_sum = gaussian_taps_sum(k, view.sigma);
  const int tid = threadIdx.y * kThreadsX + threadIdx.x;
  for (int i = tid; i < k; i += kThreads) gauss[i] = gaussian_tap(i, k, view.sigma) / gauss_sum;
  const float mean = contrast_position(view) < 4 ? contrast_mean(workspace, v) : 0.0f;
  constexpr int kRowsPerThread = kTile / kThreadsY;
  const int work_plane = kMaxRegion * kTile;

  for (int tile = 0; tile < tiles_x * tiles_x; ++tile) {
    const int y0 = tile / tiles_x * kTile, x0 = tile % tiles_x * kTile;
    const int th = min(kTile, S - y0), tw = min(kTile, S - x0);
    const int ylo = max(y0 - r, 0), yhi = min(y0 + th - 1 + r, S - 1);
    const int xlo = max(x0 - r, 0), xhi = min(x0 + tw - 1 + r, S - 1);
    float acc[kRowsPerThread][3] = {};
    for (int cy = ylo; cy <= yhi; cy += kMaxRegion) {
      const int ch = min(kMaxRegion, yhi + 1 - cy);
      for (int cx = xlo; cx <= xhi; cx += kMaxRegion) {
        const int cw = min(kMaxRegion, xhi + 1 - cx);
        __syncthreads();  // the previous chunk's readers are done with q and work
        resize_rect(src, view, S, cy, ch, cx, cw, m);
        colour_rect(view, 0, view.jitter ? 4 : 0, view.grayscale, mean, ch, cw, m);
        __syncthreads();
        // horizontal: work[c][y][x] = sum over the chunk's columns p of reflected_gauss(x0 + x, p) * q[c][y][p]
        blur_rows(m, ch, tw, cw, [&](int x, int p, float& g, int& c) {
          g = reflected_gauss(gauss, k, r, S, x0 + x, cx + p);
          c = p;
          return g != 0.0f;
        });
        __syncthreads();
        // vertical: acc[c][y][x] += sum over the chunk's rows p of reflected_gauss(y0 + y, p) * work[c][p][x]
        if (threadIdx.x < tw) {
#pragma unroll
          for (int j = 0; j < kRowsPerThread; ++j) {
            const int y = threadIdx.y + j * kThreadsY;
            for (int p = 0; p < ch && y < th; ++p) {
              const float g = reflected_gauss(gauss, k, r, S, y0 + y, cy + p);
              if (g == 0.0f) continue;
              const int e = p * kTile + threadIdx.x;
              acc[j][0] = fmaf(g, m.work[e], acc[j][0]);
              acc[j][1] = fmaf(g, m.work[work_plane + e], acc[j][1]);
              acc[j][2] = fmaf(g, m.work[2 * work_plane + e], acc[j][2]);
            }
          }
        }
      }
    }
    if (threadIdx.x < tw) {
#pragma unroll
      for (int j = 0; j < kRowsPerThread; ++j) {
        const int y = threadIdx.y + j * kThreadsY;
        if (y < th) store_normalised(out, v, S, y0 + y, x0 + threadIdx.x, {acc[j][0], acc[j][1], acc[j][2]}, norm);
      }
    }
  }
}

template <typename T>
void launch_views(const char* op, cudaStream_t stream, const Source& src, const std::int32_t* iparams,
                  const float* fparams, const float* norm, const std::uint32_t* workspace, T* out, std::int64_t V,
                  int S) {
  const int tiles_x = (S + kTile - 1) / kTile;
  const int region = kTile + 2 * std::min(kMaxBlurRadius, S - 1);
  const std::size_t bytes = smem_bytes(region);
  cuda_check(cudaFuncSetAttribute(fused_augment_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  static_cast<int>(bytes)),
             op, "cudaFuncSetAttribute");
  for (std::int64_t v0 = 0; v0 < V; v0 += kMaxGridY) {
    const dim3 grid(static_cast<unsigned>(tiles_x * tiles_x),
                    static_cast<unsigned>(std::min<std::int64_t>(V - v0, kMaxGridY)));
    fused_augment_kernel<T><<<grid, dim3(kThreadsX, kThreadsY), bytes, stream>>>(
        src, iparams, fparams, norm, workspace, out, v0, S, tiles_x, region);
    check_launch(op);
  }
  if (S - 1 > kMaxBlurRadius) {  // a valid blur radius (up to S - 1) may exceed the tiled region
    const std::size_t wide_bytes = smem_bytes(kMaxRegion) + sizeof(float) * (2 * static_cast<std::size_t>(S) - 1);
    cuda_check(cudaFuncSetAttribute(wide_blur_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    static_cast<int>(wide_bytes)),
               op, "cudaFuncSetAttribute");
    wide_blur_kernel<T><<<static_cast<unsigned>(V), dim3(kThreadsX, kThreadsY), wide_bytes, stream>>>(
        src, iparams, fparams, norm, workspace, out, S, tiles_x, region);
    check_launch(op);
  }
}

}  // namespace

void fused_augment_cuda(std::uintptr_t src, std::int64_t s_b, std::int64_t s_c, std::int64_t s_h, std::int64_t s_w,
                        std::uintptr_t sizes, std::int64_t B_src, std::uintptr_t iparams, std::uintptr_t fparams,
                        std::uintptr_t norm, std::uintptr_t out, std::uintptr_t workspace, std::int64_t V,
                        std::int64_t S, int dtype, int device, std::uintptr_t stream) {
  const char* op = "fused_augment (cuda)";
  check_pointer(op, "src", src);
  check_pointer(op, "sizes", sizes);
  check_pointer(op, "iparams", iparams);
  check_pointer(op, "fparams", fparams);
  check_pointer(op, "norm", norm);
  check_pointer(op, "out", out);
  check_pointer(op, "workspace", workspace);
  check_positive(op, "B_src", B_src);
  check_positive(op, "V", V);
  check_positive(op, "S", S);
  check_not_less(op, "s_b", s_b, 0);
  check_not_less(op, "s_c", s_c, 0);
  check_not_less(op, "s_h", s_h, 0);
  check_not_less(op, "s_w", s_w, 0);
  constexpr std::int64_t kMaxSide = 16384;  // the wide-blur kernel keeps 2 S - 1 gaussian taps in shared memory
  if (S > kMaxSide) fail_argument(op, "S must be at most " + std::to_string(kMaxSide) + ", got " + std::to_string(S));
  if (V > 0x7fffffff) fail_argument(op, "V must be below 2^31, got " + std::to_string(V));
  if (dtype != 0 && dtype != 2 && dtype != 3) {
    fail_argument(op, "dtype code must be 0 (float32), 2 (float16) or 3 (bfloat16), got " + std::to_string(dtype));
  }
  cudaStream_t s = enter_device(op, device, stream);

  const Source source{reinterpret_cast<const std::uint8_t*>(src), s_b, s_c, s_h, s_w, B_src,
                      reinterpret_cast<const std::int32_t*>(sizes)};
  const auto* ip = reinterpret_cast<const std::int32_t*>(iparams);
  const auto* fp = reinterpret_cast<const float*>(fparams);
  const auto* nm = reinterpret_cast<const float*>(norm);
  auto* means = reinterpret_cast<std::uint32_t*>(workspace);  // the float32 (V,) scratch holds fixed-point sums
  const int side = static_cast<int>(S);
  const int tiles_x = (side + kTile - 1) / kTile;

  cuda_check(cudaMemsetAsync(means, 0, static_cast<std::size_t>(V) * sizeof(std::uint32_t), s), op,
             "cudaMemsetAsync");
  for (std::int64_t v0 = 0; v0 < V; v0 += kMaxGridY) {
    const dim3 grid(static_cast<unsigned>(tiles_x * tiles_x),
                    static_cast<unsigned>(std::min<std::int64_t>(V - v0, kMaxGridY)));
    contrast_mean_kernel<<<grid, dim3(kThreadsX, kThreadsY), smem_bytes(kTile), s>>>(source, ip, fp, means, v0,
                                                                                     side, tiles_x);
    check_launch(op);
  }
  switch (dtype) {
    case 0: launch_views(op, s, source, ip, fp, nm, means, reinterpret_cast<float*>(out), V, side); break;
    case 2: launch_views(op, s, source, ip, fp, nm, means, reinterpret_cast<__half*>(out), V, side); break;
    default: launch_views(op, s, source, ip, fp, nm, means, reinterpret_cast<__nv_bfloat16*>(out), V, side); break;
  }
}

}  // namespace inv
