#include <algorithm>
#include <array>
#include <climits>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "core/allocator.h"
#include "core/cuda_check.h"
#include "core/error.h"
#include "kernels/conv.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/packed.cuh"
#include "kernels/cuda/reduce.cuh"

namespace mtl::kernels::cuda {

namespace {

// The most workspace a convolution may use; algorithms that need more are not considered.
constexpr size_t kMaxWorkspace = size_t{1} << 30;

// Owns one cuDNN descriptor. The destroy status is ignored: destroying a descriptor this object
// created cannot fail in a way the caller could act on, and destructors must not throw.
template <typename D, cudnnStatus_t (*Destroy)(D)>
class Descriptor {
 public:
  Descriptor() = default;
  ~Descriptor() {
    if (d_) Destroy(d_);
  }
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;
  D get() const { return d_; }
  D* out() { return &d_; }

 private:
  D d_ = nullptr;
};

using TensorDescriptor = Descriptor<cudnnTensorDescriptor_t, cudnnDestroyTensorDescriptor>;
using FilterDescriptor = Descriptor<cudnnFilterDescriptor_t, cudnnDestroyFilterDescriptor>;
using ConvolutionDescriptor = Descriptor<cudnnConvolutionDescriptor_t, cudnnDestroyConvolutionDescriptor>;

// Device memory from the caching allocator for the lifetime of one call. Freeing right after the
// work is enqueued is safe: everything runs on the one stream, so a later user of the block is
// ordered after this work.
class Workspace {
 public:
  explicit Workspace(size_t nbytes) : size_(nbytes), p_(nbytes ? mtl::cuda::allocate(nbytes) : nullptr) {}
  ~Workspace() { mtl::cuda::deallocate(p_); }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  void* get() const { return p_; }
  size_t size() const { return size_; }

 private:
  size_t size_;
  void* p_;
};

int as_int(int64_t v, const char* what) { return mtl::cuda::checked_int(v, "conv2d", what, "cuDNN"); }

void set_tensor(TensorDescriptor& d, cudnnDataType_t type, int64_t n, int64_t c, int64_t h, int64_t w) {
  MTL_CUDNN_CHECK(cudnnCreateTensorDescriptor(d.out()));
  MTL_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d.get(), CUDNN_TENSOR_NCHW, type, as_int(n, "batch"),
                                             as_int(c, "channels"), as_int(h, "height"), as_int(w, "width")));
}

// Storage of the data (float or bfloat16); cuDNN accumulates in float32 for both.
template <typename T>
constexpr cudnnDataType_t data_type() {
  return std::is_same_v<T, bf16> ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
}

// The descriptors of one convolution, with the math type the algorithm search runs under.
struct ConvDescriptors {
  TensorDescriptor x, y;
  FilterDescriptor w;
  ConvolutionDescriptor conv;

  ConvDescriptors(const ConvGeometry& g, cudnnDataType_t type, cudnnMathType_t math) {
    set_tensor(x, type, g.n, g.c_in, g.h, g.w);
    set_tensor(y, type, g.n, g.c_out, g.out_h, g.out_w);
    MTL_CUDNN_CHECK(cudnnCreateFilterDescriptor(w.out()));
    MTL_CUDNN_CHECK(cudnnSetFilter4dDescriptor(w.get(), type, CUDNN_TENSOR_NCHW, as_int(g.c_out, "c_out"),
                                               as_int(g.c_in / g.groups, "c_in / groups"), as_int(g.kh, "kh"),
                                               as_int(g.kw, "kw")));
    MTL_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(conv.out()));
    MTL_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(conv.get(), as_int(g.pad_h, "pad_h"), as_int(g.pad_w, "pad_w"),
                                                    as_int(g.stride_h, "stride_h"), as_int(g.stride_w, "stride_w"),
                                                    as_int(g.dil_h, "dil_h"), as_int(g.dil_w, "dil_w"),
                                                    CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    MTL_CUDNN_CHECK(cudnnSetConvolutionGroupCount(conv.get(), as_int(g.groups, "groups")));
    MTL_CUDNN_CHECK(cudnnSetConvolutionMathType(conv.get(), math));
  }
};

