#pragma once
// Per-channel kernels on contiguous [planes, hw] buffers (planes = N*C): the squeeze-and-excitation
// multiply y = x * s[plane], and dropout masks.
//
// Dropout randomness: element (or channel) i keeps when word i % 4 of
// philox4x32(seed, 0, base + i / 4) is below `threshold` = keep probability * 2^32, so the mask
// depends only on the generator state and never on the device, thread count or launch shape.
#include <cuda_runtime.h>

#include <cstdint>

#include "core/bfloat16.h"

namespace mtl::kernels {

struct DropoutRng {
  uint64_t seed = 0;
  uint64_t base = 0;       // first Philox counter reserved for this mask
  uint32_t threshold = 0;  // keep when the 32-bit random word is below it
};

// Threshold for keeping with probability 1 - p, p in (0, 1).
uint32_t dropout_threshold(double p);

namespace cpu {
template <typename T>
void channel_scale(T* y, const T* x, const T* s, int64_t planes, int64_t hw);
// gx = gy * s[plane]; gs[plane] = sum over the plane of gy * x. Either output may be null.
template <typename T>
void channel_scale_backward(T* gx, T* gs, const T* gy, const T* x, const T* s, int64_t planes, int64_t hw);
// mask[i] = keep(i) for i < n.
void dropout_mask(uint8_t* mask, int64_t n, DropoutRng rng);
// Element-wise dropout in one pass: mask[i] = keep(i), y[i] = x[i] * (mask[i] ? scale : 0).
template <typename T>
void dropout(T* y, uint8_t* mask, const T* x, int64_t n, DropoutRng rng, double scale);
// y[i] = x[i] * (mask[i / group] ? scale : 0): dropout2d forward (group = hw) and backward.
template <typename T>
void masked_scale(T* y, const T* x, const uint8_t* mask, int64_t n, int64_t group, double scale);
}  // namespace cpu

namespace cuda {
// T: float or bf16 (computed in float, rounded once on store).
template <typename T>
void channel_scale(T* y, const T* x, const T* s, int64_t planes, int64_t hw, cudaStream_t st);
template <typename T>
void channel_scale_backward(T* gx, T* gs, const T* gy, const T* x, const T* s, int64_t planes, int64_t hw,
                            cudaStream_t st);
// Dropout runs in float32 only (ESANet has none).
void dropout_mask(uint8_t* mask, int64_t n, DropoutRng rng, cudaStream_t st);
void dropout(float* y, uint8_t* mask, const float* x, int64_t n, DropoutRng rng, double scale, cudaStream_t st);
void masked_scale(float* y, const float* x, const uint8_t* mask, int64_t n, int64_t group, double scale,
                  cudaStream_t st);
}  // namespace cuda

}  // namespace mtl::kernels
