// Segmentation and depth metrics: confusion counts against plain loops (from labels and from
// logits with ties), IoU / mIoU / pixel accuracy from hand-made matrices (absent classes reported
// absent), label errors, accumulation over batches, depth metrics against plain loops, and
// CUDA-vs-CPU parity (counts exactly equal).
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "ops/ops.h"
#include "tests/support/compare.h"
#include "tests/support/gpu.h"
#include "tests/support/parity.h"
#include "tests/support/random.h"

using namespace mtl;

namespace {

// Logits drawn from a few integer values, so that ties between classes are common.
Tensor tied_logits(const Shape& s, DType dt = DType::f32) {
  std::vector<double> v(static_cast<size_t>(numel(s)));
  for (double& e : v) e = static_cast<double>(test::rng().next_u64() % 3);
  return from_vector(v, s, dt);
}

// Plain loops: first maximum over classes (stride H*W), then one count per counted pixel.
Tensor reference_confusion(const Tensor& pred, const Tensor& target, int64_t c, int64_t ignore) {
  std::vector<double> t = target.to_f64_vector(), p = pred.to_f64_vector();
  const int64_t n = target.size(0), hw = target.numel() / n;
  std::vector<double> counts(static_cast<size_t>(c * c), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t q = 0; q < hw; ++q) {
      const int64_t y = static_cast<int64_t>(t[i * hw + q]);
      if (y == ignore) continue;
      int64_t k = 0;
      if (is_floating(pred.dtype())) {
        for (int64_t j = 1; j < c; ++j)
          if (p[(i * c + j) * hw + q] > p[(i * c + k) * hw + q]) k = j;
      } else {
        k = static_cast<int64_t>(p[i * hw + q]);
      }
      counts[y * c + k] += 1;
    }
  return from_vector(counts, {c, c}, DType::i64);
}

ops::ConfusionOptions ignoring(int64_t ignore) {
  ops::ConfusionOptions o;
  o.ignore_index = ignore;
  return o;
}

struct RefDepth {
  int64_t pixels = 0;
  double abs_rel = 0, sq_rel = 0, rmse = 0, rmse_log = 0, d1 = 0, d2 = 0, d3 = 0;
};

// The delta ratio is taken in the inputs' precision: a float ratio within an ulp of 1.25 must be
// counted as the float computation counts it.
RefDepth reference_depth(const Tensor& pred, const Tensor& target) {
  std::vector<double> p = pred.to_f64_vector(), t = target.to_f64_vector();
  const bool f32 = pred.dtype() == DType::f32;
  RefDepth r;
  for (size_t i = 0; i < p.size(); ++i) {
    if (!(t[i] > 0)) continue;
    const double x = std::max(p[i], f32 ? static_cast<double>(1e-6f) : 1e-6), e = x - t[i];
    const double ratio = f32 ? static_cast<double>(std::max(static_cast<float>(x) / static_cast<float>(t[i]),
                                                            static_cast<float>(t[i]) / static_cast<float>(x)))
                             : std::max(x / t[i], t[i] / x);
    ++r.pixels;
    r.abs_rel += std::abs(e) / t[i];
    r.sq_rel += e * e / t[i];
    r.rmse += e * e;
    r.rmse_log += std::pow(std::log(x) - std::log(t[i]), 2);
    r.d1 += ratio < 1.25;
    r.d2 += ratio < 1.25 * 1.25;
    r.d3 += ratio < 1.25 * 1.25 * 1.25;
  }
  const double n = static_cast<double>(r.pixels);
  r.abs_rel /= n, r.sq_rel /= n, r.rmse = std::sqrt(r.rmse / n), r.rmse_log = std::sqrt(r.rmse_log / n);
  r.d1 /= n, r.d2 /= n, r.d3 /= n;
  return r;
}

void check_depth(const ops::DepthMetrics& m, const RefDepth& r, double tol) {
  CHECK(m.pixels == r.pixels);
  CHECK(m.abs_rel == doctest::Approx(r.abs_rel).epsilon(tol));
  CHECK(m.sq_rel == doctest::Approx(r.sq_rel).epsilon(tol));
  CHECK(m.rmse == doctest::Approx(r.rmse).epsilon(tol));
  CHECK(m.rmse_log == doctest::Approx(r.rmse_log).epsilon(tol));
  CHECK(m.delta1 == doctest::Approx(r.d1).epsilon(1e-12));
  CHECK(m.delta2 == doctest::Approx(r.d2).epsilon(1e-12));
  CHECK(m.delta3 == doctest::Approx(r.d3).epsilon(1e-12));
}

Tensor random_depth(const Shape& s, double invalid_frac) {
  std::vector<double> v(static_cast<size_t>(numel(s)));
  for (double& e : v) e = test::rng().next_uniform() < invalid_frac ? 0.0 : 0.3 + 7.7 * test::rng().next_uniform();
  return from_vector(v, s);
}

// A perfect prediction except one NaN at a valid pixel, on `d`: the NaN pixel counts as valid,
// makes every sum NaN (so abs_rel, rmse ... are NaN, not finite) and is within no delta.
void check_nan_prediction(Device d) {
  Tensor t = random_depth({2, 1, 5, 7}, 0.0);
  Tensor p = t.clone();
  p.set({1, 0, 2, 3}, std::numeric_limits<double>::quiet_NaN());
  ops::DepthMetricAccumulator acc(d);
  acc.update(p.to(d), t.to(d));
  const std::vector<double> sums = acc.state().sums.to_f64_vector(), counts = acc.state().counts.to_f64_vector();
  for (double v : sums) CHECK(std::isnan(v));
  CHECK(counts == std::vector<double>{70, 69, 69, 69});
  const ops::DepthMetrics m = acc.compute();
  CHECK(m.pixels == 70);
  CHECK(std::isnan(m.abs_rel));
  CHECK(std::isnan(m.rmse));
  CHECK(m.delta1 == doctest::Approx(69.0 / 70.0).epsilon(1e-12));
}

}  // namespace

