#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/adamw.h"

namespace mtl::kernels::cpu {

template <typename T>
void adamw(T* p, const T* g, T* m, T* v, int64_t n, const AdamWScalars& s, double grad_scale) {
  const T decay = static_cast<T>(s.decay), b1 = static_cast<T>(s.beta1), b2 = static_cast<T>(s.beta2);
  const T ob1 = static_cast<T>(1.0 - s.beta1), ob2 = static_cast<T>(1.0 - s.beta2);
  const T eps = static_cast<T>(s.eps), step_size = static_cast<T>(s.step_size), bc2 = static_cast<T>(s.bc2_sqrt);
  const T scale = static_cast<T>(grad_scale);
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i) {
    const T gi = g[i] * scale;
    T pi = p[i] * decay;
    const T mi = b1 * m[i] + ob1 * gi;
    const T vi = b2 * v[i] + ob2 * gi * gi;
    const T denom = std::sqrt(vi) / bc2 + eps;
    pi = pi - step_size * mi / denom;
    p[i] = pi;
    m[i] = mi;
    v[i] = vi;
  }
}

template <typename T>
double sum_squares(const T* x, int64_t n) {
  constexpr int64_t kBlock = 4096;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> part(static_cast<size_t>(blocks), 0.0);
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t b = 0; b < blocks; ++b) {
    double acc = 0.0;
    const int64_t end = std::min(n, (b + 1) * kBlock);
    for (int64_t i = b * kBlock; i < end; ++i) acc += static_cast<double>(x[i]) * static_cast<double>(x[i]);
    part[static_cast<size_t>(b)] = acc;
  }
  double total = 0.0;
  for (double v : part) total += v;
  return total;
}

template void adamw<float>(float*, const float*, float*, float*, int64_t, const AdamWScalars&, double);
template void adamw<double>(double*, const double*, double*, double*, int64_t, const AdamWScalars&, double);
template double sum_squares<float>(const float*, int64_t);
template double sum_squares<double>(const double*, int64_t);

}  // namespace mtl::kernels::cpu
