#pragma once
// How many CPU threads the kernels use: OpenMP and OpenBLAS together, so the two pools never
// oversubscribe the cores (on a 2-core machine that costs several times the compute).

namespace mtl::kernels {

// n <= 0: every core. Call before the first kernel runs.
void set_cpu_threads(int n);

}  // namespace mtl::kernels
