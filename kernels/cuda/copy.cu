#include <cuda_bf16.h>

#include "kernels/copy.h"
#include "kernels/cuda/launch.cuh"

namespace mtl::kernels::cuda {

namespace {

template <typename E>
__global__ void copy_kernel(E* dst, const E* src, Layout l, int64_t n) {
  MTL_GRID_LOOP(i, n) {
    int64_t off[2];
    l.offsets<2>(i, off);
    dst[off[0]] = src[off[1]];
  }
}

// Device-side conversions through float or double, matching the CPU twin's rounding for
// bfloat16 (round to nearest even) and C++'s truncation for integers.
template <typename T> struct Dev { using type = T; };
template <> struct Dev<bf16> { using type = __nv_bfloat16; };

template <typename D, typename S>
__device__ D convert(S v) {
  if constexpr (std::is_same_v<D, __nv_bfloat16>) {
    if constexpr (std::is_same_v<S, __nv_bfloat16>) return v;
    else return __float2bfloat16_rn(static_cast<float>(v));
  } else if constexpr (std::is_same_v<S, __nv_bfloat16>) {
    return static_cast<D>(__bfloat162float(v));
  } else {
    return static_cast<D>(v);
  }
}

template <typename D, typename S>
__global__ void cast_kernel(D* d, const S* s, int64_t n) {
  MTL_GRID_LOOP(i, n) d[i] = convert<D>(s[i]);
}

template <typename S>
void cast_from(void* dst, DType dt, const S* s, int64_t n, cudaStream_t st) {
  const int b = blocks_for(n);
  switch (dt) {
    case DType::f32: MTL_LAUNCH(cast_kernel, b, kThreads, 0, st, static_cast<float*>(dst), s, n); break;
    case DType::f64: MTL_LAUNCH(cast_kernel, b, kThreads, 0, st, static_cast<double*>(dst), s, n); break;
    case DType::bf16: MTL_LAUNCH(cast_kernel, b, kThreads, 0, st, static_cast<__nv_bfloat16*>(dst), s, n); break;
    case DType::i32: MTL_LAUNCH(cast_kernel, b, kThreads, 0, st, static_cast<int32_t*>(dst), s, n); break;
    case DType::i64: MTL_LAUNCH(cast_kernel, b, kThreads, 0, st, static_cast<int64_t*>(dst), s, n); break;
    case DType::u8: MTL_LAUNCH(cast_kernel, b, kThreads, 0, st, static_cast<uint8_t*>(dst), s, n); break;
    case DType::b8: MTL_LAUNCH(cast_kernel, b, kThreads, 0, st, static_cast<bool*>(dst), s, n); break;
  }
  MTL_CUDA_LAUNCH_CHECK();
}

}  // namespace

void copy_strided(void* dst, const void* src, size_t es, const Layout& l, cudaStream_t s) {
  const int64_t n = l.numel();
  if (n == 0) return;
  const int b = blocks_for(n);
  switch (es) {
    case 1:
      MTL_LAUNCH(copy_kernel, b, kThreads, 0, s, static_cast<uint8_t*>(dst), static_cast<const uint8_t*>(src), l, n);
      break;
    case 2:
      MTL_LAUNCH(copy_kernel, b, kThreads, 0, s, static_cast<uint16_t*>(dst), static_cast<const uint16_t*>(src), l, n);
      break;
    case 4:
      MTL_LAUNCH(copy_kernel, b, kThreads, 0, s, static_cast<uint32_t*>(dst), static_cast<const uint32_t*>(src), l, n);
      break;
    case 8:
      MTL_LAUNCH(copy_kernel, b, kThreads, 0, s, static_cast<uint64_t*>(dst), static_cast<const uint64_t*>(src), l, n);
      break;
    default: MTL_ASSERT(false, "copy_strided: element size ", es);
  }
  MTL_CUDA_LAUNCH_CHECK();
}

void cast(void* dst, DType dt, const void* src, DType st, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  switch (st) {
    case DType::f32: return cast_from(dst, dt, static_cast<const float*>(src), n, s);
    case DType::f64: return cast_from(dst, dt, static_cast<const double*>(src), n, s);
    case DType::bf16: return cast_from(dst, dt, static_cast<const __nv_bfloat16*>(src), n, s);
    case DType::i32: return cast_from(dst, dt, static_cast<const int32_t*>(src), n, s);
    case DType::i64: return cast_from(dst, dt, static_cast<const int64_t*>(src), n, s);
    case DType::u8: return cast_from(dst, dt, static_cast<const uint8_t*>(src), n, s);
    case DType::b8: return cast_from(dst, dt, static_cast<const bool*>(src), n, s);
  }
}

__global__ void fill_kernel(float* out, float v, int64_t n) {
  MTL_GRID_LOOP(i, n) out[i] = v;
}

void fill(float* out, float value, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  MTL_LAUNCH(fill_kernel, blocks_for(n), kThreads, 0, s, out, value, n);
  MTL_CUDA_LAUNCH_CHECK();
}

}  // namespace mtl::kernels::cuda
