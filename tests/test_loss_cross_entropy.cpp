// Fused softmax cross-entropy: forward against a plain-loop reference (class weights, sample
// weights, ignore_index, every label dtype, non-contiguous logits), float64 gradient checks of
// both outputs, the uniform-logits and all-ignored properties, label errors, and CUDA-vs-CPU
// parity on odd sizes with poisoned outputs.
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
using mtl::test::randn;

namespace {

struct RefLoss {
  double loss = 0;
  std::vector<double> per_sample;
};

// The definition, written out: per-pixel log-sum-exp over classes at stride H*W, weighted sums.
RefLoss reference(const Tensor& logits, const Tensor& labels, const Tensor& cw, const Tensor& sw, int64_t ignore) {
  const int64_t n = logits.size(0), c = logits.size(1), hw = logits.numel() / std::max<int64_t>(n * c, 1);
  std::vector<double> x = logits.to_f64_vector(), y = labels.to_f64_vector();
  std::vector<double> w = cw.defined() ? cw.to_f64_vector() : std::vector<double>(c, 1.0);
  std::vector<double> s = sw.defined() ? sw.to_f64_vector() : std::vector<double>(n, 1.0);
  RefLoss r;
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; ++i) {
    double ni = 0, di = 0;
    for (int64_t p = 0; p < hw; ++p) {
      const int64_t label = static_cast<int64_t>(y[i * hw + p]);
      if (label == ignore) continue;
      double m = -INFINITY;
      for (int64_t k = 0; k < c; ++k) m = std::max(m, x[(i * c + k) * hw + p]);
      double z = 0;
      for (int64_t k = 0; k < c; ++k) z += std::exp(x[(i * c + k) * hw + p] - m);
      const double l = m + std::log(z) - x[(i * c + label) * hw + p];
      ni += w[label] * l;
      di += w[label];
    }
    r.per_sample.push_back(di > 0 ? ni / di : 0.0);
    num += s[i] * ni;
    den += s[i] * di;
  }
  r.loss = den > 0 ? num / den : 0.0;
  return r;
}

void check_against_reference(const ops::CrossEntropyResult& got, const RefLoss& ref, double tol) {
  CHECK(got.loss.dim() == 0);
  CHECK_CLOSE(got.loss, from_vector({ref.loss}, {}, DType::f64), tol, tol);
  CHECK_CLOSE(got.per_sample, from_vector(ref.per_sample, {static_cast<int64_t>(ref.per_sample.size())}, DType::f64),
              tol, tol);
}

Tensor positive_weights(int64_t n, DType dt) { return test::rand({n}, 0.25, 2.0, dt); }

bool all_finite_zero(const Tensor& t) {
  for (double v : t.to_f64_vector())
    if (v != 0.0) return false;
  return true;
}

// Both outputs in one tensor, so a gradient check or a parity check covers both.
Tensor both(const ops::CrossEntropyResult& r) { return ops::cat({ops::reshape(r.loss, {1}), r.per_sample}, 0); }

}  // namespace

TEST_CASE("cross_entropy matches a plain-loop reference") {
  for (DType dt : {DType::f32, DType::f64}) {
    CAPTURE(dtype_name(dt));
    const double tol = dt == DType::f32 ? 2e-5 : 1e-10;
    Tensor logits = randn({3, 5, 4, 7}, dt);
    Tensor labels = test::random_labels({3, 4, 7}, 5, 0.2, -1);
    check_against_reference(ops::cross_entropy(logits, labels), reference(logits, labels, {}, {}, -1), tol);

    ops::CrossEntropyOptions o;
    o.class_weights = positive_weights(5, dt);
    o.sample_weights = positive_weights(3, dt);
    check_against_reference(ops::cross_entropy(logits, labels, o),
                            reference(logits, labels, o.class_weights, o.sample_weights, -1), tol);
  }
}

