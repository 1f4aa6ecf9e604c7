// batch_norm2d: forward and running-statistic updates against a naive per-channel reference,
// float64 gradient checks in training and evaluation mode, argument errors, and CUDA-vs-CPU
// parity (forward, running statistics, gradients, bitwise reproducibility).
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "core/cuda_context.h"
#include "ops/ops.h"
#include "tests/support/compare.h"
#include "tests/support/gpu.h"
#include "tests/support/gradcheck.h"
#include "tests/support/parity.h"
#include "tests/support/random.h"

using namespace mtl;
using test::randn;
using test::randn_grad;

namespace {

struct Reference {
  Tensor y;
  Tensor running_mean, running_var;  // after the call
};

// Per channel c over all (n, h, w): training normalises with the batch mean and biased variance
// and moves the running statistics towards the batch mean and unbiased variance; evaluation uses
// the running statistics as they are.
Reference reference_bn(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& rm, const Tensor& rv,
                       bool training, double momentum, double eps) {
  const std::vector<double> vx = x.to_f64_vector();
  std::vector<double> vrm = rm.to_f64_vector(), vrv = rv.to_f64_vector();
  const int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  const double m = static_cast<double>(N * HW);
  std::vector<double> y(vx.size());
  for (int64_t c = 0; c < C; ++c) {
    double mean = vrm[c], var = vrv[c];
    if (training) {
      double s = 0;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t p = 0; p < HW; ++p) s += vx[(n * C + c) * HW + p];
      mean = s / m;
      double sq = 0;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t p = 0; p < HW; ++p) sq += std::pow(vx[(n * C + c) * HW + p] - mean, 2);
      var = sq / m;
      vrm[c] = (1 - momentum) * vrm[c] + momentum * mean;
      vrv[c] = (1 - momentum) * vrv[c] + momentum * sq / (m - 1);
    }
    const double wc = w.defined() ? w.to_f64_vector()[c] : 1.0, bc = b.defined() ? b.to_f64_vector()[c] : 0.0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t p = 0; p < HW; ++p) {
        const int64_t i = (n * C + c) * HW + p;
        y[i] = (vx[i] - mean) / std::sqrt(var + eps) * wc + bc;
      }
  }
  return {from_vector(y, x.shape(), DType::f64), from_vector(vrm, {C}, DType::f64), from_vector(vrv, {C}, DType::f64)};
}

Tensor positive(const Shape& s, DType t = DType::f32) { return test::rand(s, 0.5, 2.0, t); }

// Restores the deterministic switch a test changes, also when a check throws.
struct DeterministicGuard {
  bool det = cuda::deterministic();
  ~DeterministicGuard() { cuda::set_deterministic(det); }
};

}  // namespace

TEST_CASE("batch_norm2d training normalises with batch statistics and updates running ones") {
  for (DType t : {DType::f64, DType::f32}) {
    for (double eps : {1e-5, 1e-3}) {
      Tensor x = ops::add_scalar(randn({3, 4, 5, 7}, t), 2.0);
      Tensor w = randn({4}, t), b = randn({4}, t);
      Tensor rm = randn({4}, t), rv = positive({4}, t);
      Reference ref = reference_bn(x, w, b, rm, rv, true, 0.1, eps);
      Tensor y = ops::batch_norm2d(x, w, b, rm, rv, true, 0.1, eps);
      const double tol = t == DType::f64 ? 1e-12 : 1e-5;
      CHECK_CLOSE(y, ref.y, tol, tol);
      CHECK_CLOSE(rm, ref.running_mean, tol, tol);
      CHECK_CLOSE(rv, ref.running_var, tol, tol);
    }
  }
}

