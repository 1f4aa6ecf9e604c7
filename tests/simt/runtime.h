#pragma once
// The test-facing side of the CPU execution layer's CUDA runtime.
#include <string>

namespace mtl::simt {

// What made the last kernel fail (a race the schedules exposed, a mask error, a shared-memory
// overrun), or empty. A failure is sticky, as a kernel fault is on a GPU: every later runtime call
// returns cudaErrorLaunchFailure until a self-test takes it.
std::string take_failure();

// Records a failure of the block that runs now; it stops at its threads' next barrier.
void fail_running_block(const std::string& what);

}  // namespace mtl::simt
