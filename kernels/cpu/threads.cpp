#include "kernels/threads.h"

#include <omp.h>

#include <cstring>
#include <thread>

#if MTL_USE_OPENBLAS
#include <cblas.h>
#endif

namespace mtl::kernels {

void set_cpu_threads(int n) {
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  omp_set_num_threads(n);
#if MTL_USE_OPENBLAS
  openblas_set_num_threads(n);
#endif
}

const char* openblas_core_override() {
#if MTL_USE_OPENBLAS && defined(__x86_64__)
  if (std::strcmp(openblas_get_corename(), "Prescott") != 0) return nullptr;
  if (__builtin_cpu_supports("avx512f")) return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
  return nullptr;
}

}  // namespace mtl::kernels