enum class Direction : int64_t { forward, backward_data, backward_filter };

const char* direction_name(Direction d) {
  switch (d) {
    case Direction::forward:
      return "forward";
    case Direction::backward_data:
      return "backward-data";
    case Direction::backward_filter:
      return "backward-filter";
  }
  return "?";
}

struct Choice {
  ConvAlgoChoice pick;
  size_t workspace = 0;
};

// The largest power of two up to 32 that divides the address. cuDNN may choose a vectorised
// kernel for aligned buffers that a view at an odd offset cannot run, so a choice holds only for
// the alignment it was made with (PyTorch's cache key does the same).
int64_t alignment(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  int64_t al = 1;
  while (al < 32 && a % static_cast<uintptr_t>(2 * al) == 0) al *= 2;
  return al;
}

using Key = std::array<int64_t, 21>;

// a, b and out are the direction's three buffers, as in its find().
Key make_key(const ConvGeometry& g, ConvPolicy p, Direction d, const void* a, const void* b, const void* out) {
  return {g.n,
          g.c_in,
          g.h,
          g.w,
          g.c_out,
          g.kh,
          g.kw,
          g.stride_h,
          g.stride_w,
          g.pad_h,
          g.pad_w,
          g.dil_h,
          g.dil_w,
          g.groups,
          static_cast<int64_t>(d),
          p.deterministic ? 1 : 0,
          p.allow_tf32 ? 1 : 0,
          p.bf16 ? 1 : 0,
          alignment(a),
          alignment(b),
          alignment(out)};
}

struct AlgorithmCache {
  std::mutex mu;
  std::map<Key, Choice> choices;
};

AlgorithmCache& cache() {
  static AlgorithmCache* c = new AlgorithmCache;  // leaked: used until process exit
  return *c;
}

// The three directions differ only in their cuDNN entry points and perf-result types.
struct Forward {
  using Perf = cudnnConvolutionFwdAlgoPerf_t;
  static int max_count(cudnnHandle_t h) {
    int n = 0;
    MTL_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &n));
    return n;
  }
  static void heuristics(cudnnHandle_t h, const ConvDescriptors& d, int n, int* got, Perf* perf) {
    MTL_CUDNN_CHECK(
        cudnnGetConvolutionForwardAlgorithm_v7(h, d.x.get(), d.w.get(), d.conv.get(), d.y.get(), n, got, perf));
  }
  static size_t workspace(cudnnHandle_t h, const ConvDescriptors& d, int algo) {
    size_t n = 0;
    MTL_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, d.x.get(), d.w.get(), d.conv.get(), d.y.get(),
                                                            static_cast<cudnnConvolutionFwdAlgo_t>(algo), &n));
    return n;
  }
  // a = x, b = w, out = y
  static void find(cudnnHandle_t h, const ConvDescriptors& d, const void* a, const void* b, void* out, int n, int* got,
                   Perf* perf, const Workspace& ws) {
    MTL_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(h, d.x.get(), a, d.w.get(), b, d.conv.get(), d.y.get(), out,
                                                           n, got, perf, ws.get(), ws.size()));
  }
};

