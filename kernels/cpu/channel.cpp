#include <cmath>

#include "core/generator.h"
#include "kernels/channel.h"

namespace mtl::kernels {

uint32_t dropout_threshold(double p) {
  // keep * 2^32 rounds below 2^32 for every p > 2^-53; clamp the rest.
  const double t = std::floor((1.0 - p) * 4294967296.0);
  return t >= 4294967295.0 ? 0xFFFFFFFFu : static_cast<uint32_t>(t);
}

namespace cpu {

template <typename T>
void channel_scale(T* y, const T* x, const T* s, int64_t planes, int64_t hw) {
#pragma omp parallel for schedule(static) if (planes * hw > 32768)
  for (int64_t p = 0; p < planes; ++p) {
    const T sp = s[p];
    for (int64_t j = 0; j < hw; ++j) y[p * hw + j] = x[p * hw + j] * sp;
  }
}

template <typename T>
void channel_scale_backward(T* gx, T* gs, const T* gy, const T* x, const T* s, int64_t planes, int64_t hw) {
#pragma omp parallel for schedule(static) if (planes * hw > 32768)
  for (int64_t p = 0; p < planes; ++p) {
    const T* gyp = gy + p * hw;
    if (gx) {
      const T sp = s[p];
      for (int64_t j = 0; j < hw; ++j) gx[p * hw + j] = gyp[j] * sp;
    }
    if (gs) {
      double acc = 0;
      for (int64_t j = 0; j < hw; ++j) acc += static_cast<double>(gyp[j]) * x[p * hw + j];
      gs[p] = static_cast<T>(acc);
    }
  }
}

void dropout_mask(uint8_t* mask, int64_t n, DropoutRng rng) {
  const int64_t counters = (n + 3) / 4;
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t c = 0; c < counters; ++c) {
    const auto r = mtl::philox4x32(rng.seed, 0, rng.base + static_cast<uint64_t>(c));
    for (int64_t k = 0; k < 4 && c * 4 + k < n; ++k) mask[c * 4 + k] = r[k] < rng.threshold ? 1 : 0;
  }
}

template <typename T>
void dropout(T* y, uint8_t* mask, const T* x, int64_t n, DropoutRng rng, double scale) {
  const T sc = static_cast<T>(scale);
  const int64_t counters = (n + 3) / 4;
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t c = 0; c < counters; ++c) {
    const auto r = mtl::philox4x32(rng.seed, 0, rng.base + static_cast<uint64_t>(c));
    for (int64_t k = 0; k < 4 && c * 4 + k < n; ++k) {
      const int64_t i = c * 4 + k;
      const bool keep = r[k] < rng.threshold;
      mask[i] = keep ? 1 : 0;
      // A product, not a select, so that inf and NaN inputs behave as in PyTorch's x * noise.
      y[i] = x[i] * (keep ? sc : T(0));
    }
  }
}

template <typename T>
void masked_scale(T* y, const T* x, const uint8_t* mask, int64_t n, int64_t group, double scale) {
  const T sc = static_cast<T>(scale);
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * (mask[i / group] ? sc : T(0));
}

#define MTL_INSTANTIATE(T)                                                                               \
  template void channel_scale<T>(T*, const T*, const T*, int64_t, int64_t);                              \
  template void channel_scale_backward<T>(T*, T*, const T*, const T*, const T*, int64_t, int64_t);       \
  template void dropout<T>(T*, uint8_t*, const T*, int64_t, DropoutRng, double);                          \
  template void masked_scale<T>(T*, const T*, const uint8_t*, int64_t, int64_t, double);
MTL_INSTANTIATE(float)
MTL_INSTANTIATE(double)
#undef MTL_INSTANTIATE

}  // namespace cpu
}  // namespace mtl::kernels