TEST_CASE("cross_entropy reads every label dtype and strided logits; ignore_index may be a class") {
  Tensor logits = randn({2, 6, 3, 5});
  ops::CrossEntropyOptions o;
  o.class_weights = positive_weights(6, DType::f32);
  o.ignore_index = 255;
  Tensor u8 = test::random_labels({2, 3, 5}, 6, 0.3, 255, DType::u8);
  check_against_reference(ops::cross_entropy(logits, u8, o), reference(logits, u8, o.class_weights, {}, 255), 2e-5);

  o.ignore_index = 2;  // a real class used as "void": its pixels are skipped
  Tensor i64 = test::random_labels({2, 3, 5}, 6, 0.0, 2, DType::i64);
  check_against_reference(ops::cross_entropy(logits, i64, o), reference(logits, i64, o.class_weights, {}, 2), 2e-5);

  // NHWC storage seen as NCHW, and logits [N, C] without spatial dimensions.
  Tensor nhwc = randn({2, 3, 5, 6});
  Tensor nchw = nhwc.permute({0, 3, 1, 2});
  CHECK_FALSE(nchw.is_contiguous());
  Tensor labels = test::random_labels({2, 3, 5}, 6, 0.1, -1);
  check_against_reference(ops::cross_entropy(nchw, labels), reference(nchw, labels, {}, {}, -1), 2e-5);
  Tensor flat = randn({9, 4});
  Tensor flat_labels = test::random_labels({9}, 4, 0.0, -1, DType::i64);
  check_against_reference(ops::cross_entropy(flat, flat_labels), reference(flat, flat_labels, {}, {}, -1), 2e-5);
}

TEST_CASE("cross_entropy: uniform logits give log(C) and gradient (1/C - onehot) / pixels") {
  const int64_t c = 7;
  Tensor logits = full({2, c, 3, 5}, 0.37);
  logits.set_requires_grad(true);
  Tensor labels = test::random_labels({2, 3, 5}, c, 0.0, -1);
  ops::CrossEntropyResult r = ops::cross_entropy(logits, labels);
  CHECK(r.loss.item() == doctest::Approx(std::log(7.0)).epsilon(1e-6));
  for (double v : r.per_sample.to_f64_vector()) CHECK(v == doctest::Approx(std::log(7.0)).epsilon(1e-6));
  r.loss.backward();
  std::vector<double> g = logits.grad().to_f64_vector(), y = labels.to_f64_vector();
  const double pixels = 30;
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t k = 0; k < c; ++k)
      for (int64_t p = 0; p < 15; ++p) {
        const double expect = (1.0 / c - (static_cast<int64_t>(y[i * 15 + p]) == k ? 1.0 : 0.0)) / pixels;
        CHECK(g[(i * c + k) * 15 + p] == doctest::Approx(expect).epsilon(1e-5));
      }
}

TEST_CASE("cross_entropy: every pixel ignored gives 0 and a zero gradient (never NaN)") {
  Tensor logits = randn({2, 4, 3, 3});
  logits.set_requires_grad(true);
  Tensor labels = full({2, 3, 3}, -1, DType::i32);
  ops::CrossEntropyOptions o;
  o.class_weights = positive_weights(4, DType::f32);
  ops::CrossEntropyResult r = ops::cross_entropy(logits, labels, o);
  CHECK(r.loss.item() == 0.0);
  CHECK(all_finite_zero(r.per_sample));
  ops::add(r.loss, ops::sum(r.per_sample)).backward();
  CHECK(all_finite_zero(logits.grad()));

  // One sample fully ignored, the other weighted out: the first sample still reports its own loss.
  Tensor mixed = test::random_labels({2, 3, 3}, 4, 0.0, -1);
  for (int64_t p = 0; p < 9; ++p) mixed.set({1, p / 3, p % 3}, -1);
  ops::CrossEntropyOptions zero_weight;
  zero_weight.sample_weights = from_vector({0.0, 1.0}, {2});
  ops::CrossEntropyResult m = ops::cross_entropy(logits.detach(), mixed, zero_weight);
  CHECK(m.loss.item() == 0.0);
  CHECK(m.per_sample.to_f64_vector()[0] > 0.0);
  CHECK(m.per_sample.to_f64_vector()[1] == 0.0);
}

