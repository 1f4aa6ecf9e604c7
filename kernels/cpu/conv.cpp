#include "kernels/conv.h"

#include <algorithm>
#include <vector>

#include "kernels/matmul.h"

namespace mtl::kernels::cpu {

namespace {

// OpenBLAS runs a GEMM of at most this many multiply-adds on the calling thread alone
// (SMP_THRESHOLD_MIN * GEMM_MULTITHREAD_THRESHOLD), so below it the cores are ours to use across
// (sample, group) jobs; above it each GEMM is threaded by OpenBLAS and the jobs run one by one,
// which keeps OpenMP and OpenBLAS threads from competing for the same cores.
constexpr double kSmallGemm = 65536.0 * 4;
// im2col/col2im over fewer elements than this are not worth waking a thread team for.
constexpr int64_t kParallelCopy = 16384;

struct Sizes {
  int64_t cg;  // input channels per group
  int64_t og;  // output channels per group
  int64_t k;   // rows of the column matrix: cg * kh * kw
  int64_t p;   // output pixels: out_h * out_w
  int64_t hw;  // input pixels
};

Sizes sizes(const ConvGeometry& g) {
  Sizes s;
  s.cg = g.c_in / g.groups;
  s.og = g.c_out / g.groups;
  s.k = s.cg * g.kh * g.kw;
  s.p = g.out_h * g.out_w;
  s.hw = g.h * g.w;
  return s;
}

bool small_gemm(int64_t m, int64_t n, int64_t k) {
  return static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k) <= kSmallGemm;
}

// A 1x1 kernel with unit stride and no padding reads the input itself as its column matrix.
bool pointwise(const ConvGeometry& g) {
  return g.kh == 1 && g.kw == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 && g.pad_w == 0;
}

// Output columns [lo, hi) whose input column start + o * stride lies inside [0, limit).
void valid_range(int64_t start, int64_t stride, int64_t limit, int64_t count, int64_t& lo, int64_t& hi) {
  lo = start >= 0 ? 0 : (-start + stride - 1) / stride;
  hi = start >= limit ? 0 : (limit - 1 - start) / stride + 1;
  lo = std::min(lo, count);
  hi = std::clamp(hi, lo, count);
}

// col[(c * kh + i) * kw + j, oh * out_w + ow] = x[c, oh*sh - ph + i*dh, ow*sw - pw + j*dw] (0 outside).
template <typename T>
void im2col(const ConvGeometry& g, const T* x, T* col, int64_t channels, bool parallel) {
  const int64_t rows = channels * g.kh * g.kw, p = g.out_h * g.out_w;
#pragma omp parallel for schedule(static) if (parallel && rows * p > kParallelCopy)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t j = r % g.kw, i = (r / g.kw) % g.kh, c = r / (g.kw * g.kh);
    const T* xc = x + c * g.h * g.w;
    T* out = col + r * p;
    const int64_t iw0 = j * g.dil_w - g.pad_w;
    int64_t lo, hi;
    valid_range(iw0, g.stride_w, g.w, g.out_w, lo, hi);
    for (int64_t oh = 0; oh < g.out_h; ++oh) {
      T* orow = out + oh * g.out_w;
      const int64_t ih = oh * g.stride_h - g.pad_h + i * g.dil_h;
      if (ih < 0 || ih >= g.h) {
        std::fill(orow, orow + g.out_w, T(0));
        continue;
      }
      const T* xrow = xc + ih * g.w;
      std::fill(orow, orow + lo, T(0));
      if (g.stride_w == 1 && hi > lo) {
        std::copy(xrow + iw0 + lo, xrow + iw0 + hi, orow + lo);
      } else {
        for (int64_t ow = lo; ow < hi; ++ow) orow[ow] = xrow[iw0 + ow * g.stride_w];
      }
      std::fill(orow + hi, orow + g.out_w, T(0));
    }
  }
}

