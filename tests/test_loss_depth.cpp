// Depth losses (SILog in both variants, masked L1): forward against plain loops, float64 gradient
// checks of both outputs (sample weights, invalid pixels, the clamp), the no-valid-pixel and
// perfect-prediction cases, scale invariance, and CUDA-vs-CPU parity on odd sizes.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "ops/ops.h"
#include "tests/support/compare.h"
#include "tests/support/gpu.h"
#include "tests/support/gradcheck.h"
#include "tests/support/parity.h"
#include "tests/support/random.h"

using namespace mtl;

namespace {

// Depth in (lo, hi) metres with about `invalid_frac` of the pixels set to 0 (no measurement).
Tensor random_depth(const Shape& s, double invalid_frac, DType dt = DType::f32, double lo = 0.3, double hi = 8.0) {
  std::vector<double> v(static_cast<size_t>(numel(s)));
  for (double& e : v) e = test::rng().next_uniform() < invalid_frac ? 0.0 : lo + (hi - lo) * test::rng().next_uniform();
  return from_vector(v, s, dt);
}

struct RefLoss {
  double loss = 0;
  std::vector<double> per_sample;
};

// Per sample: valid count, sum of d (or |e|), sum of d^2; then the definitions.
RefLoss reference(const Tensor& pred, const Tensor& target, const Tensor& sw, bool silog, double lambda, bool sqrt_v,
                  double min_pred = 1e-6) {
  const int64_t n = pred.size(0), hw = pred.numel() / n;
  std::vector<double> p = pred.to_f64_vector(), t = target.to_f64_vector();
  std::vector<double> w = sw.defined() ? sw.to_f64_vector() : std::vector<double>(n, 1.0);
  auto value = [&](double k, double s1, double s2) {
    if (k == 0) return 0.0;
    if (!silog) return s1 / k;
    const double v = s2 / k - lambda * (s1 / k) * (s1 / k);
    return sqrt_v ? (v > 0 ? 10 * std::sqrt(v) : 0.0) : v;
  };
  RefLoss r;
  double K = 0, S1 = 0, S2 = 0;
  for (int64_t i = 0; i < n; ++i) {
    double k = 0, s1 = 0, s2 = 0;
    for (int64_t q = 0; q < hw; ++q) {
      const double x = p[i * hw + q], y = t[i * hw + q];
      if (!(y > 0)) continue;
      const double d = silog ? std::log(std::max(x, min_pred)) - std::log(y) : std::abs(x - y);
      k += 1, s1 += d, s2 += d * d;
    }
    r.per_sample.push_back(value(k, s1, s2));
    K += w[i] * k, S1 += w[i] * s1, S2 += w[i] * s2;
  }
  r.loss = value(K, S1, S2);
  return r;
}

void check_against_reference(const ops::DepthLossResult& got, const RefLoss& ref, double tol) {
  CHECK(got.loss.dim() == 0);
  CHECK_CLOSE(got.loss, from_vector({ref.loss}, {}, DType::f64), tol, tol);
  CHECK_CLOSE(got.per_sample, from_vector(ref.per_sample, {static_cast<int64_t>(ref.per_sample.size())}, DType::f64),
              tol, tol);
}

Tensor both(const ops::DepthLossResult& r) { return ops::cat({ops::reshape(r.loss, {1}), r.per_sample}, 0); }

bool all_zero(const Tensor& t) {
  for (double v : t.to_f64_vector())
    if (v != 0.0) return false;
  return true;
}

ops::SILogOptions silog_options(double lambda, bool sqrt_v, const Tensor& sw = Tensor()) {
  ops::SILogOptions o;
  o.lambda = lambda;
  o.sqrt_scaled = sqrt_v;
  o.sample_weights = sw;
  return o;
}

// Variants 0 and 1: SILog without and with the square root; 2: masked L1.
ops::DepthLossResult run_variant(int variant, const Tensor& x, const Tensor& t) {
  return variant == 2 ? ops::masked_l1_loss(x, t) : ops::silog_loss(x, t, silog_options(0.85, variant == 1));
}

// One NaN prediction at a valid pixel of sample 0, on `d`: the loss and sample 0's loss are NaN,
// sample 1's is finite (as in PyTorch, where the clamp lets NaN through). The SILog gradient is
// NaN at every other valid pixel (the loss's mean of d is NaN) and 0 at the NaN pixel (below no
// clamp, as PyTorch's clamp backward gives); L1's gradient stays finite (sign(NaN) = 0 in PyTorch).
void check_nan_prediction(Device d) {
  const Shape s{2, 1, 4, 5};
  const int64_t bad = 7;  // flat index in sample 0
  Tensor target = random_depth(s, 0.0);
  Tensor pred = random_depth(s, 0.0);
  pred.set({0, 0, bad / 5, bad % 5}, std::numeric_limits<double>::quiet_NaN());
  for (int variant = 0; variant < 3; ++variant) {
    CAPTURE(variant);
    Tensor x = pred.to(d).clone();
    x.set_requires_grad(true);
    ops::DepthLossResult r = run_variant(variant, x, target.to(d));
    CHECK(std::isnan(r.loss.item()));
    const std::vector<double> per = r.per_sample.to_f64_vector();
    CHECK(std::isnan(per[0]));
    CHECK(std::isfinite(per[1]));
    r.loss.backward();
    const std::vector<double> g = x.grad().to_f64_vector();
    CHECK(g[bad] == 0.0);
    for (int64_t i = 0; i < numel(s); ++i) {
      if (i == bad) continue;
      CAPTURE(i);
      if (variant == 2)
        CHECK(std::isfinite(g[i]));
      else
        CHECK(std::isnan(g[i]));
    }
  }
}

}  // namespace

