// bfloat16 mixed precision: on the CPU every op computes in float32 from its bfloat16 inputs and
// rounds once where the CUDA kernels store bfloat16 (so a CPU run is the GPU run's arithmetic); the
// layers keep float32 parameters and statistics; the whole network in bfloat16 stays close to
// float32; and every hand-written kernel's bfloat16 variant matches the CPU (through the CPU
// execution layer in CI).
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "models/esanet.h"
#include "ops/ops.h"
#include "tests/support/compare.h"
#include "tests/support/gpu.h"
#include "tests/support/parity.h"
#include "tests/support/random.h"

using namespace mtl;
using mtl::test::randn;

namespace {

using Op = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;

struct NamedOp {
  std::string name;
  Op run;
  std::vector<Tensor> inputs;    // float32 values; the activations become bfloat16 leaves
  std::vector<bool> activation;  // per input: bfloat16 (true) or a float32 parameter (false)
};

Tensor bf16_leaf(const Tensor& x) { return test::leaf(ops::to(x, DType::bf16)); }

// Every hand-written kernel family that mixed precision runs on activations, at odd sizes.
std::vector<NamedOp> activation_ops() {
  const Shape s{2, 3, 7, 9};
  Tensor running_mean = ops::mul_scalar(randn({3}), 0.1), running_var = test::rand({3}, 0.5, 2.0);
  auto unary = [](Tensor (*f)(const Tensor&)) { return Op([f](auto& in) { return std::vector<Tensor>{f(in[0])}; }); };
  auto positive = ops::add_scalar(ops::abs(randn(s)), 0.5);
  return {
      {"add with broadcast",
       [](auto& in) { return std::vector<Tensor>{ops::add(in[0], in[1])}; },
       {randn(s), randn({1, 3, 1, 9})},
       {true, true}},
      {"mul", [](auto& in) { return std::vector<Tensor>{ops::mul(in[0], in[1])}; }, {randn(s), randn(s)}, {true, true}},
      {"sub", [](auto& in) { return std::vector<Tensor>{ops::sub(in[0], in[1])}; }, {randn(s), randn(s)}, {true, true}},
      {"div", [](auto& in) { return std::vector<Tensor>{ops::div(in[0], in[1])}; }, {randn(s), positive}, {true, true}},
      {"relu", unary(ops::relu), {randn(s)}, {true}},
      {"sigmoid", unary(ops::sigmoid), {randn(s)}, {true}},
      {"tanh", unary(ops::tanh), {randn(s)}, {true}},
      {"exp", unary(ops::exp), {randn(s)}, {true}},
      {"log", unary(ops::log), {positive}, {true}},
      {"sqrt", unary(ops::sqrt), {positive}, {true}},
      {"square", unary(ops::square), {randn(s)}, {true}},
      {"abs", unary(ops::abs), {randn(s)}, {true}},
      {"affine", [](auto& in) { return std::vector<Tensor>{ops::affine(in[0], 1.7, -0.3)}; }, {randn(s)}, {true}},
      {"pow", [](auto& in) { return std::vector<Tensor>{ops::pow(in[0], 1.5)}; }, {positive}, {true}},
      {"clamp", [](auto& in) { return std::vector<Tensor>{ops::clamp(in[0], -0.5, 0.7)}; }, {randn(s)}, {true}},
      {"sum over H and W",
       [](auto& in) {
         return std::vector<Tensor>{ops::sum(in[0], {2, 3})};
       },
       {randn(s)},
       {true}},
      {"max_pool2d 3x3 stride 2",
       [](auto& in) {
         return std::vector<Tensor>{ops::max_pool2d(in[0], {3, 3}, {2, 2}, {1, 1})};
       },
       {randn(s)},
       {true}},
      {"avg_pool2d 2x2",
       [](auto& in) {
         return std::vector<Tensor>{ops::avg_pool2d(in[0], {2, 2}, {2, 2})};
       },
       {randn(s)},
       {true}},
      {"adaptive_avg_pool2d to 3x2",
       [](auto& in) { return std::vector<Tensor>{ops::adaptive_avg_pool2d(in[0], 3, 2)}; },
       {randn(s)},
       {true}},
      {"interpolate_nearest",
       [](auto& in) { return std::vector<Tensor>{ops::interpolate_nearest(in[0], 14, 18)}; },
       {randn(s)},
       {true}},
      {"interpolate_bilinear",
       [](auto& in) { return std::vector<Tensor>{ops::interpolate_bilinear(in[0], 11, 20)}; },
       {randn(s)},
       {true}},
      {"channel_scale",
       [](auto& in) { return std::vector<Tensor>{ops::channel_scale(in[0], in[1])}; },
       {randn(s), randn({2, 3})},
       {true, true}},
      {"batch_norm2d, training, float32 affine",
       [](auto& in) {
         return std::vector<Tensor>{ops::batch_norm2d(in[0], in[1], in[2], Tensor(), Tensor(), true, 0.1, 1e-5)};
       },
       {randn(s), randn({3}), randn({3})},
       {true, false, false}},
      {"batch_norm2d, eval, float32 statistics",
       [running_mean, running_var](auto& in) {
         const Device d = in[0].device();
         return std::vector<Tensor>{
             ops::batch_norm2d(in[0], in[1], in[2], running_mean.to(d), running_var.to(d), false, 0.1, 1e-5)};
       },
       {randn(s), randn({3}), randn({3})},
       {true, false, false}},
      {"group_norm, float32 affine",
       [](auto& in) { return std::vector<Tensor>{ops::group_norm(in[0], 3, in[1], in[2])}; },
       {randn({2, 6, 5, 7}), randn({6}), randn({6})},
       {true, false, false}},
      {"matmul",
       [](auto& in) { return std::vector<Tensor>{ops::matmul(in[0], in[1])}; },
       {randn({13, 21}), randn({21, 10})},
       {true, true}},
      {"a tensor used twice (gradient accumulation)",
       [](auto& in) { return std::vector<Tensor>{ops::mul(in[0], in[0])}; },
       {randn(s)},
       {true}},
  };
}

std::vector<Tensor> inputs_of(const NamedOp& op, DType activations) {
  std::vector<Tensor> in;
  for (size_t i = 0; i < op.inputs.size(); ++i) {
    // The same values for both dtypes: the float32 inputs are the bfloat16 ones, exactly.
    Tensor v = ops::to(ops::to(op.inputs[i], DType::bf16), DType::f32);
    in.push_back(test::leaf(op.activation[i] ? ops::to(v, activations) : v));
  }
  return in;
}

}  // namespace

