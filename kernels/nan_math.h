#pragma once
// Comparisons that let NaN through, as PyTorch's maximum, minimum, clamp and relu do. fmaxf(NaN, b)
// and `a > b ? a : b` both give b for a NaN a, which would hide a NaN prediction or activation
// from the non-finite checks downstream. Shared by the CPU and CUDA kernels.
#include "kernels/layout.h"

namespace mtl::kernels {

// x != x rather than isnan: one spelling for host and device code, for float and double.
template <typename T>
MTL_HD bool is_nan(T x) {
  return x != x;
}
// The larger of a and b; NaN when either is NaN.
template <typename T>
MTL_HD T max_nan(T a, T b) {
  return (a > b || is_nan(a)) ? a : b;
}
// The smaller of a and b; NaN when either is NaN.
template <typename T>
MTL_HD T min_nan(T a, T b) {
  return (a < b || is_nan(a)) ? a : b;
}

}  // namespace mtl::kernels
