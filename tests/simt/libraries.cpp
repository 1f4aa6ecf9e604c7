// cuBLAS and cuDNN in the CPU execution layer: their handles exist, so the CUDA context starts as
// on a GPU, and every call that would compute throws "needs a GPU". The exceptions are axpy, through
// which core/ adds gradients on the device (an exact y += alpha * x, in float32 and rounded once for
// bf16, as cuBLAS computes it), and gemm in float32 and bf16 with float32 accumulation, so that the
// matmul launchers' bf16 path runs here; both are queued on the handle's stream.
#include <cublas_v2.h>
#include <cudnn.h>

#include <cstdint>
#include <string>
#include <tuple>

#include "core/bfloat16.h"
#include "core/error.h"

namespace {

[[noreturn]] void needs_gpu(const char* call) {
  throw mtl::Error(std::string(call) +
                   " needs a GPU: the CPU execution layer (simt build) runs the hand-written kernels but does not "
                   "emulate cuDNN or cuBLAS");
}

cudaStream_t& stream_of(cublasHandle_t h) { return *reinterpret_cast<cudaStream_t*>(h); }

template <typename T>
cublasStatus_t axpy(cublasHandle_t h, int n, const T* alpha, const T* x, int incx, T* y, int incy) {
  const T a = *alpha;
  auto* update = +[](void* data) {
    auto* args = static_cast<std::tuple<int, T, const T*, int, T*, int>*>(data);
    auto [n, a, x, incx, y, incy] = *args;
    for (int i = 0; i < n; ++i) y[static_cast<int64_t>(i) * incy] += a * x[static_cast<int64_t>(i) * incx];
    delete args;
  };
  auto* args = new std::tuple<int, T, const T*, int, T*, int>(n, a, x, incx, y, incy);
  return cudaLaunchHostFunc(stream_of(h), update, args) == cudaSuccess ? CUBLAS_STATUS_SUCCESS
                                                                       : CUBLAS_STATUS_EXECUTION_FAILED;
}

// Reads and writes one element of a cuBLAS operand of the two data types mtl uses.
float load(const void* p, cudaDataType t, int64_t i) {
  return t == CUDA_R_16BF ? static_cast<float>(static_cast<const mtl::bf16*>(p)[i]) : static_cast<const float*>(p)[i];
}
void store(void* p, cudaDataType t, int64_t i, float v) {
  if (t == CUDA_R_16BF) {
    static_cast<mtl::bf16*>(p)[i] = mtl::bf16(v);
  } else {
    static_cast<float*>(p)[i] = v;
  }
}
bool supported(cudaDataType t) { return t == CUDA_R_32F || t == CUDA_R_16BF; }

struct Gemm {
  bool ta, tb;
  int m, n, k;
  float alpha, beta;
  const void* a;
  cudaDataType at;
  int lda;
  const void* b;
  cudaDataType bt;
  int ldb;
  void* c;
  cudaDataType ct;
  int ldc;
};

// Column-major C = alpha op(A) op(B) + beta C, as cuBLAS defines it; beta == 0 never reads C.
cublasStatus_t gemm(cublasHandle_t h, const Gemm& g) {
  if (!supported(g.at) || !supported(g.bt) || !supported(g.ct)) return CUBLAS_STATUS_NOT_SUPPORTED;
  auto* run = +[](void* data) {
    const Gemm* g = static_cast<Gemm*>(data);
    for (int j = 0; j < g->n; ++j) {
      for (int i = 0; i < g->m; ++i) {
        float acc = 0.f;
        for (int p = 0; p < g->k; ++p) {
          const int64_t ai = g->ta ? p + int64_t{i} * g->lda : i + int64_t{p} * g->lda;
          const int64_t bi = g->tb ? j + int64_t{p} * g->ldb : p + int64_t{j} * g->ldb;
          acc += load(g->a, g->at, ai) * load(g->b, g->bt, bi);
        }
        const int64_t ci = i + int64_t{j} * g->ldc;
        const float prior = g->beta == 0.f ? 0.f : g->beta * load(g->c, g->ct, ci);
        store(g->c, g->ct, ci, g->alpha * acc + prior);
      }
    }
    delete g;
  };
  return cudaLaunchHostFunc(stream_of(h), run, new Gemm(g)) == cudaSuccess ? CUBLAS_STATUS_SUCCESS
                                                                           : CUBLAS_STATUS_EXECUTION_FAILED;
}

}  // namespace

