#include <algorithm>

#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/packed.cuh"
#include "kernels/resize.h"

namespace mtl::kernels::cuda {

using namespace resize_detail;

namespace {

// The geometry in the index type I (see dispatch_index).
template <typename I>
struct Geom {
  I in_h, in_w, out_h, out_w;
  float sc_h, sc_w;
  explicit Geom(const ResizeGeom& g)
      : in_h(static_cast<I>(g.in_h)),
        in_w(static_cast<I>(g.in_w)),
        out_h(static_cast<I>(g.out_h)),
        out_w(static_cast<I>(g.out_w)),
        sc_h(scale_of<float>(g.in_h, g.out_h)),
        sc_w(scale_of<float>(g.in_w, g.out_w)) {}
};

// One thread per output element; i = (plane * out_h + oh) * out_w + ow.
template <typename I, typename T>
__global__ void nearest_fwd(T* y, const T* x, Geom<I> g, I n) {
  MTL_GRID_LOOP_AS(I, i, n) {
    const I ow = i % g.out_w, oh = (i / g.out_w) % g.out_h, p = i / (g.out_w * g.out_h);
    const I ih = nearest_src(oh, g.sc_h, g.in_h), iw = nearest_src(ow, g.sc_w, g.in_w);
    y[i] = x[(p * g.in_h + ih) * g.in_w + iw];
  }
}

// One thread per input element, summing the outputs that copied it in (oh, ow) order.
template <typename I, typename T>
__global__ void nearest_bwd(T* gx, const T* gy, Geom<I> g, I n) {
  MTL_GRID_LOOP_AS(I, i, n) {
    const I iw = i % g.in_w, ih = (i / g.in_w) % g.in_h, p = i / (g.in_w * g.in_h);
    const I oh0 = nearest_first_reading(ih, g.sc_h, g.in_h, g.out_h);
    const I oh1 = nearest_first_reading(static_cast<I>(ih + 1), g.sc_h, g.in_h, g.out_h);
    const I ow0 = nearest_first_reading(iw, g.sc_w, g.in_w, g.out_w);
    const I ow1 = nearest_first_reading(static_cast<I>(iw + 1), g.sc_w, g.in_w, g.out_w);
    const T* gyp = gy + p * g.out_h * g.out_w;
    float acc = 0.f;
    for (I oh = oh0; oh < oh1; ++oh)
      for (I ow = ow0; ow < ow1; ++ow) acc += to_float(gyp[oh * g.out_w + ow]);
    gx[i] = from_float<T>(acc);
  }
}

template <typename I, typename T>
__global__ void bilinear_fwd(T* y, const T* x, Geom<I> g, I n) {
  MTL_GRID_LOOP_AS(I, i, n) {
    const I ow = i % g.out_w, oh = (i / g.out_w) % g.out_h, p = i / (g.out_w * g.out_h);
    const LinearTap<float, I> h = linear_tap(oh, g.sc_h, g.in_h), w = linear_tap(ow, g.sc_w, g.in_w);
    const T* r0 = x + (p * g.in_h + h.i0) * g.in_w;
    const T* r1 = x + (p * g.in_h + h.i1) * g.in_w;
    y[i] = from_float<T>(h.l0 * (w.l0 * to_float(r0[w.i0]) + w.l1 * to_float(r0[w.i1])) +
                         h.l1 * (w.l0 * to_float(r1[w.i0]) + w.l1 * to_float(r1[w.i1])));
  }
}

// Outputs whose first tap is ih - 1 or ih are the only ones that can read ih.
template <typename I, typename T>
__global__ void bilinear_bwd(T* gx, const T* gy, Geom<I> g, I n) {
  MTL_GRID_LOOP_AS(I, i, n) {
    const I iw = i % g.in_w, ih = (i / g.in_w) % g.in_h, p = i / (g.in_w * g.in_h);
    const I oh0 = linear_first_reading(static_cast<I>(ih - 1), g.sc_h, g.in_h, g.out_h);
    const I oh1 = linear_first_reading(static_cast<I>(ih + 1), g.sc_h, g.in_h, g.out_h);
    const I ow0 = linear_first_reading(static_cast<I>(iw - 1), g.sc_w, g.in_w, g.out_w);
    const I ow1 = linear_first_reading(static_cast<I>(iw + 1), g.sc_w, g.in_w, g.out_w);
    const T* gyp = gy + p * g.out_h * g.out_w;
    float acc = 0.f;
    for (I oh = oh0; oh < oh1; ++oh) {
      const float wh = linear_weight(linear_tap(oh, g.sc_h, g.in_h), ih);
      float row = 0.f;
      for (I ow = ow0; ow < ow1; ++ow)
        row += linear_weight(linear_tap(ow, g.sc_w, g.in_w), iw) * to_float(gyp[oh * g.out_w + ow]);
      acc += wh * row;
    }
    gx[i] = from_float<T>(acc);
  }
}

// Launches over n elements with the narrowest index type both buffers' element counts allow.
template <typename Launch>
void launch_over(const ResizeGeom& g, int64_t n, Launch&& launch) {
  dispatch_index(std::max(g.planes * g.in_h * g.in_w, g.planes * g.out_h * g.out_w), [&](auto idx) {
    using I = decltype(idx);
    launch(Geom<I>(g), static_cast<I>(n));
  });
  MTL_CUDA_LAUNCH_CHECK();
}

}  // namespace

template <typename T>
void resize_nearest(T* y, const T* x, const ResizeGeom& g, cudaStream_t s) {
  const int64_t n = g.planes * g.out_h * g.out_w;
  if (n == 0) return;
  launch_over(
      g, n, [&](auto gi, auto ni) { MTL_LAUNCH(nearest_fwd, blocks_for(n), kThreads, 0, s, dev(y), dev(x), gi, ni); });
}

template <typename T>
void resize_nearest_backward(T* gx, const T* gy, const ResizeGeom& g, cudaStream_t s) {
  const int64_t n = g.planes * g.in_h * g.in_w;
  if (n == 0) return;
  launch_over(g, n, [&](auto gi, auto ni) {
    MTL_LAUNCH(nearest_bwd, blocks_for(n), kThreads, 0, s, dev(gx), dev(gy), gi, ni);
  });
}

template <typename T>
void resize_bilinear(T* y, const T* x, const ResizeGeom& g, cudaStream_t s) {
  const int64_t n = g.planes * g.out_h * g.out_w;
  if (n == 0) return;
  launch_over(
      g, n, [&](auto gi, auto ni) { MTL_LAUNCH(bilinear_fwd, blocks_for(n), kThreads, 0, s, dev(y), dev(x), gi, ni); });
}

template <typename T>
void resize_bilinear_backward(T* gx, const T* gy, const ResizeGeom& g, cudaStream_t s) {
  const int64_t n = g.planes * g.in_h * g.in_w;
  if (n == 0) return;
  launch_over(g, n, [&](auto gi, auto ni) {
    MTL_LAUNCH(bilinear_bwd, blocks_for(n), kThreads, 0, s, dev(gx), dev(gy), gi, ni);
  });
}

#define MTL_RESIZE(T)                                                                      \
  template void resize_nearest<T>(T*, const T*, const ResizeGeom&, cudaStream_t);          \
  template void resize_nearest_backward<T>(T*, const T*, const ResizeGeom&, cudaStream_t); \
  template void resize_bilinear<T>(T*, const T*, const ResizeGeom&, cudaStream_t);         \
  template void resize_bilinear_backward<T>(T*, const T*, const ResizeGeom&, cudaStream_t);
MTL_RESIZE(float)
MTL_RESIZE(bf16)
#undef MTL_RESIZE

}  // namespace mtl::kernels::cuda
