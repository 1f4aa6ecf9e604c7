#pragma once
// Shared by the Google Benchmark executables. CUDA cases time each iteration with CUDA events
// on the mtl stream (UseManualTime) and report bytes/s from the bytes a kernel must move at the
// least; without a GPU they are skipped with a message, never timed on the CPU.
#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <functional>

#include "core/cuda_check.h"
#include "core/cuda_context.h"

namespace mtl::bench {

// Runs `fn` once per iteration, timed with device events; sets bytes processed per iteration.
inline void run_cuda(benchmark::State& state, int64_t bytes_per_iter, const std::function<void()>& fn) {
  if (!cuda::available()) {
    state.SkipWithError("no CUDA device");
    return;
  }
  cudaStream_t s = cuda::stream();
  fn();  // warm-up: algorithm selection, allocator caching
  cuda::synchronize();
  cudaEvent_t start, stop;
  MTL_CUDA_CHECK(cudaEventCreate(&start));
  MTL_CUDA_CHECK(cudaEventCreate(&stop));
  for (auto _ : state) {
    MTL_CUDA_CHECK(cudaEventRecord(start, s));
    fn();
    MTL_CUDA_CHECK(cudaEventRecord(stop, s));
    MTL_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    MTL_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    state.SetIterationTime(ms / 1e3);
  }
  MTL_CUDA_CHECK(cudaEventDestroy(start));
  MTL_CUDA_CHECK(cudaEventDestroy(stop));
  state.SetBytesProcessed(state.iterations() * bytes_per_iter);
}

}  // namespace mtl::bench
