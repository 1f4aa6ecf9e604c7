#pragma once
// AdamW update (decoupled weight decay, PyTorch's torch.optim.AdamW) and the squared-norm sums
// behind global gradient-norm clipping.
//
// CPU: one call per tensor, float32 and float64; the oracle for the CUDA version.
// CUDA: multi-tensor apply. Every tensor of a parameter group is cut into chunks of at most
// kAdamWChunk elements; one block handles one chunk. The tensor table (param, m, v, numel) and
// the chunk table live in device memory, built once by the optimiser, because parameters and
// optimiser state never move. Gradients are reallocated by every backward pass, so their
// pointers travel in the kernel arguments instead (AdamWGrads, 8 KiB: CUDA >= 12.1 on sm_70+
// accepts up to 32 KiB of parameters), which costs no copy and no host synchronisation.
// A null gradient pointer means "no gradient this step": that tensor is left untouched.
#include <cuda_runtime.h>

#include <cstdint>

namespace mtl::kernels {

// Per-launch scalars, computed on the host in double from the step count t and the group's lr:
//   decay     = 1 - lr*weight_decay
//   step_size = lr / (1 - beta1^t)
//   bc2_sqrt  = sqrt(1 - beta2^t)
// The update of one element, with g already multiplied by the clipping scale, is
//   p = p*decay; m = beta1*m + (1-beta1)*g; v = beta2*v + (1-beta2)*g*g;
//   p = p - step_size*m / (sqrt(v)/bc2_sqrt + eps).
struct AdamWScalars {
  double decay = 1.0;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double step_size = 0.0;
  double bc2_sqrt = 1.0;
};

namespace cpu {
// One tensor of n contiguous elements; g is multiplied by grad_scale first.
template <typename T>
void adamw(T* p, const T* g, T* m, T* v, int64_t n, const AdamWScalars& s, double grad_scale);
// sum_i x[i]^2 accumulated in double over fixed blocks in a fixed order (deterministic for any
// number of threads).
template <typename T>
double sum_squares(const T* x, int64_t n);
}  // namespace cpu

namespace cuda {

constexpr int64_t kAdamWChunk = 32768;      // elements per chunk (one block)
constexpr int kAdamWMaxTensors = 1024;      // tensors per launch (size of AdamWGrads)

struct AdamWTensor {
  float* p;
  float* m;
  float* v;
  int64_t numel;
};

struct AdamWChunk {
  int32_t tensor;  // index into the launch's tensor table and AdamWGrads
  int32_t len;     // elements in this chunk, 1..kAdamWChunk
  int64_t start;   // first element of the chunk within its tensor
};

struct AdamWGrads {
  const float* g[kAdamWMaxTensors];
};

// partials[c] = sum of g^2 over chunk c (0 for a chunk whose gradient is null), one block per
// chunk, summed in a fixed order.
void adamw_sum_squares(const AdamWChunk* chunks, int64_t num_chunks, const AdamWGrads& grads, float* partials,
                       cudaStream_t s);
// norm = sqrt(sum of partials[0..n)) in a fixed order; when scale is not null it also writes
// scale = min(1, max_norm / (norm + 1e-6)) (NaN when the norm is NaN, as in PyTorch).
void adamw_clip_scale(const float* partials, int64_t n, double max_norm, float* norm, float* scale,
                      cudaStream_t s);
// One fused AdamW update over every chunk of a tensor table. grad_scale: device scalar that
// multiplies every gradient (clipping), or null for 1.
void adamw_multi_tensor(const AdamWTensor* tensors, const AdamWChunk* chunks, int64_t num_chunks,
                        const AdamWGrads& grads, const AdamWScalars& s, const float* grad_scale, cudaStream_t st);

}  // namespace cuda

}  // namespace mtl::kernels
