#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/group_norm.h"

namespace mtl::kernels::cpu {

// Everything accumulates in double so that float32 results are the CUDA kernels' oracle. The
// statistics merge per-chunk moments with Chan's formula (Welford's update generalised to
// blocks), which stays accurate under a large common offset, as on the device.
template <typename T>
void group_norm_forward(T* y, T* mean, T* rstd, const T* x, const T* gamma, const T* beta, const GroupNormDims& d,
                        double eps) {
  const int64_t G = d.groups, D = d.group_channels(), M = d.group_size(), NG = d.n * G;
#pragma omp parallel for schedule(static) if (NG * M > 32768)
  for (int64_t ng = 0; ng < NG; ++ng) {
    const T* xg = x + ng * M;
    T* yg = y + ng * M;
    // Chan's form of Welford: each chunk's mean and squared deviations in two passes (the chunk is
    // in cache), merged into the running state; no division per element, and it vectorises.
    constexpr int64_t kChunk = 1024;
    double mu = 0, m2 = 0;
    for (int64_t s = 0; s < M; s += kChunk) {
      const int64_t e = std::min(M, s + kChunk);
      const double cnt = static_cast<double>(e - s), seen = static_cast<double>(s);
      double sum = 0;
      for (int64_t i = s; i < e; ++i) sum += xg[i];
      const double cm = sum / cnt;
      double sq = 0;
      for (int64_t i = s; i < e; ++i) sq += (xg[i] - cm) * (xg[i] - cm);
      const double delta = cm - mu, total = seen + cnt;
      mu += delta * cnt / total;
      m2 += sq + delta * delta * seen * cnt / total;
    }
    const double var = M > 0 ? m2 / static_cast<double>(M) : 0.0;
    const double r = 1.0 / std::sqrt(var + eps);
    mean[ng] = static_cast<T>(mu);
    rstd[ng] = static_cast<T>(r);
    const int64_t c0 = (ng % G) * D;
    for (int64_t j = 0; j < D; ++j) {
      const double a = (gamma ? static_cast<double>(gamma[c0 + j]) : 1.0) * r;
      const double b = (beta ? static_cast<double>(beta[c0 + j]) : 0.0) - mu * a;
      const T* xc = xg + j * d.hw;
      T* yc = yg + j * d.hw;
      for (int64_t i = 0; i < d.hw; ++i) yc[i] = static_cast<T>(xc[i] * a + b);
    }
  }
}

template <typename T>
void group_norm_backward(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x, const T* mean, const T* rstd,
                         const T* gamma, const GroupNormDims& d) {
  const int64_t C = d.c, G = d.groups, D = d.group_channels(), M = d.group_size(), NG = d.n * G;
  const double inv_m = M > 0 ? 1.0 / static_cast<double>(M) : 0.0;
  // Per (n, c): ds = sum(dy * (x - mean)), db = sum(dy) over HW, laid out as [N * C] so that row
  // n*C + c is channel c of sample n, which is also group (n*G + c/D)'s channel c % D. ds is
  // centred on the saved group mean, as on the device (see docs/group_norm_backward.md).
  std::vector<double> ds(static_cast<size_t>(d.n * C)), db(static_cast<size_t>(d.n * C));
#pragma omp parallel for schedule(static) if (NG * M > 32768)
  for (int64_t ng = 0; ng < NG; ++ng) {
    const int64_t c0 = (ng % G) * D;
    const double mu = mean[ng], r = rstd[ng];
    double gs = 0, gb = 0;  // sum over the group's channels of gamma * ds and gamma * db
    for (int64_t j = 0; j < D; ++j) {
      const int64_t row = ng * D + j;
      const T* xc = x + row * d.hw;
      const T* gc = dy + row * d.hw;
      double s = 0, b = 0;
      for (int64_t i = 0; i < d.hw; ++i) {
        s += static_cast<double>(gc[i]) * (xc[i] - mu);
        b += gc[i];
      }
      ds[row] = s;
      db[row] = b;
      const double w = gamma ? static_cast<double>(gamma[c0 + j]) : 1.0;
      gs += w * s;
      gb += w * b;
    }
    if (!dx) continue;
    const double c1 = -gs * r * r * r * inv_m;
    const double c2 = -c1 * mu - gb * r * inv_m;
    for (int64_t j = 0; j < D; ++j) {
      const int64_t row = ng * D + j;
      const double a = (gamma ? static_cast<double>(gamma[c0 + j]) : 1.0) * r;
      const T* xc = x + row * d.hw;
      const T* gc = dy + row * d.hw;
      T* oc = dx + row * d.hw;
      for (int64_t i = 0; i < d.hw; ++i) oc[i] = static_cast<T>(a * gc[i] + c1 * xc[i] + c2);
    }
  }
  if (!dgamma && !dbeta) return;
#pragma omp parallel for schedule(static) if (d.n * C > 32768)
  for (int64_t c = 0; c < C; ++c) {
    double sg = 0, sb = 0;
    for (int64_t n = 0; n < d.n; ++n) {
      const int64_t row = n * C + c, ng = n * G + c / D;
      sg += ds[row] * static_cast<double>(rstd[ng]);
      sb += db[row];
    }
    if (dgamma) dgamma[c] = static_cast<T>(sg);
    if (dbeta) dbeta[c] = static_cast<T>(sb);
  }
}

#define MTL_INSTANTIATE(T)                                                                                  \
  template void group_norm_forward<T>(T*, T*, T*, const T*, const T*, const T*, const GroupNormDims&, double); \
  template void group_norm_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*,         \
                                       const GroupNormDims&);
MTL_INSTANTIATE(float)
MTL_INSTANTIATE(double)
#undef MTL_INSTANTIATE

}  // namespace mtl::kernels::cpu