TEST_CASE("cross_entropy: a label that is neither a class nor ignore_index is an error naming it") {
  Tensor logits = randn({2, 5, 3, 4});
  Tensor labels = test::random_labels({2, 3, 4}, 5, 0.1, -1);
  labels.set({1, 2, 0}, 9);
  CHECK_THROWS_WITH_AS(ops::cross_entropy(logits, labels), doctest::Contains("label 9 at [1, 2, 0]"), Error);
  labels.set({1, 2, 0}, -3);
  CHECK_THROWS_WITH_AS(ops::cross_entropy(logits, labels), doctest::Contains("label -3"), Error);
  // int64 labels are read as int64: a value that would wrap to a class in int32 is still caught.
  Tensor wide = test::random_labels({2, 3, 4}, 5, 0.0, -1, DType::i64);
  wide.set({0, 1, 1}, 4294967297.0);  // 2^32 + 1
  CHECK_THROWS_WITH_AS(ops::cross_entropy(logits, wide), doctest::Contains("label 4294967297"), Error);

  // Without the check, such pixels count as ignored.
  Tensor ok = test::random_labels({2, 3, 4}, 5, 0.0, -1);
  Tensor bad = ok.clone(), ignored = ok.clone();
  bad.set({0, 0, 3}, 17);
  ignored.set({0, 0, 3}, -1);
  ops::CrossEntropyOptions unchecked;
  unchecked.check_labels = false;
  CHECK_CLOSE(both(ops::cross_entropy(logits, bad, unchecked)), both(ops::cross_entropy(logits, ignored)), 0, 0);
}

TEST_CASE("cross_entropy: argument errors name the tensor") {
  Tensor logits = randn({2, 5, 3, 4});
  Tensor labels = test::random_labels({2, 3, 4}, 5, 0.0, -1);
  ops::CrossEntropyOptions o;
  o.class_weights = ones({4});
  CHECK_THROWS_WITH_AS(ops::cross_entropy(logits, labels, o), doctest::Contains("class_weights must be F32[5]"), Error);
  o = {};
  o.sample_weights = ones({2}, DType::f64);
  CHECK_THROWS_WITH_AS(ops::cross_entropy(logits, labels, o), doctest::Contains("sample_weights must be F32[2]"),
                       Error);
  CHECK_THROWS_WITH_AS(ops::cross_entropy(logits, test::random_labels({2, 4, 3}, 5, 0.0, -1)),
                       doctest::Contains("labels must be [2, 3, 4]"), Error);
  CHECK_THROWS_WITH_AS(ops::cross_entropy(logits, zeros({2, 3, 4})), doctest::Contains("integer labels"), Error);
}

TEST_CASE("gradcheck: cross_entropy with class weights and ignore_index and sample weights") {
  Tensor logits = test::randn_grad({2, 4, 3, 5});
  Tensor labels = test::random_labels({2, 3, 5}, 4, 0.25, 3, DType::i64);  // ignore_index 3 is also a class
  ops::CrossEntropyOptions o;
  o.class_weights = positive_weights(4, DType::f64);
  o.sample_weights = positive_weights(2, DType::f64);
  o.ignore_index = 3;
  CHECK_GRADCHECK([&](auto& in) { return both(ops::cross_entropy(in[0], labels, o)); }, {logits});
  CHECK_GRADCHECK([&](auto& in) { return ops::cross_entropy(in[0], labels, o).loss; }, {logits});
  // A whole sample ignored: its gradient is zero, and its per-sample loss stays 0.
  Tensor half = labels.clone();
  for (int64_t p = 0; p < 15; ++p) half.set({0, p / 5, p % 5}, 3);
  CHECK_GRADCHECK([&](auto& in) { return both(ops::cross_entropy(in[0], half, o)); }, {logits});
}

