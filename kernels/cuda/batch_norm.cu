#include <algorithm>
#include <climits>

#include "core/allocator.h"
#include "kernels/batch_norm.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/packed.cuh"
#include "kernels/cuda/reduce.cuh"

namespace mtl::kernels::cuda {

namespace {

// Blocks a channel reduction aims for in total (a few per SM on an H100/H200), and the most
// chunks one channel is split into.
constexpr int64_t kTargetBlocks = 1024;
constexpr int64_t kMaxChunks = 1024;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Scratch for chunk partials, from the caching allocator; freed once the work is enqueued, which
// is safe on the single stream.
class Scratch {
 public:
  explicit Scratch(int64_t floats)
      : p_(static_cast<float*>(mtl::cuda::allocate(static_cast<size_t>(floats) * sizeof(float)))) {}
  ~Scratch() { mtl::cuda::deallocate(p_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  float* get() const { return p_; }

 private:
  float* p_;
};

// How a channel's m = n * hw values are cut into chunks, one block per (chunk, channel).
struct Split {
  int64_t chunks, chunk;
};

Split split_for(const BatchNormShape& s) {
  const int64_t m = s.n * s.hw;
  int64_t chunks = std::min(ceil_div(m, kThreads * 4), ceil_div(kTargetBlocks, s.c));
  chunks = std::clamp<int64_t>(chunks, 1, kMaxChunks);
  return {chunks, ceil_div(m, chunks)};
}

// partial[(k * c + channel) * chunks + chunk] = sum over the chunk of the k-th value f adds.
// Threads walk the chunk with a fixed stride and block_sum combines them in a fixed pattern, so
// the partials are bitwise reproducible.
template <int K, typename F>
__global__ void channel_partials(BatchNormShape s, int64_t chunk, int64_t chunks, float* partial, F f) {
  const int64_t c = blockIdx.y, part = blockIdx.x;
  const int64_t m = s.n * s.hw;
  const int64_t end = min((part + 1) * chunk, m);
  float acc[K];
#pragma unroll
  for (int k = 0; k < K; ++k) acc[k] = 0.f;
  int64_t i = part * chunk + threadIdx.x;
  if (i < end) {
    // (n, p) of flat index i, advanced by kThreads without a division per element.
    int64_t n = i / s.hw, p = i - n * s.hw;
    const int64_t step_n = kThreads / s.hw, step_p = kThreads % s.hw;
    for (; i < end; i += kThreads) {
      f((n * s.c + c) * s.hw + p, c, acc);
      p += step_p;
      n += step_n;
      if (p >= s.hw) p -= s.hw, ++n;
    }
  }
#pragma unroll
  for (int k = 0; k < K; ++k) {
    const float v = block_sum<kThreads>(acc[k]);
    if (threadIdx.x == 0) partial[(k * s.c + c) * chunks + part] = v;
  }
}

template <int K, typename F>
void launch_partials(const BatchNormShape& s, const Split& sp, float* partial, F f, cudaStream_t st) {
  MTL_CHECK(s.c <= 65535, "batch_norm2d: ", s.c, " channels exceed the grid limit of 65535");
  dim3 grid(static_cast<unsigned>(sp.chunks), static_cast<unsigned>(s.c));
  MTL_LAUNCH(channel_partials<K>, grid, kThreads, 0, st, s, sp.chunk, sp.chunks, partial, f);
  MTL_CUDA_LAUNCH_CHECK();
}

// Per channel, in chunk order.
__device__ __forceinline__ float sum_chunks(const float* partial, int64_t c, int64_t chunks) {
  float t = 0.f;
  for (int64_t j = 0; j < chunks; ++j) t += partial[c * chunks + j];
  return t;
}

__global__ void finalize_mean(const float* partial, int64_t c, int64_t chunks, float inv_m, float* mean) {
  MTL_GRID_LOOP(k, c) mean[k] = sum_chunks(partial, k, chunks) * inv_m;
}

__global__ void finalize_var(const float* partial, int64_t c, int64_t chunks, int64_t m, float eps, float momentum,
                             const float* mean, float* invstd, float* running_mean, float* running_var) {
  MTL_GRID_LOOP(k, c) {
    const float sq = sum_chunks(partial, k, chunks);
    invstd[k] = 1.f / sqrtf(sq / static_cast<float>(m) + eps);
    if (running_mean) running_mean[k] = (1.f - momentum) * running_mean[k] + momentum * mean[k];
    if (running_var) running_var[k] = (1.f - momentum) * running_var[k] + momentum * (sq / static_cast<float>(m - 1));
  }
}

__global__ void finalize_backward(const float* partial, int64_t c, int64_t chunks, const float* invstd, float* sum_gy,
                                  float* sum_gy_xhat) {
  MTL_GRID_LOOP(k, c) {
    sum_gy[k] = sum_chunks(partial, k, chunks);
    sum_gy_xhat[k] = sum_chunks(partial + c * chunks, k, chunks) * invstd[k];
  }
}

__global__ void eval_stats_kernel(int64_t c, const float* running_mean, const float* running_var, float eps,
                                  float* mean, float* invstd) {
  MTL_GRID_LOOP(k, c) {
    mean[k] = running_mean[k];
    invstd[k] = 1.f / sqrtf(running_var[k] + eps);
  }
}

// Elementwise kernels walk rows (n, c) of hw contiguous values: blockIdx.y picks rows, x-threads
// stride along the row, so the channel is known per row without a division per element.
dim3 row_grid(const BatchNormShape& s) {
  const int64_t rows = s.n * s.c;
  return dim3(static_cast<unsigned>(std::min<int64_t>(ceil_div(s.hw, kThreads), 64)),
              static_cast<unsigned>(std::min<int64_t>(rows, 65535)));
}

#define MTL_ROW_LOOP(row, s) for (int64_t row = blockIdx.y; row < (s).n * (s).c; row += gridDim.y)
#define MTL_COL_LOOP(p, s)                                                                  \
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; p < (s).hw; \
       p += static_cast<int64_t>(gridDim.x) * blockDim.x)

template <typename T>
__global__ void apply_kernel(BatchNormShape s, const T* x, const float* mean, const float* invstd, const float* weight,
                             const float* bias, T* y) {
  MTL_ROW_LOOP(row, s) {
    const int64_t c = row % s.c;
    const float scale = invstd[c] * (weight ? weight[c] : 1.f);
    const float shift = (bias ? bias[c] : 0.f) - mean[c] * scale;
    const T* in = x + row * s.hw;
    T* out = y + row * s.hw;
    MTL_COL_LOOP(p, s) out[p] = from_float<T>(fmaf(to_float(in[p]), scale, shift));
  }
}

template <typename T>
__global__ void backward_input_kernel(BatchNormShape s, const T* gy, const T* x, const float* mean, const float* invstd,
                                      const float* weight, const float* sum_gy, const float* sum_gy_xhat, bool training,
                                      T* gx) {
  const float inv_m = 1.f / static_cast<float>(s.n * s.hw);
  MTL_ROW_LOOP(row, s) {
    const int64_t c = row % s.c;
    const float is = invstd[c];
    const float scale = is * (weight ? weight[c] : 1.f);
    const T* g = gy + row * s.hw;
    T* out = gx + row * s.hw;
    if (training) {
      const float mu = mean[c], mean_g = sum_gy[c] * inv_m, mean_gx = sum_gy_xhat[c] * inv_m;
      const T* in = x + row * s.hw;
      MTL_COL_LOOP(p, s) {
        const float xhat = (to_float(in[p]) - mu) * is;
        out[p] = from_float<T>(scale * (to_float(g[p]) - mean_g - xhat * mean_gx));
      }
    } else {
      MTL_COL_LOOP(p, s) out[p] = from_float<T>(scale * to_float(g[p]));
    }
  }
}

#undef MTL_ROW_LOOP
#undef MTL_COL_LOOP

}  // namespace

template <typename T>
void batch_norm_train_stats(const BatchNormShape& s, const T* xt, double eps, double momentum, float* mean,
                            float* invstd, float* running_mean, float* running_var, cudaStream_t st) {
  const dev_t<T>* x = dev(xt);
  const int64_t m = s.n * s.hw;
  if (s.c == 0 || m == 0) return;
  const Split sp = split_for(s);
  Scratch partial(s.c * sp.chunks);
  // Two passes (mean, then squared deviations from it) keep float32 variances accurate when the
  // mean is large against the spread.
  launch_partials<1>(
      s, sp, partial.get(), [x] __device__(int64_t off, int64_t, float* acc) { acc[0] += to_float(x[off]); }, st);
  MTL_LAUNCH(finalize_mean, blocks_for(s.c), kThreads, 0, st, partial.get(), s.c, sp.chunks,
             static_cast<float>(1.0 / static_cast<double>(m)), mean);
  MTL_CUDA_LAUNCH_CHECK();
  launch_partials<1>(
      s, sp, partial.get(),
      [x, mean] __device__(int64_t off, int64_t c, float* acc) {
        const float d = to_float(x[off]) - mean[c];
        acc[0] += d * d;
      },
      st);
  MTL_LAUNCH(finalize_var, blocks_for(s.c), kThreads, 0, st, partial.get(), s.c, sp.chunks, m, static_cast<float>(eps),
             static_cast<float>(momentum), mean, invstd, running_mean, running_var);
  MTL_CUDA_LAUNCH_CHECK();
}

void batch_norm_eval_stats(int64_t c, const float* running_mean, const float* running_var, double eps, float* mean,
                           float* invstd, cudaStream_t st) {
  if (c == 0) return;
  MTL_LAUNCH(eval_stats_kernel, blocks_for(c), kThreads, 0, st, c, running_mean, running_var, static_cast<float>(eps),
             mean, invstd);
  MTL_CUDA_LAUNCH_CHECK();
}

template <typename T>
void batch_norm_apply(const BatchNormShape& s, const T* x, const float* mean, const float* invstd, const float* weight,
                      const float* bias, T* y, cudaStream_t st) {
  if (s.n * s.c * s.hw == 0) return;
  MTL_LAUNCH(apply_kernel, row_grid(s), kThreads, 0, st, s, dev(x), mean, invstd, weight, bias, dev(y));
  MTL_CUDA_LAUNCH_CHECK();
}

template <typename T>
void batch_norm_backward_reduce(const BatchNormShape& s, const T* gyt, const T* xt, const float* mean,
                                const float* invstd, float* sum_gy, float* sum_gy_xhat, cudaStream_t st) {
  const dev_t<T>*gy = dev(gyt), *x = dev(xt);
  if (s.c == 0) return;
  const Split sp = split_for(s);
  Scratch partial(2 * s.c * sp.chunks);
  launch_partials<2>(
      s, sp, partial.get(),
      [gy, x, mean] __device__(int64_t off, int64_t c, float* acc) {
        const float g = to_float(gy[off]);
        acc[0] += g;
        acc[1] += g * (to_float(x[off]) - mean[c]);
      },
      st);
  MTL_LAUNCH(finalize_backward, blocks_for(s.c), kThreads, 0, st, partial.get(), s.c, sp.chunks, invstd, sum_gy,
             sum_gy_xhat);
  MTL_CUDA_LAUNCH_CHECK();
}

template <typename T>
void batch_norm_backward_input(const BatchNormShape& s, const T* gy, const T* x, const float* mean, const float* invstd,
                               const float* weight, const float* sum_gy, const float* sum_gy_xhat, bool training, T* gx,
                               cudaStream_t st) {
  if (s.n * s.c * s.hw == 0) return;
  MTL_LAUNCH(backward_input_kernel, row_grid(s), kThreads, 0, st, s, dev(gy), dev(x), mean, invstd, weight, sum_gy,
             sum_gy_xhat, training, dev(gx));
  MTL_CUDA_LAUNCH_CHECK();
}

#define MTL_BATCH_NORM(T)                                                                                            \
  template void batch_norm_train_stats<T>(const BatchNormShape&, const T*, double, double, float*, float*, float*,   \
                                          float*, cudaStream_t);                                                     \
  template void batch_norm_apply<T>(const BatchNormShape&, const T*, const float*, const float*, const float*,       \
                                    const float*, T*, cudaStream_t);                                                 \
  template void batch_norm_backward_reduce<T>(const BatchNormShape&, const T*, const T*, const float*, const float*, \
                                              float*, float*, cudaStream_t);                                         \
  template void batch_norm_backward_input<T>(const BatchNormShape&, const T*, const T*, const float*, const float*,  \
                                             const float*, const float*, const float*, bool, T*, cudaStream_t);
MTL_BATCH_NORM(float)
MTL_BATCH_NORM(bf16)
#undef MTL_BATCH_NORM

}  // namespace mtl::kernels::cuda