// The adjoint of im2col: gx = sum of the column entries that read each input pixel. Each channel
// is accumulated by one thread in a fixed (i, j, oh, ow) order, so the result is deterministic.
template <typename T>
void col2im(const ConvGeometry& g, const T* col, T* gx, int64_t channels, bool parallel) {
  const int64_t p = g.out_h * g.out_w;
#pragma omp parallel for schedule(static) if (parallel && channels * g.kh * g.kw * p > kParallelCopy)
  for (int64_t c = 0; c < channels; ++c) {
    T* gxc = gx + c * g.h * g.w;
    std::fill(gxc, gxc + g.h * g.w, T(0));
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) {
        const T* src = col + ((c * g.kh + i) * g.kw + j) * p;
        const int64_t iw0 = j * g.dil_w - g.pad_w;
        int64_t lo, hi;
        valid_range(iw0, g.stride_w, g.w, g.out_w, lo, hi);
        for (int64_t oh = 0; oh < g.out_h; ++oh) {
          const int64_t ih = oh * g.stride_h - g.pad_h + i * g.dil_h;
          if (ih < 0 || ih >= g.h) continue;
          T* grow = gxc + ih * g.w;
          const T* srow = src + oh * g.out_w;
          for (int64_t ow = lo; ow < hi; ++ow) grow[iw0 + ow * g.stride_w] += srow[ow];
        }
      }
  }
}

// This thread's column buffer, grown to at least n elements and kept for the next call: a fresh
// vector per call costs an allocation and, when glibc serves it with mmap, fresh pages to fault
// in on every convolution. The largest im2col of a network sets the size, once per thread.
template <typename T>
T* workspace(int64_t n) {
  thread_local std::vector<T> buf;
  if (buf.size() < static_cast<size_t>(n)) buf.resize(static_cast<size_t>(n));
  return buf.data();
}

// Runs body(job, parallel_copies) for every job in [0, jobs). Across jobs: the jobs are spread
// over the OpenMP team, each running its copies and its small (single-threaded) GEMM alone.
// Otherwise they run one after another on this thread, with parallel copies and GEMMs threaded by
// OpenBLAS. The parallel region is opened only in the first case: one opened with if(false) is
// still a nesting level, so the copies' team inside it would be a nested team, whose threads
// libgomp creates and ends on every call instead of reusing its pool.
template <typename F>
void for_jobs(int64_t jobs, bool across, const F& body) {
  if (across) {
#pragma omp parallel for schedule(static)
    for (int64_t job = 0; job < jobs; ++job) body(job, false);
  } else {
    for (int64_t job = 0; job < jobs; ++job) body(job, true);
  }
}

}  // namespace

template <typename T>
void conv2d_forward(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y) {
  const Sizes s = sizes(g);
  const bool direct = pointwise(g);
  const int64_t jobs = g.n * g.groups;
  for_jobs(jobs, jobs > 1 && small_gemm(s.og, s.p, s.k), [&](int64_t job, bool parallel) {
    const int64_t n = job / g.groups, gr = job % g.groups;
    const T* xg = x + (n * g.c_in + gr * s.cg) * s.hw;
    T* yg = y + (n * g.c_out + gr * s.og) * s.p;
    const T* src = xg;
    if (!direct) {
      T* col = workspace<T>(s.k * s.p);
      im2col(g, xg, col, s.cg, parallel);
      src = col;
    }
    gemm<T>(false, false, s.og, s.p, s.k, T(1), w + gr * s.og * s.k, s.k, src, s.p, T(0), yg, s.p);
    if (bias)
      for (int64_t o = 0; o < s.og; ++o) {
        const T b = bias[gr * s.og + o];
        T* row = yg + o * s.p;
        for (int64_t q = 0; q < s.p; ++q) row[q] += b;
      }
  });
}

