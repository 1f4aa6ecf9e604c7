#include "kernels/loss.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace mtl::kernels::cpu {

namespace {

// Pixels per job: jobs are (sample, chunk) pairs, so the partial sums and their fixed summation
// order depend on the sizes only, never on the number of threads.
constexpr int64_t kChunk = 4096;

int64_t chunks_of(int64_t hw) { return (hw + kChunk - 1) / kChunk; }

template <typename T>
double weight_or_one(const T* w, int64_t i) {
  return w ? static_cast<double>(w[i]) : 1.0;
}

}  // namespace

// Class-outer loops over a chunk keep every read contiguous (the class stride is hw); the
// per-pixel max and sum live in small buffers. Accumulates in double: this is the oracle.
template <typename T>
void cross_entropy_forward(T* loss, T* per_sample, T* lse, double* stats, int64_t* bad, const T* logits, Labels labels,
                           const T* class_w, const T* sample_w, const CrossEntropyDims& d) {
  const int64_t n = d.n, c = d.c, hw = d.hw, chunks = chunks_of(hw), jobs = n * chunks;
  std::vector<double> part(static_cast<size_t>(2 * jobs), 0.0);
  std::vector<int64_t> first_bad(static_cast<size_t>(jobs), kNoBadLabel);
#pragma omp parallel for schedule(static) if (n * c * hw > 32768)
  for (int64_t job = 0; job < jobs; ++job) {
    const int64_t s = job / chunks, p0 = (job % chunks) * kChunk, len = std::min(kChunk, hw - p0);
    const T* x = logits + s * c * hw + p0;
    std::vector<double> m(static_cast<size_t>(len)), sum(static_cast<size_t>(len), 0.0);
    for (int64_t p = 0; p < len; ++p) m[p] = x[p];
    for (int64_t k = 1; k < c; ++k)
      for (int64_t p = 0; p < len; ++p) m[p] = std::max(m[p], static_cast<double>(x[k * hw + p]));
    for (int64_t k = 0; k < c; ++k)
      for (int64_t p = 0; p < len; ++p) sum[p] += std::exp(static_cast<double>(x[k * hw + p]) - m[p]);
    double num = 0, den = 0;
    for (int64_t p = 0; p < len; ++p) {
      const double l = m[p] + std::log(sum[p]);
      const int64_t i = s * hw + p0 + p, y = labels[i];
      lse[i] = static_cast<T>(l);
      if (y == d.ignore_index) continue;
      if (y < 0 || y >= c) {
        if (first_bad[job] == kNoBadLabel) first_bad[job] = i;
        continue;
      }
      const double w = weight_or_one(class_w, y);
      num += w * (l - static_cast<double>(x[y * hw + p]));
      den += w;
    }
    part[2 * job] = num;
    part[2 * job + 1] = den;
  }
  *bad = kNoBadLabel;
  for (int64_t job = 0; job < jobs && *bad == kNoBadLabel; ++job) *bad = first_bad[job];
  double total_num = 0, total_den = 0;
  for (int64_t s = 0; s < n; ++s) {
    double num = 0, den = 0;
    for (int64_t j = 0; j < chunks; ++j) num += part[2 * (s * chunks + j)], den += part[2 * (s * chunks + j) + 1];
    stats[2 * s] = num;
    stats[2 * s + 1] = den;
    per_sample[s] = static_cast<T>(detail::ratio_or_zero(num, den));
    const double sw = weight_or_one(sample_w, s);
    total_num += sw * num;
    total_den += sw * den;
  }
  stats[2 * n] = total_num;
  stats[2 * n + 1] = total_den;
  *loss = static_cast<T>(detail::ratio_or_zero(total_num, total_den));
}

template <typename T>
void cross_entropy_backward(T* grad, const T* logits, Labels labels, const T* lse, const double* stats,
                            const T* class_w, const T* sample_w, const T* g_loss, const T* g_per_sample,
                            const CrossEntropyDims& d) {
  const int64_t n = d.n, c = d.c, hw = d.hw, chunks = chunks_of(hw), jobs = n * chunks;
  const double gl = static_cast<double>(*g_loss);
#pragma omp parallel for schedule(static) if (n * c * hw > 32768)
  for (int64_t job = 0; job < jobs; ++job) {
    const int64_t s = job / chunks, p0 = (job % chunks) * kChunk, len = std::min(kChunk, hw - p0);
    const double coef = detail::cross_entropy_coefficient(stats, s, n, weight_or_one(sample_w, s), gl,
                                                          static_cast<double>(g_per_sample[s]));
    const T* x = logits + s * c * hw + p0;
    T* g = grad + s * c * hw + p0;
    std::vector<double> cp(static_cast<size_t>(len)), l(static_cast<size_t>(len));
    std::vector<int64_t> y(static_cast<size_t>(len));
    for (int64_t p = 0; p < len; ++p) {
      const int64_t i = s * hw + p0 + p;
      y[p] = labels[i];
      const bool counted = y[p] != d.ignore_index && y[p] >= 0 && y[p] < c;
      cp[p] = counted ? coef * weight_or_one(class_w, y[p]) : 0.0;
      l[p] = static_cast<double>(lse[i]);
    }
    for (int64_t k = 0; k < c; ++k)
      for (int64_t p = 0; p < len; ++p) {
        // Uncounted pixels get an exact 0, not 0 * softmax (which would be NaN for inf logits).
        const double v = std::exp(static_cast<double>(x[k * hw + p]) - l[p]) - (k == y[p] ? 1.0 : 0.0);
        g[k * hw + p] = cp[p] == 0.0 ? T(0) : static_cast<T>(cp[p] * v);
      }
  }
}

