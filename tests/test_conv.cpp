// conv2d: forward against a direct seven-loop convolution over host values on many geometries,
// float64 gradient checks, argument errors, and cuDNN-vs-CPU parity (forward and all gradients,
// with and without deterministic algorithms, FMA and TF32 math).
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/cuda_context.h"
#include "kernels/conv.h"
#include "ops/ops.h"
#include "tests/support/compare.h"
#include "tests/support/gpu.h"
#include "tests/support/gradcheck.h"
#include "tests/support/parity.h"
#include "tests/support/random.h"

using namespace mtl;
using ops::Conv2dParams;
using test::randn;
using test::randn_grad;

namespace {

// out[n, o, oh, ow] = b[o] + sum_{c, i, j} x[n, g*Cg + c, oh*sh - ph + i*dh, ow*sw - pw + j*dw] * w[o, c, i, j]
// with g = o / (O / G) and zero padding; plain loops in double.
Tensor reference_conv(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p) {
  const std::vector<double> vx = x.to_f64_vector(), vw = w.to_f64_vector();
  const std::vector<double> vb = b.defined() ? b.to_f64_vector() : std::vector<double>();
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t O = w.size(0), Cg = w.size(1), KH = w.size(2), KW = w.size(3);
  const int64_t Og = O / p.groups;
  const int64_t OH = (H + 2 * p.pad_h - p.dil_h * (KH - 1) - 1) / p.stride_h + 1;
  const int64_t OW = (W + 2 * p.pad_w - p.dil_w * (KW - 1) - 1) / p.stride_w + 1;
  std::vector<double> out(static_cast<size_t>(N * O * OH * OW));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double acc = vb.empty() ? 0.0 : vb[o];
          const int64_t g = o / Og;
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t i = 0; i < KH; ++i)
              for (int64_t j = 0; j < KW; ++j) {
                const int64_t ih = oh * p.stride_h - p.pad_h + i * p.dil_h;
                const int64_t iw = ow * p.stride_w - p.pad_w + j * p.dil_w;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                acc += vx[((n * C + g * Cg + c) * H + ih) * W + iw] * vw[((o * Cg + c) * KH + i) * KW + j];
              }
          out[((n * O + o) * OH + oh) * OW + ow] = acc;
        }
  return from_vector(out, {N, O, OH, OW}, DType::f64);
}

struct Case {
  const char* name;
  Shape x, w;
  Conv2dParams p;
  bool bias;
};

Conv2dParams params(int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh = 1, int64_t dw = 1, int64_t g = 1) {
  return {sh, sw, ph, pw, dh, dw, g};
}

const std::vector<Case>& forward_cases() {
  static const std::vector<Case> cases = {
      {"7x7 stride 2 pad 3", {2, 3, 17, 19}, {5, 3, 7, 7}, Conv2dParams::square(2, 3), true},
      {"3x3 pad 1", {2, 4, 9, 11}, {6, 4, 3, 3}, Conv2dParams::square(1, 1), false},
      {"3x1 stride (2,1)", {2, 4, 9, 7}, {6, 4, 3, 1}, params(2, 1, 1, 0), true},
      {"1x3 stride (1,2)", {1, 4, 7, 10}, {3, 4, 1, 3}, params(1, 2, 0, 1), false},
      {"3x3 dilation 2", {2, 3, 11, 9}, {4, 3, 3, 3}, Conv2dParams::square(1, 2, 2), true},
      {"3x1 dilation (2,1) as in NonBottleneck1D", {1, 5, 13, 7}, {5, 5, 3, 1}, params(1, 1, 2, 0, 2, 1), true},
      {"groups 2", {2, 6, 8, 7}, {4, 3, 3, 3}, Conv2dParams::square(1, 1, 1, 2), true},
      {"depthwise 3x3", {2, 5, 9, 8}, {5, 1, 3, 3}, Conv2dParams::square(1, 1, 1, 5), false},
      {"depthwise stride 2 multiplier 2", {2, 3, 11, 10}, {6, 1, 3, 3}, Conv2dParams::square(2, 1, 1, 3), true},
      {"1x1", {3, 8, 5, 6}, {4, 8, 1, 1}, Conv2dParams{}, true},
      {"1x1 stride 2", {2, 4, 7, 7}, {3, 4, 1, 1}, Conv2dParams::square(2, 0), false},
      {"3x2 odd everything", {1, 3, 13, 11}, {2, 3, 3, 2}, params(2, 3, 1, 2, 2, 1), true},
      {"kernel as large as the padded input", {1, 2, 4, 5}, {3, 2, 6, 7}, params(1, 1, 1, 1), true},
      // Large enough that each GEMM is threaded by OpenBLAS instead of running samples in parallel.
      {"3x3 large GEMM", {2, 16, 20, 22}, {32, 16, 3, 3}, Conv2dParams::square(1, 1), true},
      {"1x1 large GEMM", {2, 64, 20, 22}, {48, 64, 1, 1}, Conv2dParams{}, false},
  };
  return cases;
}

