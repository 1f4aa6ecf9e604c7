#include <cmath>

#include "kernels/batch_norm.h"

namespace mtl::kernels::cpu {

namespace {

constexpr int64_t kParallel = 32768;  // elements below which a thread team costs more than it saves

// Sum of f(i) for i in [0, n) in double with four interleaved accumulators: one accumulator is a
// serial chain of dependent additions and runs at a quarter of the machine's add throughput.
template <typename F>
double sum_of(int64_t n, F f) {
  double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    a0 += f(i);
    a1 += f(i + 1);
    a2 += f(i + 2);
    a3 += f(i + 3);
  }
  for (; i < n; ++i) a0 += f(i);
  return (a0 + a1) + (a2 + a3);
}

}  // namespace

template <typename T>
void batch_norm_train_stats(const BatchNormShape& s, const T* x, double eps, double momentum, T* mean, T* invstd,
                            T* running_mean, T* running_var) {
  const int64_t m = s.n * s.hw;
  // Two passes in double (mean, then squared deviations) avoid the cancellation of E[x^2] - E[x]^2.
#pragma omp parallel for schedule(static) if (s.n * s.c * s.hw > kParallel)
  for (int64_t c = 0; c < s.c; ++c) {
    double sum = 0;
    for (int64_t n = 0; n < s.n; ++n) {
      const T* row = x + (n * s.c + c) * s.hw;
      sum += sum_of(s.hw, [row](int64_t p) { return static_cast<double>(row[p]); });
    }
    const double mu = sum / static_cast<double>(m);
    double sq = 0;
    for (int64_t n = 0; n < s.n; ++n) {
      const T* row = x + (n * s.c + c) * s.hw;
      sq += sum_of(s.hw, [row, mu](int64_t p) {
        const double d = row[p] - mu;
        return d * d;
      });
    }
    mean[c] = static_cast<T>(mu);
    invstd[c] = static_cast<T>(1.0 / std::sqrt(sq / static_cast<double>(m) + eps));
    if (running_mean) running_mean[c] = static_cast<T>((1 - momentum) * running_mean[c] + momentum * mu);
    if (running_var)
      running_var[c] = static_cast<T>((1 - momentum) * running_var[c] + momentum * sq / static_cast<double>(m - 1));
  }
}

template <typename T>
void batch_norm_eval_stats(int64_t c, const T* running_mean, const T* running_var, double eps, T* mean, T* invstd) {
  for (int64_t k = 0; k < c; ++k) {
    mean[k] = running_mean[k];
    invstd[k] = static_cast<T>(1.0 / std::sqrt(static_cast<double>(running_var[k]) + eps));
  }
}

template <typename T>
void batch_norm_apply(const BatchNormShape& s, const T* x, const T* mean, const T* invstd, const T* weight,
                      const T* bias, T* y) {
#pragma omp parallel for collapse(2) schedule(static) if (s.n * s.c * s.hw > kParallel)
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t c = 0; c < s.c; ++c) {
      const T scale = invstd[c] * (weight ? weight[c] : T(1));
      const T shift = (bias ? bias[c] : T(0)) - mean[c] * scale;
      const T* in = x + (n * s.c + c) * s.hw;
      T* out = y + (n * s.c + c) * s.hw;
      for (int64_t p = 0; p < s.hw; ++p) out[p] = in[p] * scale + shift;
    }
}

template <typename T>
void batch_norm_backward_reduce(const BatchNormShape& s, const T* gy, const T* x, const T* mean, const T* invstd,
                                T* sum_gy, T* sum_gy_xhat) {
#pragma omp parallel for schedule(static) if (s.n * s.c * s.hw > kParallel)
  for (int64_t c = 0; c < s.c; ++c) {
    const double mu = mean[c];
    double sg = 0, sgx = 0;
    for (int64_t n = 0; n < s.n; ++n) {
      const T* g = gy + (n * s.c + c) * s.hw;
      const T* in = x + (n * s.c + c) * s.hw;
      sg += sum_of(s.hw, [g](int64_t p) { return static_cast<double>(g[p]); });
      sgx += sum_of(s.hw, [g, in, mu](int64_t p) { return g[p] * (in[p] - mu); });
    }
    sum_gy[c] = static_cast<T>(sg);
    sum_gy_xhat[c] = static_cast<T>(sgx * static_cast<double>(invstd[c]));
  }
}

template <typename T>
void batch_norm_backward_input(const BatchNormShape& s, const T* gy, const T* x, const T* mean, const T* invstd,
                               const T* weight, const T* sum_gy, const T* sum_gy_xhat, bool training, T* gx) {
  const double inv_m = 1.0 / static_cast<double>(s.n * s.hw);
#pragma omp parallel for collapse(2) schedule(static) if (s.n * s.c * s.hw > kParallel)
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t c = 0; c < s.c; ++c) {
      const double is = invstd[c];
      const double scale = is * (weight ? static_cast<double>(weight[c]) : 1.0);
      const T* g = gy + (n * s.c + c) * s.hw;
      T* out = gx + (n * s.c + c) * s.hw;
      if (!training) {
        for (int64_t p = 0; p < s.hw; ++p) out[p] = static_cast<T>(scale * g[p]);
        continue;
      }
      const double mu = mean[c], mean_g = sum_gy[c] * inv_m, mean_gx = sum_gy_xhat[c] * inv_m;
      const T* in = x + (n * s.c + c) * s.hw;
      for (int64_t p = 0; p < s.hw; ++p) {
        const double xhat = (in[p] - mu) * is;
        out[p] = static_cast<T>(scale * (g[p] - mean_g - xhat * mean_gx));
      }
    }
}

#define MTL_INSTANTIATE(T)                                                                                     \
  template void batch_norm_train_stats<T>(const BatchNormShape&, const T*, double, double, T*, T*, T*, T*);   \
  template void batch_norm_eval_stats<T>(int64_t, const T*, const T*, double, T*, T*);                        \
  template void batch_norm_apply<T>(const BatchNormShape&, const T*, const T*, const T*, const T*, const T*,  \
                                    T*);                                                                       \
  template void batch_norm_backward_reduce<T>(const BatchNormShape&, const T*, const T*, const T*, const T*, \
                                              T*, T*);                                                         \
  template void batch_norm_backward_input<T>(const BatchNormShape&, const T*, const T*, const T*, const T*,  \
                                             const T*, const T*, const T*, bool, T*);
MTL_INSTANTIATE(float)
MTL_INSTANTIATE(double)
#undef MTL_INSTANTIATE

}  // namespace mtl::kernels::cpu
