#include "kernels/threads.h"

#include <omp.h>

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

}  // namespace mtl::kernels