// sum(conv2d(x, w, b) * r) for a fixed random r: its gradient is a random projection of the
// backward, which exercises every output element.
Tensor projected(const Tensor& y, const Tensor& r) { return ops::sum(ops::mul(y, r)); }

// Restores the CUDA math switches a test changes, also when a check throws.
struct CudaModeGuard {
  bool tf32 = cuda::allow_tf32(), det = cuda::deterministic();
  ~CudaModeGuard() {
    cuda::set_allow_tf32(tf32);
    cuda::set_deterministic(det);
  }
};

}  // namespace

TEST_CASE("conv2d matches a direct convolution on many geometries") {
  for (const Case& c : forward_cases()) {
    INFO(c.name);
    for (DType t : {DType::f64, DType::f32}) {
      Tensor x = randn(c.x, t), w = randn(c.w, t);
      Tensor b = c.bias ? randn({c.w[0]}, t) : Tensor();
      Tensor y = ops::conv2d(x, w, b, c.p);
      Tensor ref = reference_conv(x, w, b, c.p);
      CHECK(y.shape() == ref.shape());
      const double tol = t == DType::f64 ? 1e-11 : 2e-5;
      CHECK_CLOSE(y, ref, tol, tol);
    }
  }
}

TEST_CASE("conv2d output size follows PyTorch's formula") {
  CHECK(ops::conv2d_output_size(480, 7, 2, 3, 1) == 240);
  CHECK(ops::conv2d_output_size(15, 3, 2, 1, 1) == 8);
  CHECK(ops::conv2d_output_size(10, 3, 1, 2, 2) == 10);
  CHECK(ops::conv2d_output_size(4, 7, 1, 1, 1) == 0);  // floor, not truncation, of a negative span
  Tensor y = ops::conv2d(randn({1, 2, 15, 16}), randn({3, 2, 3, 3}), Tensor(), Conv2dParams::square(2, 1));
  CHECK(y.shape() == Shape{1, 3, 8, 8});
}

TEST_CASE("conv2d reads non-contiguous inputs") {
  Tensor x = randn({2, 9, 8, 3}).permute({0, 3, 1, 2});  // [2, 3, 9, 8] as a strided view
  Tensor w = randn({4, 3, 3, 3});
  CHECK_FALSE(x.is_contiguous());
  CHECK_CLOSE(ops::conv2d(x, w, Tensor(), Conv2dParams::square(1, 1)),
              reference_conv(x, w, Tensor(), Conv2dParams::square(1, 1)), 2e-5, 2e-5);
}

