#include <cmath>

#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/packed.cuh"
#include "kernels/cuda/reduce.cuh"
#include "kernels/pool.h"

namespace mtl::kernels::cuda {

using namespace pool_detail;

namespace {

// The window arithmetic in the index type I (see dispatch_index): the geometry's sizes as I.
template <typename I>
struct Geom {
  I in_h, in_w, out_h, out_w, k_h, k_w, s_h, s_w, p_h, p_w;
  explicit Geom(const PoolGeom& g)
      : in_h(static_cast<I>(g.in_h)),
        in_w(static_cast<I>(g.in_w)),
        out_h(static_cast<I>(g.out_h)),
        out_w(static_cast<I>(g.out_w)),
        k_h(static_cast<I>(g.k_h)),
        k_w(static_cast<I>(g.k_w)),
        s_h(static_cast<I>(g.s_h)),
        s_w(static_cast<I>(g.s_w)),
        p_h(static_cast<I>(g.p_h)),
        p_w(static_cast<I>(g.p_w)) {}
};

// One thread per output element; i = (plane * out_h + oh) * out_w + ow.
template <typename I, typename T>
__global__ void max_pool_fwd(T* y, int32_t* argmax, const T* x, Geom<I> g, I n) {
  MTL_GRID_LOOP_AS(I, i, n) {
    const I ow = i % g.out_w, oh = (i / g.out_w) % g.out_h, p = i / (g.out_w * g.out_h);
    const T* xp = x + p * g.in_h * g.in_w;
    const I h0 = max(oh * g.s_h - g.p_h, I{0}), h1 = min(oh * g.s_h - g.p_h + g.k_h, g.in_h);
    const I w0 = max(ow * g.s_w - g.p_w, I{0}), w1 = min(ow * g.s_w - g.p_w + g.k_w, g.in_w);
    float best = -INFINITY;
    I best_i = h0 * g.in_w + w0;
    for (I ih = h0; ih < h1; ++ih)
      for (I iw = w0; iw < w1; ++iw) {
        const float v = to_float(xp[ih * g.in_w + iw]);
        if (v > best || isnan(v)) best = v, best_i = ih * g.in_w + iw;
      }
    y[i] = from_float<T>(best);
    if (argmax) argmax[i] = static_cast<int32_t>(best_i);
  }
}

// One thread per input element, summing the windows that chose it in (oh, ow) order.
template <typename I, typename T>
__global__ void max_pool_bwd(T* gx, const T* gy, const int32_t* argmax, Geom<I> g, I n) {
  MTL_GRID_LOOP_AS(I, i, n) {
    const I iw = i % g.in_w, ih = (i / g.in_w) % g.in_h, p = i / (g.in_w * g.in_h);
    I oh0, oh1, ow0, ow1;
    windows_containing(ih, g.k_h, g.s_h, g.p_h, g.out_h, oh0, oh1);
    windows_containing(iw, g.k_w, g.s_w, g.p_w, g.out_w, ow0, ow1);
    const T* gyp = gy + p * g.out_h * g.out_w;
    const int32_t* ap = argmax + p * g.out_h * g.out_w;
    const int32_t self = static_cast<int32_t>(ih * g.in_w + iw);
    float acc = 0.f;
    for (I oh = oh0; oh <= oh1; ++oh)
      for (I ow = ow0; ow <= ow1; ++ow)
        if (ap[oh * g.out_w + ow] == self) acc += to_float(gyp[oh * g.out_w + ow]);
    gx[i] = from_float<T>(acc);
  }
}

template <typename I, typename T>
__global__ void avg_pool_fwd(T* y, const T* x, Geom<I> g, I n) {
  MTL_GRID_LOOP_AS(I, i, n) {
    const I ow = i % g.out_w, oh = (i / g.out_w) % g.out_h, p = i / (g.out_w * g.out_h);
    const T* xp = x + p * g.in_h * g.in_w;
    const I h0 = max(oh * g.s_h - g.p_h, I{0}), h1 = min(oh * g.s_h - g.p_h + g.k_h, g.in_h);
    const I w0 = max(ow * g.s_w - g.p_w, I{0}), w1 = min(ow * g.s_w - g.p_w + g.k_w, g.in_w);
    float acc = 0.f;
    for (I ih = h0; ih < h1; ++ih)
      for (I iw = w0; iw < w1; ++iw) acc += to_float(xp[ih * g.in_w + iw]);
    y[i] = from_float<T>(acc / static_cast<float>(avg_divisor(oh, ow, g)));
  }
}

template <typename I, typename T>
__global__ void avg_pool_bwd(T* gx, const T* gy, Geom<I> g, I n) {
  MTL_GRID_LOOP_AS(I, i, n) {
    const I iw = i % g.in_w, ih = (i / g.in_w) % g.in_h, p = i / (g.in_w * g.in_h);
    I oh0, oh1, ow0, ow1;
    windows_containing(ih, g.k_h, g.s_h, g.p_h, g.out_h, oh0, oh1);
    windows_containing(iw, g.k_w, g.s_w, g.p_w, g.out_w, ow0, ow1);
    const T* gyp = gy + p * g.out_h * g.out_w;
    float acc = 0.f;
    for (I oh = oh0; oh <= oh1; ++oh)
      for (I ow = ow0; ow <= ow1; ++ow)
        acc += to_float(gyp[oh * g.out_w + ow]) / static_cast<float>(avg_divisor(oh, ow, g));
    gx[i] = from_float<T>(acc);
  }
}

// Global average (1x1 output, every SE block): one block per plane, Packed<4> loads when the
// planes are 16-byte aligned, and a fixed-order block reduction.
template <typename T>
__global__ void global_avg_fwd(T* y, const T* x, int64_t hw, bool vec) {
  const T* xp = x + static_cast<int64_t>(blockIdx.x) * hw;
  float acc = 0.f;
  if (vec) {
    for (int64_t j = threadIdx.x; j < hw / 4; j += kThreads) acc += pairwise_sum(load_packed<4>(xp + j * 4));
  } else {
    for (int64_t j = threadIdx.x; j < hw; j += kThreads) acc += to_float(xp[j]);
  }
  acc = block_sum<kThreads>(acc);
  if (threadIdx.x == 0) y[blockIdx.x] = from_float<T>(acc / static_cast<float>(hw));
}

template <typename I, typename T>
__global__ void adaptive_avg_fwd(T* y, const T* x, Geom<I> g, I n) {
  MTL_GRID_LOOP_AS(I, i, n) {
    const I ow = i % g.out_w, oh = (i / g.out_w) % g.out_h, p = i / (g.out_w * g.out_h);
    const T* xp = x + p * g.in_h * g.in_w;
    const I h0 = adaptive_start(oh, g.in_h, g.out_h), h1 = adaptive_end(oh, g.in_h, g.out_h);
    const I w0 = adaptive_start(ow, g.in_w, g.out_w), w1 = adaptive_end(ow, g.in_w, g.out_w);
    float acc = 0.f;
    for (I ih = h0; ih < h1; ++ih)
      for (I iw = w0; iw < w1; ++iw) acc += to_float(xp[ih * g.in_w + iw]);
    y[i] = from_float<T>(acc / static_cast<float>((h1 - h0) * (w1 - w0)));
  }
}

template <typename I, typename T>
__global__ void adaptive_avg_bwd(T* gx, const T* gy, Geom<I> g, I n) {
  MTL_GRID_LOOP_AS(I, i, n) {
    const I iw = i % g.in_w, ih = (i / g.in_w) % g.in_h, p = i / (g.in_w * g.in_h);
    I oh0, oh1, ow0, ow1;
    adaptive_bins_containing(ih, g.in_h, g.out_h, oh0, oh1);
    adaptive_bins_containing(iw, g.in_w, g.out_w, ow0, ow1);
    const T* gyp = gy + p * g.out_h * g.out_w;
    float acc = 0.f;
    for (I oh = oh0; oh <= oh1; ++oh) {
      const I bh = adaptive_end(oh, g.in_h, g.out_h) - adaptive_start(oh, g.in_h, g.out_h);
      for (I ow = ow0; ow <= ow1; ++ow) {
        const I bw = adaptive_end(ow, g.in_w, g.out_w) - adaptive_start(ow, g.in_w, g.out_w);
        acc += to_float(gyp[oh * g.out_w + ow]) / static_cast<float>(bh * bw);
      }
    }
    gx[i] = from_float<T>(acc);
  }
}

int64_t out_count(const PoolGeom& g) { return g.planes * g.out_h * g.out_w; }
int64_t in_count(const PoolGeom& g) { return g.planes * g.in_h * g.in_w; }

// Launches a one-thread-per-element kernel over n elements with the narrowest index type that
// every intermediate allows: the buffers' element counts, and the products of the adaptive bins'
// arithmetic (o * in and i * out along each axis).
template <typename Launch>
void launch_over(const PoolGeom& g, int64_t n, Launch&& launch) {
  const int64_t bins = std::max((g.out_h + 1) * (g.in_h + 1), (g.out_w + 1) * (g.in_w + 1));
  const int64_t reach = std::max({out_count(g), in_count(g), bins});
  dispatch_index(reach, [&](auto idx) {
    using I = decltype(idx);
    launch(Geom<I>(g), static_cast<I>(n));
  });
  MTL_CUDA_LAUNCH_CHECK();
}

}  // namespace

template <typename T>
void max_pool2d(T* y, int32_t* argmax, const T* x, const PoolGeom& g, cudaStream_t s) {
  const int64_t n = out_count(g);
  if (n == 0) return;
  launch_over(g, n, [&](auto gi, auto ni) {
    MTL_LAUNCH(max_pool_fwd, blocks_for(n), kThreads, 0, s, dev(y), argmax, dev(x), gi, ni);
  });
}

template <typename T>
void max_pool2d_backward(T* gx, const T* gy, const int32_t* argmax, const PoolGeom& g, cudaStream_t s) {
  const int64_t n = in_count(g);
  if (n == 0) return;
  launch_over(g, n, [&](auto gi, auto ni) {
    MTL_LAUNCH(max_pool_bwd, blocks_for(n), kThreads, 0, s, dev(gx), dev(gy), argmax, gi, ni);
  });
}

template <typename T>
void avg_pool2d(T* y, const T* x, const PoolGeom& g, cudaStream_t s) {
  const int64_t n = out_count(g);
  if (n == 0) return;
  launch_over(
      g, n, [&](auto gi, auto ni) { MTL_LAUNCH(avg_pool_fwd, blocks_for(n), kThreads, 0, s, dev(y), dev(x), gi, ni); });
}

template <typename T>
void avg_pool2d_backward(T* gx, const T* gy, const PoolGeom& g, cudaStream_t s) {
  const int64_t n = in_count(g);
  if (n == 0) return;
  launch_over(g, n, [&](auto gi, auto ni) {
    MTL_LAUNCH(avg_pool_bwd, blocks_for(n), kThreads, 0, s, dev(gx), dev(gy), gi, ni);
  });
}

template <typename T>
void adaptive_avg_pool2d(T* y, const T* x, const PoolGeom& g, cudaStream_t s) {
  const int64_t n = out_count(g);
  if (n == 0) return;
  if (g.out_h == 1 && g.out_w == 1) {
    const int64_t hw = g.in_h * g.in_w;
    MTL_CHECK(g.planes <= 0x7fffffff, "adaptive_avg_pool2d: too many planes (", g.planes, ")");
    const bool vec = hw % 4 == 0 && aligned16(x);
    MTL_LAUNCH(global_avg_fwd, static_cast<unsigned>(g.planes), kThreads, 0, s, dev(y), dev(x), hw, vec);
    MTL_CUDA_LAUNCH_CHECK();
    return;
  }
  launch_over(g, n, [&](auto gi, auto ni) {
    MTL_LAUNCH(adaptive_avg_fwd, blocks_for(n), kThreads, 0, s, dev(y), dev(x), gi, ni);
  });
}

template <typename T>
void adaptive_avg_pool2d_backward(T* gx, const T* gy, const PoolGeom& g, cudaStream_t s) {
  const int64_t n = in_count(g);
  if (n == 0) return;
  launch_over(g, n, [&](auto gi, auto ni) {
    MTL_LAUNCH(adaptive_avg_bwd, blocks_for(n), kThreads, 0, s, dev(gx), dev(gy), gi, ni);
  });
}

#define MTL_POOL(T)                                                                                  \
  template void max_pool2d<T>(T*, int32_t*, const T*, const PoolGeom&, cudaStream_t);                \
  template void max_pool2d_backward<T>(T*, const T*, const int32_t*, const PoolGeom&, cudaStream_t); \
  template void avg_pool2d<T>(T*, const T*, const PoolGeom&, cudaStream_t);                          \
  template void avg_pool2d_backward<T>(T*, const T*, const PoolGeom&, cudaStream_t);                 \
  template void adaptive_avg_pool2d<T>(T*, const T*, const PoolGeom&, cudaStream_t);                 \
  template void adaptive_avg_pool2d_backward<T>(T*, const T*, const PoolGeom&, cudaStream_t);
MTL_POOL(float)
MTL_POOL(bf16)
#undef MTL_POOL

}  // namespace mtl::kernels::cuda