TEST_CASE("silog and masked L1 match plain-loop references") {
  for (DType dt : {DType::f32, DType::f64}) {
    CAPTURE(dtype_name(dt));
    const double tol = dt == DType::f32 ? 2e-5 : 1e-10;
    for (Shape s : {Shape{3, 1, 5, 7}, Shape{2, 6, 9}}) {
      Tensor target = random_depth(s, 0.3, dt);
      Tensor pred = random_depth(s, 0.0, dt);
      pred.set(std::vector<int64_t>(s.size(), 0), -0.5);  // clamped to min_pred
      Tensor sw = test::rand({s[0]}, 0.2, 2.0, dt);
      for (bool sqrt_v : {false, true})
        for (double lambda : {0.85, 0.5, 0.0}) {
          CAPTURE(sqrt_v);
          CAPTURE(lambda);
          check_against_reference(ops::silog_loss(pred, target, silog_options(lambda, sqrt_v)),
                                  reference(pred, target, {}, true, lambda, sqrt_v), tol);
          check_against_reference(ops::silog_loss(pred, target, silog_options(lambda, sqrt_v, sw)),
                                  reference(pred, target, sw, true, lambda, sqrt_v), tol);
        }
      check_against_reference(ops::masked_l1_loss(pred, target), reference(pred, target, {}, false, 0, false), tol);
      ops::MaskedL1Options lo;
      lo.sample_weights = sw;
      check_against_reference(ops::masked_l1_loss(pred, target, lo), reference(pred, target, sw, false, 0, false), tol);
    }
  }
}

TEST_CASE("silog with lambda 1 is scale invariant") {
  Tensor target = random_depth({2, 1, 6, 5}, 0.2, DType::f64), pred = random_depth({2, 1, 6, 5}, 0.0, DType::f64);
  const double a = ops::silog_loss(pred, target, silog_options(1.0, false)).loss.item();
  const double b = ops::silog_loss(ops::mul_scalar(pred, 3.7), target, silog_options(1.0, false)).loss.item();
  CHECK(a > 1e-3);
  CHECK(b == doctest::Approx(a).epsilon(1e-9));
}

