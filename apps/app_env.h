#pragma once
// Process set-up shared by the apps.
#include <cstdlib>
#include <unistd.h>

namespace mtl::apps {

// OpenMP's default wait policy spins at every barrier. With the data loader's threads beside the
// compute threads, or any other process on the machine, spinning threads starve the one that has
// work: on 2 cores a training step measured 20x slower. libgomp reads the policy once, when it
// loads, so the process re-executes itself with OMP_WAIT_POLICY=PASSIVE unless the user set a
// policy. If the re-exec fails the program simply continues as it is.
inline void use_passive_openmp(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY")) return;
  setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  execv("/proc/self/exe", argv);
}

}  // namespace mtl::apps