TEST_CASE("batch_norm2d evaluation uses the running statistics and leaves them unchanged") {
  for (DType t : {DType::f64, DType::f32}) {
    Tensor x = randn({2, 3, 5, 3}, t), w = randn({3}, t), b = randn({3}, t);
    Tensor rm = randn({3}, t), rv = positive({3}, t);
    Tensor rm0 = rm.clone(), rv0 = rv.clone();
    Reference ref = reference_bn(x, w, b, rm, rv, false, 0.1, 1e-3);
    const double tol = t == DType::f64 ? 1e-12 : 1e-5;
    CHECK_CLOSE(ops::batch_norm2d(x, w, b, rm, rv, false, 0.1, 1e-3), ref.y, tol, tol);
    CHECK_CLOSE(rm, rm0, 0, 0);
    CHECK_CLOSE(rv, rv0, 0, 0);
  }
}

TEST_CASE("batch_norm2d without affine parameters or running statistics") {
  Tensor x = randn({4, 3, 2, 5}, DType::f64);
  Tensor rm = zeros({3}, DType::f64), rv = ones({3}, DType::f64);
  Reference ref = reference_bn(x, Tensor(), Tensor(), rm, rv, true, 0.3, 1e-5);
  CHECK_CLOSE(ops::batch_norm2d(x, Tensor(), Tensor(), Tensor(), Tensor(), true, 0.3, 1e-5), ref.y, 1e-12, 1e-12);
  CHECK_CLOSE(ops::batch_norm2d(x, Tensor(), Tensor(), rm, rv, true, 0.3, 1e-5), ref.y, 1e-12, 1e-12);
  CHECK_CLOSE(rm, ref.running_mean, 1e-12, 1e-12);
  CHECK_CLOSE(rv, ref.running_var, 1e-12, 1e-12);
}

TEST_CASE("batch_norm2d float32 variance is accurate for a large mean") {
  // Mean 1000, spread 1: E[x^2] - E[x]^2 in float32 would lose every significant digit.
  Tensor x = ops::add_scalar(randn({4, 2, 9, 11}), 1000.0);
  Tensor rm = zeros({2}), rv = ones({2});
  Reference ref = reference_bn(x, Tensor(), Tensor(), rm, rv, true, 0.5, 1e-5);
  CHECK_CLOSE(ops::batch_norm2d(x, Tensor(), Tensor(), rm, rv, true, 0.5, 1e-5), ref.y, 1e-3, 1e-4);
  CHECK_CLOSE(rv, ref.running_var, 1e-4, 1e-4);
}

TEST_CASE("gradcheck: batch_norm2d in training mode") {
  for (Shape s : {Shape{3, 4, 3, 5}, Shape{5, 2, 1, 1}, Shape{1, 3, 2, 3}}) {
    INFO(shape_str(s));
    const int64_t C = s[1];
    CHECK_GRADCHECK([](auto& in) { return ops::batch_norm2d(in[0], in[1], in[2], Tensor(), Tensor(), true, 0.1, 1e-3); },
                    {randn_grad(s), randn_grad({C}), randn_grad({C})});
    Tensor rm = zeros({C}, DType::f64), rv = ones({C}, DType::f64);
    CHECK_GRADCHECK([rm, rv](auto& in) { return ops::batch_norm2d(in[0], Tensor(), Tensor(), rm, rv, true, 0.1, 1e-5); },
                    {randn_grad(s)});
    // Parameters only: x needs no gradient.
    Tensor frozen = randn(s, DType::f64);
    CHECK_GRADCHECK([](auto& in) { return ops::batch_norm2d(in[0], in[1], in[2], Tensor(), Tensor(), true, 0.1, 1e-5); },
                    {frozen, randn_grad({C}), randn_grad({C})});
  }
}

TEST_CASE("gradcheck: batch_norm2d in evaluation mode") {
  Tensor rm = randn({4}, DType::f64), rv = positive({4}, DType::f64);
  CHECK_GRADCHECK([rm, rv](auto& in) { return ops::batch_norm2d(in[0], in[1], in[2], rm, rv, false, 0.1, 1e-3); },
                  {randn_grad({2, 4, 3, 5}), randn_grad({4}), randn_grad({4})});
  CHECK_GRADCHECK([rm, rv](auto& in) { return ops::batch_norm2d(in[0], Tensor(), Tensor(), rm, rv, false, 0.1, 1e-5); },
                  {randn_grad({3, 4, 1, 2})});
}