struct BackwardData {
  using Perf = cudnnConvolutionBwdDataAlgoPerf_t;
  static int max_count(cudnnHandle_t h) {
    int n = 0;
    MTL_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &n));
    return n;
  }
  static void heuristics(cudnnHandle_t h, const ConvDescriptors& d, int n, int* got, Perf* perf) {
    MTL_CUDNN_CHECK(
        cudnnGetConvolutionBackwardDataAlgorithm_v7(h, d.w.get(), d.y.get(), d.conv.get(), d.x.get(), n, got, perf));
  }
  static size_t workspace(cudnnHandle_t h, const ConvDescriptors& d, int algo) {
    size_t n = 0;
    MTL_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(h, d.w.get(), d.y.get(), d.conv.get(), d.x.get(),
                                                                 static_cast<cudnnConvolutionBwdDataAlgo_t>(algo), &n));
    return n;
  }
  // a = w, b = gy, out = gx
  static void find(cudnnHandle_t h, const ConvDescriptors& d, const void* a, const void* b, void* out, int n, int* got,
                   Perf* perf, const Workspace& ws) {
    MTL_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(h, d.w.get(), a, d.y.get(), b, d.conv.get(), d.x.get(),
                                                                out, n, got, perf, ws.get(), ws.size()));
  }
};

struct BackwardFilter {
  using Perf = cudnnConvolutionBwdFilterAlgoPerf_t;
  static int max_count(cudnnHandle_t h) {
    int n = 0;
    MTL_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &n));
    return n;
  }
  static void heuristics(cudnnHandle_t h, const ConvDescriptors& d, int n, int* got, Perf* perf) {
    MTL_CUDNN_CHECK(
        cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, d.x.get(), d.y.get(), d.conv.get(), d.w.get(), n, got, perf));
  }
  static size_t workspace(cudnnHandle_t h, const ConvDescriptors& d, int algo) {
    size_t n = 0;
    MTL_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(
        h, d.x.get(), d.y.get(), d.conv.get(), d.w.get(), static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo), &n));
    return n;
  }
  // a = x, b = gy, out = gw
  static void find(cudnnHandle_t h, const ConvDescriptors& d, const void* a, const void* b, void* out, int n, int* got,
                   Perf* perf, const Workspace& ws) {
    MTL_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(h, d.x.get(), a, d.y.get(), b, d.conv.get(),
                                                                  d.w.get(), out, n, got, perf, ws.get(), ws.size()));
  }
};

// Chooses an algorithm once per key and caches it. Deterministic policy: the heuristics' order
// alone decides, so processes agree. Otherwise the candidates are timed with cudnnFind*Ex on the
// real buffers, which it overwrites (the caller then runs the chosen one).
template <typename Dir>
Choice choose(cudnnHandle_t h, const ConvGeometry& g, ConvPolicy p, Direction dir, const ConvDescriptors& d,
              const void* a, const void* b, void* out) {
  const Key key = make_key(g, p, dir, a, b, out);
  {
    std::lock_guard<std::mutex> lock(cache().mu);
    auto it = cache().choices.find(key);
    if (it != cache().choices.end()) return it->second;
  }
  const int max_count = Dir::max_count(h);
  std::vector<typename Dir::Perf> perf(static_cast<size_t>(max_count));
  int got = 0;
  Dir::heuristics(h, d, max_count, &got, perf.data());
  size_t max_workspace = kMaxWorkspace;
  if (!p.deterministic) {
    // The heuristics list each algorithm's workspace need, which sizes the search's workspace.
    size_t search_ws = 0;
    for (int i = 0; i < got; ++i)
      if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= kMaxWorkspace)
        search_ws = std::max(search_ws, perf[i].memory);
    std::unique_ptr<Workspace> ws;
    try {
      ws = std::make_unique<Workspace>(search_ws);
    } catch (const Error&) {
      // Out of device memory for the largest workspace: search among algorithms that need none.
      ws = std::make_unique<Workspace>(0);
    }
    got = 0;
    Dir::find(h, d, a, b, out, max_count, &got, perf.data(), *ws);
    max_workspace = ws->size();
  }
  std::vector<ConvAlgoCandidate> candidates;
  for (int i = 0; i < got; ++i)
    candidates.push_back(
        {static_cast<int>(perf[i].algo), perf[i].status, perf[i].determinism, perf[i].mathType, perf[i].memory});
  const std::optional<ConvAlgoChoice> pick = pick_conv_algorithm(candidates, p, max_workspace);
  MTL_CHECK(pick.has_value(), "conv2d: cuDNN offers no ", p.deterministic ? "deterministic " : "", direction_name(dir),
            " algorithm for input [", g.n, ", ", g.c_in, ", ", g.h, ", ", g.w, "], weight [", g.c_out, ", ",
            g.c_in / g.groups, ", ", g.kh, ", ", g.kw, "], stride (", g.stride_h, ", ", g.stride_w, "), padding (",
            g.pad_h, ", ", g.pad_w, "), dilation (", g.dil_h, ", ", g.dil_w, "), groups ", g.groups);
  MTL_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.get(), pick->math));
  const Choice c{*pick, Dir::workspace(h, d, pick->algo)};
  std::lock_guard<std::mutex> lock(cache().mu);
  cache().choices.emplace(key, c);
  return c;
}

