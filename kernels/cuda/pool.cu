#include <cmath>

#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/reduce.cuh"
#include "kernels/pool.h"

namespace mtl::kernels::cuda {

using namespace pool_detail;

namespace {

// One thread per output element; i = (plane * out_h + oh) * out_w + ow.
__global__ void max_pool_fwd(float* y, int32_t* argmax, const float* x, PoolGeom g, int64_t n) {
  MTL_GRID_LOOP(i, n) {
    const int64_t ow = i % g.out_w, oh = (i / g.out_w) % g.out_h, p = i / (g.out_w * g.out_h);
    const float* xp = x + p * g.in_h * g.in_w;
    const int64_t h0 = max(oh * g.s_h - g.p_h, int64_t{0}), h1 = min(oh * g.s_h - g.p_h + g.k_h, g.in_h);
    const int64_t w0 = max(ow * g.s_w - g.p_w, int64_t{0}), w1 = min(ow * g.s_w - g.p_w + g.k_w, g.in_w);
    float best = -INFINITY;
    int64_t best_i = h0 * g.in_w + w0;
    for (int64_t ih = h0; ih < h1; ++ih)
      for (int64_t iw = w0; iw < w1; ++iw) {
        const float v = xp[ih * g.in_w + iw];
        if (v > best || isnan(v)) best = v, best_i = ih * g.in_w + iw;
      }
    y[i] = best;
    if (argmax) argmax[i] = static_cast<int32_t>(best_i);
  }
}

// One thread per input element, summing the windows that chose it in (oh, ow) order.
__global__ void max_pool_bwd(float* gx, const float* gy, const int32_t* argmax, PoolGeom g, int64_t n) {
  MTL_GRID_LOOP(i, n) {
    const int64_t iw = i % g.in_w, ih = (i / g.in_w) % g.in_h, p = i / (g.in_w * g.in_h);
    int64_t oh0, oh1, ow0, ow1;
    windows_containing(ih, g.k_h, g.s_h, g.p_h, g.out_h, oh0, oh1);
    windows_containing(iw, g.k_w, g.s_w, g.p_w, g.out_w, ow0, ow1);
    const float* gyp = gy + p * g.out_h * g.out_w;
    const int32_t* ap = argmax + p * g.out_h * g.out_w;
    const int32_t self = static_cast<int32_t>(ih * g.in_w + iw);
    float acc = 0.f;
    for (int64_t oh = oh0; oh <= oh1; ++oh)
      for (int64_t ow = ow0; ow <= ow1; ++ow)
        if (ap[oh * g.out_w + ow] == self) acc += gyp[oh * g.out_w + ow];
    gx[i] = acc;
  }
}

__global__ void avg_pool_fwd(float* y, const float* x, PoolGeom g, int64_t n) {
  MTL_GRID_LOOP(i, n) {
    const int64_t ow = i % g.out_w, oh = (i / g.out_w) % g.out_h, p = i / (g.out_w * g.out_h);
    const float* xp = x + p * g.in_h * g.in_w;
    const int64_t h0 = max(oh * g.s_h - g.p_h, int64_t{0}), h1 = min(oh * g.s_h - g.p_h + g.k_h, g.in_h);
    const int64_t w0 = max(ow * g.s_w - g.p_w, int64_t{0}), w1 = min(ow * g.s_w - g.p_w + g.k_w, g.in_w);
    float acc = 0.f;
    for (int64_t ih = h0; ih < h1; ++ih)
      for (int64_t iw = w0; iw < w1; ++iw) acc += xp[ih * g.in_w + iw];
    y[i] = acc / static_cast<float>(avg_divisor(oh, ow, g));
  }
}

__global__ void avg_pool_bwd(float* gx, const float* gy, PoolGeom g, int64_t n) {
  MTL_GRID_LOOP(i, n) {
    const int64_t iw = i % g.in_w, ih = (i / g.in_w) % g.in_h, p = i / (g.in_w * g.in_h);
    int64_t oh0, oh1, ow0, ow1;
    windows_containing(ih, g.k_h, g.s_h, g.p_h, g.out_h, oh0, oh1);
    windows_containing(iw, g.k_w, g.s_w, g.p_w, g.out_w, ow0, ow1);
    const float* gyp = gy + p * g.out_h * g.out_w;
    float acc = 0.f;
    for (int64_t oh = oh0; oh <= oh1; ++oh)
      for (int64_t ow = ow0; ow <= ow1; ++ow)
        acc += gyp[oh * g.out_w + ow] / static_cast<float>(avg_divisor(oh, ow, g));
    gx[i] = acc;
  }
}

// Global average (1x1 output, every SE block): one block per plane, float4 loads when the planes
// are 16-byte aligned, and a fixed-order block reduction.
__global__ void global_avg_fwd(float* y, const float* x, int64_t hw, bool vec) {
  const float* xp = x + static_cast<int64_t>(blockIdx.x) * hw;
  float acc = 0.f;
  if (vec) {
    const float4* x4 = reinterpret_cast<const float4*>(xp);
    for (int64_t j = threadIdx.x; j < hw / 4; j += kThreads) {
      const float4 v = x4[j];
      acc += (v.x + v.y) + (v.z + v.w);
    }
  } else {
    for (int64_t j = threadIdx.x; j < hw; j += kThreads) acc += xp[j];
  }
  acc = block_sum<kThreads>(acc);
  if (threadIdx.x == 0) y[blockIdx.x] = acc / static_cast<float>(hw);
}

__global__ void adaptive_avg_fwd(float* y, const float* x, PoolGeom g, int64_t n) {
  MTL_GRID_LOOP(i, n) {
    const int64_t ow = i % g.out_w, oh = (i / g.out_w) % g.out_h, p = i / (g.out_w * g.out_h);
    const float* xp = x + p * g.in_h * g.in_w;
    const int64_t h0 = adaptive_start(oh, g.in_h, g.out_h), h1 = adaptive_end(oh, g.in_h, g.out_h);
    const int64_t w0 = adaptive_start(ow, g.in_w, g.out_w), w1 = adaptive_end(ow, g.in_w, g.out_w);
    float acc = 0.f;
    for (int64_t ih = h0; ih < h1; ++ih)
      for (int64_t iw = w0; iw < w1; ++iw) acc += xp[ih * g.in_w + iw];
    y[i] = acc / static_cast<float>((h1 - h0) * (w1 - w0));
  }
}

__global__ void adaptive_avg_bwd(float* gx, const float* gy, PoolGeom g, int64_t n) {
  MTL_GRID_LOOP(i, n) {
    const int64_t iw = i % g.in_w, ih = (i / g.in_w) % g.in_h, p = i / (g.in_w * g.in_h);
    int64_t oh0, oh1, ow0, ow1;
    adaptive_bins_containing(ih, g.in_h, g.out_h, oh0, oh1);
    adaptive_bins_containing(iw, g.in_w, g.out_w, ow0, ow1);
    const float* gyp = gy + p * g.out_h * g.out_w;
    float acc = 0.f;
    for (int64_t oh = oh0; oh <= oh1; ++oh) {
      const int64_t bh = adaptive_end(oh, g.in_h, g.out_h) - adaptive_start(oh, g.in_h, g.out_h);
      for (int64_t ow = ow0; ow <= ow1; ++ow) {
        const int64_t bw = adaptive_end(ow, g.in_w, g.out_w) - adaptive_start(ow, g.in_w, g.out_w);
        acc += gyp[oh * g.out_w + ow] / static_cast<float>(bh * bw);
      }
    }
    gx[i] = acc;
  }
}

int64_t out_count(const PoolGeom& g) { return g.planes * g.out_h * g.out_w; }
int64_t in_count(const PoolGeom& g) { return g.planes * g.in_h * g.in_w; }

}  // namespace

void max_pool2d(float* y, int32_t* argmax, const float* x, const PoolGeom& g, cudaStream_t s) {
  const int64_t n = out_count(g);
  if (n == 0) return;
  MTL_LAUNCH(max_pool_fwd, blocks_for(n), kThreads, 0, s, y, argmax, x, g, n);
  MTL_CUDA_LAUNCH_CHECK();
}

void max_pool2d_backward(float* gx, const float* gy, const int32_t* argmax, const PoolGeom& g, cudaStream_t s) {
  const int64_t n = in_count(g);
  if (n == 0) return;
  MTL_LAUNCH(max_pool_bwd, blocks_for(n), kThreads, 0, s, gx, gy, argmax, g, n);
  MTL_CUDA_LAUNCH_CHECK();
}

void avg_pool2d(float* y, const float* x, const PoolGeom& g, cudaStream_t s) {
  const int64_t n = out_count(g);
  if (n == 0) return;
  MTL_LAUNCH(avg_pool_fwd, blocks_for(n), kThreads, 0, s, y, x, g, n);
  MTL_CUDA_LAUNCH_CHECK();
}

void avg_pool2d_backward(float* gx, const float* gy, const PoolGeom& g, cudaStream_t s) {
  const int64_t n = in_count(g);
  if (n == 0) return;
  MTL_LAUNCH(avg_pool_bwd, blocks_for(n), kThreads, 0, s, gx, gy, g, n);
  MTL_CUDA_LAUNCH_CHECK();
}

void adaptive_avg_pool2d(float* y, const float* x, const PoolGeom& g, cudaStream_t s) {
  const int64_t n = out_count(g);
  if (n == 0) return;
  if (g.out_h == 1 && g.out_w == 1) {
    const int64_t hw = g.in_h * g.in_w;
    MTL_CHECK(g.planes <= 0x7fffffff, "adaptive_avg_pool2d: too many planes (", g.planes, ")");
    const bool vec = hw % 4 == 0 && aligned16(x);
    MTL_LAUNCH(global_avg_fwd, static_cast<unsigned>(g.planes), kThreads, 0, s, y, x, hw, vec);
  } else {
    MTL_LAUNCH(adaptive_avg_fwd, blocks_for(n), kThreads, 0, s, y, x, g, n);
  }
  MTL_CUDA_LAUNCH_CHECK();
}

void adaptive_avg_pool2d_backward(float* gx, const float* gy, const PoolGeom& g, cudaStream_t s) {
  const int64_t n = in_count(g);
  if (n == 0) return;
  MTL_LAUNCH(adaptive_avg_bwd, blocks_for(n), kThreads, 0, s, gx, gy, g, n);
  MTL_CUDA_LAUNCH_CHECK();
}

}  // namespace mtl::kernels::cuda
