// Convolutions at ESANet's shapes: forward, backward to the input and backward to the weight.
// CUDA cases run cuDNN through the kernel layer (the algorithm found once per shape and cached, as
// in training), in float32 math and with TF32, timed with CUDA events; CPU cases run the im2col +
// OpenBLAS path at the demo network's shapes. Each reports FLOP/s (2 multiply-adds per weight tap
// per output pixel) beside the device's limit: an H100/H200 SXM does ~67 TFLOP/s in float32 FMA
// and ~495 TFLOP/s dense TF32. bench/reference/conv_torch.py times the same shapes through PyTorch.
#include <string>

#include "bench/bench_util.h"
#include "core/generator.h"
#include "core/tensor.h"
#include "kernels/conv.h"
#include "ops/conv.h"

using namespace mtl;

namespace {

// A benchmark argument list {batch, c_in, h, w, c_out, kh, kw, stride, groups} as a geometry
// (padding k / 2, as ESANet pads).
struct ConvCase {
  kernels::ConvGeometry g;
  std::string name;
};

ConvCase shape_of(const benchmark::State& s) {
  kernels::ConvGeometry g;
  g.n = s.range(0), g.c_in = s.range(1), g.h = s.range(2), g.w = s.range(3), g.c_out = s.range(4);
  g.kh = s.range(5), g.kw = s.range(6);
  g.stride_h = g.stride_w = s.range(7);
  g.pad_h = g.kh / 2, g.pad_w = g.kw / 2;
  g.groups = s.range(8);
  g.out_h = ops::conv2d_output_size(g.h, g.kh, g.stride_h, g.pad_h, 1);
  g.out_w = ops::conv2d_output_size(g.w, g.kw, g.stride_w, g.pad_w, 1);
  const std::string name = std::to_string(g.n) + "x" + std::to_string(g.c_in) + "x" + std::to_string(g.h) + "x" +
                           std::to_string(g.w) + " -> " + std::to_string(g.c_out) + " k" + std::to_string(g.kh) + "x" +
                           std::to_string(g.kw) + " s" + std::to_string(g.stride_h) +
                           (g.groups > 1 ? " g" + std::to_string(g.groups) : "");
  return {g, name};
}

double flops(const kernels::ConvGeometry& g) {
  return 2.0 * static_cast<double>(g.n * g.c_out * g.out_h * g.out_w) *
         static_cast<double>(g.c_in / g.groups * g.kh * g.kw);
}

struct Buffers {
  Tensor x, w, y, gx, gw;
  Buffers(const kernels::ConvGeometry& g, Device d) {
    Generator gen(3);
    const Options o(DType::f32, d);
    x = normal({g.n, g.c_in, g.h, g.w}, 0, 1, gen, o);
    w = normal({g.c_out, g.c_in / g.groups, g.kh, g.kw}, 0, 0.1, gen, o);
    y = normal({g.n, g.c_out, g.out_h, g.out_w}, 0, 1, gen, o);  // the output, and dy for the backward passes
    gx = empty(x.shape(), o);
    gw = empty(w.shape(), o);
  }
};

enum class Pass { forward, input, weight };

void run_cuda_conv(benchmark::State& state, Pass pass, bool tf32) {
  if (!cuda::available()) return state.SkipWithError("no CUDA device");
  const ConvCase s = shape_of(state);
  Buffers b(s.g, Device::cuda());
  const kernels::cuda::ConvPolicy p{false, tf32};
  cudnnHandle_t h = cuda::cudnn();
  bench::run_cuda(state, 0, [&] {
    switch (pass) {
      case Pass::forward:
        return kernels::cuda::conv2d_forward(h, s.g, p, b.x.data<float>(), b.w.data<float>(), b.y.data<float>());
      case Pass::input:
        return kernels::cuda::conv2d_backward_input(h, s.g, p, b.y.data<float>(), b.w.data<float>(),
                                                    b.gx.data<float>());
      case Pass::weight:
        return kernels::cuda::conv2d_backward_weight(h, s.g, p, b.y.data<float>(), b.x.data<float>(),
                                                     b.gw.data<float>());
    }
  });
  state.counters["FLOP/s"] = benchmark::Counter(flops(s.g), benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(s.name + (tf32 ? " tf32" : " fp32"));
}

void run_cpu_conv(benchmark::State& state, Pass pass) {
  const ConvCase s = shape_of(state);
  Buffers b(s.g, Device::cpu());
  for (auto _ : state) {
    switch (pass) {
      case Pass::forward:
        kernels::cpu::conv2d_forward<float>(s.g, b.x.data<float>(), b.w.data<float>(), nullptr, b.y.data<float>());
        break;
      case Pass::input:
        kernels::cpu::conv2d_backward_input<float>(s.g, b.y.data<float>(), b.w.data<float>(), b.gx.data<float>());
        break;
      case Pass::weight:
        kernels::cpu::conv2d_backward_weight<float>(s.g, b.y.data<float>(), b.x.data<float>(), b.gw.data<float>());
        break;
    }
    benchmark::ClobberMemory();
  }
  state.counters["FLOP/s"] = benchmark::Counter(flops(s.g), benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(s.name);
}

// ESANet R34-NBt1D at 640x480, batch 8: the stem, a 3x1 of stage 1, a 3x3 of stage 4, the
// depthwise learned upsampling of the decoder.
void esanet_shapes(benchmark::internal::Benchmark* b) {
  b->Args({8, 3, 480, 640, 64, 7, 7, 2, 1})
      ->Args({8, 64, 120, 160, 64, 3, 1, 1, 1})
      ->Args({8, 512, 15, 20, 512, 3, 3, 1, 1})
      ->Args({8, 128, 120, 160, 128, 3, 3, 1, 128});
}

// The demo network (ResNet-18 NBt1D at width 0.25, 160x128, batch 8).
void demo_shapes(benchmark::internal::Benchmark* b) {
  b->Args({8, 3, 128, 160, 16, 7, 7, 2, 1})
      ->Args({8, 16, 32, 40, 16, 3, 1, 1, 1})
      ->Args({8, 128, 4, 5, 128, 3, 3, 1, 1});
}

void BM_ConvForwardCuda(benchmark::State& s) { run_cuda_conv(s, Pass::forward, false); }
void BM_ConvBackwardInputCuda(benchmark::State& s) { run_cuda_conv(s, Pass::input, false); }
void BM_ConvBackwardWeightCuda(benchmark::State& s) { run_cuda_conv(s, Pass::weight, false); }
void BM_ConvForwardCudaTf32(benchmark::State& s) { run_cuda_conv(s, Pass::forward, true); }
void BM_ConvForwardCpu(benchmark::State& s) { run_cpu_conv(s, Pass::forward); }
void BM_ConvBackwardInputCpu(benchmark::State& s) { run_cpu_conv(s, Pass::input); }
void BM_ConvBackwardWeightCpu(benchmark::State& s) { run_cpu_conv(s, Pass::weight); }

}  // namespace

BENCHMARK(BM_ConvForwardCuda)->Apply(esanet_shapes)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ConvBackwardInputCuda)->Apply(esanet_shapes)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ConvBackwardWeightCuda)->Apply(esanet_shapes)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ConvForwardCudaTf32)->Apply(esanet_shapes)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ConvForwardCpu)->Apply(demo_shapes)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ConvBackwardInputCpu)->Apply(demo_shapes)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ConvBackwardWeightCpu)->Apply(demo_shapes)->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
