#pragma once
// Process set-up shared by the apps.
#include <cstdlib>
#include <unistd.h>

#include "kernels/threads.h"

namespace mtl::apps {

// Two settings that the libraries read once, when they load, so the process re-executes itself
// with them unless the user set them; if the re-exec fails the program simply continues as it is.
// - OMP_WAIT_POLICY=PASSIVE: OpenMP's default wait policy spins at every barrier. With the data
//   loader's threads beside the compute threads, or any other process on the machine, spinning
//   threads starve the one that has work: on 2 cores a training step measured 20x slower.
// - OPENBLAS_CORETYPE, where OpenBLAS picked its generic kernels on a CPU it does not know
//   (kernels::openblas_core_override): a CPU training step measured nearly 2x faster.
inline void use_tuned_runtime(char** argv) {
  bool changed = false;
  if (!std::getenv("OMP_WAIT_POLICY")) {
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    changed = true;
  }
  const char* core = kernels::openblas_core_override();
  if (core && !std::getenv("OPENBLAS_CORETYPE")) {
    setenv("OPENBLAS_CORETYPE", core, 1);
    changed = true;
  }
  if (changed) execv("/proc/self/exe", argv);
}

}  // namespace mtl::apps
