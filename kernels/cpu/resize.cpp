#include <vector>

#include "kernels/resize.h"

namespace mtl::kernels::cpu {

using namespace resize_detail;

namespace {
inline bool worth_threads(const ResizeGeom& g) {
  return g.planes * (g.in_h * g.in_w + g.out_h * g.out_w) > 32768;
}

// Per-axis tables, computed once per call: the arithmetic is the shared MTL_HD definition.
std::vector<int64_t> nearest_table(int64_t in, int64_t out) {
  std::vector<int64_t> t(static_cast<size_t>(out));
  const float scale = scale_of<float>(in, out);
  for (int64_t o = 0; o < out; ++o) t[o] = nearest_src(o, scale, in);
  return t;
}

// Output range [first[i], first[i + 1]) reads input i.
std::vector<int64_t> nearest_ranges(int64_t in, int64_t out) {
  std::vector<int64_t> r(static_cast<size_t>(in + 1));
  const float scale = scale_of<float>(in, out);
  for (int64_t i = 0; i <= in; ++i) r[i] = nearest_first_reading(i, scale, in, out);
  return r;
}

template <typename A>
std::vector<LinearTap<A>> linear_table(int64_t in, int64_t out) {
  std::vector<LinearTap<A>> t(static_cast<size_t>(out));
  const A scale = scale_of<A>(in, out);
  for (int64_t o = 0; o < out; ++o) t[o] = linear_tap(o, scale, in);
  return t;
}

// Outputs in [lo[i], hi[i]) may read input i (their first tap is i - 1 or i).
template <typename A>
void linear_ranges(int64_t in, int64_t out, std::vector<int64_t>& lo, std::vector<int64_t>& hi) {
  lo.resize(static_cast<size_t>(in));
  hi.resize(static_cast<size_t>(in));
  const A scale = scale_of<A>(in, out);
  for (int64_t i = 0; i < in; ++i) {
    lo[i] = linear_first_reading(i - 1, scale, in, out);
    hi[i] = linear_first_reading(i + 1, scale, in, out);
  }
}
}  // namespace

template <typename T>
void resize_nearest(T* y, const T* x, const ResizeGeom& g) {
  const std::vector<int64_t> sh = nearest_table(g.in_h, g.out_h), sw = nearest_table(g.in_w, g.out_w);
#pragma omp parallel for schedule(static) if (worth_threads(g))
  for (int64_t p = 0; p < g.planes; ++p) {
    const T* xp = x + p * g.in_h * g.in_w;
    T* yp = y + p * g.out_h * g.out_w;
    for (int64_t oh = 0; oh < g.out_h; ++oh)
      for (int64_t ow = 0; ow < g.out_w; ++ow) yp[oh * g.out_w + ow] = xp[sh[oh] * g.in_w + sw[ow]];
  }
}

template <typename T>
void resize_nearest_backward(T* gx, const T* gy, const ResizeGeom& g) {
  const std::vector<int64_t> rh = nearest_ranges(g.in_h, g.out_h), rw = nearest_ranges(g.in_w, g.out_w);
#pragma omp parallel for schedule(static) if (worth_threads(g))
  for (int64_t p = 0; p < g.planes; ++p) {
    const T* gyp = gy + p * g.out_h * g.out_w;
    T* gxp = gx + p * g.in_h * g.in_w;
    for (int64_t ih = 0; ih < g.in_h; ++ih)
      for (int64_t iw = 0; iw < g.in_w; ++iw) {
        double acc = 0;
        for (int64_t oh = rh[ih]; oh < rh[ih + 1]; ++oh)
          for (int64_t ow = rw[iw]; ow < rw[iw + 1]; ++ow) acc += gyp[oh * g.out_w + ow];
        gxp[ih * g.in_w + iw] = static_cast<T>(acc);
      }
  }
}

template <typename T>
void resize_bilinear(T* y, const T* x, const ResizeGeom& g) {
  const auto th = linear_table<T>(g.in_h, g.out_h);
  const auto tw = linear_table<T>(g.in_w, g.out_w);
#pragma omp parallel for schedule(static) if (worth_threads(g))
  for (int64_t p = 0; p < g.planes; ++p) {
    const T* xp = x + p * g.in_h * g.in_w;
    T* yp = y + p * g.out_h * g.out_w;
    for (int64_t oh = 0; oh < g.out_h; ++oh) {
      const LinearTap<T>& h = th[oh];
      const T* r0 = xp + h.i0 * g.in_w;
      const T* r1 = xp + h.i1 * g.in_w;
      for (int64_t ow = 0; ow < g.out_w; ++ow) {
        const LinearTap<T>& w = tw[ow];
        yp[oh * g.out_w + ow] =
            h.l0 * (w.l0 * r0[w.i0] + w.l1 * r0[w.i1]) + h.l1 * (w.l0 * r1[w.i0] + w.l1 * r1[w.i1]);
      }
    }
  }
}

template <typename T>
void resize_bilinear_backward(T* gx, const T* gy, const ResizeGeom& g) {
  const auto th = linear_table<T>(g.in_h, g.out_h);
  const auto tw = linear_table<T>(g.in_w, g.out_w);
  std::vector<int64_t> h_lo, h_hi, w_lo, w_hi;
  linear_ranges<T>(g.in_h, g.out_h, h_lo, h_hi);
  linear_ranges<T>(g.in_w, g.out_w, w_lo, w_hi);
#pragma omp parallel for schedule(static) if (worth_threads(g))
  for (int64_t p = 0; p < g.planes; ++p) {
    const T* gyp = gy + p * g.out_h * g.out_w;
    T* gxp = gx + p * g.in_h * g.in_w;
    for (int64_t ih = 0; ih < g.in_h; ++ih)
      for (int64_t iw = 0; iw < g.in_w; ++iw) {
        double acc = 0;
        for (int64_t oh = h_lo[ih]; oh < h_hi[ih]; ++oh) {
          const double wh = linear_weight(th[oh], ih);
          double row = 0;
          for (int64_t ow = w_lo[iw]; ow < w_hi[iw]; ++ow)
            row += static_cast<double>(linear_weight(tw[ow], iw)) * gyp[oh * g.out_w + ow];
          acc += wh * row;
        }
        gxp[ih * g.in_w + iw] = static_cast<T>(acc);
      }
  }
}

#define MTL_INSTANTIATE(T)                                                      \
  template void resize_nearest<T>(T*, const T*, const ResizeGeom&);             \
  template void resize_nearest_backward<T>(T*, const T*, const ResizeGeom&);    \
  template void resize_bilinear<T>(T*, const T*, const ResizeGeom&);            \
  template void resize_bilinear_backward<T>(T*, const T*, const ResizeGeom&);
MTL_INSTANTIATE(float)
MTL_INSTANTIATE(double)
#undef MTL_INSTANTIATE

}  // namespace mtl::kernels::cpu
