#pragma once
// The CUDA kernel language for the host compiler: included before every kernel source that the CPU
// execution layer builds (kernels/cuda/*.cu through generated wrappers, and tests/test_simt.cpp).
// The real CUDA headers provide the types (dim3, float4 with its 16-byte alignment, __nv_bfloat16
// with CUDA's own round-to-nearest-even conversions) and the runtime API's declarations; this file
// adds what only nvcc knows: __shared__ storage, the built-in variables, barriers, warp
// intrinsics, atomics, the device math the kernels use, and the launch.

// __shared__ variables are static (one block runs at a time) and live in one section, each aligned
// to its own slot: the layer finds them in the symbol table, poisons them at every block start and
// checks the bytes after each one (shared_memory.cpp). Defined before the CUDA headers, which keep
// an existing definition.
#define MTL_SIMT_SHARED_SLOT 8192
#define __shared__ static __attribute__((section("mtl_simt_shared"), aligned(MTL_SIMT_SHARED_SLOT)))
#define __launch_bounds__(...)
// Kernels stay functions of their own, so that a code address inside one names it (the dynamic
// shared memory check in runtime.cpp).
#define __global__ __attribute__((noipa))

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <source_location>
#include <tuple>
#include <type_traits>

#include "tests/simt/launch.h"
#include "tests/simt/thread.h"

#define threadIdx (::mtl::simt::current().thread_idx)
#define blockIdx (::mtl::simt::current().block_idx)
#define blockDim (::mtl::simt::current().block_dim)
#define gridDim (::mtl::simt::current().grid_dim)
constexpr int warpSize = 32;

void* mtl_simt_dynamic_shared();

// nvcc's typed overload of cudaFuncSetAttribute.
template <typename R, typename... A>
cudaError_t cudaFuncSetAttribute(R (*kernel)(A...), cudaFuncAttribute attr, int value) {
  return cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel), attr, value);
}

#define MTL_SIMT_LAUNCH(kernel, grid, block, shared_bytes, stream, ...)                                     \
  ::mtl::simt::launch(                                                                                      \
      {#kernel, __FILE__, __LINE__}, [=](auto... mtl_simt_args) { kernel(mtl_simt_args...); }, grid, block, \
      shared_bytes, stream, __VA_ARGS__)

// ---- barriers and warp intrinsics ----------------------------------------------------------------

inline void __syncthreads(std::source_location where = std::source_location::current()) {
  ::mtl::simt::sync_threads(where);
}
inline void __syncwarp(unsigned mask = 0xffffffffu, std::source_location where = std::source_location::current()) {
  ::mtl::simt::warp_collective(::mtl::simt::WarpOp::sync, mask, 0, 0, warpSize, where);
}
inline void __threadfence() {}
inline void __threadfence_block() {}

#define MTL_SIMT_SHUFFLE(name, op)                                                             \
  template <typename T>                                                                        \
  T name(unsigned mask, T var, int arg, int width = warpSize,                                  \
         std::source_location where = std::source_location::current()) {                       \
    return ::mtl::simt::from_bits<T>(                                                          \
        ::mtl::simt::warp_collective(op, mask, ::mtl::simt::to_bits(var), arg, width, where)); \
  }
MTL_SIMT_SHUFFLE(__shfl_sync, ::mtl::simt::WarpOp::shfl_idx)
MTL_SIMT_SHUFFLE(__shfl_up_sync, ::mtl::simt::WarpOp::shfl_up)
MTL_SIMT_SHUFFLE(__shfl_down_sync, ::mtl::simt::WarpOp::shfl_down)
MTL_SIMT_SHUFFLE(__shfl_xor_sync, ::mtl::simt::WarpOp::shfl_xor)
#undef MTL_SIMT_SHUFFLE

inline unsigned __ballot_sync(unsigned mask, int pred, std::source_location where = std::source_location::current()) {
  return static_cast<unsigned>(
      ::mtl::simt::warp_collective(::mtl::simt::WarpOp::ballot, mask, pred != 0, 0, warpSize, where));
}
inline int __any_sync(unsigned mask, int pred, std::source_location where = std::source_location::current()) {
  return static_cast<int>(::mtl::simt::warp_collective(::mtl::simt::WarpOp::any, mask, pred != 0, 0, warpSize, where));
}
inline int __all_sync(unsigned mask, int pred, std::source_location where = std::source_location::current()) {
  return static_cast<int>(::mtl::simt::warp_collective(::mtl::simt::WarpOp::all, mask, pred != 0, 0, warpSize, where));
}
template <typename T>
unsigned __match_any_sync(unsigned mask, T value, std::source_location where = std::source_location::current()) {
  return static_cast<unsigned>(::mtl::simt::warp_collective(::mtl::simt::WarpOp::match_any, mask,
                                                            ::mtl::simt::to_bits(value), 0, warpSize, where));
}

// ---- integer intrinsics, loads, math ---------------------------------------------------------------

inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll(static_cast<unsigned long long>(x)); }

template <typename T>
T __ldg(const T* p) {
  return *p;
}

// CUDA's min and max overloads for arguments of one arithmetic type.
template <typename T, typename = std::enable_if_t<std::is_arithmetic_v<T>>>
T min(T a, T b) {
  return b < a ? b : a;
}
template <typename T, typename = std::enable_if_t<std::is_arithmetic_v<T>>>
T max(T a, T b) {
  return a < b ? b : a;
}
inline float rsqrtf(float x) { return 1.f / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
using std::isfinite;
using std::isinf;
using std::isnan;

// ---- atomics: blocks and their threads run one at a time, so a plain update is atomic ---------------

template <typename T>
T atomicAdd(T* p, T v) {
  const T old = *p;
  *p = old + v;
  return old;
}
template <typename T>
T atomicMin(T* p, T v) {
  const T old = *p;
  if (v < old) *p = v;
  return old;
}
template <typename T>
T atomicMax(T* p, T v) {
  const T old = *p;
  if (old < v) *p = v;
  return old;
}
template <typename T>
T atomicExch(T* p, T v) {
  const T old = *p;
  *p = v;
  return old;
}
template <typename T>
T atomicCAS(T* p, T compare, T v) {
  const T old = *p;
  if (old == compare) *p = v;
  return old;
}
