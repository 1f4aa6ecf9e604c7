#pragma once
// Which run of the CUDA side a parity check is in. The CPU execution layer (tests/simt) derives the
// order in which a block's threads run between barriers from it (forward, reverse, seeded
// shuffle), so that a check's reruns see different schedules; on a GPU nothing reads it.
#include <atomic>
#include <cstdint>

namespace mtl::test {

inline std::atomic<uint64_t> g_schedule_epoch{0};

}  // namespace mtl::test
