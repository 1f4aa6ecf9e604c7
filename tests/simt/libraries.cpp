// cuBLAS and cuDNN in the CPU execution layer: their handles exist, so the CUDA context starts as
// on a GPU, and every call that would compute throws "needs a GPU". The one exception is axpy,
// through which core/ adds gradients on the device: an exact y += alpha * x, queued on the
// handle's stream.
#include <cublas_v2.h>
#include <cudnn.h>

#include <cstdint>
#include <string>
#include <tuple>

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
MTL_SIMT_NEEDS_GPU(cublasStatus_t, cublasSgemm_v2,
                   (cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const float*, const float*,
                    int, const float*, int, const float*, float*, int))

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
