#include <algorithm>
#include <memory>

#include "core/allocator.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/reduce.cuh"
#include "kernels/sync_batch_norm.h"

namespace mtl::kernels::cuda {

namespace {

// Blocks a channel reduction aims for in total, and the most chunks one channel is split into
// (as batch_norm.cu).
constexpr int64_t kTargetBlocks = 1024;
constexpr int64_t kMaxChunks = 1024;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// partial[(k * c + channel) * chunks + chunk], k = 0: sum of x, 1: sum of x^2, over the chunk's
// part of the channel's m = n * hw values, in float64. Fixed strides and block_sum: reproducible.
__global__ void sums_partials(BatchNormShape s, int64_t chunk, int64_t chunks, const float* x, double* partial) {
  const int64_t c = blockIdx.y, part = blockIdx.x;
  const int64_t m = s.n * s.hw;
  const int64_t end = min((part + 1) * chunk, m);
  double sum = 0, sq = 0;
  int64_t i = part * chunk + threadIdx.x;
  if (i < end) {
    // (n, p) of flat index i, advanced by kThreads without a division per element.
    int64_t n = i / s.hw, p = i - n * s.hw;
    const int64_t step_n = kThreads / s.hw, step_p = kThreads % s.hw;
    for (; i < end; i += kThreads) {
      const double v = x[(n * s.c + c) * s.hw + p];
      sum += v;
      sq += v * v;
      p += step_p;
      n += step_n;
      if (p >= s.hw) p -= s.hw, ++n;
    }
  }
  sum = block_sum<kThreads, double>(sum);
  sq = block_sum<kThreads, double>(sq);
  if (threadIdx.x == 0) {
    partial[c * chunks + part] = sum;
    partial[(s.c + c) * chunks + part] = sq;
  }
}

// Per (k, channel) in chunk order; the count last.
__global__ void sums_finalize(const double* partial, int64_t c, int64_t chunks, double m, double* sums) {
  MTL_GRID_LOOP(k, 2 * c) {
    double t = 0;
    for (int64_t j = 0; j < chunks; ++j) t += partial[k * chunks + j];
    sums[k] = t;
  }
  if (blockIdx.x == 0 && threadIdx.x == 0) sums[2 * c] = m;
}

__global__ void stats_kernel(int64_t c, const double* sums, double eps, double momentum, float* mean, float* invstd,
                             float* running_mean, float* running_var) {
  MTL_GRID_LOOP(k, c) {
    const double m = sums[2 * c];
    const double mu = sums[k] / m;
    const double var = fmax(sums[c + k] / m - mu * mu, 0.0);
    mean[k] = static_cast<float>(mu);
    invstd[k] = static_cast<float>(1.0 / sqrt(var + eps));
    if (running_mean) running_mean[k] = static_cast<float>((1 - momentum) * running_mean[k] + momentum * mu);
    if (running_var)
      running_var[k] = static_cast<float>((1 - momentum) * running_var[k] + momentum * var * m / (m - 1));
  }
}

// Rows (n, c) of hw contiguous values: blockIdx.y picks rows, x-threads stride along the row.
__global__ void backward_input_kernel(BatchNormShape s, const float* gy, const float* x, const float* mean,
                                      const float* invstd, const float* weight, const float* grad_sums,
                                      const double* count, float* gx) {
  const float inv_m = static_cast<float>(1.0 / *count);
  for (int64_t row = blockIdx.y; row < s.n * s.c; row += gridDim.y) {
    const int64_t c = row % s.c;
    const float is = invstd[c];
    const float scale = is * (weight ? weight[c] : 1.f);
    const float mu = mean[c], mean_g = grad_sums[c] * inv_m, mean_gx = grad_sums[s.c + c] * inv_m;
    const float* g = gy + row * s.hw;
    const float* in = x + row * s.hw;
    float* out = gx + row * s.hw;
    for (int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; p < s.hw;
         p += static_cast<int64_t>(gridDim.x) * blockDim.x) {
      const float xhat = (in[p] - mu) * is;
      out[p] = scale * (g[p] - mean_g - xhat * mean_gx);
    }
  }
}

}  // namespace

void sync_batch_norm_sums(const BatchNormShape& s, const float* x, double* sums, cudaStream_t st) {
  const int64_t m = s.n * s.hw;
  if (m == 0) {
    MTL_CUDA_CHECK(cudaMemsetAsync(sums, 0, static_cast<size_t>(2 * s.c + 1) * sizeof(double), st));
    return;
  }
  MTL_CHECK(s.c <= 65535, "sync_batch_norm2d: ", s.c, " channels exceed the grid limit of 65535");
  int64_t chunks = std::min(ceil_div(m, kThreads * 4), ceil_div(kTargetBlocks, std::max<int64_t>(s.c, 1)));
  chunks = std::clamp<int64_t>(chunks, 1, kMaxChunks);
  const int64_t chunk = ceil_div(m, chunks);
  // Freed once the work is enqueued, which is safe on the single stream.
  const std::unique_ptr<void, void (*)(void*)> scratch(
      mtl::cuda::allocate(static_cast<size_t>(std::max<int64_t>(2 * s.c * chunks, 1)) * sizeof(double)),
      mtl::cuda::deallocate);
  double* partial = static_cast<double*>(scratch.get());
  if (s.c > 0) {
    MTL_LAUNCH(sums_partials, dim3(static_cast<unsigned>(chunks), static_cast<unsigned>(s.c)), kThreads, 0, st, s,
               chunk, chunks, x, partial);
    MTL_CUDA_LAUNCH_CHECK();
  }
  MTL_LAUNCH(sums_finalize, blocks_for(std::max<int64_t>(2 * s.c, 1)), kThreads, 0, st, partial, s.c, chunks,
             static_cast<double>(m), sums);
  MTL_CUDA_LAUNCH_CHECK();
}

void sync_batch_norm_stats(int64_t c, const double* sums, double eps, double momentum, float* mean, float* invstd,
                           float* running_mean, float* running_var, cudaStream_t st) {
  if (c == 0) return;
  MTL_LAUNCH(stats_kernel, blocks_for(c), kThreads, 0, st, c, sums, eps, momentum, mean, invstd, running_mean,
             running_var);
  MTL_CUDA_LAUNCH_CHECK();
}

void sync_batch_norm_backward_input(const BatchNormShape& s, const float* gy, const float* x, const float* mean,
                                    const float* invstd, const float* weight, const float* grad_sums,
                                    const double* count, float* gx, cudaStream_t st) {
  const int64_t rows = s.n * s.c;
  if (rows * s.hw == 0) return;
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>(ceil_div(s.hw, kThreads), 64)),
                  static_cast<unsigned>(std::min<int64_t>(rows, 65535)));
  MTL_LAUNCH(backward_input_kernel, grid, kThreads, 0, st, s, gy, x, mean, invstd, weight, grad_sums, count, gx);
  MTL_CUDA_LAUNCH_CHECK();
}

}  // namespace mtl::kernels::cuda
