// Whole training steps and inference of the multi-task ESANet, in images per second:
// forward, both losses, backward and AdamW, with the split between the phases and peak device
// memory. CUDA cases (R34-NBt1D at 640x480, batch 8, as in the paper, and the demo network) are
// timed with device events after warm-up and skipped without a GPU. CPU cases: the demo network
// as configs/demo.yaml has it (light depth head), the same network with the decoder depth head,
// and R34-NBt1D at full width, 320x256, batch 2; they run on MTL_BENCH_THREADS threads (default:
// every core) and report the median step as images/s. bench/reference/esanet_torch.py times the
// same network and step in PyTorch (--device cpu --threads N for the CPU cases).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <vector>

#include "apps/app_env.h"
#include "core/allocator.h"
#include "core/autograd.h"
#include "core/cuda_check.h"
#include "core/cuda_context.h"
#include "core/generator.h"
#include "kernels/threads.h"
#include "models/esanet.h"
#include "ops/ops.h"
#include "train/objective/balancer.h"
#include "train/optim/adamw.h"

using namespace mtl;

namespace {

struct Setup {
  models::ModelConfig cfg;
  models::BuildOptions build;
  int64_t batch;
};

// R34-NBt1D at full width: 640x480, batch 8 as in the paper, or the CPU case's 320x256, batch 2.
Setup r34(int64_t height = 480, int64_t width = 640, int64_t batch = 8) {
  Setup s;
  s.cfg.encoder = models::Encoder::resnet34, s.cfg.block = models::Block::nbt1d, s.cfg.num_classes = 7;
  s.build.input_height = height, s.build.input_width = width;
  s.batch = batch;
  return s;
}

Setup demo(models::DepthHead head = models::DepthHead::light) {
  Setup s;
  s.cfg.encoder = models::Encoder::resnet18, s.cfg.block = models::Block::nbt1d, s.cfg.width = 0.25;
  s.cfg.depth_head = head;
  s.build.input_height = 128, s.build.input_width = 160;
  s.batch = 8;
  return s;
}

// MTL_BENCH_THREADS, or 0 (every core) when unset.
int bench_threads() {
  const char* v = std::getenv("MTL_BENCH_THREADS");
  return v ? std::atoi(v) : 0;
}

struct Step {
  models::ESANet model;
  train::UncertaintyBalancer balancer{{"semantic", "depth"}};
  std::unique_ptr<train::AdamW> opt;
  Tensor rgb, depth, labels, depth_target;
  std::vector<Tensor> side_labels;

  Step(const Setup& s, Device d) : model(s.cfg, s.build) {
    model.to(d);
    balancer.to(d);
    auto named = model.named_parameters();
    for (auto& [n, t] : balancer.named_parameters()) named.emplace_back("balancer." + n, t);
    opt = std::make_unique<train::AdamW>(train::make_param_groups(named, 0.01));
    Generator g(1);
    const int64_t b = s.batch, h = s.build.input_height, w = s.build.input_width;
    rgb = normal({b, 3, h, w}, 0, 1, g, Options(DType::f32, d));
    depth = normal({b, 1, h, w}, 0, 1, g, Options(DType::f32, d));
    labels = ops::to(ops::to(uniform({b, h, w}, 0, 6.99, g), DType::i32), d);
    depth_target = uniform({b, 1, h, w}, 0.05, 1, g, Options(DType::f32, d));
    for (int f : {8, 16, 32})
      side_labels.push_back(ops::to(ops::to(uniform({b, h / f, w / f}, 0, 6.99, g), DType::i32), d));
  }