template <typename T>
void conv2d_backward_input(const ConvGeometry& g, const T* gy, const T* w, T* gx) {
  const Sizes s = sizes(g);
  const bool direct = pointwise(g);
  const int64_t jobs = g.n * g.groups;
  for_jobs(jobs, jobs > 1 && small_gemm(s.k, s.p, s.og), [&](int64_t job, bool parallel) {
    const int64_t n = job / g.groups, gr = job % g.groups;
    const T* gyg = gy + (n * g.c_out + gr * s.og) * s.p;
    T* gxg = gx + (n * g.c_in + gr * s.cg) * s.hw;
    const T* wg = w + gr * s.og * s.k;
    // col = W_g^T gy_g: [k, og] x [og, p]
    if (direct) {
      gemm<T>(true, false, s.k, s.p, s.og, T(1), wg, s.k, gyg, s.p, T(0), gxg, s.p);
    } else {
      T* col = workspace<T>(s.k * s.p);
      gemm<T>(true, false, s.k, s.p, s.og, T(1), wg, s.k, gyg, s.p, T(0), col, s.p);
      col2im(g, col, gxg, s.cg, parallel);
    }
  });
}

template <typename T>
void conv2d_backward_weight(const ConvGeometry& g, const T* gy, const T* x, T* gw) {
  const Sizes s = sizes(g);
  const bool direct = pointwise(g);
  // Groups own disjoint slices of gw, so they may run in parallel; samples are accumulated into a
  // slice one after another (GEMM beta = 1), which fixes the summation order.
  for_jobs(g.groups, g.groups > 1 && small_gemm(s.og, s.k, s.p), [&](int64_t gr, bool parallel) {
    T* gwg = gw + gr * s.og * s.k;
    for (int64_t n = 0; n < g.n; ++n) {
      const T* xg = x + (n * g.c_in + gr * s.cg) * s.hw;
      const T* gyg = gy + (n * g.c_out + gr * s.og) * s.p;
      const T* src = xg;
      if (!direct) {
        T* col = workspace<T>(s.k * s.p);
        im2col(g, xg, col, s.cg, parallel);
        src = col;
      }
      // gw_g += gy_g col^T: [og, p] x [p, k]
      gemm<T>(false, true, s.og, s.k, s.p, T(1), gyg, s.p, src, s.p, n == 0 ? T(0) : T(1), gwg, s.k);
    }
  });
}

template <typename T>
void conv2d_backward_bias(const ConvGeometry& g, const T* gy, T* gb) {
  const int64_t p = g.out_h * g.out_w;
#pragma omp parallel for schedule(static) if (g.n * g.c_out * p > 32768)
  for (int64_t c = 0; c < g.c_out; ++c) {
    // Four interleaved double accumulators: a single one is a serial chain of dependent adds.
    double acc = 0;
    for (int64_t n = 0; n < g.n; ++n) {
      const T* row = gy + (n * g.c_out + c) * p;
      double a[4] = {0, 0, 0, 0};
      int64_t q = 0;
      for (; q + 4 <= p; q += 4)
        for (int k = 0; k < 4; ++k) a[k] += row[q + k];
      for (; q < p; ++q) a[0] += row[q];
      acc += (a[0] + a[1]) + (a[2] + a[3]);
    }
    gb[c] = static_cast<T>(acc);
  }
}

template <typename T>
void conv2d_bias_add(const ConvGeometry& g, const T* bias, T* y) {
  const int64_t p = g.out_h * g.out_w;
#pragma omp parallel for schedule(static) if (g.n * g.c_out * p > 32768)
  for (int64_t row = 0; row < g.n * g.c_out; ++row) {
    const T b = bias[row % g.c_out];
    for (int64_t q = 0; q < p; ++q) y[row * p + q] += b;
  }
}

#define MTL_INSTANTIATE(T)                                                                \
  template void conv2d_forward<T>(const ConvGeometry&, const T*, const T*, const T*, T*); \
  template void conv2d_bias_add<T>(const ConvGeometry&, const T*, T*);                    \
  template void conv2d_backward_input<T>(const ConvGeometry&, const T*, const T*, T*);    \
  template void conv2d_backward_weight<T>(const ConvGeometry&, const T*, const T*, T*);   \
  template void conv2d_backward_bias<T>(const ConvGeometry&, const T*, T*);
MTL_INSTANTIATE(float)
MTL_INSTANTIATE(double)
#undef MTL_INSTANTIATE

}  // namespace mtl::kernels::cpu