TEST_CASE("gradcheck: conv2d in x, weight and bias") {
  struct GradCase {
    const char* name;
    Shape x, w;
    Conv2dParams p;
  };
  const std::vector<GradCase> cases = {
      {"3x2 stride (2,1)", {2, 3, 7, 6}, {4, 3, 3, 2}, params(2, 1, 1, 0)},
      {"groups 2 dilation 2", {1, 4, 7, 7}, {4, 2, 3, 3}, Conv2dParams::square(1, 2, 2, 2)},
      {"depthwise stride 2", {2, 3, 7, 5}, {3, 1, 3, 3}, Conv2dParams::square(2, 1, 1, 3)},
      {"1x1", {2, 3, 4, 5}, {2, 3, 1, 1}, Conv2dParams{}},
      {"1x3 stride (1,2)", {1, 2, 5, 7}, {3, 2, 1, 3}, params(1, 2, 0, 1)},
      {"3x1 dilation (2,1)", {1, 2, 7, 3}, {2, 2, 3, 1}, params(1, 1, 2, 0, 2, 1)},
      {"7x7 stride 2 pad 3", {1, 2, 9, 9}, {2, 2, 7, 7}, Conv2dParams::square(2, 3)},
  };
  for (const GradCase& c : cases) {
    INFO(c.name);
    const Conv2dParams p = c.p;
    CHECK_GRADCHECK([p](auto& in) { return ops::conv2d(in[0], in[1], in[2], p); },
                    {randn_grad(c.x), randn_grad(c.w), randn_grad({c.w[0]})});
    // Without bias, and with only some inputs needing a gradient.
    Tensor frozen_w = randn(c.w, DType::f64);
    CHECK_GRADCHECK([p](auto& in) { return ops::conv2d(in[0], in[1], Tensor(), p); },
                    {randn_grad(c.x), frozen_w});
    Tensor frozen_x = randn(c.x, DType::f64);
    CHECK_GRADCHECK([p](auto& in) { return ops::conv2d(in[0], in[1], Tensor(), p); },
                    {frozen_x, randn_grad(c.w)});
  }
}

TEST_CASE("conv2d gradients on large GEMMs satisfy the adjoint identities") {
  // The large cases take the OpenBLAS-threaded path, which gradcheck's small shapes never reach
  // and which is too big for finite differences: check the backward as the adjoint of the
  // reference convolution instead.
  for (const Case& c : forward_cases()) {
    if (std::string(c.name).find("large") == std::string::npos) continue;
    INFO(c.name);
    Tensor x = randn_grad(c.x), w = randn_grad(c.w), b = randn_grad({c.w[0]});
    Tensor r = randn({c.x[0], c.w[0], ops::conv2d_output_size(c.x[2], c.w[2], c.p.stride_h, c.p.pad_h, c.p.dil_h),
                      ops::conv2d_output_size(c.x[3], c.w[3], c.p.stride_w, c.p.pad_w, c.p.dil_w)},
                     DType::f64);
    projected(ops::conv2d(x, w, b, c.p), r).backward();
    // Adjoint identities: <conv(dx), r> = <dx, grad_x> and <conv_w(dw), r> = <dw, grad_w>, checked
    // with the reference convolution (bias-free, linear in each operand).
    Tensor dx = randn(c.x, DType::f64), dw = randn(c.w, DType::f64);
    auto dot = [](const Tensor& a, const Tensor& b) {
      std::vector<double> va = a.to_f64_vector(), vb = b.to_f64_vector();
      double s = 0;
      for (size_t i = 0; i < va.size(); ++i) s += va[i] * vb[i];
      return s;
    };
    const double lhs_x = dot(reference_conv(dx, w.detach(), Tensor(), c.p), r), rhs_x = dot(dx, x.grad());
    const double lhs_w = dot(reference_conv(x.detach(), dw, Tensor(), c.p), r), rhs_w = dot(dw, w.grad());
    CHECK(std::abs(lhs_x - rhs_x) <= 1e-9 * (1 + std::abs(lhs_x)));
    CHECK(std::abs(lhs_w - rhs_w) <= 1e-9 * (1 + std::abs(lhs_w)));
    std::vector<double> vr = r.to_f64_vector(), gb = b.grad().to_f64_vector();
    const int64_t per_channel = r.size(2) * r.size(3);
    for (int64_t o = 0; o < c.w[0]; ++o) {
      double s = 0;
      for (int64_t n = 0; n < r.size(0); ++n)
        for (int64_t q = 0; q < per_channel; ++q) s += vr[(n * c.w[0] + o) * per_channel + q];
      CHECK(std::abs(gb[o] - s) <= 1e-9 * (1 + std::abs(s)));
    }
  }
}