  Tensor forward_loss() {
    auto out = model.forward(rgb, depth);
    ops::CrossEntropyOptions co;
    co.check_labels = false;
    Tensor sem = ops::cross_entropy(out.semantic, labels, co).loss;
    for (size_t i = 0; i < out.side.size(); ++i) sem = ops::add(sem, ops::cross_entropy(out.side[i], side_labels[i], co).loss);
    Tensor dep = ops::silog_loss(out.depth, depth_target, {}).loss;
    return balancer.combine({{"semantic", sem}, {"depth", dep}}).total;
  }
};

void run_train_step(benchmark::State& state, const Setup& s, Device d) {
  if (d.is_cuda() && !cuda::available()) return state.SkipWithError("no CUDA device");
  Step step(s, d);
  auto once = [&](double* t_fwd, double* t_bwd, double* t_opt) {
    auto t0 = std::chrono::steady_clock::now();
    Tensor loss = step.forward_loss();
    if (d.is_cuda()) cuda::synchronize();
    auto t1 = std::chrono::steady_clock::now();
    loss.backward();
    if (d.is_cuda()) cuda::synchronize();
    auto t2 = std::chrono::steady_clock::now();
    step.opt->step(1e-4);
    step.opt->zero_grad();
    if (d.is_cuda()) cuda::synchronize();
    auto t3 = std::chrono::steady_clock::now();
    *t_fwd += std::chrono::duration<double>(t1 - t0).count();
    *t_bwd += std::chrono::duration<double>(t2 - t1).count();
    *t_opt += std::chrono::duration<double>(t3 - t2).count();
  };
  double f = 0, b = 0, o = 0;
  for (int i = 0; i < 2; ++i) once(&f, &b, &o);  // warm-up: algorithm search, allocator
  if (d.is_cuda()) cuda::reset_peak();
  f = b = o = 0;
  std::vector<double> steps;
  for (auto _ : state) {
    double tf = 0, tb = 0, to = 0;
    once(&tf, &tb, &to);
    state.SetIterationTime(tf + tb + to);
    steps.push_back(tf + tb + to);
    f += tf, b += tb, o += to;
  }
  const double n = static_cast<double>(state.iterations());
  state.counters["images/s"] = benchmark::Counter(static_cast<double>(s.batch) * n / (f + b + o));
  // The median step, as bench/reference/esanet_torch.py --device cpu reports it: on a shared
  // machine one step slowed by another process moves the mean but not the median.
  std::nth_element(steps.begin(), steps.begin() + steps.size() / 2, steps.end());
  state.counters["median_img/s"] = static_cast<double>(s.batch) / steps[steps.size() / 2];
  state.counters["fwd_ms"] = f / n * 1e3;
  state.counters["bwd_ms"] = b / n * 1e3;
  state.counters["opt_ms"] = o / n * 1e3;
  if (d.is_cuda()) state.counters["peak_MiB"] = static_cast<double>(cuda::allocator_stats().peak_allocated) / (1 << 20);
}

void run_inference(benchmark::State& state, Setup s, int64_t batch, Device d) {
  if (d.is_cuda() && !cuda::available()) return state.SkipWithError("no CUDA device");
  s.batch = batch;
  Step step(s, d);
  step.model.eval();
  autograd::NoGradGuard ng;
  for (int i = 0; i < 3; ++i) step.model.forward(step.rgb, step.depth);
  if (d.is_cuda()) cuda::synchronize();
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    auto out = step.model.forward(step.rgb, step.depth);
    if (d.is_cuda()) cuda::synchronize();
    state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  state.counters["images/s"] = benchmark::Counter(static_cast<double>(batch) * state.iterations(), benchmark::Counter::kIsRate);
}

}  // namespace

static void BM_TrainStep_CUDA_R34_640x480_b8(benchmark::State& s) { run_train_step(s, r34(), Device::cuda()); }
static void BM_TrainStep_CUDA_Demo(benchmark::State& s) { run_train_step(s, demo(), Device::cuda()); }
static void BM_TrainStep_CPU_Demo(benchmark::State& s) {
  kernels::set_cpu_threads(bench_threads());
  run_train_step(s, demo(), Device::cpu());
}
static void BM_TrainStep_CPU_Demo_DecoderDepth(benchmark::State& s) {
  kernels::set_cpu_threads(bench_threads());
  run_train_step(s, demo(models::DepthHead::decoder), Device::cpu());
}
static void BM_TrainStep_CPU_R34_320x256_b2(benchmark::State& s) {
  kernels::set_cpu_threads(bench_threads());
  run_train_step(s, r34(256, 320, 2), Device::cpu());
}
static void BM_Infer_CUDA_R34_640x480(benchmark::State& s) { run_inference(s, r34(), s.range(0), Device::cuda()); }
static void BM_Infer_CPU_Demo(benchmark::State& s) { run_inference(s, demo(), s.range(0), Device::cpu()); }

BENCHMARK(BM_TrainStep_CUDA_R34_640x480_b8)->UseManualTime()->Unit(benchmark::kMillisecond)->MinTime(3.0);
BENCHMARK(BM_TrainStep_CUDA_Demo)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_TrainStep_CPU_Demo)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(5);
BENCHMARK(BM_TrainStep_CPU_Demo_DecoderDepth)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(10);
BENCHMARK(BM_TrainStep_CPU_R34_320x256_b2)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(5);
BENCHMARK(BM_Infer_CUDA_R34_640x480)->Arg(1)->Arg(8)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Infer_CPU_Demo)->Arg(1)->Arg(8)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(5);

// The CPU cases run as mtl_train runs (apps/app_env.h): passive OpenMP waits, without which
// spinning barriers make a step several times slower whenever anything else shares the cores, and
// OpenBLAS's AVX kernels where its detection would fall back to SSE3.
int main(int argc, char** argv) {
  mtl::apps::use_tuned_runtime(argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
