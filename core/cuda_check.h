#pragma once
// Check macros for every CUDA runtime, cuBLAS and cuDNN call: a failure throws mtl::Error naming
// the failed statement, the library's error string, the file and the line.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <climits>
#include <cstdint>

#include "core/error.h"

namespace mtl::cuda::detail {
[[noreturn]] void fail(const char* lib, const char* stmt, const char* err, const char* file, int line);
const char* cublas_error_string(cublasStatus_t s);
}  // namespace mtl::cuda::detail

namespace mtl::cuda {
// cuBLAS and cuDNN take sizes as int: a value outside its range is an error naming the op and the
// argument, never a silent wrap-around.
inline int checked_int(int64_t v, const char* op, const char* what, const char* library) {
  MTL_CHECK(v >= 0 && v <= INT_MAX, op, ": ", what, " = ", v, " is outside ", library, "'s 32-bit range");
  return static_cast<int>(v);
}
}  // namespace mtl::cuda

#define MTL_CUDA_CHECK(stmt)                                                                    \
  do {                                                                                          \
    cudaError_t mtl_err_ = (stmt);                                                              \
    if (mtl_err_ != cudaSuccess) [[unlikely]]                                                   \
      ::mtl::cuda::detail::fail("CUDA", #stmt, cudaGetErrorString(mtl_err_), __FILE__, __LINE__); \
  } while (0)

#define MTL_CUBLAS_CHECK(stmt)                                                              \
  do {                                                                                      \
    cublasStatus_t mtl_st_ = (stmt);                                                        \
    if (mtl_st_ != CUBLAS_STATUS_SUCCESS) [[unlikely]]                                      \
      ::mtl::cuda::detail::fail("cuBLAS", #stmt, ::mtl::cuda::detail::cublas_error_string(mtl_st_), \
                                __FILE__, __LINE__);                                        \
  } while (0)

#define MTL_CUDNN_CHECK(stmt)                                                                    \
  do {                                                                                           \
    cudnnStatus_t mtl_st_ = (stmt);                                                              \
    if (mtl_st_ != CUDNN_STATUS_SUCCESS) [[unlikely]]                                            \
      ::mtl::cuda::detail::fail("cuDNN", #stmt, cudnnGetErrorString(mtl_st_), __FILE__, __LINE__); \
  } while (0)

// After every kernel launch: catches bad launch configurations at the launch site.
#define MTL_CUDA_LAUNCH_CHECK() MTL_CUDA_CHECK(cudaGetLastError())
