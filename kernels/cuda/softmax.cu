#include "kernels/cuda/launch.cuh"
#include "kernels/softmax.h"

namespace mtl::kernels::cuda {

namespace {

// One thread per (outer, inner) column: neighbouring threads read neighbouring pixels of each
// class plane, so NCHW scores over the channels load coalesced. Three passes over the column
// (max, sum, write) keep the registers independent of n.
__global__ void softmax_fwd(float* y, const float* x, SoftmaxDims d) {
  MTL_GRID_LOOP(col, d.outer * d.inner) {
    const int64_t base = (col / d.inner) * d.n * d.inner + col % d.inner;
    float m = -INFINITY;
    bool nan = false;
    for (int64_t k = 0; k < d.n; ++k) {
      const float v = x[base + k * d.inner];
      nan |= isnan(v);
      m = fmaxf(m, v);
    }
    if (nan) m = NAN;  // fmaxf drops NaN; the column must become NaN, as on the CPU
    float sum = 0.f;
    for (int64_t k = 0; k < d.n; ++k) sum += expf(x[base + k * d.inner] - m);
    const float inv = 1.f / sum;
    for (int64_t k = 0; k < d.n; ++k) y[base + k * d.inner] = expf(x[base + k * d.inner] - m) * inv;
  }
}

__global__ void softmax_bwd(float* gx, const float* gy, const float* y, SoftmaxDims d) {
  MTL_GRID_LOOP(col, d.outer * d.inner) {
    const int64_t base = (col / d.inner) * d.n * d.inner + col % d.inner;
    float dot = 0.f;
    for (int64_t k = 0; k < d.n; ++k) dot += gy[base + k * d.inner] * y[base + k * d.inner];
    for (int64_t k = 0; k < d.n; ++k) {
      const int64_t j = base + k * d.inner;
      gx[j] = y[j] * (gy[j] - dot);
    }
  }
}

}  // namespace

void softmax_forward(float* y, const float* x, const SoftmaxDims& d, cudaStream_t s) {
  MTL_LAUNCH(softmax_fwd, blocks_for(d.outer * d.inner), kThreads, 0, s, y, x, d);
  MTL_CUDA_LAUNCH_CHECK();
}

void softmax_backward(float* gx, const float* gy, const float* y, const SoftmaxDims& d, cudaStream_t s) {
  MTL_LAUNCH(softmax_bwd, blocks_for(d.outer * d.inner), kThreads, 0, s, gx, gy, y, d);
  MTL_CUDA_LAUNCH_CHECK();
}

}  // namespace mtl::kernels::cuda
