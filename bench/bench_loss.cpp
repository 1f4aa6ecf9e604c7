// Losses and metrics at training sizes (batch 8, 480x640, 7 and 40 classes) on the GPU, reported
// as bytes/s of the least traffic each must move, beside a device copy of the logits' size (the
// ceiling; bench_copy's BM_DeviceCopy measures the same at a fixed size). bench/reference/
// loss_torch.py runs the same work through PyTorch and prints the same byte counts.
//
// Least traffic counted (float32 = 4 bytes, int32 labels = 4 bytes, P = N*H*W pixels):
//   cross-entropy forward:           logits read once + labels            = 4*C*P + 4*P
//   cross-entropy forward+backward:  forward + logits read + grad written + labels again
//                                                                         = 12*C*P + 8*P
//   SILog forward+backward:          pred + target, then pred + target + grad written = 20*P
//   confusion matrix from logits:    logits + targets = 4*C*P + 4*P; from labels: 8*P
//   depth metrics:                   pred + target = 8*P
// Saved per-pixel statistics (the log-sum-exp, 4*P each way) are not counted: they are this
// implementation's choice, not part of the work.
#include "bench/bench_util.h"
#include "core/generator.h"
#include "ops/ops.h"

using namespace mtl;

namespace {

constexpr int64_t kN = 8, kH = 480, kW = 640, kP = kN * kH * kW;

Options on_gpu(DType t = DType::f32) { return Options(t, Device::cuda()); }

// Labels in [0, c) (uniform in [0, c) truncated), as int32.
Tensor labels(int64_t n, int64_t h, int64_t w, int64_t c, Generator& g) {
  return ops::to(uniform({n, h, w}, 0.0, static_cast<double>(c) - 1e-3, g), DType::i32);
}

}  // namespace

// The bandwidth ceiling, sized like the logits of the cross-entropy cases.
static void BM_CopyLogitsSize(benchmark::State& state) {
  if (!cuda::available()) return state.SkipWithError("no CUDA device");
  const int64_t n = state.range(0) * kP;
  Tensor a = zeros({n}, on_gpu()), b = zeros({n}, on_gpu());
  bench::run_cuda(state, 2 * n * 4, [&] {
    MTL_CUDA_CHECK(cudaMemcpyAsync(b.data_ptr(), a.data_ptr(), n * 4, cudaMemcpyDeviceToDevice, cuda::stream()));
  });
}
BENCHMARK(BM_CopyLogitsSize)->Arg(7)->Arg(40)->UseManualTime()->Unit(benchmark::kMicrosecond);

static void BM_CrossEntropyForward(benchmark::State& state) {
  if (!cuda::available()) return state.SkipWithError("no CUDA device");
  const int64_t c = state.range(0);
  Generator g(1);
  Tensor x = normal({kN, c, kH, kW}, 0, 1, g).cuda(), y = labels(kN, kH, kW, c, g).cuda();
  ops::CrossEntropyOptions o;
  o.class_weights = uniform({c}, 0.5, 2.0, g).cuda();
  o.ignore_index = 255;
  bench::run_cuda(state, 4 * c * kP + 4 * kP, [&] { benchmark::DoNotOptimize(ops::cross_entropy(x, y, o).loss); });
}
BENCHMARK(BM_CrossEntropyForward)->Arg(7)->Arg(40)->UseManualTime()->Unit(benchmark::kMicrosecond);

// Second argument: label checking on (one host synchronisation per call) or off.
static void BM_CrossEntropyForwardBackward(benchmark::State& state) {
  if (!cuda::available()) return state.SkipWithError("no CUDA device");
  const int64_t c = state.range(0);
  Generator g(2);
  Tensor x = normal({kN, c, kH, kW}, 0, 1, g).cuda(), y = labels(kN, kH, kW, c, g).cuda();
  x.set_requires_grad(true);
  ops::CrossEntropyOptions o;
  o.class_weights = uniform({c}, 0.5, 2.0, g).cuda();
  o.ignore_index = 255;
  o.check_labels = state.range(1) != 0;
  bench::run_cuda(state, 12 * c * kP + 8 * kP, [&] {
    x.zero_grad();
    ops::cross_entropy(x, y, o).loss.backward();
  });
}
BENCHMARK(BM_CrossEntropyForwardBackward)
    ->Args({7, 1})
    ->Args({7, 0})
    ->Args({40, 1})
    ->Args({40, 0})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

