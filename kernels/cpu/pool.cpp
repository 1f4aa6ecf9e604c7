#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/pool.h"

namespace mtl::kernels::cpu {

using namespace pool_detail;

namespace {
// Parallel over planes: every plane is independent and written by one thread.
inline bool worth_threads(const PoolGeom& g) { return g.planes * g.in_h * g.in_w > 32768; }
}  // namespace

template <typename T>
void max_pool2d(T* y, int32_t* argmax, const T* x, const PoolGeom& g) {
#pragma omp parallel for schedule(static) if (worth_threads(g))
  for (int64_t p = 0; p < g.planes; ++p) {
    const T* xp = x + p * g.in_h * g.in_w;
    for (int64_t oh = 0; oh < g.out_h; ++oh) {
      const int64_t h0 = std::max<int64_t>(oh * g.s_h - g.p_h, 0);
      const int64_t h1 = std::min(oh * g.s_h - g.p_h + g.k_h, g.in_h);
      for (int64_t ow = 0; ow < g.out_w; ++ow) {
        const int64_t w0 = std::max<int64_t>(ow * g.s_w - g.p_w, 0);
        const int64_t w1 = std::min(ow * g.s_w - g.p_w + g.k_w, g.in_w);
        T best = -std::numeric_limits<T>::infinity();
        int64_t best_i = h0 * g.in_w + w0;
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) {
            const T v = xp[ih * g.in_w + iw];
            if (v > best || std::isnan(v)) best = v, best_i = ih * g.in_w + iw;
          }
        const int64_t o = (p * g.out_h + oh) * g.out_w + ow;
        y[o] = best;
        if (argmax) argmax[o] = static_cast<int32_t>(best_i);
      }
    }
  }
}

template <typename T>
void max_pool2d_backward(T* gx, const T* gy, const int32_t* argmax, const PoolGeom& g) {
#pragma omp parallel for schedule(static) if (worth_threads(g))
  for (int64_t p = 0; p < g.planes; ++p) {
    const T* gyp = gy + p * g.out_h * g.out_w;
    const int32_t* ap = argmax + p * g.out_h * g.out_w;
    for (int64_t ih = 0; ih < g.in_h; ++ih) {
      int64_t oh0, oh1;
      windows_containing(ih, g.k_h, g.s_h, g.p_h, g.out_h, oh0, oh1);
      for (int64_t iw = 0; iw < g.in_w; ++iw) {
        int64_t ow0, ow1;
        windows_containing(iw, g.k_w, g.s_w, g.p_w, g.out_w, ow0, ow1);
        const int32_t self = static_cast<int32_t>(ih * g.in_w + iw);
        double acc = 0;
        for (int64_t oh = oh0; oh <= oh1; ++oh)
          for (int64_t ow = ow0; ow <= ow1; ++ow)
            if (ap[oh * g.out_w + ow] == self) acc += gyp[oh * g.out_w + ow];
        gx[(p * g.in_h + ih) * g.in_w + iw] = static_cast<T>(acc);
      }
    }
  }
}

template <typename T>
void avg_pool2d(T* y, const T* x, const PoolGeom& g) {
#pragma omp parallel for schedule(static) if (worth_threads(g))
  for (int64_t p = 0; p < g.planes; ++p) {
    const T* xp = x + p * g.in_h * g.in_w;
    for (int64_t oh = 0; oh < g.out_h; ++oh) {
      const int64_t h0 = std::max<int64_t>(oh * g.s_h - g.p_h, 0);
      const int64_t h1 = std::min(oh * g.s_h - g.p_h + g.k_h, g.in_h);
      for (int64_t ow = 0; ow < g.out_w; ++ow) {
        const int64_t w0 = std::max<int64_t>(ow * g.s_w - g.p_w, 0);
        const int64_t w1 = std::min(ow * g.s_w - g.p_w + g.k_w, g.in_w);
        double acc = 0;
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) acc += xp[ih * g.in_w + iw];
        y[(p * g.out_h + oh) * g.out_w + ow] = static_cast<T>(acc / static_cast<double>(avg_divisor(oh, ow, g)));
      }
    }
  }
}