TEST_CASE("confusion matrix from labels and from logits matches plain loops") {
  Tensor target = test::random_labels({3, 5, 7}, 6, 0.2, 255, DType::u8);
  Tensor pred = test::random_labels({3, 5, 7}, 6, 0.0, 0, DType::i64);
  CHECK_CLOSE(ops::confusion_matrix(pred, target, 6, ignoring(255)), reference_confusion(pred, target, 6, 255), 0, 0);
  for (DType dt : {DType::f32, DType::f64}) {
    Tensor logits = tied_logits({3, 6, 5, 7}, dt);
    CHECK_CLOSE(ops::confusion_matrix(logits, target, 6, ignoring(255)), reference_confusion(logits, target, 6, 255), 0,
                0);
  }
  // Ties go to the first class; a NaN never wins.
  // Pixel 0 sees (NaN, 1, NaN, 1) -> class 1; pixel 1 sees (3, NaN, 3, 1) -> class 0.
  Tensor x = from_vector({NAN, 3, 1, NAN, NAN, 3, 1, 1}, {1, 4, 2});
  Tensor y = from_vector({0, 0}, {1, 2}, DType::i32);
  CHECK_CLOSE(ops::confusion_matrix(x, y, 4),
              from_vector({1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, {4, 4}, DType::i64), 0, 0);
  // Two batches accumulated equal one batch of both.
  Tensor t2 = test::random_labels({2, 5, 7}, 6, 0.2, 255, DType::u8), l2 = tied_logits({2, 6, 5, 7});
  Tensor l1 = tied_logits({3, 6, 5, 7});
  ops::ConfusionMatrix cm(6, Device::cpu(), ignoring(255));
  cm.update(l1, target);
  cm.update(l2, t2);
  CHECK_CLOSE(cm.counts(), ops::confusion_matrix(ops::cat({l1, l2}, 0), ops::cat({target, t2}, 0), 6, ignoring(255)), 0,
              0);
  cm.reset();
  CHECK(ops::segmentation_metrics(cm.counts()).pixels == 0);
}

TEST_CASE("segmentation metrics from a hand-made confusion matrix") {
  // rows = target: class 0 has 6 pixels (5 right), class 1 has 5 (3 right), class 2 none and is
  // never predicted, class 3 is predicted once but never the target.
  ops::SegmentationMetrics m = ops::segmentation_metrics({5, 1, 0, 0,  //
                                                          2, 2, 0, 1,  //
                                                          0, 0, 0, 0,  //
                                                          0, 0, 0, 0},
                                                         4);
  REQUIRE(m.iou.size() == 4);
  REQUIRE(m.iou[0].has_value());
  CHECK(*m.iou[0] == doctest::Approx(5.0 / 8.0));  // 5 / (6 + 7 - 5)
  CHECK(*m.iou[1] == doctest::Approx(2.0 / 6.0));  // 2 / (5 + 3 - 2)
  CHECK_FALSE(m.iou[2].has_value());               // absent: neither 0 nor 1
  REQUIRE(m.iou[3].has_value());
  CHECK(*m.iou[3] == 0.0);
  CHECK(m.miou == doctest::Approx((5.0 / 8.0 + 2.0 / 6.0 + 0.0) / 3.0));
  CHECK(m.pixel_accuracy == doctest::Approx(7.0 / 11.0));
  CHECK(m.pixels == 11);
  // Per-class accuracy (recall) over the classes in the targets: 5/6 and 2/5; 2 and 3 are absent.
  REQUIRE(m.accuracy.size() == 4);
  CHECK(*m.accuracy[0] == doctest::Approx(5.0 / 6.0));
  CHECK(*m.accuracy[1] == doctest::Approx(2.0 / 5.0));
  CHECK_FALSE(m.accuracy[2].has_value());
  CHECK_FALSE(m.accuracy[3].has_value());
  CHECK(m.mean_accuracy == doctest::Approx((5.0 / 6.0 + 2.0 / 5.0) / 2.0));
  // F1 (Dice) = 2 TP / (row + column), over the classes IoU counts.
  REQUIRE(m.f1.size() == 4);
  CHECK(*m.f1[0] == doctest::Approx(10.0 / 13.0));  // 2*5 / (6 + 7)
  CHECK(*m.f1[1] == doctest::Approx(4.0 / 8.0));    // 2*2 / (5 + 3)
  CHECK_FALSE(m.f1[2].has_value());
  CHECK(*m.f1[3] == 0.0);                            // 0 / (0 + 1)
  CHECK(m.mean_f1 == doctest::Approx((10.0 / 13.0 + 0.5 + 0.0) / 3.0));
  for (size_t k = 0; k < 4; ++k)  // F1 = 2 IoU / (1 + IoU)
    if (m.iou[k]) CHECK(*m.f1[k] == doctest::Approx(2 * *m.iou[k] / (1 + *m.iou[k])));

  ops::SegmentationMetrics empty = ops::segmentation_metrics(zeros({3, 3}, DType::i64));
  CHECK(std::isnan(empty.miou));
  CHECK(std::isnan(empty.pixel_accuracy));
  CHECK(std::isnan(empty.mean_accuracy));
  CHECK(std::isnan(empty.mean_f1));
  for (const auto& v : empty.iou) CHECK_FALSE(v.has_value());
}

TEST_CASE("identical prediction and target give IoU 1; a class in neither is absent") {
  Tensor target = test::random_labels({2, 9, 11}, 5, 0.1, -1);  // classes 0..4 of 7
  Tensor pred = target.clone();
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t q = 0; q < 99; ++q)
      if (pred.at({i, q / 11, q % 11}) < 0) pred.set({i, q / 11, q % 11}, 6);  // whatever, ignored
  ops::SegmentationMetrics m = ops::segmentation_metrics(ops::confusion_matrix(pred, target, 7));
  for (int k = 0; k < 5; ++k) {
    REQUIRE(m.iou[k].has_value());
    CHECK(*m.iou[k] == 1.0);
  }
  CHECK_FALSE(m.iou[5].has_value());
  CHECK_FALSE(m.iou[6].has_value());
  CHECK(m.miou == 1.0);
  CHECK(m.pixel_accuracy == 1.0);
}