TEST_CASE("batch_norm2d evaluation backward uses the statistics of its forward") {
  // A training step between an evaluation forward and its backward moves the running statistics
  // in place; the backward must still use the values the forward normalised with.
  Tensor x = randn({2, 3, 4, 5}, DType::f64), w = randn_grad({3});
  Tensor rm = randn({3}, DType::f64), rv = positive({3}, DType::f64);
  Tensor r = randn({2, 3, 4, 5}, DType::f64);
  Reference before = reference_bn(x, Tensor(), Tensor(), rm, rv, false, 0.1, 1e-5);  // xhat
  Tensor y = ops::batch_norm2d(x, w, Tensor(), rm, rv, false, 0.1, 1e-5);
  ops::batch_norm2d(ops::add_scalar(randn({2, 3, 4, 5}, DType::f64), 5.0), Tensor(), Tensor(), rm, rv, true, 0.9,
                    1e-5);
  ops::sum(ops::mul(y, r)).backward();
  // d/dw sum(r * (xhat * w)) = sum over (n, h, w) of r * xhat
  std::vector<double> xhat = before.y.to_f64_vector(), vr = r.to_f64_vector(), gw(3, 0.0);
  for (size_t i = 0; i < xhat.size(); ++i) gw[(i / 20) % 3] += vr[i] * xhat[i];
  CHECK_CLOSE(w.grad(), from_vector(gw, {3}, DType::f64), 1e-12, 1e-12);
}

TEST_CASE("batch_norm2d CPU forward and gradients are bitwise reproducible") {
  Tensor x = randn({4, 6, 33, 35}), w = randn({6}), b = randn({6}), r = randn({4, 6, 33, 35});
  std::vector<Tensor> first;
  for (int run = 0; run < 2; ++run) {
    Tensor xl = x.clone(), wl = w.clone(), bl = b.clone(), rm = zeros({6}), rv = ones({6});
    xl.set_requires_grad(true), wl.set_requires_grad(true), bl.set_requires_grad(true);
    Tensor y = ops::batch_norm2d(xl, wl, bl, rm, rv, true, 0.1, 1e-5);
    ops::sum(ops::mul(y, r)).backward();
    std::vector<Tensor> now{y, rm, rv, xl.grad(), wl.grad(), bl.grad()};
    if (run == 0)
      first = now;
    else
      for (size_t k = 0; k < now.size(); ++k) CHECK_CLOSE(now[k], first[k], 0, 0);
  }
}

