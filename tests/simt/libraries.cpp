// cuBLAS and cuDNN in the CPU execution layer: their handles exist, so the CUDA context starts as
// on a GPU, and the calls mtl makes compute on the CPU, queued on the handle's stream: axpy (core/
// adds gradients on the device), gemm in float32 and bf16 with float32 accumulation, and cuDNN's
// convolutions (forward, backward data, backward filter; groups, stride, padding, dilation; float32
// and bf16 tensors, float32 accumulation, alpha 1 and beta 0 as mtl calls them), each reading its
// operands in float and rounding its output once, as the libraries do. The algorithm queries offer
// one deterministic algorithm that needs no workspace. Anything else throws "needs a GPU".
#include <cublas_v2.h>
#include <cudnn.h>

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

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

// cuDNN's descriptors: a tensor's or a filter's data type and NCHW (KCRS) sizes, a convolution's
// geometry and math type.
struct Dims4 {
  cudnnDataType_t type = CUDNN_DATA_FLOAT;
  int n = 0, c = 0, h = 0, w = 0;
};
struct ConvDesc {
  int pad_h = 0, pad_w = 0, stride_h = 1, stride_w = 1, dil_h = 1, dil_w = 1, groups = 1;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
};

bool supported(cudnnDataType_t t) { return t == CUDNN_DATA_FLOAT || t == CUDNN_DATA_BFLOAT16; }
float load(const void* p, cudnnDataType_t t, int64_t i) {
  return load(p, t == CUDNN_DATA_BFLOAT16 ? CUDA_R_16BF : CUDA_R_32F, i);
}
void store(void* p, cudnnDataType_t t, int64_t i, float v) {
  store(p, t == CUDNN_DATA_BFLOAT16 ? CUDA_R_16BF : CUDA_R_32F, i, v);
}

cudnnStatus_t one_algorithm(int* n) {
  *n = 1;
  return CUDNN_STATUS_SUCCESS;
}

// One deterministic algorithm without workspace, in the descriptor's math type (what mtl's
// algorithm choice asks for).
template <typename Perf>
cudnnStatus_t offer(cudnnConvolutionDescriptor_t c, int* got, Perf* perf) {
  *got = 1;
  perf[0] = Perf{};
  perf[0].status = CUDNN_STATUS_SUCCESS;
  perf[0].determinism = CUDNN_DETERMINISTIC;
  perf[0].mathType = reinterpret_cast<const ConvDesc*>(c)->math;
  perf[0].memory = 0;
  return CUDNN_STATUS_SUCCESS;
}

// One convolution direction over the whole problem: x [N,C,H,W], w [K,C/groups,R,S], y [N,K,P,Q];
// the output of the direction (y, x or w) is written once from a float sum.
struct Conv {
  enum Direction { forward, backward_data, backward_filter } dir;
  Dims4 x, w, y;
  ConvDesc c;
  void *xp, *wp, *yp;

  void run() const {
    const int cpg = x.c / c.groups, kpg = w.n / c.groups;
    auto xi = [&](int n, int ch, int h, int ww) { return ((int64_t{n} * x.c + ch) * x.h + h) * x.w + ww; };
    auto wi = [&](int k, int ch, int r, int s) { return ((int64_t{k} * w.c + ch) * w.h + r) * w.w + s; };
    auto yi = [&](int n, int k, int p, int q) { return ((int64_t{n} * y.c + k) * y.h + p) * y.w + q; };
    // Visits every (output position, tap) pair whose input position is inside the image.
    auto taps = [&](int n, int k, int p, int q, auto&& f) {
      const int g = k / kpg;
      for (int ch = 0; ch < cpg; ++ch)
        for (int r = 0; r < w.h; ++r) {
          const int h = p * c.stride_h - c.pad_h + r * c.dil_h;
          if (h < 0 || h >= x.h) continue;
          for (int s = 0; s < w.w; ++s) {
            const int ww = q * c.stride_w - c.pad_w + s * c.dil_w;
            if (ww >= 0 && ww < x.w) f(xi(n, g * cpg + ch, h, ww), wi(k, ch, r, s));
          }
        }
    };
    if (dir == forward) {
      for (int n = 0; n < y.n; ++n)
        for (int k = 0; k < y.c; ++k)
          for (int p = 0; p < y.h; ++p)
            for (int q = 0; q < y.w; ++q) {
              float acc = 0.f;
              taps(n, k, p, q, [&](int64_t i, int64_t j) { acc += load(xp, x.type, i) * load(wp, w.type, j); });
              store(yp, y.type, yi(n, k, p, q), acc);
            }
      return;
    }
    // The backward directions scatter into float sums, then round once.
    const bool data = dir == backward_data;
    const Dims4& out = data ? x : w;
    std::vector<float> acc(static_cast<size_t>(int64_t{out.n} * out.c * out.h * out.w), 0.f);
    for (int n = 0; n < y.n; ++n)
      for (int k = 0; k < y.c; ++k)
        for (int p = 0; p < y.h; ++p)
          for (int q = 0; q < y.w; ++q) {
            const float gy = load(yp, y.type, yi(n, k, p, q));
            taps(n, k, p, q, [&](int64_t i, int64_t j) {
              if (data)
                acc[static_cast<size_t>(i)] += gy * load(wp, w.type, j);
              else
                acc[static_cast<size_t>(j)] += gy * load(xp, x.type, i);
            });
          }
    for (size_t i = 0; i < acc.size(); ++i) store(data ? xp : wp, out.type, static_cast<int64_t>(i), acc[i]);
  }
};