#define MTL_SIMT_NEEDS_GPU(ret, name, params) \
  ret name params { needs_gpu(#name); }

extern "C" {

cublasStatus_t cublasCreate_v2(cublasHandle_t* handle) {
  *handle = reinterpret_cast<cublasHandle_t>(new cudaStream_t(nullptr));
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
  delete reinterpret_cast<cudaStream_t*>(handle);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t s) {
  stream_of(handle) = s;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSaxpy_v2(cublasHandle_t h, int n, const float* alpha, const float* x, int incx, float* y,
                              int incy) {
  return axpy(h, n, alpha, x, incx, y, incy);
}
cublasStatus_t cublasDaxpy_v2(cublasHandle_t h, int n, const double* alpha, const double* x, int incx, double* y,
                              int incy) {
  return axpy(h, n, alpha, x, incx, y, incy);
}
cublasStatus_t cublasAxpyEx(cublasHandle_t h, int n, const void* alpha, cudaDataType alpha_type, const void* x,
                            cudaDataType x_type, int incx, void* y, cudaDataType y_type, int incy,
                            cudaDataType execution_type) {
  if (alpha_type != CUDA_R_32F || execution_type != CUDA_R_32F || !supported(x_type) || !supported(y_type)) {
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  using Args = std::tuple<int, float, const void*, cudaDataType, int, void*, cudaDataType, int>;
  auto* update = +[](void* data) {
    auto* args = static_cast<Args*>(data);
    auto [n, a, x, xt, incx, y, yt, incy] = *args;
    for (int64_t i = 0; i < n; ++i) store(y, yt, i * incy, load(y, yt, i * incy) + a * load(x, xt, i * incx));
    delete args;
  };
  auto* args = new Args(n, *static_cast<const float*>(alpha), x, x_type, incx, y, y_type, incy);
  return cudaLaunchHostFunc(stream_of(h), update, args) == cudaSuccess ? CUBLAS_STATUS_SUCCESS
                                                                       : CUBLAS_STATUS_EXECUTION_FAILED;
}
cublasStatus_t cublasSgemm_v2(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                              const float* alpha, const float* a, int lda, const float* b, int ldb, const float* beta,
                              float* c, int ldc) {
  return gemm(h, {ta != CUBLAS_OP_N, tb != CUBLAS_OP_N, m, n, k, *alpha, *beta, a, CUDA_R_32F, lda, b, CUDA_R_32F, ldb,
                  c, CUDA_R_32F, ldc});
}
cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void* alpha, const void* a, cudaDataType at, int lda, const void* b, cudaDataType bt,
                            int ldb, const void* beta, void* c, cudaDataType ct, int ldc, cublasComputeType_t compute,
                            cublasGemmAlgo_t) {
  if (compute != CUBLAS_COMPUTE_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
  return gemm(h, {ta != CUBLAS_OP_N, tb != CUBLAS_OP_N, m, n, k, *static_cast<const float*>(alpha),
                  *static_cast<const float*>(beta), a, at, lda, b, bt, ldb, c, ct, ldc});
}

const char* cudnnGetErrorString(cudnnStatus_t s) {
  return s == CUDNN_STATUS_SUCCESS ? "CUDNN_STATUS_SUCCESS" : "a cuDNN error (cuDNN is not emulated)";
}
cudnnStatus_t cudnnCreate(cudnnHandle_t* handle) {
  *handle = reinterpret_cast<cudnnHandle_t>(new char);
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroy(cudnnHandle_t handle) {
  delete reinterpret_cast<char*>(handle);
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetStream(cudnnHandle_t, cudaStream_t) { return CUDNN_STATUS_SUCCESS; }
// Destructors call these whatever happened before: nothing was created, nothing to destroy.
cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t) { return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t) { return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t) { return CUDNN_STATUS_SUCCESS; }

MTL_SIMT_NEEDS_GPU(cudnnStatus_t, cudnnCreateTensorDescriptor, (cudnnTensorDescriptor_t*))
MTL_SIMT_NEEDS_GPU(cudnnStatus_t, cudnnCreateFilterDescriptor, (cudnnFilterDescriptor_t*))
MTL_SIMT_NEEDS_GPU(cudnnStatus_t, cudnnCreateConvolutionDescriptor, (cudnnConvolutionDescriptor_t*))
MTL_SIMT_NEEDS_GPU(cudnnStatus_t, cudnnSetTensor4dDescriptor,
                   (cudnnTensorDescriptor_t, cudnnTensorFormat_t, cudnnDataType_t, int, int, int, int))
MTL_SIMT_NEEDS_GPU(cudnnStatus_t, cudnnSetFilter4dDescriptor,
                   (cudnnFilterDescriptor_t, cudnnDataType_t, cudnnTensorFormat_t, int, int, int, int))
MTL_SIMT_NEEDS_GPU(cudnnStatus_t, cudnnSetConvolution2dDescriptor,
                   (cudnnConvolutionDescriptor_t, int, int, int, int, int, int, cudnnConvolutionMode_t,
                    cudnnDataType_t))
MTL_SIMT_NEEDS_GPU(cudnnStatus_t, cudnnSetConvolutionGroupCount, (cudnnConvolutionDescriptor_t, int))
MTL_SIMT_NEEDS_GPU(cudnnStatus_t, cudnnSetConvolutionMathType, (cudnnConvolutionDescriptor_t, cudnnMathType_t))
MTL_SIMT_NEEDS_GPU(cudnnStatus_t, cudnnGetConvolutionForwardAlgorithmMaxCount, (cudnnHandle_t, int*))
MTL_SIMT_NEEDS_GPU(cudnnStatus_t, cudnnGetConvolutionBackwardDataAlgorithmMaxCount, (cudnnHandle_t, int*))
MTL_SIMT_NEEDS_GPU(cudnnStatus_t, cudnnGetConvolutionBackwardFilterAlgorithmMaxCount, (cudnnHandle_t, int*))
MTL_SIMT_NEEDS_GPU(cudnnStatus_t, cudnnGetConvolutionForwardAlgorithm_v7,
                   (cudnnHandle_t, const cudnnTensorDescriptor_t, const cudnnFilterDescriptor_t,
                    const cudnnConvolutionDescriptor_t, const cudnnTensorDescriptor_t, const int, int*,
                    cudnnConvolutionFwdAlgoPerf_t*))
MTL_SIMT_NEEDS_GPU(cudnnStatus_t, cudnnGetConvolutionBackwardDataAlgorithm_v7,
                   (cudnnHandle_t, const cudnnFilterDescriptor_t, const cudnnTensorDescriptor_t,
                    const cudnnConvolutionDescriptor_t, const cudnnTensorDescriptor_t, const int, int*,
                    cudnnConvolutionBwdDataAlgoPerf_t*))
MTL_SIMT_NEEDS_GPU(cudnnStatus_t, cudnnGetConvolutionBackwardFilterAlgorithm_v7,
                   (cudnnHandle_t, const cudnnTensorDescriptor_t, const cudnnTensorDescriptor_t,
                    const cudnnConvolutionDescriptor_t, const cudnnFilterDescriptor_t, const int, int*,
                    cudnnConvolutionBwdFilterAlgoPerf_t*))
MTL_SIMT_NEEDS_GPU(cudnnStatus_t, cudnnGetConvolutionForwardWorkspaceSize,
                   (cudnnHandle_t, const cudnnTensorDescriptor_t, const cudnnFilterDescriptor_t,
                    const cudnnConvolutionDescriptor_t, const cudnnTensorDescriptor_t, cudnnConvolutionFwdAlgo_t,
                    size_t*))
MTL_SIMT_NEEDS_GPU(cudnnStatus_t, cudnnGetConvolutionBackwardDataWorkspaceSize,
                   (cudnnHandle_t, const cudnnFilterDescriptor_t, const cudnnTensorDescriptor_t,
                    const cudnnConvolutionDescriptor_t, const cudnnTensorDescriptor_t, cudnnConvolutionBwdDataAlgo_t,
                    size_t*))
MTL_SIMT_NEEDS_GPU(cudnnStatus_t, cudnnGetConvolutionBackwardFilterWorkspaceSize,
                   (cudnnHandle_t, const cudnnTensorDescriptor_t, const cudnnTensorDescriptor_t,
                    const cudnnConvolutionDescriptor_t, const cudnnFilterDescriptor_t,
                    cudnnConvolutionBwdFilterAlgo_t, size_t*))
MTL_SIMT_NEEDS_GPU(cudnnStatus_t, cudnnFindConvolutionForwardAlgorithmEx,
                   (cudnnHandle_t, const cudnnTensorDescriptor_t, const void*, const cudnnFilterDescriptor_t,
                    const void*, const cudnnConvolutionDescriptor_t, const cudnnTensorDescriptor_t, void*, const int,
                    int*, cudnnConvolutionFwdAlgoPerf_t*, void*, size_t))
MTL_SIMT_NEEDS_GPU(cudnnStatus_t, cudnnFindConvolutionBackwardDataAlgorithmEx,
                   (cudnnHandle_t, const cudnnFilterDescriptor_t, const void*, const cudnnTensorDescriptor_t,
                    const void*, const cudnnConvolutionDescriptor_t, const cudnnTensorDescriptor_t, void*, const int,
                    int*, cudnnConvolutionBwdDataAlgoPerf_t*, void*, size_t))
MTL_SIMT_NEEDS_GPU(cudnnStatus_t, cudnnFindConvolutionBackwardFilterAlgorithmEx,
                   (cudnnHandle_t, const cudnnTensorDescriptor_t, const void*, const cudnnTensorDescriptor_t,
                    const void*, const cudnnConvolutionDescriptor_t, const cudnnFilterDescriptor_t, void*, const int,
                    int*, cudnnConvolutionBwdFilterAlgoPerf_t*, void*, size_t))
MTL_SIMT_NEEDS_GPU(cudnnStatus_t, cudnnConvolutionForward,
                   (cudnnHandle_t, const void*, const cudnnTensorDescriptor_t, const void*,
                    const cudnnFilterDescriptor_t, const void*, const cudnnConvolutionDescriptor_t,
                    cudnnConvolutionFwdAlgo_t, void*, size_t, const void*, const cudnnTensorDescriptor_t, void*))
MTL_SIMT_NEEDS_GPU(cudnnStatus_t, cudnnConvolutionBackwardData,
                   (cudnnHandle_t, const void*, const cudnnFilterDescriptor_t, const void*,
                    const cudnnTensorDescriptor_t, const void*, const cudnnConvolutionDescriptor_t,
                    cudnnConvolutionBwdDataAlgo_t, void*, size_t, const void*, const cudnnTensorDescriptor_t, void*))
MTL_SIMT_NEEDS_GPU(cudnnStatus_t, cudnnConvolutionBackwardFilter,
                   (cudnnHandle_t, const void*, const cudnnTensorDescriptor_t, const void*,
                    const cudnnTensorDescriptor_t, const void*, const cudnnConvolutionDescriptor_t,
                    cudnnConvolutionBwdFilterAlgo_t, void*, size_t, const void*, const cudnnFilterDescriptor_t, void*))
MTL_SIMT_NEEDS_GPU(cudnnStatus_t, cudnnAddTensor,
                   (cudnnHandle_t, const void*, const cudnnTensorDescriptor_t, const void*, const void*,
                    const cudnnTensorDescriptor_t, void*))

}  // extern "C"
