#include "kernels/cuda/launch.cuh"
#include "kernels/resize.h"

namespace mtl::kernels::cuda {

using namespace resize_detail;

namespace {

// One thread per output element; i = (plane * out_h + oh) * out_w + ow.
__global__ void nearest_fwd(float* y, const float* x, ResizeGeom g, float sc_h, float sc_w, int64_t n) {
  MTL_GRID_LOOP(i, n) {
    const int64_t ow = i % g.out_w, oh = (i / g.out_w) % g.out_h, p = i / (g.out_w * g.out_h);
    const int64_t ih = nearest_src(oh, sc_h, g.in_h), iw = nearest_src(ow, sc_w, g.in_w);
    y[i] = x[(p * g.in_h + ih) * g.in_w + iw];
  }
}

// One thread per input element, summing the outputs that copied it in (oh, ow) order.
__global__ void nearest_bwd(float* gx, const float* gy, ResizeGeom g, float sc_h, float sc_w, int64_t n) {
  MTL_GRID_LOOP(i, n) {
    const int64_t iw = i % g.in_w, ih = (i / g.in_w) % g.in_h, p = i / (g.in_w * g.in_h);
    const int64_t oh0 = nearest_first_reading(ih, sc_h, g.in_h, g.out_h);
    const int64_t oh1 = nearest_first_reading(ih + 1, sc_h, g.in_h, g.out_h);
    const int64_t ow0 = nearest_first_reading(iw, sc_w, g.in_w, g.out_w);
    const int64_t ow1 = nearest_first_reading(iw + 1, sc_w, g.in_w, g.out_w);
    const float* gyp = gy + p * g.out_h * g.out_w;
    float acc = 0.f;
    for (int64_t oh = oh0; oh < oh1; ++oh)
      for (int64_t ow = ow0; ow < ow1; ++ow) acc += gyp[oh * g.out_w + ow];
    gx[i] = acc;
  }
}

__global__ void bilinear_fwd(float* y, const float* x, ResizeGeom g, float sc_h, float sc_w, int64_t n) {
  MTL_GRID_LOOP(i, n) {
    const int64_t ow = i % g.out_w, oh = (i / g.out_w) % g.out_h, p = i / (g.out_w * g.out_h);
    const LinearTap<float> h = linear_tap(oh, sc_h, g.in_h), w = linear_tap(ow, sc_w, g.in_w);
    const float* r0 = x + (p * g.in_h + h.i0) * g.in_w;
    const float* r1 = x + (p * g.in_h + h.i1) * g.in_w;
    y[i] = h.l0 * (w.l0 * r0[w.i0] + w.l1 * r0[w.i1]) + h.l1 * (w.l0 * r1[w.i0] + w.l1 * r1[w.i1]);
  }
}

// Outputs whose first tap is ih - 1 or ih are the only ones that can read ih.
__global__ void bilinear_bwd(float* gx, const float* gy, ResizeGeom g, float sc_h, float sc_w, int64_t n) {
  MTL_GRID_LOOP(i, n) {
    const int64_t iw = i % g.in_w, ih = (i / g.in_w) % g.in_h, p = i / (g.in_w * g.in_h);
    const int64_t oh0 = linear_first_reading(ih - 1, sc_h, g.in_h, g.out_h);
    const int64_t oh1 = linear_first_reading(ih + 1, sc_h, g.in_h, g.out_h);
    const int64_t ow0 = linear_first_reading(iw - 1, sc_w, g.in_w, g.out_w);
    const int64_t ow1 = linear_first_reading(iw + 1, sc_w, g.in_w, g.out_w);
    const float* gyp = gy + p * g.out_h * g.out_w;
    float acc = 0.f;
    for (int64_t oh = oh0; oh < oh1; ++oh) {
      const float wh = linear_weight(linear_tap(oh, sc_h, g.in_h), ih);
      float row = 0.f;
      for (int64_t ow = ow0; ow < ow1; ++ow)
        row += linear_weight(linear_tap(ow, sc_w, g.in_w), iw) * gyp[oh * g.out_w + ow];
      acc += wh * row;
    }
    gx[i] = acc;
  }
}

int64_t out_count(const ResizeGeom& g) { return g.planes * g.out_h * g.out_w; }
int64_t in_count(const ResizeGeom& g) { return g.planes * g.in_h * g.in_w; }

}  // namespace

void resize_nearest(float* y, const float* x, const ResizeGeom& g, cudaStream_t s) {
  const int64_t n = out_count(g);
  if (n == 0) return;
  MTL_LAUNCH(nearest_fwd, blocks_for(n), kThreads, 0, s, y, x, g, scale_of<float>(g.in_h, g.out_h),
             scale_of<float>(g.in_w, g.out_w), n);
  MTL_CUDA_LAUNCH_CHECK();
}

void resize_nearest_backward(float* gx, const float* gy, const ResizeGeom& g, cudaStream_t s) {
  const int64_t n = in_count(g);
  if (n == 0) return;
  MTL_LAUNCH(nearest_bwd, blocks_for(n), kThreads, 0, s, gx, gy, g, scale_of<float>(g.in_h, g.out_h),
             scale_of<float>(g.in_w, g.out_w), n);
  MTL_CUDA_LAUNCH_CHECK();
}

void resize_bilinear(float* y, const float* x, const ResizeGeom& g, cudaStream_t s) {
  const int64_t n = out_count(g);
  if (n == 0) return;
  MTL_LAUNCH(bilinear_fwd, blocks_for(n), kThreads, 0, s, y, x, g, scale_of<float>(g.in_h, g.out_h),
             scale_of<float>(g.in_w, g.out_w), n);
  MTL_CUDA_LAUNCH_CHECK();
}

void resize_bilinear_backward(float* gx, const float* gy, const ResizeGeom& g, cudaStream_t s) {
  const int64_t n = in_count(g);
  if (n == 0) return;
  MTL_LAUNCH(bilinear_bwd, blocks_for(n), kThreads, 0, s, gx, gy, g, scale_of<float>(g.in_h, g.out_h),
             scale_of<float>(g.in_w, g.out_w), n);
  MTL_CUDA_LAUNCH_CHECK();
}

}  // namespace mtl::kernels::cuda