TEST_SUITE("cuda") {
  // Loss, per-sample losses and the logits' gradient on the device against the CPU kernel, with
  // class and sample weights and ignored pixels; then the device again, bit for bit.
  void check_cross_entropy(const Tensor& logits, const Tensor& labels, const std::string& name) {
    const int64_t n = logits.size(0), c = logits.size(1);
    test::check_parity({name,
                        test::copies_of({test::leaf(logits), labels, positive_weights(c, DType::f32),
                                         positive_weights(n, DType::f32)}),
                        [](const std::vector<Tensor>& in) {
                          ops::CrossEntropyOptions o;
                          o.ignore_index = 255;
                          o.class_weights = in[2];
                          o.sample_weights = in[3];
                          ops::CrossEntropyResult r = ops::cross_entropy(in[0], in[1], o);
                          return std::vector<Tensor>{r.loss, r.per_sample};
                        },
                        {{1e-5, 1e-5}},
                        {{0, 1e-4, 1e-5}}});
  }

  TEST_CASE("cuda parity: cross_entropy forward and gradients on odd sizes") {
    MTL_REQUIRE_CUDA();
    // Scalar path (H*W not a multiple of 4), vector path, several chunks of pixels per sample,
    // 7 and 40 classes.
    for (Shape s :
         {Shape{3, 7, 13, 17}, Shape{2, 40, 24, 32}, Shape{5, 3, 1, 4099}, Shape{2, 5, 64, 72}, Shape{1, 1, 3, 3}}) {
      Tensor logits = ops::mul_scalar(randn(s), 3.0);
      for (DType dt : {DType::u8, DType::i32, DType::i64}) {
        check_cross_entropy(logits, test::random_labels({s[0], s[2], s[3]}, s[1], 0.2, 255, dt),
                            shape_str(s) + " " + dtype_name(dt));
      }
    }
  }

  TEST_CASE("cuda real shapes: cross_entropy at [8, 40, 480, 640]") {
    MTL_REQUIRE_GPU();
    // 98M logits, as in training at full resolution with 40 classes: thousands of chunks per sample.
    check_cross_entropy(ops::mul_scalar(randn({8, 40, 480, 640}), 3.0), test::random_labels({8, 480, 640}, 40, 0.2, 255),
                        "8x40x480x640");
  }

  TEST_CASE("cuda: cross_entropy all-ignored and uniform logits and label errors") {
    MTL_REQUIRE_CUDA();
    test::PoisonGuard poison;
    Tensor logits = randn({3, 6, 9, 11}).cuda();
    logits.set_requires_grad(true);
    ops::CrossEntropyResult r = ops::cross_entropy(logits, full({3, 9, 11}, -1, Options(DType::i32, Device::cuda())));
    CHECK(r.loss.item() == 0.0);
    CHECK(all_finite_zero(r.per_sample));
    ops::add(r.loss, ops::sum(r.per_sample)).backward();
    CHECK(all_finite_zero(logits.grad()));

    Tensor uniform = zeros({2, 40, 16, 20}, Options(DType::f32, Device::cuda()));
    ops::CrossEntropyResult u = ops::cross_entropy(uniform, test::random_labels({2, 16, 20}, 40, 0.1, -1).cuda());
    CHECK(u.loss.item() == doctest::Approx(std::log(40.0)).epsilon(1e-6));

    Tensor labels = test::random_labels({3, 9, 11}, 6, 0.1, -1);
    labels.set({2, 8, 10}, 6);
    labels.set({2, 8, 9}, 300);
    CHECK_THROWS_WITH_AS(ops::cross_entropy(logits.detach(), labels.cuda()),
                         doctest::Contains("label 300 at [2, 8, 9]"), Error);
  }

  TEST_CASE("cuda parity: cross_entropy at a medium ESANet shape") {
    MTL_REQUIRE_CUDA();
    const Shape s{2, 40, 96, 128};
    test::check_parity(
        {"40 classes " + shape_str(s),
         test::copies_of({test::leaf(ops::mul_scalar(randn(s), 3.0)),
                          test::random_labels({2, 96, 128}, 40, 0.1, 255, DType::u8), positive_weights(40, DType::f32)}),
         [](const std::vector<Tensor>& in) {
           ops::CrossEntropyOptions o;
           o.ignore_index = 255;
           o.class_weights = in[2];
           ops::CrossEntropyResult r = ops::cross_entropy(in[0], in[1], o);
           return std::vector<Tensor>{r.loss, r.per_sample};
         },
         {{1e-5, 1e-5}},
         {{0, 1e-4, 1e-5}}});
  }
}
