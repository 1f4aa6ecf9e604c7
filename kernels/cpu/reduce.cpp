#include <vector>

#include "kernels/reduce.h"

namespace mtl::kernels::cpu {

// Accumulates in double so that the CPU result can serve as the oracle for float32 kernels.
template <typename T>
void sum_mid(T* out, const T* x, int64_t outer, int64_t k, int64_t inner, double scale) {
  if (inner == 1) {
#pragma omp parallel for schedule(static) if (outer * k > 32768)
    for (int64_t o = 0; o < outer; ++o) {
      double acc = 0;
      const T* row = x + o * k;
      for (int64_t j = 0; j < k; ++j) acc += row[j];
      out[o] = static_cast<T>(acc * scale);
    }
    return;
  }
#pragma omp parallel for schedule(static) if (outer * k * inner > 32768)
  for (int64_t o = 0; o < outer; ++o) {
    std::vector<double> acc(static_cast<size_t>(inner), 0.0);
    for (int64_t j = 0; j < k; ++j) {
      const T* row = x + (o * k + j) * inner;
      for (int64_t i = 0; i < inner; ++i) acc[i] += row[i];
    }
    for (int64_t i = 0; i < inner; ++i) out[o * inner + i] = static_cast<T>(acc[i] * scale);
  }
}

template void sum_mid<float>(float*, const float*, int64_t, int64_t, int64_t, double);
template void sum_mid<double>(double*, const double*, int64_t, int64_t, int64_t, double);

}  // namespace mtl::kernels::cpu
