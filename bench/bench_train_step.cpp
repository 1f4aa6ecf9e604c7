// Whole training steps and inference of the multi-task ESANet, in images per second:
// forward, both losses, backward and AdamW, with the split between the phases and peak device
// memory. CUDA cases (R34-NBt1D at 640x480, batch 8, as in the paper, and the demo network) are
// timed with device events after warm-up and skipped without a GPU; the CPU case runs the demo
// configuration. bench/reference/esanet_torch.py times the same network and step in PyTorch.
#include <benchmark/benchmark.h>

#include <chrono>

#include "core/allocator.h"
#include "core/autograd.h"
#include "core/cuda_check.h"
#include "core/cuda_context.h"
#include "core/generator.h"
#include "kernels/threads.h"
#include "models/esanet.h"
#include "ops/ops.h"
#include "train/optim/adamw.h"
#include "train/objective/balancer.h"

using namespace mtl;

namespace {

struct Setup {
  models::ModelConfig cfg;
  models::BuildOptions build;
  int64_t batch;
};

Setup paper_r34() {
  Setup s;
  s.cfg.encoder = models::Encoder::resnet34, s.cfg.block = models::Block::nbt1d, s.cfg.num_classes = 7;
  s.build.input_height = 480, s.build.input_width = 640;
  s.batch = 8;
  return s;
}

Setup demo() {
  Setup s;
  s.cfg.encoder = models::Encoder::resnet18, s.cfg.block = models::Block::nbt1d, s.cfg.width = 0.25;
  s.cfg.depth_head = models::DepthHead::light;
  s.build.input_height = 128, s.build.input_width = 160;
  s.batch = 8;
  return s;
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
  for (auto _ : state) {
    double tf = 0, tb = 0, to = 0;
    once(&tf, &tb, &to);
    state.SetIterationTime(tf + tb + to);
    f += tf, b += tb, o += to;
  }
  const double n = static_cast<double>(state.iterations());
  state.counters["images/s"] = benchmark::Counter(static_cast<double>(s.batch) * n / (f + b + o));
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

static void BM_TrainStep_CUDA_R34_640x480_b8(benchmark::State& s) { run_train_step(s, paper_r34(), Device::cuda()); }
static void BM_TrainStep_CUDA_Demo(benchmark::State& s) { run_train_step(s, demo(), Device::cuda()); }
static void BM_TrainStep_CPU_Demo(benchmark::State& s) {
  kernels::set_cpu_threads(0);
  run_train_step(s, demo(), Device::cpu());
}
static void BM_Infer_CUDA_R34_640x480(benchmark::State& s) { run_inference(s, paper_r34(), s.range(0), Device::cuda()); }
static void BM_Infer_CPU_Demo(benchmark::State& s) { run_inference(s, demo(), s.range(0), Device::cpu()); }

BENCHMARK(BM_TrainStep_CUDA_R34_640x480_b8)->UseManualTime()->Unit(benchmark::kMillisecond)->MinTime(3.0);
BENCHMARK(BM_TrainStep_CUDA_Demo)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_TrainStep_CPU_Demo)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(5);
BENCHMARK(BM_Infer_CUDA_R34_640x480)->Arg(1)->Arg(8)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Infer_CPU_Demo)->Arg(1)->Arg(8)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(5);

BENCHMARK_MAIN();
