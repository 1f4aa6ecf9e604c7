// The multi-task objective: the deep-supervision parts, and how the data sources' weights enter a
// batch's loss (loss.source_weighting normalized and mean) against hand computations.
#include <doctest/doctest.h>

#include "ops/ops.h"
#include "tests/support/random.h"
#include "train/objective/objective.h"

using namespace mtl;
using namespace mtl::train;

namespace {

struct Inputs {
  models::ESANetOutput out;
  Batch batch;
};

// Two images of 8x8 with 3 classes, side outputs at 1/8 (1x1) and the labels for them.
Inputs make_inputs(std::vector<double> weights) {
  Inputs in;
  in.out.semantic = ops::mul_scalar(test::randn({2, 3, 8, 8}), 2.0);
  in.out.side = {test::randn({2, 3, 1, 1})};
  in.out.depth = test::rand({2, 1, 8, 8}, 0.05, 1.0);
  in.batch.labels = test::random_labels({2, 8, 8}, 3, 0.1, 255);
  in.batch.label_scales = {test::random_labels({2, 1, 1}, 3, 0.0, 255)};
  in.batch.depth_target = test::rand({2, 1, 8, 8}, 0.05, 1.0);
  in.batch.sample_weight = from_vector(weights, {2});
  in.batch.source = from_vector({0, 1}, {2}, DType::i32);
  return in;
}

Config config(SourceWeighting w) {
  Config c;
  c.data.classes = {{"a", {0, 0, 0}}, {"b", {0, 0, 0}}, {"c", {0, 0, 0}}};
  c.model.num_classes = 3;
  c.loss.source_weighting = w;
  return c;
}

TaskLosses compute(SourceWeighting w, const Inputs& in) {
  return Objective(config(w), {}, Device::cpu()).compute(in.out, in.batch);
}

Inputs with_weights(const Inputs& in, std::vector<double> w) {
  Inputs out = in;
  out.batch.sample_weight = from_vector(w, {2});
  return out;
}

}  // namespace

TEST_CASE("the semantic loss is the main term plus the side terms, each listed") {
  const Inputs in = make_inputs({1, 1});
  const TaskLosses l = compute(SourceWeighting::normalized, in);
  REQUIRE(l.parts.count("semantic/main"));
  REQUIRE(l.parts.count("semantic/side_8"));
  CHECK(l.parts.size() == 2);
  CHECK(l.task.at("semantic").item() ==
        doctest::Approx(l.parts.at("semantic/main").item() + l.parts.at("semantic/side_8").item()).epsilon(1e-6));
}

TEST_CASE("normalized weighting leaves a one-source batch unscaled; mean scales it") {
  const Inputs ones = make_inputs({1, 1});
  const Inputs half = with_weights(ones, {0.5, 0.5});
  for (const char* task : {"semantic", "depth"}) {
    CAPTURE(task);
    const double n1 = compute(SourceWeighting::normalized, ones).task.at(task).item();
    const double n_half = compute(SourceWeighting::normalized, half).task.at(task).item();
    CHECK(n_half == doctest::Approx(n1).epsilon(1e-6));  // sum(w L) / sum(w): w cancels
    const double m1 = compute(SourceWeighting::mean, ones).task.at(task).item();
    const double m_half = compute(SourceWeighting::mean, half).task.at(task).item();
    CHECK(m_half == doctest::Approx(0.5 * m1).epsilon(1e-6));  // the seed's (1/N) sum_i w_i L_i
  }
}

TEST_CASE("mean weighting is (1/N) sum_i w_i L_i over the images' own losses") {
  const Inputs in = make_inputs({1.0, 0.25});
  const TaskLosses plain = compute(SourceWeighting::mean, with_weights(in, {1, 1}));
  const TaskLosses mean = compute(SourceWeighting::mean, in);
  for (const char* task : {"semantic", "depth"}) {
    CAPTURE(task);
    const std::vector<double> per = plain.per_sample.at(task).to_f64_vector();
    // The per-image losses do not depend on the weights (they report each image's own loss).
    CHECK(mean.per_sample.at(task).to_f64_vector() == per);
    if (std::string(task) == "depth")
      CHECK(mean.task.at(task).item() == doctest::Approx((per[0] + 0.25 * per[1]) / 2).epsilon(1e-6));
  }
  // The semantic task adds the side term, weighted the same way.
  const double main = mean.parts.at("semantic/main").item();
  const std::vector<double> per = plain.per_sample.at("semantic").to_f64_vector();
  CHECK(main == doctest::Approx((per[0] + 0.25 * per[1]) / 2).epsilon(1e-6));
}