static void BM_SILogForwardBackward(benchmark::State& state) {
  if (!cuda::available()) return state.SkipWithError("no CUDA device");
  Generator g(3);
  Tensor pred = uniform({kN, 1, kH, kW}, 0.5, 8.0, g).cuda(), target = uniform({kN, 1, kH, kW}, 0.0, 8.0, g).cuda();
  pred.set_requires_grad(true);
  ops::SILogOptions o;
  o.sqrt_scaled = state.range(0) != 0;
  bench::run_cuda(state, 20 * kP, [&] {
    pred.zero_grad();
    ops::silog_loss(pred, target, o).loss.backward();
  });
}
BENCHMARK(BM_SILogForwardBackward)->Arg(0)->Arg(1)->UseManualTime()->Unit(benchmark::kMicrosecond);

static void BM_ConfusionFromLogits(benchmark::State& state) {
  if (!cuda::available()) return state.SkipWithError("no CUDA device");
  const int64_t c = state.range(0);
  Generator g(4);
  Tensor x = normal({kN, c, kH, kW}, 0, 1, g).cuda(), y = labels(kN, kH, kW, c, g).cuda();
  ops::ConfusionMatrix cm(c, Device::cuda(), {255, false});
  bench::run_cuda(state, 4 * c * kP + 4 * kP, [&] { cm.update(x, y); });
}
BENCHMARK(BM_ConfusionFromLogits)->Arg(7)->Arg(40)->UseManualTime()->Unit(benchmark::kMicrosecond);

// Mostly correct predictions (every 16th pixel wrong): the common case, where neighbouring
// pixels share a histogram bin.
static void BM_ConfusionFromLabels(benchmark::State& state) {
  if (!cuda::available()) return state.SkipWithError("no CUDA device");
  const int64_t c = state.range(0);
  Generator g(5);
  Tensor y = labels(kN, kH, kW, c, g);
  Tensor p = y.clone();
  int32_t* pp = p.data<int32_t>();
  for (int64_t i = 0; i < kP; i += 16) pp[i] = static_cast<int32_t>((pp[i] + 1) % c);
  Tensor gy = y.cuda(), gp = p.cuda();
  ops::ConfusionMatrix cm(c, Device::cuda(), {255, false});
  bench::run_cuda(state, 8 * kP, [&] { cm.update(gp, gy); });
}
BENCHMARK(BM_ConfusionFromLabels)->Arg(7)->Arg(40)->UseManualTime()->Unit(benchmark::kMicrosecond);

static void BM_DepthMetrics(benchmark::State& state) {
  if (!cuda::available()) return state.SkipWithError("no CUDA device");
  Generator g(6);
  Tensor pred = uniform({kN, 1, kH, kW}, 0.5, 8.0, g).cuda(), target = uniform({kN, 1, kH, kW}, 0.0, 8.0, g).cuda();
  ops::DepthMetricAccumulator acc(Device::cuda());
  bench::run_cuda(state, 8 * kP, [&] { acc.update(pred, target); });
}
BENCHMARK(BM_DepthMetrics)->UseManualTime()->Unit(benchmark::kMicrosecond);

// A small CPU case (batch 2, 7 classes, 60x80), so the binary measures something without a GPU.
static void BM_CrossEntropyForwardBackwardCpu(benchmark::State& state) {
  const int64_t n = 2, c = 7, h = 60, w = 80, p = n * h * w;
  Generator g(7);
  Tensor x = normal({n, c, h, w}, 0, 1, g), y = labels(n, h, w, c, g);
  x.set_requires_grad(true);
  for (auto _ : state) {
    x.zero_grad();
    ops::cross_entropy(x, y).loss.backward();
    benchmark::DoNotOptimize(x.grad().data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * (12 * c * p + 8 * p));
}
BENCHMARK(BM_CrossEntropyForwardBackwardCpu)->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