TEST_CASE("confusion matrix: invalid labels are errors naming the value") {
  Tensor target = test::random_labels({2, 3, 4}, 5, 0.2, -1);
  Tensor logits = test::randn({2, 5, 3, 4});
  target.set({1, 1, 2}, 7);
  CHECK_THROWS_WITH_AS(ops::confusion_matrix(logits, target, 5), doctest::Contains("label 7 at [1, 1, 2]"), Error);
  Tensor good = test::random_labels({2, 3, 4}, 5, 0.0, -1), pred = test::random_labels({2, 3, 4}, 5, 0.0, -1);
  pred.set({0, 2, 3}, 12);
  CHECK_THROWS_WITH_AS(ops::confusion_matrix(pred, good, 5), doctest::Contains("predicted labels"), Error);
  CHECK_THROWS_WITH_AS(ops::confusion_matrix(pred, good, 5), doctest::Contains("label 12 at [0, 2, 3]"), Error);
  // Unchecked: the pixel is not counted.
  ops::ConfusionOptions o;
  o.check_labels = false;
  Tensor counts = ops::confusion_matrix(pred, good, 5, o);
  double total = 0;
  for (double v : counts.to_f64_vector()) total += v;
  CHECK(total == 23);
  CHECK_THROWS_WITH_AS(ops::confusion_matrix(test::randn({2, 4, 3, 4}), good, 5), doctest::Contains("logits must be"),
                       Error);
}

