// GroupNorm kernels at ESANet's shapes (batch 8, the model's group count), timed with CUDA events.
// bytes/s counts the least traffic each pass must move: forward reads x and writes y, backward
// reads x and dy and writes dx, both plus the small per-channel and per-group tensors. Compare
// with BM_DeviceCopy (bench_copy) and with bench/reference/group_norm_torch.py, which prints the
// same shapes through PyTorch in the same units. The CPU case keeps the binary useful without a GPU.
#include <string>

#include "bench/bench_util.h"
#include "core/generator.h"
#include "core/tensor.h"
#include "kernels/group_norm.h"
#include "models/norm.h"
#include "ops/group_norm.h"

using namespace mtl;

namespace {

constexpr int64_t kBatch = 8;

kernels::GroupNormDims dims_of(const benchmark::State& state, int64_t batch) {
  const int64_t c = state.range(0);
  return {batch, c, state.range(1) * state.range(2), models::group_norm_groups(c)};
}

int64_t forward_bytes(const kernels::GroupNormDims& d) {
  // x, y; gamma, beta; saved mean, rstd
  return 4 * (2 * d.n * d.c * d.hw + 2 * d.c + 2 * d.n * d.groups);
}

int64_t backward_bytes(const kernels::GroupNormDims& d) {
  // x, dy, dx; mean, rstd, gamma; dgamma, dbeta
  return 4 * (3 * d.n * d.c * d.hw + 2 * d.n * d.groups + 3 * d.c);
}

std::string label(const benchmark::State& state, const kernels::GroupNormDims& d) {
  return std::to_string(d.n) + "x" + std::to_string(d.c) + "x" + std::to_string(state.range(1)) + "x" +
         std::to_string(state.range(2)) + " g" + std::to_string(d.groups);
}

// Inputs for one shape on `device`: x, dy ~ N(0, 1), gamma ~ 1 + N(0, 1), beta ~ N(0, 1).
struct Buffers {
  Tensor x, dy, gamma, beta, y, mean, rstd, dx, dgamma, dbeta;
  Buffers(const kernels::GroupNormDims& d, int64_t h, int64_t w, Device device) {
    Generator gen(7);
    const Options o(DType::f32, device);
    x = normal({d.n, d.c, h, w}, 0.0, 1.0, gen, o);
    dy = normal({d.n, d.c, h, w}, 0.0, 1.0, gen, o);
    gamma = normal({d.c}, 1.0, 1.0, gen, o);
    beta = normal({d.c}, 0.0, 1.0, gen, o);
    y = empty(x.shape(), o);
    dx = empty(x.shape(), o);
    mean = empty({d.n, d.groups}, o);
    rstd = empty({d.n, d.groups}, o);
    dgamma = empty({d.c}, o);
    dbeta = empty({d.c}, o);
  }
};

Tensor workspace(size_t floats) {
  return empty({static_cast<int64_t>(std::max<size_t>(floats, 1))}, Options(DType::f32, Device::cuda()));
}

void BM_GroupNormForwardCuda(benchmark::State& state) {
  if (!cuda::available()) return state.SkipWithError("no CUDA device");
  const kernels::GroupNormDims d = dims_of(state, kBatch);
  Buffers b(d, state.range(1), state.range(2), Device::cuda());
  Tensor work = workspace(kernels::cuda::group_norm_forward_workspace(d));
  bench::run_cuda(state, forward_bytes(d), [&] {
    kernels::cuda::group_norm_forward(b.y.data<float>(), b.mean.data<float>(), b.rstd.data<float>(), b.x.data<float>(),
                                      b.gamma.data<float>(), b.beta.data<float>(), d, 1e-5, work.data<float>(),
                                      cuda::stream());
  });
  state.SetLabel(label(state, d));
}

void BM_GroupNormBackwardCuda(benchmark::State& state) {
  if (!cuda::available()) return state.SkipWithError("no CUDA device");
  const kernels::GroupNormDims d = dims_of(state, kBatch);
  Buffers b(d, state.range(1), state.range(2), Device::cuda());
  Tensor fwork = workspace(kernels::cuda::group_norm_forward_workspace(d));
  Tensor work = workspace(kernels::cuda::group_norm_backward_workspace(d));
  // The saved statistics the backward reads.
  kernels::cuda::group_norm_forward(b.y.data<float>(), b.mean.data<float>(), b.rstd.data<float>(), b.x.data<float>(),
                                    b.gamma.data<float>(), b.beta.data<float>(), d, 1e-5, fwork.data<float>(),
                                    cuda::stream());
  bench::run_cuda(state, backward_bytes(d), [&] {
    kernels::cuda::group_norm_backward(b.dx.data<float>(), b.dgamma.data<float>(), b.dbeta.data<float>(),
                                       b.dy.data<float>(), b.x.data<float>(), b.mean.data<float>(),
                                       b.rstd.data<float>(), b.gamma.data<float>(), d, work.data<float>(),
                                       cuda::stream());
  });
  state.SetLabel(label(state, d));
}

// {channels, height, width} of ESANet's encoder stages at 640x480 input.
void esanet_shapes(benchmark::internal::Benchmark* b) {
  b->Args({64, 240, 320})->Args({64, 120, 160})->Args({128, 60, 80})->Args({256, 30, 40})->Args({512, 15, 20});
}

void BM_GroupNormForwardCpu(benchmark::State& state) {
  const kernels::GroupNormDims d = dims_of(state, 2);
  Buffers b(d, state.range(1), state.range(2), Device::cpu());
  for (auto _ : state) {
    kernels::cpu::group_norm_forward<float>(b.y.data<float>(), b.mean.data<float>(), b.rstd.data<float>(),
                                            b.x.data<float>(), b.gamma.data<float>(), b.beta.data<float>(), d, 1e-5);
    benchmark::DoNotOptimize(b.y.data<float>());
  }
  state.SetBytesProcessed(state.iterations() * forward_bytes(d));
  state.SetLabel(label(state, d));
}

void BM_GroupNormBackwardCpu(benchmark::State& state) {
  const kernels::GroupNormDims d = dims_of(state, 2);
  Buffers b(d, state.range(1), state.range(2), Device::cpu());
  kernels::cpu::group_norm_forward<float>(b.y.data<float>(), b.mean.data<float>(), b.rstd.data<float>(),
                                          b.x.data<float>(), b.gamma.data<float>(), b.beta.data<float>(), d, 1e-5);
  for (auto _ : state) {
    kernels::cpu::group_norm_backward<float>(b.dx.data<float>(), b.dgamma.data<float>(), b.dbeta.data<float>(),
                                             b.dy.data<float>(), b.x.data<float>(), b.mean.data<float>(),
                                             b.rstd.data<float>(), b.gamma.data<float>(), d);
    benchmark::DoNotOptimize(b.dx.data<float>());
  }
  state.SetBytesProcessed(state.iterations() * backward_bytes(d));
  state.SetLabel(label(state, d));
}

}  // namespace

BENCHMARK(BM_GroupNormForwardCuda)->Apply(esanet_shapes)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_GroupNormBackwardCuda)->Apply(esanet_shapes)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_GroupNormForwardCpu)->Args({64, 30, 40})->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_GroupNormBackwardCpu)->Args({64, 30, 40})->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
