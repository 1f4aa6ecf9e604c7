// The physical limit the memory-bound kernels are measured against: a device-to-device copy,
// counting bytes read plus bytes written (as METHOD.md and the kernel benchmarks do).
#include "bench/bench_util.h"
#include "core/tensor.h"

using namespace mtl;

static void BM_DeviceCopy(benchmark::State& state) {
  const int64_t n = state.range(0);
  if (!cuda::available()) return state.SkipWithError("no CUDA device");
  Tensor a = zeros({n}, Options(DType::f32, Device::cuda())), b = zeros({n}, Options(DType::f32, Device::cuda()));
  bench::run_cuda(state, 2 * n * 4, [&] {
    MTL_CUDA_CHECK(cudaMemcpyAsync(b.data_ptr(), a.data_ptr(), n * 4, cudaMemcpyDeviceToDevice, cuda::stream()));
  });
}
BENCHMARK(BM_DeviceCopy)->Arg(1 << 28)->UseManualTime()->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