TEST_CASE("batch_norm2d: errors name the tensors and what was expected") {
  Tensor x = zeros({2, 4, 3, 3});
  Tensor rm = zeros({4}), rv = ones({4});
  CHECK_THROWS_WITH_AS(ops::batch_norm2d(x, zeros({3}), Tensor(), rm, rv, true, 0.1, 1e-5),
                       doctest::Contains("weight F32[3] on cpu must have shape [4] (the channels of x F32[2, 4, 3, 3] on cpu)"),
                       Error);
  CHECK_THROWS_WITH_AS(ops::batch_norm2d(x, Tensor(), zeros({4, 1}), rm, rv, true, 0.1, 1e-5),
                       doctest::Contains("bias F32[4, 1] on cpu must have shape [4]"), Error);
  CHECK_THROWS_WITH_AS(ops::batch_norm2d(x, Tensor(), Tensor(), zeros({5}), rv, true, 0.1, 1e-5),
                       doctest::Contains("running_mean F32[5] on cpu must have shape [4]"), Error);
  CHECK_THROWS_WITH_AS(ops::batch_norm2d(x, Tensor(), Tensor(), Tensor(), Tensor(), false, 0.1, 1e-5),
                       doctest::Contains("evaluation mode needs running_mean and running_var"), Error);
  CHECK_THROWS_WITH_AS(ops::batch_norm2d(x, Tensor(), Tensor(), rm, Tensor(), true, 0.1, 1e-5),
                       doctest::Contains("must both be defined or both undefined"), Error);
  CHECK_THROWS_WITH_AS(ops::batch_norm2d(zeros({1, 4, 1, 1}), Tensor(), Tensor(), rm, rv, true, 0.1, 1e-5),
                       doctest::Contains("expected more than 1 value per channel when training, got x F32[1, 4, 1, 1]"),
                       Error);
  CHECK_THROWS_WITH_AS(ops::batch_norm2d(zeros({2, 4, 3}), Tensor(), Tensor(), rm, rv, true, 0.1, 1e-5),
                       doctest::Contains("input x must be 4-D [N, C, H, W], got F32[2, 4, 3] on cpu"), Error);
  Tensor grad_buffer = zeros({4});
  grad_buffer.set_requires_grad(true);
  CHECK_THROWS_WITH_AS(ops::batch_norm2d(x, Tensor(), Tensor(), rm, grad_buffer, true, 0.1, 1e-5),
                       doctest::Contains("running_var F32[4] on cpu requires grad"), Error);
  CHECK_THROWS_WITH_AS(
      ops::batch_norm2d(x, Tensor(), Tensor(), zeros({4}, DType::f64), ones({4}, DType::f64), true, 0.1, 1e-5),
      doctest::Contains("running_mean F64[4] on cpu must be F32 on cpu"), Error);
  CHECK_THROWS_WITH_AS(ops::batch_norm2d(x, Tensor(), Tensor(), rm, rv, true, 1.5, 1e-5),
                       doctest::Contains("momentum must be in [0, 1], got 1.5"), Error);
  CHECK_THROWS_WITH_AS(ops::batch_norm2d(x, Tensor(), Tensor(), rm, rv, true, 0.1, -1.0),
                       doctest::Contains("eps must be non-negative"), Error);
}