TEST_CASE("conv2d CPU gradients are bitwise reproducible") {
  for (const Case& c : forward_cases()) {
    INFO(c.name);
    Tensor x = randn(c.x), w = randn(c.w);
    Tensor y0 = ops::conv2d(x, w, Tensor(), c.p);
    Tensor r = randn(y0.shape());
    Tensor grads[2][2];
    for (auto& run : grads) {
      Tensor xl = x.clone(), wl = w.clone();
      xl.set_requires_grad(true), wl.set_requires_grad(true);
      projected(ops::conv2d(xl, wl, Tensor(), c.p), r).backward();
      run[0] = xl.grad(), run[1] = wl.grad();
    }
    CHECK_CLOSE(grads[1][0], grads[0][0], 0, 0);
    CHECK_CLOSE(grads[1][1], grads[0][1], 0, 0);
  }
}

TEST_CASE("conv2d: errors name the tensors and what was expected") {
  CHECK_THROWS_WITH_AS(ops::conv2d(zeros({1, 5, 8, 8}), zeros({4, 2, 3, 3}), Tensor(), Conv2dParams::square(1, 1, 1, 2)),
                       doctest::Contains("input channels of x F32[1, 5, 8, 8] on cpu (5) are not divisible by groups = 2"),
                       Error);
  CHECK_THROWS_WITH_AS(ops::conv2d(zeros({1, 4, 8, 8}), zeros({3, 2, 3, 3}), Tensor(), Conv2dParams::square(1, 1, 1, 2)),
                       doctest::Contains("output channels of weight F32[3, 2, 3, 3] on cpu (3) are not divisible by groups = 2"),
                       Error);
  CHECK_THROWS_WITH_AS(ops::conv2d(zeros({1, 4, 8, 8}), zeros({4, 3, 3, 3})),
                       doctest::Contains("weight F32[4, 3, 3, 3] on cpu expects 3 input channels (3 per group x 1 groups) "
                                         "but x F32[1, 4, 8, 8] on cpu has 4"),
                       Error);
  CHECK_THROWS_WITH_AS(ops::conv2d(zeros({1, 3, 4, 4}), zeros({2, 3, 7, 7})),
                       doctest::Contains("is smaller than the dilated kernel 7x7"), Error);
  CHECK_THROWS_WITH_AS(ops::conv2d(zeros({1, 3, 9, 9}), zeros({2, 3, 3, 3}), Tensor(), Conv2dParams::square(1, 0, 5)),
                       doctest::Contains("smaller than the dilated kernel 11x11"), Error);
  CHECK_THROWS_WITH_AS(ops::conv2d(zeros({1, 3, 8, 8}), zeros({2, 3, 3, 3}), zeros({3})),
                       doctest::Contains("bias F32[3] on cpu must have shape [2]"), Error);
  CHECK_THROWS_WITH_AS(ops::conv2d(zeros({3, 8, 8}), zeros({2, 3, 3, 3})),
                       doctest::Contains("input x must be 4-D [N, C, H, W], got F32[3, 8, 8] on cpu"), Error);
  CHECK_THROWS_WITH_AS(ops::conv2d(zeros({1, 3, 8, 8}), zeros({2, 3, 3})),
                       doctest::Contains("weight must be 4-D"), Error);
  CHECK_THROWS_WITH_AS(ops::conv2d(zeros({1, 3, 8, 8}), zeros({2, 3, 3, 3}), Tensor(), params(0, 1, 0, 0)),
                       doctest::Contains("stride must be at least 1, got (0, 1)"), Error);
  CHECK_THROWS_WITH_AS(ops::conv2d(zeros({1, 3, 8, 8}), zeros({2, 3, 3, 3}), Tensor(), params(1, 1, -1, 0)),
                       doctest::Contains("padding must be non-negative"), Error);
  CHECK_THROWS_WITH_AS(ops::conv2d(zeros({1, 3, 8, 8}), zeros({2, 3, 3, 3}), Tensor(), params(1, 1, 0, 0, 0, 1)),
                       doctest::Contains("dilation must be at least 1"), Error);
  CHECK_THROWS_WITH_AS(ops::conv2d(zeros({1, 3, 8, 8}), zeros({2, 3, 3, 3}, DType::f64)),
                       doctest::Contains("tensors of different dtypes"), Error);
  CHECK_THROWS_WITH_AS(ops::conv2d(zeros({1, 3, 8, 8}), Tensor()),
                       doctest::Contains("argument 'weight' is an undefined tensor"), Error);
}

