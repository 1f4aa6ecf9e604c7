// The public inference API <mtl/predictor.h> in the source tree: a run folder (or its three files)
// loaded, a real RGB-D frame predicted in memory with the same labels and depth as the
// train::Predictor behind mtl_predict, single-modality runs without the other image, and bad
// inputs as errors naming what is wrong. test_install.cpp builds a program against the installed
// package.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "mtl/predictor.h"
#include "support/run_folder.h"
#include "train/eval/predict_job.h"
#include "train/log/visuals.h"
#include "train/run/run_folder.h"

using namespace mtl;
using doctest::Contains;

namespace {

const std::string kFrames = std::string(MTL_SHARED_DIR) + "/data/rgbd/";

struct ApiRun {
  test::TempDir tmp{"api"};
  std::string run;
  train::Config cfg;
  explicit ApiRun(train::Config c) : cfg(std::move(c)) {
    run = tmp / "run";
    test::make_run_folder(run, cfg, test::made_up_stats(3.0, 1.5, cfg.model.num_classes));
  }
};

train::Config tiny() { return test::tiny_run_config("no_data"); }

}  // namespace

TEST_CASE("mtl::Predictor predicts a real frame as mtl_predict does") {
  const ApiRun r(tiny());
  const Predictor p = Predictor::from_run(r.run);
  CHECK(p.has_semantic());
  CHECK(p.has_depth());
  CHECK(p.num_classes() == 7);
  CHECK(p.class_names().at(1) == "chamoe");
  CHECK(p.max_depth() == 10.0);
  CHECK(p.input_width() == 160);
  CHECK(p.input_height() == 128);

  const RgbBuffer rgb = read_rgb(kFrames + "nyu_bookstore_rgb.jpg");
  const DepthBuffer depth = read_depth(kFrames + "nyu_bookstore_depth.png");
  REQUIRE(rgb.width == 160);
  REQUIRE(rgb.height == 120);
  const Prediction got = p.predict(rgb.view(), depth.view(0.001));
  CHECK(got.width == 160);
  CHECK(got.height == 120);
  REQUIRE(got.labels.size() == 160u * 120u);
  REQUIRE(got.depth.size() == 160u * 120u);

  // The same image through mtl_predict's path.
  std::vector<std::string> notes;
  const train::PredictInputs in =
      train::read_pair({"f", kFrames + "nyu_bookstore_rgb.jpg", kFrames + "nyu_bookstore_depth.png"}, 0.001);
  const train::Predictor reference(r.cfg, train::load_run_stats(r.run, r.cfg, notes),
                                   {train::load_model(r.cfg, r.run + "/checkpoints/best.safetensors", Device::cpu())},
                                   Device::cpu(), {train::Tta::none, train::InferMode::whole, 1});
  const train::ImagePrediction want = reference.predict({{&in.rgb, &in.depth}}).front();
  CHECK(got.labels == train::labels_from_tensor(want.semantic.squeeze(0)).data);
  CHECK(got.depth == train::depth_from_tensor(want.depth.squeeze(0)).data);
  CHECK(
      std::all_of(got.depth.begin(), got.depth.end(), [](float d) { return std::isfinite(d) && d > 0 && d <= 10.0f; }));

  // The three files of the run give the same predictor.
  const Predictor f = Predictor::from_files(r.run + "/config.yaml", r.run + "/checkpoints/best.safetensors",
                                            r.run + "/mtl_stats.json", "cpu");
  CHECK(f.predict(rgb.view(), depth.view(0.001)).labels == got.labels);
}

TEST_CASE("mtl::Predictor: a model.modality rgb run needs no depth image") {
  train::Config cfg = tiny();
  cfg.model.modality = models::Modality::rgb;
  const ApiRun r(cfg);
  const Predictor p = Predictor::from_run(r.run);
  const RgbBuffer rgb = read_rgb(kFrames + "nyu_bookstore_rgb.jpg");
  const Prediction got = p.predict(rgb.view(), DepthImage{});
  CHECK(got.labels.size() == 160u * 120u);
  CHECK_THROWS_WITH_AS(p.predict(RgbImage{}, DepthImage{}), Contains("no RGB image (rgb.data is null)"), Error);
}

TEST_CASE("mtl::Predictor: bad inputs are errors that say what is wrong") {
  const ApiRun r(tiny());
  CHECK_THROWS_WITH_AS(Predictor::from_run(r.tmp / "nowhere"), Contains("does not exist"), Error);
  CHECK_THROWS_WITH_AS(Predictor::from_run(r.run, {"", "gpu"}), Contains("device must be"), Error);
  CHECK_THROWS_WITH_AS(Predictor::from_run(r.run, {"missing.safetensors", ""}), Contains("missing.safetensors"), Error);
  CHECK_THROWS_WITH_AS(read_rgb(r.tmp / "none.png"), Contains("none.png"), Error);

  const Predictor p = Predictor::from_run(r.run);
  std::vector<uint8_t> rgb(8 * 6 * 3, 100);
  std::vector<uint16_t> depth(8 * 6, 1000);
  CHECK_THROWS_WITH_AS(p.predict({rgb.data(), 8, 6}, {depth.data(), 8, 5, 0.001}),
                       Contains("the RGB image is 8x6 but the depth image is 8x5"), Error);
  CHECK_THROWS_WITH_AS(p.predict({rgb.data(), 8, 6}, {}), Contains("no depth image"), Error);
  CHECK_THROWS_WITH_AS(p.predict({rgb.data(), 8, 6}, {depth.data(), 8, 6, -1.0}),
                       Contains("depth.scale must be a positive number"), Error);
  CHECK_THROWS_WITH_AS(p.predict({rgb.data(), 0, 6}, {depth.data(), 0, 6, 0.001}),
                       Contains("both sides must be positive"), Error);
}