TEST_SUITE("cuda") {
  // Output, running statistics and gradients on the device against the CPU kernel.
  void check_batch_norm(const Shape& s, bool training, bool affine) {
    const int64_t C = s[1];
    Tensor x = test::leaf(ops::add_scalar(randn(s), 3.0));
    Tensor w = affine ? test::leaf(randn({C})) : Tensor(), b = affine ? test::leaf(randn({C})) : Tensor();
    // The running statistics change in place: every run gets its own copies.
    test::check_parity({shape_str(s) + (training ? " training" : " eval") + (affine ? " affine" : ""),
                        test::copies_of({x, w, b, randn({C}), positive({C})}),
                        [training](const std::vector<Tensor>& in) {
                          Tensor y = ops::batch_norm2d(in[0], in[1], in[2], in[3], in[4], training, 0.1, 1e-3);
                          return std::vector<Tensor>{y, in[3], in[4]};
                        },
                        {{1e-4, 1e-4}, {1e-5, 1e-5}, {1e-5, 1e-5}},
                        {{1e-4, 1e-3}, {1e-3, 1e-4}}});
  }

  TEST_CASE("cuda parity: batch_norm2d training and evaluation, running statistics and gradients") {
    MTL_REQUIRE_CUDA();
    // Rows shorter and longer than a block, single-pixel maps (ESANet's pooled context branches),
    // and a map large enough to be cut into many chunks per channel.
    for (Shape s : {Shape{3, 5, 7, 9}, Shape{2, 3, 33, 47}, Shape{5, 4, 1, 1}, Shape{16, 2, 1, 3},
                    Shape{2, 67, 13, 15}, Shape{4, 3, 128, 129}})
      for (bool training : {true, false})
        for (bool affine : {true, false}) check_batch_norm(s, training, affine);
  }

  TEST_CASE("cuda real shapes: batch_norm2d training at 8x64x240x320") {
    MTL_REQUIRE_GPU();
    check_batch_norm({8, 64, 240, 320}, true, true);
  }

  TEST_CASE("cuda parity: batch_norm2d float32 variance for a large mean") {
    MTL_REQUIRE_CUDA();
    test::check_parity({"mean 1000",
                        test::copies_of({ops::add_scalar(randn({4, 3, 45, 51}), 1000.0), zeros({3}), ones({3})}),
                        [](const std::vector<Tensor>& in) {
                          Tensor y = ops::batch_norm2d(in[0], Tensor(), Tensor(), in[1], in[2], true, 0.5, 1e-5);
                          return std::vector<Tensor>{y, in[1], in[2]};
                        },
                        {{2e-3, 1e-4}, {1e-3, 1e-6}, {1e-3, 1e-3}}});
  }

  TEST_CASE("cuda: batch_norm2d forward, running statistics and gradients are bitwise reproducible") {
    MTL_REQUIRE_CUDA();
    DeterministicGuard guard;
    cuda::set_deterministic(true);
    Tensor x = randn({4, 6, 67, 65}).cuda(), w = randn({6}).cuda(), b = randn({6}).cuda();
    Tensor r = randn({4, 6, 67, 65}).cuda();
    std::vector<Tensor> first;
    for (int run = 0; run < 2; ++run) {
      Tensor xl = x.clone(), wl = w.clone(), bl = b.clone(), rm = zeros({6}).cuda(), rv = ones({6}).cuda();
      xl.set_requires_grad(true), wl.set_requires_grad(true), bl.set_requires_grad(true);
      Tensor y = ops::batch_norm2d(xl, wl, bl, rm, rv, true, 0.1, 1e-5);
      ops::sum(ops::mul(y, r)).backward();
      std::vector<Tensor> now{y, rm, rv, xl.grad(), wl.grad(), bl.grad()};
      if (run == 0)
        first = now;
      else
        for (size_t k = 0; k < now.size(); ++k) CHECK_CLOSE(now[k], first[k], 0, 0);
    }
  }

  TEST_CASE("cuda: batch_norm2d rejects float64 and mixed devices") {
    MTL_REQUIRE_CUDA();
    CHECK_THROWS_WITH_AS(ops::batch_norm2d(zeros({2, 3, 4, 4}, DType::f64).cuda(), Tensor(), Tensor(), Tensor(),
                                           Tensor(), true, 0.1, 1e-5),
                         doctest::Contains("batch_norm2d on CUDA supports F32 and BF16 tensors"), Error);
    CHECK_THROWS_WITH_AS(
        ops::batch_norm2d(zeros({2, 3, 4, 4}).cuda(), Tensor(), Tensor(), zeros({3}), ones({3}), true, 0.1, 1e-5),
        doctest::Contains("running_mean F32[3] on cpu must be F32 on cuda:0"), Error);
  }

  TEST_CASE("cuda parity: batch_norm2d at a medium ESANet shape") {
    MTL_REQUIRE_CUDA();
    const Shape s{2, 64, 60, 80};
    test::check_parity({"training " + shape_str(s),
                        test::copies_of({test::leaf(randn(s)), test::leaf(randn({64})), test::leaf(randn({64})),
                                         zeros({64}), ones({64})}),
                        [](const std::vector<Tensor>& in) {
                          Tensor y = ops::batch_norm2d(in[0], in[1], in[2], in[3], in[4], true, 0.1, 1e-5);
                          return std::vector<Tensor>{y, in[3], in[4]};
                        },
                        {{1e-4, 1e-4}, {1e-5, 1e-5}, {1e-5, 1e-5}},
                        {{1e-4, 1e-3}, {1e-3, 1e-4}}});
  }
}
