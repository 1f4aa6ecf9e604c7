#pragma once
// CUDA tests live in TEST_SUITE("cuda") (ctest label `cuda`) and begin with MTL_REQUIRE_CUDA():
// without a GPU they print the skip marker, which ctest's SKIP_REGULAR_EXPRESSION turns into
// SKIPPED (never passed), and return. The same cases run on the CPU execution layer (label
// `simt`, tests/simt), where the device is emulated.
#include <cstdio>
#include <string>

#include "core/allocator.h"
#include "core/cuda_context.h"

#define MTL_SKIP_MARKER "[mtl-skipped]"

#define MTL_REQUIRE_CUDA()                                                        \
  do {                                                                            \
    if (!::mtl::cuda::available()) {                                              \
      std::printf(MTL_SKIP_MARKER " no CUDA device: test not run\n");             \
      std::fflush(stdout);                                                        \
      return;                                                                     \
    }                                                                             \
  } while (0)

namespace mtl::test {
// The device is the CPU execution layer's (its name says so), not a GPU.
inline bool emulated_device() { return ::mtl::cuda::device_name().rfind("mtl simt", 0) == 0; }
}  // namespace mtl::test

// Cases that need the GPU itself (cuDNN or cuBLAS, or shapes far too large for the CPU execution
// layer) begin with MTL_REQUIRE_GPU() instead; on a real device it is MTL_REQUIRE_CUDA().
#define MTL_REQUIRE_GPU()                                                                \
  do {                                                                                   \
    MTL_REQUIRE_CUDA();                                                                  \
    if (::mtl::test::emulated_device()) {                                                \
      std::printf(MTL_SKIP_MARKER " needs a GPU: not run by the CPU execution layer\n"); \
      std::fflush(stdout);                                                               \
      return;                                                                            \
    }                                                                                    \
  } while (0)

namespace mtl::test {
// Poisons every allocation for the lifetime of the guard, so outputs a kernel leaves unwritten
// read as NaN and fail comparisons.
struct PoisonGuard {
  bool prev = poison_allocations();
  PoisonGuard() { set_poison_allocations(true); }
  ~PoisonGuard() { set_poison_allocations(prev); }
};
}  // namespace mtl::test
