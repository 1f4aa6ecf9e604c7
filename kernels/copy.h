#pragma once
// Layout changes and dtype conversion. `copy_strided` moves elements of `elem_size` bytes from a
// strided source (Layout operand 1) to a strided destination (operand 0); it is what contiguous(),
// cat, slice-backward and permute-backward are made of. `cast` converts contiguous buffers.
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "kernels/layout.h"

namespace mtl::kernels {

namespace cpu {
void copy_strided(void* dst, const void* src, size_t elem_size, const Layout& l);
void cast(void* dst, DType dst_t, const void* src, DType src_t, int64_t n);
template <typename T> void fill(T* out, T value, int64_t n);
}  // namespace cpu

namespace cuda {
void copy_strided(void* dst, const void* src, size_t elem_size, const Layout& l, cudaStream_t s);
void cast(void* dst, DType dst_t, const void* src, DType src_t, int64_t n, cudaStream_t s);
void fill(float* out, float value, int64_t n, cudaStream_t s);
}  // namespace cuda

}  // namespace mtl::kernels
