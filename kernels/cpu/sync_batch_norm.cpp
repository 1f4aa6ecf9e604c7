#include "kernels/sync_batch_norm.h"

#include <algorithm>
#include <cmath>

namespace mtl::kernels::cpu {

namespace {
constexpr int64_t kParallel = 32768;  // elements below which a thread team costs more than it saves
}  // namespace

template <typename T>
void sync_batch_norm_sums(const BatchNormShape& s, const T* x, double* sums) {
#pragma omp parallel for schedule(static) if (s.n * s.c * s.hw > kParallel)
  for (int64_t c = 0; c < s.c; ++c) {
    double sum = 0, sq = 0;
    for (int64_t n = 0; n < s.n; ++n) {
      const T* row = x + (n * s.c + c) * s.hw;
      for (int64_t p = 0; p < s.hw; ++p) {
        const double v = row[p];
        sum += v;
        sq += v * v;
      }
    }
    sums[c] = sum;
    sums[s.c + c] = sq;
  }
  sums[2 * s.c] = static_cast<double>(s.n * s.hw);
}

template <typename T>
void sync_batch_norm_stats(int64_t c, const double* sums, double eps, double momentum, T* mean, T* invstd,
                           T* running_mean, T* running_var) {
  const double m = sums[2 * c];
  for (int64_t k = 0; k < c; ++k) {
    const double mu = sums[k] / m;
    const double var = std::max(sums[c + k] / m - mu * mu, 0.0);
    mean[k] = static_cast<T>(mu);
    invstd[k] = static_cast<T>(1.0 / std::sqrt(var + eps));
    if (running_mean) running_mean[k] = static_cast<T>((1 - momentum) * running_mean[k] + momentum * mu);
    if (running_var) running_var[k] = static_cast<T>((1 - momentum) * running_var[k] + momentum * var * m / (m - 1));
  }
}

template <typename T>
void sync_batch_norm_backward_input(const BatchNormShape& s, const T* gy, const T* x, const T* mean, const T* invstd,
                                    const T* weight, const T* grad_sums, const double* count, T* gx) {
  const double inv_m = 1.0 / *count;
#pragma omp parallel for collapse(2) schedule(static) if (s.n * s.c * s.hw > kParallel)
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t c = 0; c < s.c; ++c) {
      const double is = invstd[c];
      const double scale = is * (weight ? static_cast<double>(weight[c]) : 1.0);
      const double mu = mean[c], mean_g = grad_sums[c] * inv_m, mean_gx = grad_sums[s.c + c] * inv_m;
      const T* g = gy + (n * s.c + c) * s.hw;
      const T* in = x + (n * s.c + c) * s.hw;
      T* out = gx + (n * s.c + c) * s.hw;
      for (int64_t p = 0; p < s.hw; ++p) {
        const double xhat = (in[p] - mu) * is;
        out[p] = static_cast<T>(scale * (g[p] - mean_g - xhat * mean_gx));
      }
    }
}

#define MTL_INSTANTIATE(T)                                                                                       \
  template void sync_batch_norm_sums<T>(const BatchNormShape&, const T*, double*);                               \
  template void sync_batch_norm_stats<T>(int64_t, const double*, double, double, T*, T*, T*, T*);                \
  template void sync_batch_norm_backward_input<T>(const BatchNormShape&, const T*, const T*, const T*, const T*, \
                                                  const T*, const T*, const double*, T*);
MTL_INSTANTIATE(float)
MTL_INSTANTIATE(double)
#undef MTL_INSTANTIATE

}  // namespace mtl::kernels::cpu