TEST_CASE("conv2d with an empty batch gives empty outputs and zero parameter gradients") {
  Tensor x = zeros({0, 3, 8, 8}, DType::f64), w = randn_grad({2, 3, 3, 3}), b = randn_grad({2});
  Tensor y = ops::conv2d(x, w, b, Conv2dParams::square(1, 1));
  CHECK(y.shape() == Shape{0, 2, 8, 8});
  ops::sum(y).backward();
  CHECK_CLOSE(w.grad(), zeros({2, 3, 3, 3}, DType::f64), 0, 0);
  CHECK_CLOSE(b.grad(), zeros({2}, DType::f64), 0, 0);
}

TEST_CASE("cuDNN algorithm choice: the first admissible candidate in cuDNN's order") {
  using kernels::cuda::ConvAlgoCandidate;
  using kernels::cuda::ConvPolicy;
  using kernels::cuda::pick_conv_algorithm;
  auto cand = [](int algo, cudnnDeterminism_t det, cudnnMathType_t math = CUDNN_FMA_MATH, size_t memory = 0,
                 cudnnStatus_t status = CUDNN_STATUS_SUCCESS) { return ConvAlgoCandidate{algo, status, det, math, memory}; };
  const cudnnDeterminism_t D = CUDNN_DETERMINISTIC, ND = CUDNN_NON_DETERMINISTIC;
  const size_t limit = size_t{1} << 20;
  const ConvPolicy det{true, false}, fast{false, false}, det_tf32{true, true};

  // Deterministic: the first deterministic one in the listed (heuristic) order, even when a later
  // one needs less workspace; otherwise the first listed (the fastest when timed).
  const std::vector<ConvAlgoCandidate> mixed = {cand(0, ND), cand(1, D, CUDNN_FMA_MATH, 4096), cand(2, D)};
  CHECK(pick_conv_algorithm(mixed, det, limit)->algo == 1);
  CHECK(pick_conv_algorithm(mixed, fast, limit)->algo == 0);

  // Failed candidates and those over the workspace limit are passed over; the limit itself fits.
  const std::vector<ConvAlgoCandidate> sized = {cand(3, D, CUDNN_FMA_MATH, 0, CUDNN_STATUS_NOT_SUPPORTED),
                                                cand(4, D, CUDNN_FMA_MATH, limit + 1),
                                                cand(5, D, CUDNN_FMA_MATH, limit)};
  CHECK(pick_conv_algorithm(sized, det, limit)->algo == 5);

  // Without TF32 the descriptor's FMA math decides, not cuDNN's label: a candidate labelled
  // default math is taken and runs under FMA math; one labelled tensor-op math is not taken.
  auto plain = pick_conv_algorithm({cand(6, D, CUDNN_DEFAULT_MATH)}, det, limit);
  REQUIRE(plain.has_value());
  CHECK(plain->algo == 6);
  CHECK(plain->math == CUDNN_FMA_MATH);
  const std::vector<ConvAlgoCandidate> tensor_op = {cand(7, D, CUDNN_TENSOR_OP_MATH), cand(8, D, CUDNN_FMA_MATH)};
  CHECK(pick_conv_algorithm(tensor_op, det, limit)->algo == 8);
  CHECK(pick_conv_algorithm(tensor_op, det, limit)->math == CUDNN_FMA_MATH);

  // With TF32 a candidate runs under its own label; one that may round float to half never runs.
  CHECK(pick_conv_algorithm(tensor_op, det_tf32, limit)->algo == 7);
  CHECK(pick_conv_algorithm(tensor_op, det_tf32, limit)->math == CUDNN_TENSOR_OP_MATH);
  auto converted = pick_conv_algorithm({cand(9, D, CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION), cand(10, D, CUDNN_DEFAULT_MATH)},
                                       det_tf32, limit);
  CHECK(converted->algo == 10);
  CHECK(converted->math == CUDNN_DEFAULT_MATH);

  // Nothing admissible: no choice (conv2d then throws naming the geometry).
  CHECK_FALSE(pick_conv_algorithm({cand(0, ND), cand(11, D, CUDNN_FMA_MATH, limit + 1)}, det, limit).has_value());
  CHECK_FALSE(pick_conv_algorithm({}, fast, limit).has_value());

  // The search itself runs under FMA math without TF32, tensor-op math with it.
  CHECK(kernels::cuda::conv_search_math(det) == CUDNN_FMA_MATH);
  CHECK(kernels::cuda::conv_search_math(det_tf32) == CUDNN_TENSOR_OP_MATH);
}