template <typename T>
__global__ void bias_grad_kernel(const T* gy, float* gb, int64_t n, int64_t c, int64_t p) {
  const int64_t ch = blockIdx.x;
  float acc = 0.f;
  for (int64_t s = 0; s < n; ++s) {
    const T* row = gy + (s * c + ch) * p;
    for (int64_t q = threadIdx.x; q < p; q += kThreads) acc += to_float(row[q]);
  }
  acc = block_sum<kThreads>(acc);
  if (threadIdx.x == 0) gb[ch] = acc;
}

// y[s, ch, q] += bias[ch]: rows of p values, one row per (sample, channel) pair along blockIdx.y.
template <typename I, typename T>
__global__ void bias_add_kernel(T* y, const float* bias, I rows, I c, I p) {
  for (I row = blockIdx.y; row < rows; row += gridDim.y) {
    const float b = bias[row % c];
    T* yr = y + row * p;
    for (I q = static_cast<I>(blockIdx.x * blockDim.x + threadIdx.x); q < p;
         q += static_cast<I>(gridDim.x * blockDim.x))
      yr[q] = from_float<T>(to_float(yr[q]) + b);
  }
}

}  // namespace

cudnnMathType_t conv_search_math(ConvPolicy p) {
  return p.allow_tf32 || p.bf16 ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH;
}

std::optional<ConvAlgoChoice> pick_conv_algorithm(const std::vector<ConvAlgoCandidate>& candidates, ConvPolicy p,
                                                  size_t max_workspace) {
  for (const ConvAlgoCandidate& c : candidates) {
    if (c.status != CUDNN_STATUS_SUCCESS || c.memory > max_workspace) continue;
    if (p.deterministic && c.determinism != CUDNN_DETERMINISTIC) continue;
    if (c.math == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) continue;
    const bool tensor_ops = p.allow_tf32 || p.bf16;  // bfloat16 products are exact in float32
    if (!tensor_ops && c.math == CUDNN_TENSOR_OP_MATH) continue;
    return ConvAlgoChoice{c.algo, tensor_ops ? c.math : CUDNN_FMA_MATH};
  }
  return std::nullopt;
}

template <typename T>
void conv2d_forward(cudnnHandle_t h, const ConvGeometry& g, ConvPolicy p, const T* x, const T* w, T* y) {
  p.bf16 = std::is_same_v<T, bf16>;
  ConvDescriptors d(g, data_type<T>(), conv_search_math(p));
  const Choice c = choose<Forward>(h, g, p, Direction::forward, d, x, w, y);
  MTL_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.get(), c.pick.math));
  Workspace ws(c.workspace);
  const float one = 1.f, zero = 0.f;
  MTL_CUDNN_CHECK(cudnnConvolutionForward(h, &one, d.x.get(), x, d.w.get(), w, d.conv.get(),
                                          static_cast<cudnnConvolutionFwdAlgo_t>(c.pick.algo), ws.get(), ws.size(),
                                          &zero, d.y.get(), y));
}

