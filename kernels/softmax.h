#pragma once
// Softmax along one dimension of a contiguous tensor viewed as [outer, n, inner]: for every
// (outer, inner) column, y = exp(x - max) / sum(exp(x - max)) over the n entries. For NCHW
// class scores over the channels, outer = N, n = C, inner = H*W.
#include <cuda_runtime.h>

#include <cstdint>

namespace mtl::kernels {

struct SoftmaxDims {
  int64_t outer = 1, n = 1, inner = 1;
};

namespace cpu {
template <typename T> void softmax_forward(T* y, const T* x, const SoftmaxDims& d);
// gx = y * (gy - sum over the n entries of gy * y).
template <typename T> void softmax_backward(T* gx, const T* gy, const T* y, const SoftmaxDims& d);
}  // namespace cpu

namespace cuda {
void softmax_forward(float* y, const float* x, const SoftmaxDims& d, cudaStream_t s);
void softmax_backward(float* gx, const float* gy, const float* y, const SoftmaxDims& d, cudaStream_t s);
}  // namespace cuda

}  // namespace mtl::kernels
