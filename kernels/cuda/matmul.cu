#include "core/cuda_check.h"
#include "kernels/matmul.h"

namespace mtl::kernels::cuda {

namespace {

// The sizes as cuBLAS's ints, each range-checked (an error names the one that does not fit).
struct GemmInts {
  int m, n, k, lda, ldb, ldc;
  GemmInts(int64_t m_, int64_t n_, int64_t k_, int64_t lda_, int64_t ldb_, int64_t ldc_) {
    auto as_int = [](int64_t v, const char* what) { return mtl::cuda::checked_int(v, "matmul", what, "cuBLAS"); };
    m = as_int(m_, "m"), n = as_int(n_, "n"), k = as_int(k_, "k");
    lda = as_int(lda_, "lda"), ldb = as_int(ldb_, "ldb"), ldc = as_int(ldc_, "ldc");
  }
};

cublasOperation_t op(bool t) { return t ? CUBLAS_OP_T : CUBLAS_OP_N; }

}  // namespace

// cuBLAS is column-major: row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T, so the
// operands are passed swapped with the same transpose flags.
void gemm(cublasHandle_t h, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  const GemmInts d(m, n, k, lda, ldb, ldc);
  MTL_CUBLAS_CHECK(cublasSgemm(h, op(tb), op(ta), d.n, d.m, d.k, &alpha, b, d.ldb, a, d.lda, &beta, c, d.ldc));
}

// bfloat16 operands and result, float32 accumulation (as autocast's bf16 GEMMs).
void gemm(cublasHandle_t h, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const bf16* a, int64_t lda,
          const bf16* b, int64_t ldb, float beta, bf16* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  const GemmInts d(m, n, k, lda, ldb, ldc);
  MTL_CUBLAS_CHECK(cublasGemmEx(h, op(tb), op(ta), d.n, d.m, d.k, &alpha, b, CUDA_R_16BF, d.ldb, a, CUDA_R_16BF, d.lda,
                                &beta, c, CUDA_R_16BF, d.ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

}  // namespace mtl::kernels::cuda
