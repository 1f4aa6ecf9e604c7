#include "core/cuda_check.h"
#include "kernels/matmul.h"

namespace mtl::kernels::cuda {

// cuBLAS is column-major: row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T, so the
// operands are passed swapped with the same transpose flags.
void gemm(cublasHandle_t h, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  auto as_int = [](int64_t v, const char* what) { return mtl::cuda::checked_int(v, "matmul", what, "cuBLAS"); };
  const int im = as_int(m, "m"), in = as_int(n, "n"), ik = as_int(k, "k");
  const int ilda = as_int(lda, "lda"), ildb = as_int(ldb, "ldb"), ildc = as_int(ldc, "ldc");
  MTL_CUBLAS_CHECK(cublasSgemm(h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, in, im, ik, &alpha, b,
                               ildb, a, ilda, &beta, c, ildc));
}

// bfloat16 operands and result, float32 accumulation (as autocast's bf16 GEMMs).
void gemm(cublasHandle_t h, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const bf16* a, int64_t lda,
          const bf16* b, int64_t ldb, float beta, bf16* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  auto as_int = [](int64_t v, const char* what) { return mtl::cuda::checked_int(v, "matmul", what, "cuBLAS"); };
  const int im = as_int(m, "m"), in = as_int(n, "n"), ik = as_int(k, "k");
  const int ilda = as_int(lda, "lda"), ildb = as_int(ldb, "ldb"), ildc = as_int(ldc, "ldc");
  MTL_CUBLAS_CHECK(cublasGemmEx(h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, in, im, ik, &alpha,
                                b, CUDA_R_16BF, ildb, a, CUDA_R_16BF, ilda, &beta, c, CUDA_R_16BF, ildc,
                                CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

}  // namespace mtl::kernels::cuda