template <typename T>
void conv2d_bias_add(const ConvGeometry& g, const float* bias, T* y, cudaStream_t s) {
  const int64_t rows = g.n * g.c_out, p = g.out_h * g.out_w;
  if (rows * p == 0) return;
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>((p + kThreads - 1) / kThreads, 64)),
                  static_cast<unsigned>(std::min<int64_t>(rows, 65535)));
  dispatch_index(rows * p, [&](auto idx) {
    using I = decltype(idx);
    MTL_LAUNCH(bias_add_kernel, grid, kThreads, 0, s, dev(y), bias, static_cast<I>(rows), static_cast<I>(g.c_out),
               static_cast<I>(p));
  });
  MTL_CUDA_LAUNCH_CHECK();
}

template <typename T>
void conv2d_backward_input(cudnnHandle_t h, const ConvGeometry& g, ConvPolicy p, const T* gy, const T* w, T* gx) {
  p.bf16 = std::is_same_v<T, bf16>;
  ConvDescriptors d(g, data_type<T>(), conv_search_math(p));
  const Choice c = choose<BackwardData>(h, g, p, Direction::backward_data, d, w, gy, gx);
  MTL_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.get(), c.pick.math));
  Workspace ws(c.workspace);
  const float one = 1.f, zero = 0.f;
  MTL_CUDNN_CHECK(cudnnConvolutionBackwardData(h, &one, d.w.get(), w, d.y.get(), gy, d.conv.get(),
                                               static_cast<cudnnConvolutionBwdDataAlgo_t>(c.pick.algo), ws.get(),
                                               ws.size(), &zero, d.x.get(), gx));
}

template <typename T>
void conv2d_backward_weight(cudnnHandle_t h, const ConvGeometry& g, ConvPolicy p, const T* gy, const T* x, T* gw) {
  p.bf16 = std::is_same_v<T, bf16>;
  ConvDescriptors d(g, data_type<T>(), conv_search_math(p));
  const Choice c = choose<BackwardFilter>(h, g, p, Direction::backward_filter, d, x, gy, gw);
  MTL_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.get(), c.pick.math));
  Workspace ws(c.workspace);
  const float one = 1.f, zero = 0.f;
  MTL_CUDNN_CHECK(cudnnConvolutionBackwardFilter(h, &one, d.x.get(), x, d.y.get(), gy, d.conv.get(),
                                                 static_cast<cudnnConvolutionBwdFilterAlgo_t>(c.pick.algo), ws.get(),
                                                 ws.size(), &zero, d.w.get(), gw));
}

template <typename T>
void conv2d_backward_bias(const ConvGeometry& g, const T* gy, float* gb, cudaStream_t s) {
  if (g.c_out == 0) return;
  MTL_CHECK(g.c_out <= INT_MAX, "conv2d: ", g.c_out, " output channels exceed the grid limit");
  MTL_LAUNCH(bias_grad_kernel, static_cast<unsigned>(g.c_out), kThreads, 0, s, dev(gy), gb, g.n, g.c_out,
             g.out_h * g.out_w);
  MTL_CUDA_LAUNCH_CHECK();
}

#define MTL_CONV(T)                                                                                                \
  template void conv2d_forward<T>(cudnnHandle_t, const ConvGeometry&, ConvPolicy, const T*, const T*, T*);         \
  template void conv2d_bias_add<T>(const ConvGeometry&, const float*, T*, cudaStream_t);                           \
  template void conv2d_backward_input<T>(cudnnHandle_t, const ConvGeometry&, ConvPolicy, const T*, const T*, T*);  \
  template void conv2d_backward_weight<T>(cudnnHandle_t, const ConvGeometry&, ConvPolicy, const T*, const T*, T*); \
  template void conv2d_backward_bias<T>(const ConvGeometry&, const T*, float*, cudaStream_t);
MTL_CONV(float)
MTL_CONV(bf16)
#undef MTL_CONV

int64_t conv_algorithm_cache_size() {
  std::lock_guard<std::mutex> lock(cache().mu);
  return static_cast<int64_t>(cache().choices.size());
}

}  // namespace mtl::kernels::cuda
