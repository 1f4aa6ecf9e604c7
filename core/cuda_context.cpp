#include "core/cuda_context.h"

#include <mutex>

#include "core/cuda_check.h"
#include "core/error.h"

namespace mtl::cuda {

namespace detail {

void fail(const char* lib, const char* stmt, const char* err, const char* file, int line) {
  throw Error(mtl::detail::concat(lib, " error: ", err, " in `", stmt, "` (", file, ":", line, ")"));
}

const char* cublas_error_string(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "unknown cuBLAS status";
  }
}

}  // namespace detail

namespace {

struct Context {
  std::once_flag probe_once, init_once;
  int count = 0;
  std::string why_unavailable;
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  cudnnHandle_t cudnn = nullptr;
  bool tf32 = true;
  bool deterministic = false;
  int device = 0;
  bool initialised = false;
};

Context& ctx() {
  static Context c;
  return c;
}

void probe() {
  std::call_once(ctx().probe_once, [] {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
      ctx().why_unavailable = cudaGetErrorString(e);
      cudaGetLastError();  // clear the sticky error so later calls start clean
      n = 0;
    } else if (n == 0) {
      ctx().why_unavailable = "no CUDA device found";
    }
    ctx().count = n;
  });
}

void init() {
  require();
  std::call_once(ctx().init_once, [] {
    MTL_CUDA_CHECK(cudaSetDevice(ctx().device));
    ctx().initialised = true;
    MTL_CUDA_CHECK(cudaStreamCreateWithFlags(&ctx().stream, cudaStreamNonBlocking));
    MTL_CUBLAS_CHECK(cublasCreate(&ctx().cublas));
    MTL_CUBLAS_CHECK(cublasSetStream(ctx().cublas, ctx().stream));
    MTL_CUBLAS_CHECK(cublasSetMathMode(ctx().cublas, ctx().tf32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                                : CUBLAS_DEFAULT_MATH));
    MTL_CUDNN_CHECK(cudnnCreate(&ctx().cudnn));
    MTL_CUDNN_CHECK(cudnnSetStream(ctx().cudnn, ctx().stream));
  });
}

}  // namespace

bool available() {
  probe();
  return ctx().count > 0;
}

int device_count() {
  probe();
  return ctx().count;
}

void require() {
  MTL_CHECK(available(), "CUDA was requested but is not available on this machine (",
            ctx().why_unavailable, "); use the cpu device");
}

cudaStream_t stream() {
  init();
  return ctx().stream;
}

cublasHandle_t cublas() {
  init();
  return ctx().cublas;
}

cudnnHandle_t cudnn() {
  init();
  return ctx().cudnn;
}

void synchronize() {
  if (!available()) return;
  MTL_CUDA_CHECK(cudaStreamSynchronize(stream()));
}

std::string device_name() {
  if (!available()) return "none";
  cudaDeviceProp p{};
  MTL_CUDA_CHECK(cudaGetDeviceProperties(&p, ctx().device));
  return p.name;
}

void select_device(int index) {
  if (index == ctx().device) return;
  MTL_CHECK(!ctx().initialised, "cuda::select_device(", index, "): the CUDA context already runs on device ",
            ctx().device);
  MTL_CHECK(index >= 0 && index < device_count(), "CUDA device ", index, " does not exist: this machine has ",
            device_count(), " visible GPU(s)");
  ctx().device = index;
}

int selected_device() { return ctx().device; }

void set_allow_tf32(bool on) {
  ctx().tf32 = on;
  if (ctx().cublas)
    MTL_CUBLAS_CHECK(cublasSetMathMode(ctx().cublas, on ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
}
bool allow_tf32() { return ctx().tf32; }
void set_deterministic(bool on) { ctx().deterministic = on; }
bool deterministic() { return ctx().deterministic; }

}  // namespace mtl::cuda