TEST_SUITE("cuda") {
  // Forward and all three gradients on the GPU against the CPU twin on the same float32 inputs.
  void check_conv_parity(const Case& c, double atol_y, double rtol_y, double atol_g, double rtol_g) {
    Tensor b = c.bias ? test::leaf(randn({c.w[0]})) : Tensor();
    test::check_parity(
        {c.name,
         test::copies_of({test::leaf(randn(c.x)), test::leaf(randn(c.w)), b}),
         [p = c.p](const std::vector<Tensor>& in) { return std::vector<Tensor>{ops::conv2d(in[0], in[1], in[2], p)}; },
         {{atol_y, rtol_y}},
         {{atol_g, rtol_g}},
         {},
         false,
         cuda::deterministic()});
  }

  // Runs `f` in float32 math (TF32 off), with timed and with deterministic algorithm choice.
  template <typename F>
  void in_float32_modes(F f) {
    CudaModeGuard mode;
    cuda::set_allow_tf32(false);
    for (bool det : {false, true}) {
      INFO("deterministic " << det);
      cuda::set_deterministic(det);
      f();
    }
  }

  TEST_CASE("cuda parity: conv2d forward and gradients in float32 math") {
    MTL_REQUIRE_CUDA();  // cuDNN, emulated on the CPU execution layer
    in_float32_modes([] {
      // Float32 on both sides; cuDNN may still pick FFT or Winograd algorithms, whose rounding
      // differs from a GEMM's by up to a few 1e-4 on these unit-scale sums.
      for (const Case& c : forward_cases()) check_conv_parity(c, 5e-4, 5e-4, 3e-3, 1e-3);
      // ESANet-like shapes: the 7x7/2 stem on an odd image, NonBottleneck1D's factorised pair, a
      // depthwise layer wide enough to use cuDNN's grouped kernels.
      check_conv_parity({"stem 7x7/2", {2, 3, 61, 83}, {16, 3, 7, 7}, Conv2dParams::square(2, 3), false}, 5e-4, 5e-4,
                        3e-3, 1e-3);
      check_conv_parity({"3x1 dilated", {2, 24, 31, 29}, {24, 24, 3, 1}, params(1, 1, 2, 0, 2, 1), true}, 5e-4, 5e-4,
                        3e-3, 1e-3);
      check_conv_parity({"1x3 dilated", {2, 24, 31, 29}, {24, 24, 1, 3}, params(1, 1, 0, 2, 1, 2), true}, 5e-4, 5e-4,
                        3e-3, 1e-3);
      check_conv_parity({"depthwise 3x3/2", {3, 32, 33, 35}, {32, 1, 3, 3}, Conv2dParams::square(2, 1, 1, 32), true},
                        5e-4, 5e-4, 3e-3, 1e-3);
    });
  }

  TEST_CASE("cuda parity: conv2d with TF32 tensor cores stays within TF32 error") {
    MTL_REQUIRE_GPU();  // cuDNN
    CudaModeGuard mode;
    cuda::set_allow_tf32(true);
    cuda::set_deterministic(false);
    // TF32 keeps 10 mantissa bits (relative rounding ~5e-4 per operand); sums of a few hundred
    // unit-scale products then differ from float32 by a few 1e-2 at most.
    for (const Case& c : forward_cases()) check_conv_parity(c, 5e-2, 1e-2, 2e-1, 1e-2);
  }

  // ESANet at 640x480, batch 8: the RGB stem and stage 4's 3x3 and NBt1D 3x1 convolutions. With
  // unit-normal inputs an output sums c_in*kh*kw products and a weight gradient n*out_h*out_w,
  // so the absolute tolerances grow with the square roots of those counts.
  const std::vector<Case>& real_cases() {
    static const std::vector<Case> cases = {
        {"stem 7x7/2", {8, 3, 480, 640}, {64, 3, 7, 7}, Conv2dParams::square(2, 3), false},
        {"stage 4 3x3", {8, 512, 15, 20}, {512, 512, 3, 3}, Conv2dParams::square(1, 1), false},
        {"stage 4 NBt1D 3x1", {8, 512, 15, 20}, {512, 512, 3, 1}, params(1, 1, 1, 0), true},
    };
    return cases;
  }
  struct RealTolerance {
    double y, grad;  // absolute; relative 1e-3 for both
  };
  RealTolerance real_tolerance(const Case& c) {
    const double y_terms = static_cast<double>(c.w[1] * c.w[2] * c.w[3]);
    const double gw_terms = static_cast<double>(
        c.x[0] * ops::conv2d_output_size(c.x[2], c.w[2], c.p.stride_h, c.p.pad_h, c.p.dil_h) *
        ops::conv2d_output_size(c.x[3], c.w[3], c.p.stride_w, c.p.pad_w, c.p.dil_w));
    return {1e-4 * std::sqrt(y_terms), 1e-4 * std::sqrt(gw_terms)};
  }

  TEST_CASE("cuda real shapes: conv2d forward and both backward passes at ESANet's stem and stage 4") {
    MTL_REQUIRE_GPU();
    in_float32_modes([] {
      for (const Case& c : real_cases())
        check_conv_parity(c, real_tolerance(c).y, 1e-3, real_tolerance(c).grad, 1e-3);
    });
  }

  TEST_CASE("cuda real shapes: conv2d on an input view at an odd offset") {
    MTL_REQUIRE_GPU();
    CudaModeGuard mode;
    cuda::set_allow_tf32(false);
    cuda::set_deterministic(false);
    const Case& c = real_cases()[1];
    Tensor x = randn(c.x), w = randn(c.w);
    Tensor r = randn(ops::conv2d(x, w, Tensor(), c.p).shape());
    // The same values 4 bytes into a device buffer: contiguous, but only 4-byte aligned.
    Tensor shifted = ops::cat({zeros({1}), x.view({-1})}, 0).cuda().narrow(0, 1, x.numel()).view(c.x);
    CHECK(shifted.is_contiguous());
    auto run = [&](const Tensor& xin) {
      Tensor xl = xin, wl = w.clone().to(xin.device());
      xl.set_requires_grad(true), wl.set_requires_grad(true);
      Tensor y = ops::conv2d(xl, wl, Tensor(), c.p);
      projected(y, r.to(xin.device())).backward();
      return std::vector<Tensor>{y, xl.grad(), wl.grad()};
    };
    std::vector<Tensor> cpu = run(x.clone());
    const int64_t before = kernels::cuda::conv_algorithm_cache_size();
    run(x.cuda());
    const int64_t aligned = kernels::cuda::conv_algorithm_cache_size();
    CHECK((aligned == before || aligned == before + 3));  // other tests may have run this shape
    std::vector<Tensor> gpu = run(shifted);
    // The forward and the weight gradient read the shifted x: new choices. The input gradient
    // reads only aligned buffers and reuses the aligned run's choice.
    CHECK(kernels::cuda::conv_algorithm_cache_size() == aligned + 2);
    const RealTolerance tol = real_tolerance(c);
    CHECK_CLOSE(gpu[0], cpu[0], tol.y, 1e-3);
    CHECK_CLOSE(gpu[1], cpu[1], tol.grad, 1e-3);
    CHECK_CLOSE(gpu[2], cpu[2], tol.grad, 1e-3);
  }

  TEST_CASE("cuda: deterministic conv2d gradients are bitwise reproducible") {
    MTL_REQUIRE_GPU();  // cuDNN
    CudaModeGuard mode;
    cuda::set_deterministic(true);
    for (const Case& c : forward_cases()) {
      INFO(c.name);
      Tensor x = randn(c.x).cuda(), w = randn(c.w).cuda(), b = randn({c.w[0]}).cuda();
      Tensor r = randn(ops::conv2d(x, w, b, c.p).shape()).cuda();
      std::vector<Tensor> first;
      for (int run = 0; run < 2; ++run) {
        Tensor xl = x.clone(), wl = w.clone(), bl = b.clone();
        xl.set_requires_grad(true), wl.set_requires_grad(true), bl.set_requires_grad(true);
        Tensor y = ops::conv2d(xl, wl, bl, c.p);
        projected(y, r).backward();
        std::vector<Tensor> now{y, xl.grad(), wl.grad(), bl.grad()};
        if (run == 0) {
          first = now;
        } else {
          for (size_t k = 0; k < now.size(); ++k) CHECK_CLOSE(now[k], first[k], 0, 0);
        }
      }
    }
  }

  TEST_CASE("cuda: conv2d searches algorithms once per shape, direction and policy") {
    MTL_REQUIRE_CUDA();  // mtl's cache, before cuDNN (emulated on the CPU execution layer)
    CudaModeGuard mode;
    cuda::set_deterministic(false);
    // A shape no other test uses, so its cache entries are new here.
    Tensor x = randn({1, 7, 23, 29}).cuda(), w = randn({5, 7, 3, 3}).cuda();
    x.set_requires_grad(true), w.set_requires_grad(true);
    const int64_t before = kernels::cuda::conv_algorithm_cache_size();
    ops::sum(ops::conv2d(x, w, Tensor(), Conv2dParams::square(1, 1))).backward();
    CHECK(kernels::cuda::conv_algorithm_cache_size() == before + 3);
    ops::sum(ops::conv2d(x, w, Tensor(), Conv2dParams::square(1, 1))).backward();
    CHECK(kernels::cuda::conv_algorithm_cache_size() == before + 3);
    cuda::set_deterministic(true);
    ops::conv2d(x.detach(), w.detach(), Tensor(), Conv2dParams::square(1, 1));
    CHECK(kernels::cuda::conv_algorithm_cache_size() == before + 4);
  }

  TEST_CASE("cuda: conv2d rejects float64 on the GPU") {
    MTL_REQUIRE_CUDA();
    CHECK_THROWS_WITH_AS(ops::conv2d(zeros({1, 3, 8, 8}, DType::f64).cuda(), zeros({2, 3, 3, 3}, DType::f64).cuda()),
                         doctest::Contains("conv2d on CUDA supports F32 and BF16 tensors"), Error);
  }
}