template <typename T>
void depth_loss_forward(T* loss, T* per_sample, double* stats, const T* pred, const T* target, const T* sample_w,
                        const DepthLossParams& p) {
  const int64_t n = p.n, hw = p.hw, chunks = chunks_of(hw), jobs = n * chunks;
  const bool silog = p.kind == DepthLossKind::silog;
  std::vector<double> part(static_cast<size_t>(3 * jobs), 0.0);
#pragma omp parallel for schedule(static) if (n * hw > 32768)
  for (int64_t job = 0; job < jobs; ++job) {
    const int64_t s = job / chunks, p0 = (job % chunks) * kChunk, len = std::min(kChunk, hw - p0);
    double k = 0, s1 = 0, s2 = 0;
    for (int64_t q = 0; q < len; ++q) {
      const int64_t i = s * hw + p0 + q;
      const double t = static_cast<double>(target[i]), x = static_cast<double>(pred[i]);
      if (!(t > 0)) continue;
      k += 1;
      if (silog) {
        const double e = std::log(max_nan(x, p.min_pred)) - std::log(t);
        s1 += e, s2 += e * e;
      } else {
        s1 += std::abs(x - t);
      }
    }
    part[3 * job] = k, part[3 * job + 1] = s1, part[3 * job + 2] = s2;
  }
  double* total = stats + 3 * n;
  total[0] = total[1] = total[2] = 0;
  for (int64_t s = 0; s < n; ++s) {
    double* row = stats + 3 * s;
    row[0] = row[1] = row[2] = 0;
    for (int64_t j = 0; j < chunks; ++j)
      for (int r = 0; r < 3; ++r) row[r] += part[3 * (s * chunks + j) + r];
    per_sample[s] = static_cast<T>(detail::depth_loss_value(row, p));
    const double sw = weight_or_one(sample_w, s);
    for (int r = 0; r < 3; ++r) total[r] += sw * row[r];
  }
  *loss = static_cast<T>(detail::depth_loss_value(total, p));
}

template <typename T>
void depth_loss_backward(T* grad, const T* pred, const T* target, const double* stats, const T* sample_w,
                         const T* g_loss, const T* g_per_sample, const DepthLossParams& p) {
  const int64_t n = p.n, hw = p.hw, total = n * hw;
  const bool silog = p.kind == DepthLossKind::silog;
  std::vector<double> a(static_cast<size_t>(n)), b(static_cast<size_t>(n));
  for (int64_t s = 0; s < n; ++s)
    detail::depth_loss_sample_coefficients(stats, s, weight_or_one(sample_w, s), static_cast<double>(*g_loss),
                                           static_cast<double>(g_per_sample[s]), p, a[s], b[s]);
#pragma omp parallel for schedule(static) if (total > 32768)
  for (int64_t i = 0; i < total; ++i) {
    const int64_t s = i / hw;
    const double t = static_cast<double>(target[i]), x = static_cast<double>(pred[i]);
    double g = 0;
    if (t > 0) {
      if (silog) {
        // d/dx log(max(x, min_pred)) is 1/x above the clamp and 0 below it.
        if (x > p.min_pred) g = (a[s] * (std::log(x) - std::log(t)) + b[s]) / x;
      } else {
        g = x > t ? a[s] : (x < t ? -a[s] : 0.0);
      }
    }
    grad[i] = static_cast<T>(g);
  }
}

#define MTL_INSTANTIATE(T)                                                                                             \
  template void cross_entropy_forward<T>(T*, T*, T*, double*, int64_t*, const T*, Labels, const T*, const T*,          \
                                         const CrossEntropyDims&);                                                     \
  template void cross_entropy_backward<T>(T*, const T*, Labels, const T*, const double*, const T*, const T*, const T*, \
                                          const T*, const CrossEntropyDims&);                                          \
  template void depth_loss_forward<T>(T*, T*, double*, const T*, const T*, const T*, const DepthLossParams&);          \
  template void depth_loss_backward<T>(T*, const T*, const T*, const double*, const T*, const T*, const T*,            \
                                       const DepthLossParams&);
MTL_INSTANTIATE(float)
MTL_INSTANTIATE(double)
#undef MTL_INSTANTIATE

}  // namespace mtl::kernels::cpu