TEST_CASE("depth metrics match plain loops and accumulate over batches") {
  for (DType dt : {DType::f32, DType::f64}) {
    CAPTURE(dtype_name(dt));
    Tensor t1 = ops::to(random_depth({2, 1, 9, 13}, 0.3), dt), p1 = ops::to(random_depth({2, 1, 9, 13}, 0.0), dt);
    Tensor t2 = ops::to(random_depth({3, 1, 9, 13}, 0.3), dt), p2 = ops::to(random_depth({3, 1, 9, 13}, 0.0), dt);
    p1.set({0, 0, 0, 0}, -1.0);  // clamped to min_pred
    ops::DepthMetricAccumulator acc;
    acc.update(p1, t1);
    check_depth(acc.compute(), reference_depth(p1, t1), 1e-9);
    acc.update(p2, t2);
    Tensor p = ops::cat({p1, p2}, 0), t = ops::cat({t1, t2}, 0);
    check_depth(acc.compute(), reference_depth(p, t), 1e-9);
    ops::DepthMetricAccumulator once;
    once.update(p, t);
    CHECK(once.compute().pixels == acc.compute().pixels);
    CHECK(once.compute().rmse == doctest::Approx(acc.compute().rmse).epsilon(1e-12));
  }
  ops::DepthMetricAccumulator none;
  none.update(random_depth({1, 1, 3, 3}, 0.0), zeros({1, 1, 3, 3}));
  ops::DepthMetrics m = none.compute();
  CHECK(m.pixels == 0);
  CHECK(std::isnan(m.rmse));
  CHECK(std::isnan(m.delta1));

  Tensor t = random_depth({2, 1, 5, 5}, 0.2);
  ops::DepthMetricAccumulator perfect;
  perfect.update(t, t);
  ops::DepthMetrics pm = perfect.compute();
  CHECK(pm.abs_rel == 0.0);
  CHECK(pm.rmse == 0.0);
  CHECK(pm.delta1 == 1.0);
}

TEST_CASE("depth metrics: a NaN prediction gives NaN errors, not finite ones") { check_nan_prediction(Device::cpu()); }

