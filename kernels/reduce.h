#pragma once
// Sum over the middle axis of a contiguous [outer, k, inner] buffer into [outer, inner]:
// out[o, i] = scale * sum_j x[o, j, i]. Every reduction of a tensor over a contiguous block of
// dimensions is this shape; others are permuted into it by the op. Deterministic: each output is
// summed by one thread or one block in a fixed order.
#include <cuda_runtime.h>

#include <cstdint>

#include "core/bfloat16.h"

namespace mtl::kernels {

namespace cpu {
template <typename T>
void sum_mid(T* out, const T* x, int64_t outer, int64_t k, int64_t inner, double scale);
}
namespace cuda {
// T: float or bf16 (summed in float, rounded once).
template <typename T>
void sum_mid(T* out, const T* x, int64_t outer, int64_t k, int64_t inner, double scale, cudaStream_t s);
}  // namespace cuda

}  // namespace mtl::kernels
