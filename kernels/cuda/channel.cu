#include "kernels/channel.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/packed.cuh"
#include "kernels/cuda/reduce.cuh"
#include "kernels/philox.h"

namespace mtl::kernels::cuda {

namespace {

// y = x * s[i / hw]; with `vec` (hw % 4 == 0, 16-byte aligned) a Packed<4> never straddles planes.
template <typename T>
__global__ void channel_scale_fwd(T* y, const T* x, const T* s, int64_t n, int64_t hw, bool vec) {
  if (vec) {
    MTL_GRID_LOOP(i, n / 4) {
      const float sp = to_float(s[(i * 4) / hw]);
      Packed<4> v = load_packed<4>(x + i * 4);
#pragma unroll
      for (int k = 0; k < 4; ++k) v[k] *= sp;
      store_packed<4>(y + i * 4, v);
    }
  } else {
    MTL_GRID_LOOP(i, n) y[i] = from_float<T>(to_float(x[i]) * to_float(s[i / hw]));
  }
}

// One block per plane: gx = gy * s and gs = sum(gy * x), reading gy once, summed in a fixed order.
template <typename T>
__global__ void channel_scale_bwd(T* gx, T* gs, const T* gy, const T* x, const T* s, int64_t hw, bool vec) {
  const int64_t off = static_cast<int64_t>(blockIdx.x) * hw;
  const float sp = to_float(s[blockIdx.x]);
  float acc = 0.f;
  if (vec) {
    for (int64_t j = threadIdx.x; j < hw / 4; j += kThreads) {
      const Packed<4> g = load_packed<4>(gy + off + j * 4);
      if (gx) {
        Packed<4> o;
#pragma unroll
        for (int k = 0; k < 4; ++k) o[k] = g[k] * sp;
        store_packed<4>(gx + off + j * 4, o);
      }
      if (gs) {
        const Packed<4> v = load_packed<4>(x + off + j * 4);
        acc += (g[0] * v[0] + g[1] * v[1]) + (g[2] * v[2] + g[3] * v[3]);
      }
    }
  } else {
    for (int64_t j = threadIdx.x; j < hw; j += kThreads) {
      const float g = to_float(gy[off + j]);
      if (gx) gx[off + j] = from_float<T>(g * sp);
      if (gs) acc += g * to_float(x[off + j]);
    }
  }
  if (gs) {
    acc = block_sum<kThreads>(acc);
    if (threadIdx.x == 0) gs[blockIdx.x] = from_float<T>(acc);
  }
}

// One thread per Philox counter, i.e. per four consecutive elements.
__global__ void dropout_mask_k(uint8_t* mask, int64_t n, DropoutRng rng) {
  MTL_GRID_LOOP(c, (n + 3) / 4) {
    const Philox4 r = philox4x32(rng.seed, 0, rng.base + static_cast<uint64_t>(c));
    for (int k = 0; k < 4 && c * 4 + k < n; ++k) mask[c * 4 + k] = r.v[k] < rng.threshold ? 1 : 0;
  }
}

__global__ void dropout_k(float* y, uint8_t* mask, const float* x, int64_t n, DropoutRng rng, float scale, bool vec) {
  MTL_GRID_LOOP(c, (n + 3) / 4) {
    const Philox4 r = philox4x32(rng.seed, 0, rng.base + static_cast<uint64_t>(c));
    // A product, not a select, so that inf and NaN inputs behave as in PyTorch's x * noise.
    const float m0 = r.v[0] < rng.threshold ? scale : 0.f, m1 = r.v[1] < rng.threshold ? scale : 0.f;
    const float m2 = r.v[2] < rng.threshold ? scale : 0.f, m3 = r.v[3] < rng.threshold ? scale : 0.f;
    if (vec && c * 4 + 3 < n) {
      const float4 v = reinterpret_cast<const float4*>(x)[c];
      reinterpret_cast<float4*>(y)[c] = make_float4(v.x * m0, v.y * m1, v.z * m2, v.w * m3);
      reinterpret_cast<uchar4*>(mask)[c] =
          make_uchar4(r.v[0] < rng.threshold, r.v[1] < rng.threshold, r.v[2] < rng.threshold, r.v[3] < rng.threshold);
    } else {
      const float m[4] = {m0, m1, m2, m3};
      for (int k = 0; k < 4 && c * 4 + k < n; ++k) {
        y[c * 4 + k] = x[c * 4 + k] * m[k];
        mask[c * 4 + k] = r.v[k] < rng.threshold ? 1 : 0;
      }
    }
  }
}

__global__ void masked_scale_k(float* y, const float* x, const uint8_t* mask, int64_t n, int64_t group, float scale) {
  MTL_GRID_LOOP(i, n) y[i] = x[i] * (mask[i / group] ? scale : 0.f);
}

}  // namespace

template <typename T>
void channel_scale(T* y, const T* x, const T* s, int64_t planes, int64_t hw, cudaStream_t st) {
  const int64_t n = planes * hw;
  if (n == 0) return;
  const bool vec = hw % 4 == 0 && aligned16(x) && aligned16(y);
  MTL_LAUNCH(channel_scale_fwd, blocks_for(vec ? n / 4 : n), kThreads, 0, st, dev(y), dev(x), dev(s), n, hw, vec);
  MTL_CUDA_LAUNCH_CHECK();
}

template <typename T>
void channel_scale_backward(T* gx, T* gs, const T* gy, const T* x, const T* s, int64_t planes, int64_t hw,
                            cudaStream_t st) {
  if (planes == 0 || (!gx && !gs)) return;
  MTL_CHECK(planes <= 0x7fffffff, "channel_scale backward: too many planes (", planes, ")");
  if (hw == 0) {
    // Empty planes: nothing to scale and every sum is zero.
    if (gs) MTL_CUDA_CHECK(cudaMemsetAsync(gs, 0, static_cast<size_t>(planes) * sizeof(T), st));
    return;
  }
  const bool vec = hw % 4 == 0 && aligned16(gy) && aligned16(x) && (!gx || aligned16(gx));
  MTL_LAUNCH(channel_scale_bwd, static_cast<unsigned>(planes), kThreads, 0, st, dev(gx), dev(gs), dev(gy), dev(x),
             dev(s), hw, vec);
  MTL_CUDA_LAUNCH_CHECK();
}

template void channel_scale<float>(float*, const float*, const float*, int64_t, int64_t, cudaStream_t);
template void channel_scale<bf16>(bf16*, const bf16*, const bf16*, int64_t, int64_t, cudaStream_t);
template void channel_scale_backward<float>(float*, float*, const float*, const float*, const float*, int64_t, int64_t,
                                            cudaStream_t);
template void channel_scale_backward<bf16>(bf16*, bf16*, const bf16*, const bf16*, const bf16*, int64_t, int64_t,
                                           cudaStream_t);

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
