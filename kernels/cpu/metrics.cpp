#include "kernels/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace mtl::kernels::cpu {

namespace {

constexpr int64_t kChunk = 4096;

// Counts one chunk of pixels into a private histogram; `argmax(i)` gives pixel i's prediction
// (a class, or -1 when the prediction label is not one). Returns the chunk's first bad pixel.
template <typename Pred>
int64_t count_chunk(std::vector<int64_t>& hist, int64_t i0, int64_t i1, Labels target, const ConfusionDims& d,
                    Pred&& prediction) {
  int64_t first_bad = kNoBadLabel;
  for (int64_t i = i0; i < i1; ++i) {
    const int64_t t = target[i];
    if (t == d.ignore_index) continue;
    const int64_t p = t >= 0 && t < d.c ? prediction(i) : -1;
    if (t < 0 || t >= d.c || p < 0 || p >= d.c) {
      if (first_bad == kNoBadLabel) first_bad = i;
      continue;
    }
    ++hist[static_cast<size_t>(t * d.c + p)];
  }
  return first_bad;
}

// Chunks in parallel with private histograms, merged in chunk order (integer sums: exact anyway).
template <typename Pred>
void confusion(int64_t* counts, int64_t* bad, Labels target, const ConfusionDims& d, Pred&& prediction) {
  const int64_t total = d.n * d.hw, chunks = (total + kChunk - 1) / kChunk, bins = d.c * d.c;
  std::vector<int64_t> first_bad(static_cast<size_t>(chunks), kNoBadLabel);
  int64_t found = kNoBadLabel;
#pragma omp parallel if (total > 32768)
  {
    std::vector<int64_t> hist(static_cast<size_t>(bins), 0);
#pragma omp for schedule(static)
    for (int64_t j = 0; j < chunks; ++j)
      first_bad[j] = count_chunk(hist, j * kChunk, std::min(total, (j + 1) * kChunk), target, d, prediction);
#pragma omp critical
    for (int64_t b = 0; b < bins; ++b) counts[b] += hist[b];
  }
  for (int64_t j = 0; j < chunks && found == kNoBadLabel; ++j) found = first_bad[j];
  *bad = found;
}

}  // namespace

template <typename T>
void confusion_from_logits(int64_t* counts, int64_t* bad, const T* logits, Labels target, const ConfusionDims& d) {
  const int64_t c = d.c, hw = d.hw;
  confusion(counts, bad, target, d, [&](int64_t i) {
    const int64_t n = i / hw, p = i - n * hw;
    const T* x = logits + n * c * hw + p;
    T best = -std::numeric_limits<T>::infinity();
    int64_t arg = 0;
    // `>` keeps the first maximum and never picks NaN, exactly as the CUDA kernel does.
    for (int64_t k = 0; k < c; ++k)
      if (x[k * hw] > best) best = x[k * hw], arg = k;
    return arg;
  });
}

void confusion_from_labels(int64_t* counts, int64_t* bad, Labels pred, Labels target, const ConfusionDims& d) {
  confusion(counts, bad, target, d, [&](int64_t i) { return pred[i]; });
}

// Per-chunk partials summed in chunk order, so the result does not depend on the thread count.
// The delta ratios are computed in T, as the CUDA kernel computes them in float, so that the
// counts agree exactly.
template <typename T>
void depth_metrics_accumulate(double* sums, int64_t* counts, const T* pred, const T* target, int64_t n,
                              double min_pred) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> ps(static_cast<size_t>(chunks * kNumDepthSums), 0.0);
  std::vector<int64_t> pc(static_cast<size_t>(chunks * kNumDepthCounts), 0);
  const T lo = static_cast<T>(min_pred);
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t j = 0; j < chunks; ++j) {
    double* s = &ps[static_cast<size_t>(j * kNumDepthSums)];
    int64_t* c = &pc[static_cast<size_t>(j * kNumDepthCounts)];
    for (int64_t i = j * kChunk; i < std::min(n, (j + 1) * kChunk); ++i) {
      const T t = target[i];
      if (!(t > T(0))) continue;
      const T x = max_nan(pred[i], lo);
      const double e = static_cast<double>(x) - static_cast<double>(t);
      const double le = std::log(static_cast<double>(x)) - std::log(static_cast<double>(t));
      s[kAbsRel] += std::abs(e) / static_cast<double>(t);
      s[kSqRel] += e * e / static_cast<double>(t);
      s[kSqErr] += e * e;
      s[kSqLogErr] += le * le;
      const T r = std::max(x / t, t / x);
      ++c[kValid];
      c[kDelta1] += r < static_cast<T>(kDelta1Threshold);
      c[kDelta2] += r < static_cast<T>(kDelta2Threshold);
      c[kDelta3] += r < static_cast<T>(kDelta3Threshold);
    }
  }
  for (int64_t j = 0; j < chunks; ++j) {
    for (int r = 0; r < kNumDepthSums; ++r) sums[r] += ps[static_cast<size_t>(j * kNumDepthSums + r)];
    for (int r = 0; r < kNumDepthCounts; ++r) counts[r] += pc[static_cast<size_t>(j * kNumDepthCounts + r)];
  }
}

template void confusion_from_logits<float>(int64_t*, int64_t*, const float*, Labels, const ConfusionDims&);
template void confusion_from_logits<double>(int64_t*, int64_t*, const double*, Labels, const ConfusionDims&);
template void depth_metrics_accumulate<float>(double*, int64_t*, const float*, const float*, int64_t, double);
template void depth_metrics_accumulate<double>(double*, int64_t*, const double*, const double*, int64_t, double);

}  // namespace mtl::kernels::cpu
