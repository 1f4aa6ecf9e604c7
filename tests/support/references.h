#pragma once
// Plain-loop references in double, independent of the kernels they check.
#include <cmath>
#include <limits>
#include <vector>

#include "core/tensor.h"

namespace mtl::test {

// Softmax along `dim` of x viewed as [outer, n, inner]; F64 on the CPU.
inline Tensor softmax_ref(const Tensor& x, int dim) {
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < dim; ++d) outer *= x.size(d);
  for (int d = dim + 1; d < x.dim(); ++d) inner *= x.size(d);
  const int64_t n = x.size(dim);
  std::vector<double> v = x.to_f64_vector(), out(v.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      auto at = [&](int64_t k) { return static_cast<size_t>((o * n + k) * inner + i); };
      double mx = -std::numeric_limits<double>::infinity(), sum = 0;
      for (int64_t k = 0; k < n; ++k) mx = std::max(mx, v[at(k)]);
      for (int64_t k = 0; k < n; ++k) sum += std::exp(v[at(k)] - mx);
      for (int64_t k = 0; k < n; ++k) out[at(k)] = std::exp(v[at(k)] - mx) / sum;
    }
  return from_vector(out, x.shape(), Options(DType::f64));
}

// x mirrored along `dim` (default the last), in x's dtype on the CPU.
inline Tensor flip_ref(const Tensor& x, int dim = -1) {
  if (dim < 0) dim += static_cast<int>(x.dim());
  int64_t inner = 1;
  for (int d = dim + 1; d < x.dim(); ++d) inner *= x.size(d);
  const int64_t n = x.size(dim);
  std::vector<double> v = x.to_f64_vector(), out(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    const int64_t k = (static_cast<int64_t>(i) / inner) % n;
    out[i] = v[i + static_cast<size_t>((n - 1 - 2 * k) * inner)];
  }
  return from_vector(out, x.shape(), Options(x.dtype()));
}

}  // namespace mtl::test
