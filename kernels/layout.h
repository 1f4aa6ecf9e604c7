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

  // Offsets of operands 0..k-1 for the logical (row-major) element index i.
  template <int K>
  MTL_HD void offsets(int64_t i, int64_t* off) const {
    for (int k = 0; k < K; ++k) off[k] = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      int64_t q = i / size[d];
      int64_t r = i - q * size[d];
      for (int k = 0; k < K; ++k) off[k] += r * stride[k][d];
      i = q;
    }
  }
  MTL_HD int64_t numel() const {
    int64_t n = 1;
    for (int d = 0; d < ndim; ++d) n *= size[d];
    return n;
  }
};

}  // namespace mtl::kernels