TEST_CASE("bf16 on the CPU: each op computes in float32 and rounds its output once, as the GPU stores it") {
  for (const NamedOp& op : activation_ops()) {
    INFO(op.name);
    std::vector<Tensor> b = inputs_of(op, DType::bf16), f = inputs_of(op, DType::f32);
    const Tensor out = op.run(b)[0], ref = op.run(f)[0];
    REQUIRE(out.dtype() == DType::bf16);
    // Bit for bit: the float32 result rounded to nearest even, so no bfloat16 intermediate.
    CHECK_BITWISE(ops::to(out, DType::f32), ops::to(ops::to(ref, DType::bf16), DType::f32));
    // The gradients flow back in bfloat16 to the activations and in float32 to the parameters,
    // close to float32's (each backward kernel rounds once; chains of them round more often).
    Tensor up = randn(out.shape());
    out.backward(ops::to(up, DType::bf16));
    ref.backward(ops::to(ops::to(up, DType::bf16), DType::f32));
    for (size_t i = 0; i < b.size(); ++i) {
      INFO("gradient of input ", i);
      REQUIRE(b[i].grad().defined());
      CHECK(b[i].grad().dtype() == (op.activation[i] ? DType::bf16 : DType::f32));
      CHECK_CLOSE(ops::to(b[i].grad(), DType::f32), f[i].grad(), 2e-2 * test::max_abs(f[i].grad()), 1e-2);
    }
  }
}

