#include "kernels/channel.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/reduce.cuh"
#include "kernels/philox.h"

namespace mtl::kernels::cuda {

namespace {

// y = x * s[i / hw]; with `vec` (hw % 4 == 0, 16-byte aligned) a float4 never straddles planes.
__global__ void channel_scale_fwd(float* y, const float* x, const float* s, int64_t n, int64_t hw, bool vec) {
  if (vec) {
    MTL_GRID_LOOP(i, n / 4) {
      const float sp = s[(i * 4) / hw];
      const float4 v = reinterpret_cast<const float4*>(x)[i];
      reinterpret_cast<float4*>(y)[i] = make_float4(v.x * sp, v.y * sp, v.z * sp, v.w * sp);
    }
  } else {
    MTL_GRID_LOOP(i, n) y[i] = x[i] * s[i / hw];
  }
}

// One block per plane: gx = gy * s and gs = sum(gy * x), reading gy once, summed in a fixed order.
__global__ void channel_scale_bwd(float* gx, float* gs, const float* gy, const float* x, const float* s, int64_t hw,
                                  bool vec) {
  const int64_t off = static_cast<int64_t>(blockIdx.x) * hw;
  const float sp = s[blockIdx.x];
  float acc = 0.f;
  if (vec) {
    const float4* gy4 = reinterpret_cast<const float4*>(gy + off);
    const float4* x4 = reinterpret_cast<const float4*>(x + off);
    float4* gx4 = gx ? reinterpret_cast<float4*>(gx + off) : nullptr;
    for (int64_t j = threadIdx.x; j < hw / 4; j += kThreads) {
      const float4 g = gy4[j];
      if (gx4) gx4[j] = make_float4(g.x * sp, g.y * sp, g.z * sp, g.w * sp);
      if (gs) {
        const float4 v = x4[j];
        acc += (g.x * v.x + g.y * v.y) + (g.z * v.z + g.w * v.w);
      }
    }
  } else {
    for (int64_t j = threadIdx.x; j < hw; j += kThreads) {
      const float g = gy[off + j];
      if (gx) gx[off + j] = g * sp;
      if (gs) acc += g * x[off + j];
    }
  }
  if (gs) {
    acc = block_sum<kThreads>(acc);
    if (threadIdx.x == 0) gs[blockIdx.x] = acc;
  }
}

// One thread per Philox counter, i.e. per four consecutive elements.
__global__ void dropout_mask_k(uint8_t* mask, int64_t n, DropoutRng rng) {
  MTL_GRID_LOOP(c, (n + 3) / 4) {
    const Philox4 r = philox4x32(rng.seed, 0, rng.base + static_cast<uint64_t>(c));
    for (int k = 0; k < 4 && c * 4 + k < n; ++k) mask[c * 4 + k] = r.v[k] < rng.threshold ? 1 : 0;
  }
}

__global__ void dropout_k(float* y, uint8_t* mask, const float* x, int64_t n, DropoutRng rng, float scale,
                          bool vec) {
  MTL_GRID_LOOP(c, (n + 3) / 4) {
    const Philox4 r = philox4x32(rng.seed, 0, rng.base + static_cast<uint64_t>(c));
    // A product, not a select, so that inf and NaN inputs behave as in PyTorch's x * noise.
    const float m0 = r.v[0] < rng.threshold ? scale : 0.f, m1 = r.v[1] < rng.threshold ? scale : 0.f;
    const float m2 = r.v[2] < rng.threshold ? scale : 0.f, m3 = r.v[3] < rng.threshold ? scale : 0.f;
    if (vec && c * 4 + 3 < n) {
      const float4 v = reinterpret_cast<const float4*>(x)[c];
      reinterpret_cast<float4*>(y)[c] = make_float4(v.x * m0, v.y * m1, v.z * m2, v.w * m3);
      reinterpret_cast<uchar4*>(mask)[c] = make_uchar4(r.v[0] < rng.threshold, r.v[1] < rng.threshold,
                                                       r.v[2] < rng.threshold, r.v[3] < rng.threshold);
    } else {
      const float m[4] = {m0, m1, m2, m3};
      for (int k = 0; k < 4 && c * 4 + k < n; ++k) {
        y[c * 4 + k] = x[c * 4 + k] * m[k];
        mask[c * 4 + k] = r.v[k] < rng.threshold ? 1 : 0;
      }
    }
  }
}

__global__ void masked_scale_k(float* y, const float* x, const uint8_t* mask, int64_t n, int64_t group,
                               float scale) {
  MTL_GRID_LOOP(i, n) y[i] = x[i] * (mask[i / group] ? scale : 0.f);
}

}  // namespace

void channel_scale(float* y, const float* x, const float* s, int64_t planes, int64_t hw, cudaStream_t st) {
  const int64_t n = planes * hw;
  if (n == 0) return;
  const bool vec = hw % 4 == 0 && aligned16(x) && aligned16(y);
  MTL_LAUNCH(channel_scale_fwd, blocks_for(vec ? n / 4 : n), kThreads, 0, st, y, x, s, n, hw, vec);
  MTL_CUDA_LAUNCH_CHECK();
}

void channel_scale_backward(float* gx, float* gs, const float* gy, const float* x, const float* s, int64_t planes,
                            int64_t hw, cudaStream_t st) {
  if (planes == 0 || (!gx && !gs)) return;
  MTL_CHECK(planes <= 0x7fffffff, "channel_scale backward: too many planes (", planes, ")");
  if (hw == 0) {
    // Empty planes: nothing to scale and every sum is zero.
    if (gs) MTL_CUDA_CHECK(cudaMemsetAsync(gs, 0, static_cast<size_t>(planes) * sizeof(float), st));
    return;
  }
  const bool vec = hw % 4 == 0 && aligned16(gy) && aligned16(x) && (!gx || aligned16(gx));
  MTL_LAUNCH(channel_scale_bwd, static_cast<unsigned>(planes), kThreads, 0, st, gx, gs, gy, x, s, hw, vec);
  MTL_CUDA_LAUNCH_CHECK();
}

void dropout_mask(uint8_t* mask, int64_t n, DropoutRng rng, cudaStream_t st) {
  if (n == 0) return;
  MTL_LAUNCH(dropout_mask_k, blocks_for((n + 3) / 4), kThreads, 0, st, mask, n, rng);
  MTL_CUDA_LAUNCH_CHECK();
}

void dropout(float* y, uint8_t* mask, const float* x, int64_t n, DropoutRng rng, double scale, cudaStream_t st) {
  if (n == 0) return;
  const bool vec = aligned16(x) && aligned16(y) && (reinterpret_cast<uintptr_t>(mask) & 3u) == 0;
  MTL_LAUNCH(dropout_k, blocks_for((n + 3) / 4), kThreads, 0, st, y, mask, x, n, rng, static_cast<float>(scale), vec);
  MTL_CUDA_LAUNCH_CHECK();
}

void masked_scale(float* y, const float* x, const uint8_t* mask, int64_t n, int64_t group, double scale,
                  cudaStream_t st) {
  if (n == 0) return;
  MTL_LAUNCH(masked_scale_k, blocks_for(n), kThreads, 0, st, y, x, mask, n, group, static_cast<float>(scale));
  MTL_CUDA_LAUNCH_CHECK();
}

}  // namespace mtl::kernels::cuda
