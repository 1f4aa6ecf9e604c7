#include "kernels/softmax.h"

#include <cmath>

namespace mtl::kernels::cpu {

// In double, so that float results are the CUDA kernel's oracle. A NaN anywhere in a column makes
// the whole column NaN, as in PyTorch.
template <typename T>
void softmax_forward(T* y, const T* x, const SoftmaxDims& d) {
  const int64_t columns = d.outer * d.inner;
#pragma omp parallel for schedule(static) if (columns * d.n > 32768)
  for (int64_t col = 0; col < columns; ++col) {
    const int64_t o = col / d.inner, i = col % d.inner;
    const T* xc = x + o * d.n * d.inner + i;
    T* yc = y + o * d.n * d.inner + i;
    double m = -INFINITY;
    bool nan = false;
    for (int64_t k = 0; k < d.n; ++k) {
      const double v = xc[k * d.inner];
      nan |= std::isnan(v);
      m = v > m ? v : m;
    }
    if (nan) m = NAN;
    double sum = 0;
    for (int64_t k = 0; k < d.n; ++k) sum += std::exp(static_cast<double>(xc[k * d.inner]) - m);
    for (int64_t k = 0; k < d.n; ++k)
      yc[k * d.inner] = static_cast<T>(std::exp(static_cast<double>(xc[k * d.inner]) - m) / sum);
  }
}

template <typename T>
void softmax_backward(T* gx, const T* gy, const T* y, const SoftmaxDims& d) {
  const int64_t columns = d.outer * d.inner;
#pragma omp parallel for schedule(static) if (columns * d.n > 32768)
  for (int64_t col = 0; col < columns; ++col) {
    const int64_t base = (col / d.inner) * d.n * d.inner + col % d.inner;
    double dot = 0;
    for (int64_t k = 0; k < d.n; ++k) dot += static_cast<double>(gy[base + k * d.inner]) * y[base + k * d.inner];
    for (int64_t k = 0; k < d.n; ++k) {
      const int64_t j = base + k * d.inner;
      gx[j] = static_cast<T>(static_cast<double>(y[j]) * (static_cast<double>(gy[j]) - dot));
    }
  }
}

template void softmax_forward<float>(float*, const float*, const SoftmaxDims&);
template void softmax_forward<double>(double*, const double*, const SoftmaxDims&);
template void softmax_backward<float>(float*, const float*, const float*, const SoftmaxDims&);
template void softmax_backward<double>(double*, const double*, const double*, const SoftmaxDims&);

}  // namespace mtl::kernels::cpu
