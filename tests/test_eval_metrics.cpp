// The metrics accumulator that validation and mtl_eval share: a prediction at network
// resolution resized to the ground truth's size and scored against a hand computation.
#include <doctest/doctest.h>

#include <cmath>

#include "core/error.h"
#include "train/eval/metrics.h"
#include "train/eval/predictor.h"

using namespace mtl;
using namespace mtl::train;

TEST_CASE("metrics at the original resolution match a hand computation") {
  // Three classes, the third never labelled nor predicted; the prediction is 2x1 and the ground
  // truth 4x2, so the scores are resized before the argmax (ESANet's evaluation).
  Config cfg;
  cfg.data.classes = {{"a", {0, 0, 0}}, {"b", {255, 0, 0}}, {"c", {0, 255, 0}}};
  cfg.model.num_classes = 3;
  cfg.data.ignore_index = 255;
  cfg.data.max_depth = 8.0;
  // Class scores of the left and right pixel: a wins on the left, b on the right.
  const Tensor logits = from_vector({2, 0, 0, 2, -5, -5}, {1, 3, 1, 2});
  // Normalised depth 0.125 and 0.25: 1 m and 2 m at max_depth 8.
  const Tensor depth01 = from_vector({0.125, 0.25}, {1, 1, 1, 2});
  const ImagePrediction p = resize_prediction(logits, false, depth01, cfg.data.max_depth, 4, 2);
  REQUIRE(p.semantic.shape() == Shape{1, 3, 2, 4});
  REQUIRE(p.depth.shape() == Shape{1, 1, 2, 4});
  // align_corners=False from 2 to 4 columns: weights 1, 3/4, 1/4, 0 on the left pixel, so each
  // row of the depth is 1, 1.25, 1.75, 2 m and the argmax is a, a, b, b.
  const std::vector<double> expected_depth{1, 1.25, 1.75, 2, 1, 1.25, 1.75, 2};
  const std::vector<double> got_depth = p.depth.to_f64_vector();
  for (size_t i = 0; i < expected_depth.size(); ++i) CHECK(got_depth[i] == doctest::Approx(expected_depth[i]));

  ImageI32 labels(4, 2, 1);
  labels.data = {0, 1, 1, 255,  //
                 0, 0, 1, 1};
  ImageF gt(4, 2, 1);
  gt.data = {1.0f, 1.1f, 1.0f, 0.0f,  //
             2.0f, 0.9f, 1.5f, 4.0f};
  MetricsAccumulator acc(cfg, Device::cpu());
  acc.update_image(p.semantic, labels, p.depth, gt);

  // Confusion (rows = label): a->a 3, b->a 1, b->b 3; the ignored pixel is not counted.
  const ops::SegmentationMetrics s = *acc.compute().segmentation;
  CHECK(s.pixels == 7);
  REQUIRE(s.iou.size() == 3);
  CHECK(*s.iou[0] == doctest::Approx(3.0 / 4.0));  // 3 / (3 + 1 false positive)
  CHECK(*s.iou[1] == doctest::Approx(3.0 / 4.0));  // 3 / (3 + 1 false negative)
  CHECK_FALSE(s.iou[2].has_value());
  CHECK(s.miou == doctest::Approx(0.75));
  CHECK(s.pixel_accuracy == doctest::Approx(6.0 / 7.0));

  // Depth over the 7 valid pixels: (prediction, truth) pairs.
  const std::vector<std::pair<double, double>> pairs{{1, 1.0},  {1.25, 1.1}, {1.75, 1.0}, {1, 2.0},
                                                     {1.25, 0.9}, {1.75, 1.5}, {2, 4.0}};
  double abs_rel = 0, sq_rel = 0, se = 0, sle = 0;
  for (auto [pr, t] : pairs) {
    const double tf = static_cast<float>(t);  // the truth as stored
    abs_rel += std::abs(pr - tf) / tf;
    sq_rel += (pr - tf) * (pr - tf) / tf;
    se += (pr - tf) * (pr - tf);
    sle += std::pow(std::log(pr) - std::log(tf), 2);
  }
  const ops::DepthMetrics d = *acc.compute().depth;
  CHECK(d.pixels == 7);
  CHECK(d.abs_rel == doctest::Approx(abs_rel / 7).epsilon(1e-6));
  CHECK(d.sq_rel == doctest::Approx(sq_rel / 7).epsilon(1e-6));
  CHECK(d.rmse == doctest::Approx(std::sqrt(se / 7)).epsilon(1e-6));
  CHECK(d.rmse_log == doctest::Approx(std::sqrt(sle / 7)).epsilon(1e-6));
  // max(p/t, t/p): 1, 1.14, 1.75, 2, 1.39, 1.17, 2 against 1.25, 1.5625, 1.953125.
  CHECK(d.delta1 == doctest::Approx(3.0 / 7));
  CHECK(d.delta2 == doctest::Approx(4.0 / 7));
  CHECK(d.delta3 == doctest::Approx(5.0 / 7));

  ImageI32 wrong(3, 2, 1);
  CHECK_THROWS_WITH_AS(acc.update_image(p.semantic, wrong, p.depth, ImageF()), doctest::Contains("labels' size 3x2"),
                       Error);
}