cudnnStatus_t convolve(cudnnHandle_t h, Conv::Direction dir, const void* alpha, const void* beta,
                       cudnnTensorDescriptor_t xd, cudnnFilterDescriptor_t wd, cudnnConvolutionDescriptor_t cd,
                       cudnnTensorDescriptor_t yd, void* x, void* w, void* y) {
  if (*static_cast<const float*>(alpha) != 1.f || *static_cast<const float*>(beta) != 0.f)
    return CUDNN_STATUS_NOT_SUPPORTED;
  auto* conv = new Conv{dir,
                        *reinterpret_cast<Dims4*>(xd),
                        *reinterpret_cast<Dims4*>(wd),
                        *reinterpret_cast<Dims4*>(yd),
                        *reinterpret_cast<ConvDesc*>(cd),
                        x,
                        w,
                        y};
  auto* run = +[](void* data) {
    const Conv* c = static_cast<Conv*>(data);
    c->run();
    delete c;
  };
  return cudaLaunchHostFunc(*reinterpret_cast<cudaStream_t*>(h), run, conv) == cudaSuccess
             ? CUDNN_STATUS_SUCCESS
             : CUDNN_STATUS_EXECUTION_FAILED;
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
  return s == CUDNN_STATUS_SUCCESS ? "CUDNN_STATUS_SUCCESS" : "a cuDNN error (the CPU execution layer's emulation)";
}
cudnnStatus_t cudnnCreate(cudnnHandle_t* handle) {
  *handle = reinterpret_cast<cudnnHandle_t>(new cudaStream_t(nullptr));
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroy(cudnnHandle_t handle) {
  delete reinterpret_cast<cudaStream_t*>(handle);
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetStream(cudnnHandle_t handle, cudaStream_t s) {
  *reinterpret_cast<cudaStream_t*>(handle) = s;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t* d) {
  *d = reinterpret_cast<cudnnTensorDescriptor_t>(new Dims4{});
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t* d) {
  *d = reinterpret_cast<cudnnFilterDescriptor_t>(new Dims4{});
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t* d) {
  *d = reinterpret_cast<cudnnConvolutionDescriptor_t>(new ConvDesc{});
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t d) {
  delete reinterpret_cast<Dims4*>(d);
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t d) {
  delete reinterpret_cast<Dims4*>(d);
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t d) {
  delete reinterpret_cast<ConvDesc*>(d);
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t d, cudnnTensorFormat_t f, cudnnDataType_t t, int n,
                                         int c, int h, int w) {
  if (f != CUDNN_TENSOR_NCHW || !supported(t)) return CUDNN_STATUS_NOT_SUPPORTED;
  *reinterpret_cast<Dims4*>(d) = {t, n, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t d, cudnnDataType_t t, cudnnTensorFormat_t f, int k,
                                         int c, int h, int w) {
  if (f != CUDNN_TENSOR_NCHW || !supported(t)) return CUDNN_STATUS_NOT_SUPPORTED;
  *reinterpret_cast<Dims4*>(d) = {t, k, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t d, int pad_h, int pad_w, int stride_h,
                                              int stride_w, int dil_h, int dil_w, cudnnConvolutionMode_t mode,
                                              cudnnDataType_t compute) {
  if (mode != CUDNN_CROSS_CORRELATION || compute != CUDNN_DATA_FLOAT) return CUDNN_STATUS_NOT_SUPPORTED;
  auto* c = reinterpret_cast<ConvDesc*>(d);
  c->pad_h = pad_h, c->pad_w = pad_w, c->stride_h = stride_h, c->stride_w = stride_w;
  c->dil_h = dil_h, c->dil_w = dil_w;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionGroupCount(cudnnConvolutionDescriptor_t d, int groups) {
  reinterpret_cast<ConvDesc*>(d)->groups = groups;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d, cudnnMathType_t m) {
  reinterpret_cast<ConvDesc*>(d)->math = m;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionForwardAlgorithmMaxCount(cudnnHandle_t, int* n) { return one_algorithm(n); }
cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithmMaxCount(cudnnHandle_t, int* n) { return one_algorithm(n); }
cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(cudnnHandle_t, int* n) { return one_algorithm(n); }
cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t, const cudnnTensorDescriptor_t,
                                                     const cudnnFilterDescriptor_t,
                                                     const cudnnConvolutionDescriptor_t c,
                                                     const cudnnTensorDescriptor_t, const int, int* got,
                                                     cudnnConvolutionFwdAlgoPerf_t* perf) {
  return offer(c, got, perf);
}
cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnnHandle_t, const cudnnFilterDescriptor_t,
                                                          const cudnnTensorDescriptor_t,
                                                          const cudnnConvolutionDescriptor_t c,
                                                          const cudnnTensorDescriptor_t, const int, int* got,
                                                          cudnnConvolutionBwdDataAlgoPerf_t* perf) {
  return offer(c, got, perf);
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnnHandle_t, const cudnnTensorDescriptor_t,
                                                            const cudnnTensorDescriptor_t,
                                                            const cudnnConvolutionDescriptor_t c,
                                                            const cudnnFilterDescriptor_t, const int, int* got,
                                                            cudnnConvolutionBwdFilterAlgoPerf_t* perf) {
  return offer(c, got, perf);
}
cudnnStatus_t cudnnFindConvolutionForwardAlgorithmEx(cudnnHandle_t, const cudnnTensorDescriptor_t, const void*,
                                                     const cudnnFilterDescriptor_t, const void*,
                                                     const cudnnConvolutionDescriptor_t c,
                                                     const cudnnTensorDescriptor_t, void*, const int, int* got,
                                                     cudnnConvolutionFwdAlgoPerf_t* perf, void*, size_t) {
  return offer(c, got, perf);
}
cudnnStatus_t cudnnFindConvolutionBackwardDataAlgorithmEx(cudnnHandle_t, const cudnnFilterDescriptor_t, const void*,
                                                          const cudnnTensorDescriptor_t, const void*,
                                                          const cudnnConvolutionDescriptor_t c,
                                                          const cudnnTensorDescriptor_t, void*, const int, int* got,
                                                          cudnnConvolutionBwdDataAlgoPerf_t* perf, void*, size_t) {
  return offer(c, got, perf);
}
cudnnStatus_t cudnnFindConvolutionBackwardFilterAlgorithmEx(cudnnHandle_t, const cudnnTensorDescriptor_t, const void*,
                                                            const cudnnTensorDescriptor_t, const void*,
                                                            const cudnnConvolutionDescriptor_t c,
                                                            const cudnnFilterDescriptor_t, void*, const int, int* got,
                                                            cudnnConvolutionBwdFilterAlgoPerf_t* perf, void*, size_t) {
  return offer(c, got, perf);
}
cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t, const cudnnTensorDescriptor_t,
                                                      const cudnnFilterDescriptor_t, const cudnnConvolutionDescriptor_t,
                                                      const cudnnTensorDescriptor_t, cudnnConvolutionFwdAlgo_t,
                                                      size_t* bytes) {
  *bytes = 0;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(cudnnHandle_t, const cudnnFilterDescriptor_t,
                                                           const cudnnTensorDescriptor_t,
                                                           const cudnnConvolutionDescriptor_t,
                                                           const cudnnTensorDescriptor_t, cudnnConvolutionBwdDataAlgo_t,
                                                           size_t* bytes) {
  *bytes = 0;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnnHandle_t, const cudnnTensorDescriptor_t,
                                                             const cudnnTensorDescriptor_t,
                                                             const cudnnConvolutionDescriptor_t,
                                                             const cudnnFilterDescriptor_t,
                                                             cudnnConvolutionBwdFilterAlgo_t, size_t* bytes) {
  *bytes = 0;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t h, const void* alpha, const cudnnTensorDescriptor_t xd,
                                      const void* x, const cudnnFilterDescriptor_t wd, const void* w,
                                      const cudnnConvolutionDescriptor_t cd, cudnnConvolutionFwdAlgo_t, void*, size_t,
                                      const void* beta, const cudnnTensorDescriptor_t yd, void* y) {
  return convolve(h, Conv::forward, alpha, beta, xd, wd, cd, yd, const_cast<void*>(x), const_cast<void*>(w), y);
}
cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t h, const void* alpha, const cudnnFilterDescriptor_t wd,
                                           const void* w, const cudnnTensorDescriptor_t yd, const void* gy,
                                           const cudnnConvolutionDescriptor_t cd, cudnnConvolutionBwdDataAlgo_t, void*,
                                           size_t, const void* beta, const cudnnTensorDescriptor_t xd, void* gx) {
  return convolve(h, Conv::backward_data, alpha, beta, xd, wd, cd, yd, gx, const_cast<void*>(w), const_cast<void*>(gy));
}
cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t h, const void* alpha, const cudnnTensorDescriptor_t xd,
                                             const void* x, const cudnnTensorDescriptor_t yd, const void* gy,
                                             const cudnnConvolutionDescriptor_t cd, cudnnConvolutionBwdFilterAlgo_t,
                                             void*, size_t, const void* beta, const cudnnFilterDescriptor_t wd,
                                             void* gw) {
  return convolve(h, Conv::backward_filter, alpha, beta, xd, wd, cd, yd, const_cast<void*>(x), gw,
                  const_cast<void*>(gy));
}

MTL_SIMT_NEEDS_GPU(cudnnStatus_t, cudnnAddTensor,
                   (cudnnHandle_t, const void*, const cudnnTensorDescriptor_t, const void*, const void*,
                    const cudnnTensorDescriptor_t, void*))

}  // extern "C"
