#include <climits>

#include "core/error.h"
#include "kernels/adamw.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/reduce.cuh"

namespace mtl::kernels::cuda {

namespace {

struct DevScalars {
  float decay, b1, ob1, b2, ob2, eps, step_size, bc2;
};

__device__ __forceinline__ bool is_aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// The same expression order as the CPU twin, so the two differ only by FMA contraction.
__device__ __forceinline__ void update(float& p, float g, float& m, float& v, const DevScalars& s, float scale) {
  g *= scale;
  p *= s.decay;
  m = s.b1 * m + s.ob1 * g;
  v = s.b2 * v + s.ob2 * g * g;
  const float denom = sqrtf(v) / s.bc2 + s.eps;
  p = p - s.step_size * m / denom;
}

// __grid_constant__ keeps the 8 KiB pointer table in the parameter bank: indexing it reads the
// constant cache instead of copying the table to local memory.
__global__ void __launch_bounds__(kThreads)
    adamw_kernel(const AdamWTensor* tensors, const AdamWChunk* chunks, const __grid_constant__ AdamWGrads grads,
                 DevScalars s, const float* grad_scale) {
  const AdamWChunk c = chunks[blockIdx.x];
  const float* g = grads.g[c.tensor];
  if (g == nullptr) return;
  const AdamWTensor t = tensors[c.tensor];
  const float scale = grad_scale ? *grad_scale : 1.f;
  float* p = t.p + c.start;
  float* m = t.m + c.start;
  float* v = t.v + c.start;
  g += c.start;
  const int n = c.len;
  int done = 0;
  if (is_aligned16(p) && is_aligned16(g) && is_aligned16(m) && is_aligned16(v)) {
    const int n4 = n / 4;
    for (int i = threadIdx.x; i < n4; i += kThreads) {
      float4 pp = reinterpret_cast<float4*>(p)[i];
      const float4 gg = reinterpret_cast<const float4*>(g)[i];
      float4 mm = reinterpret_cast<float4*>(m)[i];
      float4 vv = reinterpret_cast<float4*>(v)[i];
      update(pp.x, gg.x, mm.x, vv.x, s, scale);
      update(pp.y, gg.y, mm.y, vv.y, s, scale);
      update(pp.z, gg.z, mm.z, vv.z, s, scale);
      update(pp.w, gg.w, mm.w, vv.w, s, scale);
      reinterpret_cast<float4*>(p)[i] = pp;
      reinterpret_cast<float4*>(m)[i] = mm;
      reinterpret_cast<float4*>(v)[i] = vv;
    }
    done = n4 * 4;
  }
  for (int i = done + threadIdx.x; i < n; i += kThreads) {
    float pi = p[i], mi = m[i], vi = v[i];
    update(pi, g[i], mi, vi, s, scale);
    p[i] = pi;
    m[i] = mi;
    v[i] = vi;
  }
}

__global__ void __launch_bounds__(kThreads)
    sum_squares_kernel(const AdamWChunk* chunks, const __grid_constant__ AdamWGrads grads, float* partials) {
  const AdamWChunk c = chunks[blockIdx.x];
  const float* g = grads.g[c.tensor];
  float acc = 0.f;
  if (g != nullptr) {
    g += c.start;
    for (int i = threadIdx.x; i < c.len; i += kThreads) acc += g[i] * g[i];
  }
  acc = block_sum<kThreads>(acc);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

__global__ void __launch_bounds__(kThreads)
    clip_scale_kernel(const float* partials, int64_t n, float max_norm, float* norm, float* scale) {
  float acc = 0.f;
  for (int64_t i = threadIdx.x; i < n; i += kThreads) acc += partials[i];
  acc = block_sum<kThreads>(acc);
  if (threadIdx.x == 0) {
    const float nrm = sqrtf(acc);
    *norm = nrm;
    if (scale) {
      const float coef = max_norm / (nrm + 1e-6f);
      *scale = coef >= 1.f ? 1.f : coef;
    }
  }
}

unsigned grid_for_chunks(int64_t num_chunks) {
  MTL_CHECK(num_chunks <= INT_MAX, "adamw: ", num_chunks, " chunks exceed one launch");
  return static_cast<unsigned>(num_chunks);
}

}  // namespace

void adamw_sum_squares(const AdamWChunk* chunks, int64_t num_chunks, const AdamWGrads& grads, float* partials,
                       cudaStream_t s) {
  if (num_chunks == 0) return;
  MTL_LAUNCH(sum_squares_kernel, grid_for_chunks(num_chunks), kThreads, 0, s, chunks, grads, partials);
  MTL_CUDA_LAUNCH_CHECK();
}

void adamw_clip_scale(const float* partials, int64_t n, double max_norm, float* norm, float* scale,
                      cudaStream_t s) {
  MTL_LAUNCH(clip_scale_kernel, 1, kThreads, 0, s, partials, n, static_cast<float>(max_norm), norm, scale);
  MTL_CUDA_LAUNCH_CHECK();
}

void adamw_multi_tensor(const AdamWTensor* tensors, const AdamWChunk* chunks, int64_t num_chunks,
                        const AdamWGrads& grads, const AdamWScalars& sc, const float* grad_scale, cudaStream_t st) {
  if (num_chunks == 0) return;
  DevScalars d{static_cast<float>(sc.decay),       static_cast<float>(sc.beta1),
               static_cast<float>(1.0 - sc.beta1), static_cast<float>(sc.beta2),
               static_cast<float>(1.0 - sc.beta2), static_cast<float>(sc.eps),
               static_cast<float>(sc.step_size),   static_cast<float>(sc.bc2_sqrt)};
  MTL_LAUNCH(adamw_kernel, grid_for_chunks(num_chunks), kThreads, 0, st, tensors, chunks, grads, d, grad_scale);
  MTL_CUDA_LAUNCH_CHECK();
}

}  // namespace mtl::kernels::cuda
