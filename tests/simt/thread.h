#pragma once
// What the kernel language asks of the scheduler (block.cpp): the running CUDA thread, barriers and
// warp collectives.
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <source_location>
#include <type_traits>

namespace mtl::simt {

// The CUDA thread running now, and its block.
struct ThreadContext {
  uint3 thread_idx;
  uint3 block_idx;
  dim3 block_dim;
  dim3 grid_dim;
};
const ThreadContext& current();

void sync_threads(std::source_location where);

// Warp collectives exchange one value of up to 8 bytes per lane.
// `active` (__activemask) has no mask: it waits until every live lane of the warp is blocked and
// returns those that wait in it.
enum class WarpOp { shfl_idx, shfl_up, shfl_down, shfl_xor, ballot, match_any, any, all, sync, active };
uint64_t warp_collective(WarpOp op, unsigned mask, uint64_t value, int arg, int width, std::source_location where);

// Values cross lanes as their bytes.
template <typename T>
uint64_t to_bits(T v) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "warp intrinsics take values of up to 8 bytes");
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}
template <typename T>
T from_bits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}

}  // namespace mtl::simt

inline unsigned __activemask(std::source_location where = std::source_location::current()) {
  return static_cast<unsigned>(::mtl::simt::warp_collective(::mtl::simt::WarpOp::active, 0, 0, 0, 32, where));
}
