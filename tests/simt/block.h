#pragma once
// One thread block on the CPU: every CUDA thread is a fiber; the block's threads run one at a time
// in the schedule's order until each reaches a barrier, a warp collective or its end.
#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace mtl::simt {

// The order in which a grid's blocks run, and a block's threads between two barriers.
struct Schedule {
  enum Kind { forward, reverse, shuffle } kind = forward;
  uint64_t seed = 0;                          // shuffle only
  static Schedule for_epoch(uint64_t epoch);  // forward, reverse, shuffle, shuffle, ...
  std::string describe() const;
  // Linear block indices (x fastest) in the order they run.
  std::vector<uint64_t> block_order(uint64_t blocks, uint64_t launch_index) const;
};

struct BlockJob {
  dim3 grid, block, block_idx;
  std::function<void()> thread_body;
  Schedule schedule;
  uint64_t launch_index;  // mixed into the shuffle's seed
};

// Runs the block to its end. Returns an empty string, or what went wrong (a warp collective whose
// mask does not match the lanes that call it, divergent barriers, a deadlock), naming the thread.
std::string run_block(const BlockJob& job);

}  // namespace mtl::simt
