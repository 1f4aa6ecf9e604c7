#pragma once
// Row-major GEMM: C = alpha * op(A) * op(B) + beta * C, op = transpose when the flag is set.
// A is M x K after op, B is K x N after op; lda/ldb/ldc are row strides. CPU: OpenBLAS;
// CUDA: cuBLAS (TF32 tensor cores when mtl::cuda::allow_tf32()), whose int sizes and strides are
// range-checked before any cuBLAS call (an mtl::Error naming the argument).
#include <cublas_v2.h>

#include <cstdint>

#include "core/bfloat16.h"

namespace mtl::kernels {

namespace cpu {
template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
          int64_t ldb, T beta, T* c, int64_t ldc);
}
namespace cuda {
void gemm(cublasHandle_t h, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
// bfloat16 operands and result, float32 accumulation.
void gemm(cublasHandle_t h, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const bf16* a,
          int64_t lda, const bf16* b, int64_t ldb, float beta, bf16* c, int64_t ldc);
}  // namespace cuda

}  // namespace mtl::kernels
