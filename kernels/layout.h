#pragma once
// Strided layouts passed by value to kernels (host and device). Up to kMaxDims dimensions;
// strides are in elements and may be 0 for broadcast dimensions.
#include <cstdint>

#if defined(__CUDACC__)
#define MTL_HD __host__ __device__ __forceinline__
#else
#define MTL_HD inline
#endif

namespace mtl::kernels {

constexpr int kMaxDims = 8;

// One shape, and the strides of up to three operands over it.
struct Layout {
  int ndim = 0;
  int64_t size[kMaxDims] = {};
  int64_t stride[3][kMaxDims] = {};

  // Offsets of operands 0..k-1 for the logical (row-major) element index i, computed in I
  // (int32_t where every offset fits, which the caller checks, or int64_t).
  template <int K, typename I = int64_t>
  MTL_HD void offsets(I i, I* off) const {
    for (int k = 0; k < K; ++k) off[k] = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      const I n = static_cast<I>(size[d]);
      const I q = i / n;
      const I r = i - q * n;
      for (int k = 0; k < K; ++k) off[k] += r * static_cast<I>(stride[k][d]);
      i = q;
    }
  }
  // The largest |offset| + 1 any operand reaches (for choosing the index type).
  MTL_HD int64_t extent() const {
    int64_t e = numel();
    for (int k = 0; k < 3; ++k) {
      int64_t reach = 1;
      for (int d = 0; d < ndim; ++d) reach += (size[d] - 1) * (stride[k][d] < 0 ? -stride[k][d] : stride[k][d]);
      if (reach > e) e = reach;
    }
    return e;
  }
  MTL_HD int64_t numel() const {
    int64_t n = 1;
    for (int d = 0; d < ndim; ++d) n *= size[d];
    return n;
  }
};

}  // namespace mtl::kernels
