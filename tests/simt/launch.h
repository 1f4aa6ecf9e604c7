#pragma once
// Kernel launches on the CPU execution layer: MTL_LAUNCH (kernels/cuda/launch.cuh) comes here with
// the kernel wrapped in a callable and the arguments copied, as a CUDA launch copies them.
#include <cuda_runtime.h>

#include <cstddef>
#include <functional>
#include <tuple>

namespace mtl::simt {

struct LaunchSite {
  const char* kernel;  // as written at the launch
  const char* file;
  int line;
};

struct Launch {
  LaunchSite site;
  dim3 grid, block;
  size_t shared_bytes = 0;
  std::function<void()> thread_body;  // runs the kernel for the current CUDA thread
};

// Checks the configuration as the CUDA runtime does (a bad one sets the error cudaGetLastError
// returns) and queues the grid on the stream.
void enqueue_launch(Launch launch, cudaStream_t stream);

template <typename Body, typename... Args>
void launch(LaunchSite site, Body body, dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream, Args... args) {
  enqueue_launch(
      {site, grid, block, shared_bytes, [body, arguments = std::make_tuple(args...)] { std::apply(body, arguments); }},
      stream);
}

}  // namespace mtl::simt