TEST_CASE("depth losses: no valid pixel gives 0 and a zero gradient (never NaN)") {
  Tensor pred = random_depth({2, 1, 4, 5}, 0.0);
  Tensor target = zeros({2, 1, 4, 5});
  for (int variant = 0; variant < 3; ++variant) {
    CAPTURE(variant);
    Tensor x = pred.clone();
    x.set_requires_grad(true);
    ops::DepthLossResult r = run_variant(variant, x, target);
    CHECK(r.loss.item() == 0.0);
    CHECK(all_zero(r.per_sample));
    ops::add(r.loss, ops::sum(r.per_sample)).backward();
    CHECK(all_zero(x.grad()));
  }
  // One sample without valid pixels: it reports 0 and gets no gradient; the other is unaffected.
  Tensor t = random_depth({2, 1, 4, 5}, 0.0);
  for (int64_t q = 0; q < 20; ++q) t.set({1, 0, q / 5, q % 5}, 0.0);
  Tensor x = pred.clone();
  x.set_requires_grad(true);
  ops::DepthLossResult r = ops::silog_loss(x, t, silog_options(0.85, true));
  CHECK(r.per_sample.to_f64_vector()[1] == 0.0);
  CHECK(r.per_sample.to_f64_vector()[0] == doctest::Approx(r.loss.item()).epsilon(1e-6));
  r.loss.backward();
  std::vector<double> g = x.grad().to_f64_vector();
  for (int64_t q = 20; q < 40; ++q) CHECK(g[q] == 0.0);
}

TEST_CASE("depth losses: a perfect prediction gives 0 and a zero gradient (also under the square root)") {
  Tensor target = random_depth({2, 1, 5, 3}, 0.25);
  Tensor x = ops::add_scalar(target, 0.0).clone();
  for (int64_t i = 0; i < 2; ++i) x.set({i, 0, 0, 0}, 1.5);  // where the target is 0 (maybe), any value
  for (int64_t i = 0; i < 2; ++i) target.set({i, 0, 0, 0}, 0.0);
  x.set_requires_grad(true);
  for (bool sqrt_v : {false, true}) {
    CAPTURE(sqrt_v);
    x.zero_grad();
    ops::DepthLossResult r = ops::silog_loss(x, target, silog_options(0.85, sqrt_v));
    CHECK(std::abs(r.loss.item()) < 1e-12);
    r.loss.backward();
    CHECK(test::max_abs(x.grad()) < 1e-6);
  }
  x.zero_grad();
  ops::DepthLossResult l1 = ops::masked_l1_loss(x, target);
  CHECK(l1.loss.item() == 0.0);
  l1.loss.backward();
  CHECK(all_zero(x.grad()));
}

TEST_CASE("depth losses: a NaN prediction makes the loss NaN, not a finite value") {
  check_nan_prediction(Device::cpu());
}

TEST_CASE("depth losses: argument errors") {
  Tensor a = random_depth({2, 1, 4, 5}, 0.0), b = random_depth({2, 1, 5, 4}, 0.0);
  CHECK_THROWS_WITH_AS(ops::silog_loss(a, b), doctest::Contains("pred and target must have one shape"), Error);
  CHECK_THROWS_WITH_AS(ops::silog_loss(a, a, silog_options(1.5, false)), doctest::Contains("lambda must be in [0, 1]"),
                       Error);
  ops::MaskedL1Options o;
  o.sample_weights = ones({3});
  CHECK_THROWS_WITH_AS(ops::masked_l1_loss(a, a, o), doctest::Contains("sample_weights must be F32[2]"), Error);
  CHECK_THROWS_WITH_AS(ops::masked_l1_loss(a, ops::to(a, DType::f64)), doctest::Contains("different dtypes"), Error);
}

TEST_CASE("gradcheck: silog (both variants) and masked L1 with sample weights and invalid pixels") {
  const Shape s{3, 1, 4, 5};
  Tensor target = random_depth(s, 0.3, DType::f64);
  Tensor pred = random_depth(s, 0.0, DType::f64, 0.5, 5.0);
  pred.set({1, 0, 2, 3}, -0.25);  // under the clamp: zero gradient, and finite differences agree
  target.set({1, 0, 2, 3}, 2.0);
  pred.set_requires_grad(true);
  Tensor sw = test::rand({3}, 0.2, 2.0, DType::f64);
  for (bool sqrt_v : {false, true}) {
    CAPTURE(sqrt_v);
    CHECK_GRADCHECK([&](auto& in) { return both(ops::silog_loss(in[0], target, silog_options(0.85, sqrt_v, sw))); },
                    {pred});
    CHECK_GRADCHECK([&](auto& in) { return ops::silog_loss(in[0], target, silog_options(0.5, sqrt_v)).loss; }, {pred});
  }
  ops::MaskedL1Options o;
  o.sample_weights = sw;
  CHECK_GRADCHECK([&](auto& in) { return both(ops::masked_l1_loss(in[0], target, o)); }, {pred});
  CHECK_GRADCHECK([&](auto& in) { return ops::masked_l1_loss(in[0], target).loss; }, {pred});
}