TEST_SUITE("cuda") {
  TEST_CASE("cuda parity: confusion counts are exactly equal") {
    MTL_REQUIRE_CUDA();
    auto confusion = [](int64_t c, ops::ConfusionOptions o) {
      return [c, o](const std::vector<Tensor>& in) {
        return std::vector<Tensor>{ops::confusion_matrix(in[0], in[1], c, o)};
      };
    };
    // Scalar and vector logits paths, 7, 40 and 256 classes (the last needs the shared-memory
    // opt-in), one pixel, and enough pixels for many blocks.
    struct Case {
      Shape s;
      int64_t c;
    };
    for (Case k : {Case{{3, 13, 17}, 7}, Case{{2, 24, 32}, 40}, Case{{4, 61, 67}, 40}, Case{{1, 1, 1}, 3},
                   Case{{2, 120, 160}, 7}, Case{{2, 33, 35}, 256}}) {
      for (DType dt : {DType::u8, DType::i32, DType::i64}) {
        const std::string name = shape_str(k.s) + ", " + std::to_string(k.c) + " classes, " + dtype_name(dt);
        const int64_t ignore = k.c == 256 ? -1 : 255;
        Tensor target = test::random_labels(k.s, k.c, 0.15, ignore, k.c == 256 && dt == DType::u8 ? DType::i32 : dt);
        Tensor pred = test::random_labels(k.s, k.c, 0.0, 0, DType::i32);
        Shape ls = k.s;
        ls.insert(ls.begin() + 1, k.c);
        Tensor logits = k.c <= 40 ? tied_logits(ls) : test::randn(ls);
        const auto counts = confusion(k.c, ignoring(ignore));
        test::check_parity({name + " from labels", test::copies_of({pred, target}), counts, {{0, 0}}});
        test::check_parity({name + " from logits", test::copies_of({logits, target}), counts, {{0, 0}}});
        // Mostly correct predictions, as from a trained model, and constant logits (every pixel
        // predicts class 0): most lanes of a warp hit one bin.
        Tensor near = target.clone();
        Tensor flat = near.view({-1});
        for (int64_t i = 0; i < flat.numel(); i += 7) flat.set({i}, static_cast<double>(i % k.c));
        test::check_parity({name + " mostly right", test::copies_of({near, target}), counts, {{0, 0}}});
        test::check_parity({name + " constant logits", test::copies_of({zeros(ls), target}), counts, {{0, 0}}});
      }
    }
    // Accumulated on the device over two batches = one batch of both.
    test::check_parity({"accumulated over two batches",
                        test::copies_of({test::randn({2, 40, 31, 29}), test::random_labels({2, 31, 29}, 40, 0.1, 255),
                                         test::randn({3, 40, 31, 29}), test::random_labels({3, 31, 29}, 40, 0.1, 255)}),
                        [](const std::vector<Tensor>& in) {
                          ops::ConfusionMatrix cm(40, in[0].device(), ignoring(255));
                          cm.update(in[0], in[1]);
                          cm.update(in[2], in[3]);
                          return std::vector<Tensor>{
                              cm.counts(), ops::confusion_matrix(ops::cat({in[0], in[2]}, 0),
                                                                 ops::cat({in[1], in[3]}, 0), 40, ignoring(255))};
                        },
                        {{0, 0}}});
  }

  TEST_CASE("cuda parity: confusion label errors and depth metrics") {
    MTL_REQUIRE_CUDA();
    test::PoisonGuard poison;
    Tensor target = test::random_labels({2, 9, 10}, 7, 0.1, 255);
    target.set({1, 8, 9}, 31);
    target.set({1, 8, 8}, 40);
    CHECK_THROWS_WITH_AS(ops::confusion_matrix(test::randn({2, 7, 9, 10}).cuda(), target.cuda(), 7, ignoring(255)),
                         doctest::Contains("label 40 at [1, 8, 8]"), Error);

    for (Shape s : {Shape{3, 1, 13, 17}, Shape{2, 1, 48, 64}, Shape{1, 4099}}) {
      Tensor t1 = random_depth(s, 0.3), p1 = random_depth(s, 0.0), t2 = random_depth(s, 0.1), p2 = random_depth(s, 0.0);
      p1.set(std::vector<int64_t>(s.size(), 0), -2.0);
      test::check_parity({"depth metrics " + shape_str(s),
                          test::copies_of({p1, t1, p2, t2}),
                          [](const std::vector<Tensor>& in) {
                            ops::DepthMetricAccumulator acc(in[0].device());
                            acc.update(in[0], in[1]), acc.update(in[2], in[3]);
                            return std::vector<Tensor>{acc.state().counts, acc.state().sums};
                          },
                          {{0, 0}, {1e-6, 1e-4}}});
      ops::DepthMetricAccumulator gpu(Device::cuda());
      gpu.update(p1.cuda(), t1.cuda()), gpu.update(p2.cuda(), t2.cuda());
      check_depth(gpu.compute(), reference_depth(ops::cat({p1, p2}, 0), ops::cat({t1, t2}, 0)), 1e-4);
    }
  }

  TEST_CASE("cuda: depth metrics propagate a NaN prediction as the CPU does") {
    MTL_REQUIRE_CUDA();
    check_nan_prediction(Device::cuda());
  }

  TEST_CASE("cuda parity: metrics at a medium ESANet shape") {
    MTL_REQUIRE_CUDA();
    test::check_parity({"confusion of [2, 40, 96, 128] logits",
                        test::copies_of({test::randn({2, 40, 96, 128}), test::random_labels({2, 96, 128}, 40, 0.1, 255)}),
                        [](const std::vector<Tensor>& in) {
                          return std::vector<Tensor>{ops::confusion_matrix(in[0], in[1], 40, ignoring(255))};
                        },
                        {{0, 0}}});
    test::check_parity({"depth metrics of [2, 1, 120, 160]",
                        test::copies_of({random_depth({2, 1, 120, 160}, 0.0), random_depth({2, 1, 120, 160}, 0.3)}),
                        [](const std::vector<Tensor>& in) {
                          ops::DepthMetricAccumulator acc(in[0].device());
                          acc.update(in[0], in[1]);
                          return std::vector<Tensor>{acc.state().counts, acc.state().sums};
                        },
                        {{0, 0}, {1e-6, 1e-4}}});
  }
}