TEST_CASE("bf16 on the CPU: convolution in bfloat16 with a float32 bias") {
  Tensor x = randn({2, 5, 9, 11}), w = ops::mul_scalar(randn({4, 5, 3, 3}), 0.2), bias = randn({4});
  ops::Conv2dParams p;
  p.pad_h = p.pad_w = 1;
  p.stride_h = 2;
  Tensor xb = bf16_leaf(x), wb = bf16_leaf(w), bb = test::leaf(bias);
  Tensor xf = test::leaf(ops::to(xb, DType::f32)), wf = test::leaf(ops::to(wb, DType::f32)), bf = test::leaf(bias);
  Tensor out = ops::conv2d(xb, wb, bb, p), ref = ops::conv2d(xf, wf, bf, p);
  REQUIRE(out.dtype() == DType::bf16);
  // The convolution rounds once, then the bias is added in float32 and rounded again (cuDNN's
  // output, then the bias kernel): within two bfloat16 steps.
  CHECK_CLOSE(ops::to(out, DType::f32), ref, 1e-2 * test::max_abs(ref), 1e-2);
  ops::sum(ops::square(out)).backward();
  ops::sum(ops::square(ref)).backward();
  CHECK(bb.grad().dtype() == DType::f32);
  CHECK(wb.grad().dtype() == DType::bf16);
  CHECK_CLOSE(bb.grad(), bf.grad(), 2e-2 * test::max_abs(bf.grad()), 1e-2);
  CHECK_CLOSE(ops::to(wb.grad(), DType::f32), wf.grad(), 2e-2 * test::max_abs(wf.grad()), 2e-2);
  CHECK_CLOSE(ops::to(xb.grad(), DType::f32), xf.grad(), 2e-2 * test::max_abs(xf.grad()), 2e-2);
  // A bfloat16 bias is an error, not a silent rounding of the master weight.
  CHECK_THROWS_WITH_AS(ops::conv2d(xb, wb, ops::to(bias, DType::bf16), p), doctest::Contains("bias"), Error);
}

namespace {

struct Pass {
  models::ESANetOutput out;
  std::vector<double> grads;  // every parameter gradient, flattened in order
};

Pass forward_backward(models::ESANet& m, const Tensor& rgb, const Tensor& depth) {
  Pass p{m.forward(rgb, depth), {}};
  ops::sum(ops::add(ops::mean(ops::square(p.out.semantic)), ops::mean(p.out.depth))).backward();
  for (auto& [name, t] : m.named_parameters()) {
    INFO(name);
    CHECK(t.dtype() == DType::f32);
    if (!t.grad().defined()) continue;  // the side outputs are not in this loss
    CHECK(t.grad().dtype() == DType::f32);
    for (double g : t.grad().to_f64_vector()) p.grads.push_back(g);
  }
  return p;
}

// ||a - b|| / ||b|| over all gradients at once: the biases in front of a normalisation have a zero
// gradient in exact arithmetic, so each alone would compare rounding noise with rounding noise.
double relative_error(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double diff = 0, ref = 0;
  for (size_t i = 0; i < a.size(); ++i) diff += (a[i] - b[i]) * (a[i] - b[i]), ref += b[i] * b[i];
  return std::sqrt(diff / ref);
}

}  // namespace