TEST_SUITE("cuda") {
  // All three variants with sample weights, invalid pixels and one clamped prediction: both
  // outputs and the gradient on the device against the CPU kernel, then the device bit for bit.
  void check_depth_losses(const Shape& s) {
    Tensor target = random_depth(s, 0.3), pred = random_depth(s, 0.0);
    pred.set(std::vector<int64_t>(s.size(), 0), -1.0);
    Tensor sw = test::rand({s[0]}, 0.2, 2.0);
    for (int variant = 0; variant < 3; ++variant) {
      test::check_parity({shape_str(s) + (variant == 2   ? " masked L1"
                                          : variant == 1 ? " silog sqrt"
                                                         : " silog"),
                          test::copies_of({test::leaf(pred), target, sw}),
                          [variant](const std::vector<Tensor>& in) {
                            ops::DepthLossResult r;
                            if (variant == 2) {
                              ops::MaskedL1Options o;
                              o.sample_weights = in[2];
                              r = ops::masked_l1_loss(in[0], in[1], o);
                            } else {
                              r = ops::silog_loss(in[0], in[1], silog_options(0.85, variant == 1, in[2]));
                            }
                            return std::vector<Tensor>{r.loss, r.per_sample};
                          },
                          {{1e-5, 1e-4}},
                          {{0, 1e-3, 1e-5}}});
    }
  }

  TEST_CASE("cuda parity: depth losses forward and gradients on odd sizes") {
    MTL_REQUIRE_CUDA();
    // Scalar path, vector path over several chunks, [N, H, W] input, one pixel.
    for (Shape s : {Shape{3, 1, 13, 17}, Shape{2, 1, 48, 64}, Shape{5, 4099}, Shape{2, 96, 100}, Shape{1, 1, 1, 1}})
      check_depth_losses(s);
  }

  TEST_CASE("cuda real shapes: depth losses at [8, 1, 480, 640]") {
    MTL_REQUIRE_GPU();
    check_depth_losses({8, 1, 480, 640});
  }

  TEST_CASE("cuda: depth losses propagate a NaN prediction as the CPU does") {
    MTL_REQUIRE_CUDA();
    check_nan_prediction(Device::cuda());
  }

  TEST_CASE("cuda: depth losses without valid pixels") {
    MTL_REQUIRE_CUDA();
    test::PoisonGuard poison;
    Tensor x = random_depth({3, 1, 7, 9}, 0.0).cuda();
    x.set_requires_grad(true);
    ops::DepthLossResult r =
        ops::silog_loss(x, zeros({3, 1, 7, 9}, Options(Device::cuda())), silog_options(0.85, true));
    CHECK(r.loss.item() == 0.0);
    CHECK(all_zero(r.per_sample));
    ops::add(r.loss, ops::sum(r.per_sample)).backward();
    CHECK(all_zero(x.grad()));
  }

  TEST_CASE("cuda parity: depth losses at a medium ESANet shape") {
    MTL_REQUIRE_CUDA();
    const Shape s{2, 1, 120, 160};
    for (bool sqrt_v : {false, true})
      test::check_parity({std::string("silog ") + (sqrt_v ? "sqrt " : "") + shape_str(s),
                          test::copies_of({test::leaf(random_depth(s, 0.0)), random_depth(s, 0.3)}),
                          [sqrt_v](const std::vector<Tensor>& in) {
                            ops::DepthLossResult r = ops::silog_loss(in[0], in[1], silog_options(0.85, sqrt_v));
                            return std::vector<Tensor>{r.loss, r.per_sample};
                          },
                          {{1e-5, 1e-4}},
                          {{0, 1e-3, 1e-5}}});
  }
}
