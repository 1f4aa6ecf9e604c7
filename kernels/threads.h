#pragma once
// How many CPU threads the kernels use: OpenMP and OpenBLAS together, so the two pools never
// oversubscribe the cores (on a 2-core machine that costs several times the compute).

namespace mtl::kernels {

// n <= 0: every core. Call before the first kernel runs.
void set_cpu_threads(int n);

// The core to name in OPENBLAS_CORETYPE when OpenBLAS's own detection fell back to its generic SSE3
// kernels (Prescott) on a CPU it does not recognise although the CPU has AVX2 or AVX-512: OpenBLAS
// 0.3.21 does so on Sapphire Rapids, where its GEMM then runs at about half the speed. Null when
// its choice stands (or without OpenBLAS). OpenBLAS reads the variable when it loads, so only a
// process started with it set benefits (apps/app_env.h re-executes itself).
const char* openblas_core_override();

}  // namespace mtl::kernels