template <typename T>
void avg_pool2d_backward(T* gx, const T* gy, const PoolGeom& g) {
#pragma omp parallel for schedule(static) if (worth_threads(g))
  for (int64_t p = 0; p < g.planes; ++p) {
    const T* gyp = gy + p * g.out_h * g.out_w;
    for (int64_t ih = 0; ih < g.in_h; ++ih) {
      int64_t oh0, oh1;
      windows_containing(ih, g.k_h, g.s_h, g.p_h, g.out_h, oh0, oh1);
      for (int64_t iw = 0; iw < g.in_w; ++iw) {
        int64_t ow0, ow1;
        windows_containing(iw, g.k_w, g.s_w, g.p_w, g.out_w, ow0, ow1);
        double acc = 0;
        for (int64_t oh = oh0; oh <= oh1; ++oh)
          for (int64_t ow = ow0; ow <= ow1; ++ow)
            acc += static_cast<double>(gyp[oh * g.out_w + ow]) / static_cast<double>(avg_divisor(oh, ow, g));
        gx[(p * g.in_h + ih) * g.in_w + iw] = static_cast<T>(acc);
      }
    }
  }
}

template <typename T>
void adaptive_avg_pool2d(T* y, const T* x, const PoolGeom& g) {
#pragma omp parallel for schedule(static) if (worth_threads(g))
  for (int64_t p = 0; p < g.planes; ++p) {
    const T* xp = x + p * g.in_h * g.in_w;
    for (int64_t oh = 0; oh < g.out_h; ++oh) {
      const int64_t h0 = adaptive_start(oh, g.in_h, g.out_h), h1 = adaptive_end(oh, g.in_h, g.out_h);
      for (int64_t ow = 0; ow < g.out_w; ++ow) {
        const int64_t w0 = adaptive_start(ow, g.in_w, g.out_w), w1 = adaptive_end(ow, g.in_w, g.out_w);
        double acc = 0;
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) acc += xp[ih * g.in_w + iw];
        y[(p * g.out_h + oh) * g.out_w + ow] = static_cast<T>(acc / static_cast<double>((h1 - h0) * (w1 - w0)));
      }
    }
  }
}

template <typename T>
void adaptive_avg_pool2d_backward(T* gx, const T* gy, const PoolGeom& g) {
#pragma omp parallel for schedule(static) if (worth_threads(g))
  for (int64_t p = 0; p < g.planes; ++p) {
    const T* gyp = gy + p * g.out_h * g.out_w;
    for (int64_t ih = 0; ih < g.in_h; ++ih) {
      int64_t oh0, oh1;
      adaptive_bins_containing(ih, g.in_h, g.out_h, oh0, oh1);
      for (int64_t iw = 0; iw < g.in_w; ++iw) {
        int64_t ow0, ow1;
        adaptive_bins_containing(iw, g.in_w, g.out_w, ow0, ow1);
        double acc = 0;
        for (int64_t oh = oh0; oh <= oh1; ++oh) {
          const int64_t bh = adaptive_end(oh, g.in_h, g.out_h) - adaptive_start(oh, g.in_h, g.out_h);
          for (int64_t ow = ow0; ow <= ow1; ++ow) {
            const int64_t bw = adaptive_end(ow, g.in_w, g.out_w) - adaptive_start(ow, g.in_w, g.out_w);
            acc += static_cast<double>(gyp[oh * g.out_w + ow]) / static_cast<double>(bh * bw);
          }
        }
        gx[(p * g.in_h + ih) * g.in_w + iw] = static_cast<T>(acc);
      }
    }
  }
}

#define MTL_INSTANTIATE(T)                                                                     \
  template void max_pool2d<T>(T*, int32_t*, const T*, const PoolGeom&);                        \
  template void max_pool2d_backward<T>(T*, const T*, const int32_t*, const PoolGeom&);          \
  template void avg_pool2d<T>(T*, const T*, const PoolGeom&);                                   \
  template void avg_pool2d_backward<T>(T*, const T*, const PoolGeom&);                          \
  template void adaptive_avg_pool2d<T>(T*, const T*, const PoolGeom&);                          \
  template void adaptive_avg_pool2d_backward<T>(T*, const T*, const PoolGeom&);
MTL_INSTANTIATE(float)
MTL_INSTANTIATE(double)
#undef MTL_INSTANTIATE

}  // namespace mtl::kernels::cpu