TEST_CASE("bf16 ESANet: float32 master weights, float32 outputs, close to the float32 network") {
  for (nn::NormKind norm : {nn::NormKind::batchnorm, nn::NormKind::groupnorm}) {
    const bool bn = norm == nn::NormKind::batchnorm;
    INFO((bn ? "batchnorm" : "groupnorm"));
    models::ModelConfig c;
    c.encoder = models::Encoder::resnet18;
    c.width = 0.125;
    c.norm = norm;
    models::ESANet f32(c, {64, 96, 3}), f32_rounded_input(c, {64, 96, 3}), b16(c, {64, 96, 3});
    b16.set_compute_dtype(DType::bf16);
    CHECK_THROWS_WITH_AS(b16.set_compute_dtype(DType::f64), doctest::Contains("F32 or BF16"), Error);
    for (models::ESANet* m : {&f32, &f32_rounded_input, &b16}) m->train(false);
    Tensor rgb = randn({2, 3, 64, 96}), depth = randn({2, 1, 64, 96});
    auto rounded = [](const Tensor& t) { return ops::to(ops::to(t, DType::bf16), DType::f32); };
    const Pass a = forward_backward(f32, rgb, depth), b = forward_backward(b16, rgb, depth);
    const Pass r = forward_backward(f32_rounded_input, rounded(rgb), rounded(depth));
    REQUIRE(b.out.semantic.dtype() == DType::f32);
    REQUIRE(b.out.depth.dtype() == DType::f32);
    for (const Tensor& s : b.out.side) CHECK(s.dtype() == DType::f32);
    for (auto& [name, t] : b16.named_buffers()) {
      INFO(name);
      if (is_floating(t.dtype())) CHECK(t.dtype() == DType::f32);
    }
    const double logits = test::relative_error(b.out.semantic, a.out.semantic);
    const double depths = test::relative_error(b.out.depth, a.out.depth), grads = relative_error(b.grads, a.grads);
    // What float32 itself does when only its input is rounded to bfloat16: the network's own
    // sensitivity, against which bfloat16 throughout is measured.
    const double logits_r = test::relative_error(r.out.semantic, a.out.semantic);
    const double depths_r = test::relative_error(r.out.depth, a.out.depth), grads_r = relative_error(r.grads, a.grads);
    MESSAGE("relative error, bf16 vs f32 (f32 with the input rounded): logits ", logits, " (", logits_r, "), depth ",
            depths, " (", depths_r, "), gradients ", grads, " (", grads_r, ")");
    if (bn) {
      // BatchNorm in evaluation mode is well conditioned; measured: logits 5e-3, depth 1.2e-3,
      // gradients 7e-3 (the rounded input alone: 6e-4, 1.5e-4, 1e-3).
      CHECK(logits < 0.02);
      CHECK(depths < 0.01);
      CHECK(grads < 0.05);
    } else {
      // GroupNorm normalises with each image's own statistics in evaluation mode too, which an
      // initialised network amplifies: rounding only the input already moves float32's logits by
      // about 13 %, bfloat16 throughout by about 25 % (measured). It must stay within three times that.
      CHECK(logits < 3 * logits_r + 0.02);
      CHECK(depths < 3 * depths_r + 0.01);
      CHECK(grads < 3 * grads_r + 0.05);
    }
  }
}

TEST_SUITE("cuda") {
  TEST_CASE("cuda parity: the bfloat16 variant of every hand-written kernel") {
    MTL_REQUIRE_CUDA();
    for (const NamedOp& op : activation_ops()) {
      std::vector<Tensor> cpu = inputs_of(op, DType::bf16);
      // Both devices load the same bfloat16 values and compute in float; they differ only in
      // the order of float sums and in the last bit of transcendentals before the one rounding.
      test::check_parity({"bf16 " + op.name, test::copies_of(cpu), op.run, {{0, 8e-3, 1e-2}}, {{0, 1.6e-2, 2e-2}}});
    }
  }

  TEST_CASE("cuda parity: bfloat16 convolution with a float32 bias (cuDNN)") {
    MTL_REQUIRE_CUDA();  // cuDNN, emulated on the CPU execution layer
    ops::Conv2dParams p;
    p.pad_h = p.pad_w = 1;
    auto conv = [p](const std::vector<Tensor>& in) { return std::vector<Tensor>{ops::conv2d(in[0], in[1], in[2], p)}; };
    Tensor x = bf16_leaf(randn({2, 5, 9, 11})), w = bf16_leaf(ops::mul_scalar(randn({4, 5, 3, 3}), 0.2));
    test::check_parity({"bf16 conv2d",
                        test::copies_of({x, w, test::leaf(randn({4}))}),
                        conv,
                        {{0, 8e-3, 1e-2}},
                        {{0, 1.6e-2, 2e-2}},
                        {},
                        false,
                        false});
  }
}
