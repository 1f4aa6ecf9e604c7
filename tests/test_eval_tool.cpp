// mtl_eval: metrics at the original resolution against a hand computation and against an
// explicitly assembled pipeline, flip TTA, ensembles and sliding windows against explicit
// references, the speed measurement, the report's shape, and the executable's exit codes,
// messages and files.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "core/error.h"
#include "ops/ops.h"
#include "support/compare.h"
#include "support/gpu.h"
#include "support/random.h"
#include "support/run_folder.h"
#include "train/datagen.h"
#include "train/dataset.h"
#include "train/eval_tool.h"
#include "train/inference.h"
#include "train/model_factory.h"
#include "train/transforms.h"

using namespace mtl;
using namespace mtl::train;
namespace fs = std::filesystem;

namespace {

// ---- independent host references ----

// Softmax over dimension 1 of [N, C, H, W], in double, by plain loops.
Tensor softmax_ref(const Tensor& logits) {
  const int64_t N = logits.size(0), C = logits.size(1), P = logits.size(2) * logits.size(3);
  std::vector<double> v = logits.to_f64_vector(), out(v.size());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t p = 0; p < P; ++p) {
      double mx = -std::numeric_limits<double>::infinity(), sum = 0;
      for (int64_t c = 0; c < C; ++c) mx = std::max(mx, v[(n * C + c) * P + p]);
      for (int64_t c = 0; c < C; ++c) sum += std::exp(v[(n * C + c) * P + p] - mx);
      for (int64_t c = 0; c < C; ++c) out[(n * C + c) * P + p] = std::exp(v[(n * C + c) * P + p] - mx) / sum;
    }
  return from_vector(out, logits.shape());
}

// x mirrored along its last dimension, by plain loops.
Tensor flip_ref(const Tensor& x) {
  const int64_t W = x.size(x.dim() - 1);
  std::vector<double> v = x.to_f64_vector(), out(v.size());
  for (size_t r = 0; r < v.size() / W; ++r)
    for (int64_t i = 0; i < W; ++i) out[r * W + i] = v[r * W + (W - 1 - i)];
  return from_vector(out, x.shape(), x.options());
}

Tensor as_f64(const Tensor& t) { return from_vector(t.to_f64_vector(), t.shape()); }

double max_abs_diff(const Tensor& a, const Tensor& b) {
  std::vector<double> x = a.to_f64_vector(), y = b.to_f64_vector();
  REQUIRE(x.size() == y.size());
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

// A random image: RGB noise and depth between 0.5 and 6 m with a few holes.
struct TestImage {
  ImageU8 rgb;
  ImageF depth;
  InputImage view() const { return {&rgb, &depth}; }
};
TestImage random_image(int w, int h, uint64_t seed) {
  Generator gen(seed);
  std::vector<double> u(static_cast<size_t>(w) * h * 4);
  gen.fill_uniform(u.data(), static_cast<int64_t>(u.size()), 0.0, 1.0);
  TestImage t{ImageU8(w, h, 3), ImageF(w, h, 1)};
  for (size_t i = 0; i < t.rgb.data.size(); ++i) t.rgb.data[i] = static_cast<uint8_t>(u[i] * 255.0);
  for (size_t i = 0; i < t.depth.data.size(); ++i) {
    const double r = u[t.rgb.data.size() + i];
    t.depth.data[i] = r < 0.05 ? 0.0f : static_cast<float>(0.5 + 5.5 * r);
  }
  return t;
}

std::shared_ptr<models::ESANet> fresh_model(const Config& cfg, uint64_t seed_offset = 0) {
  models::ModelConfig mc = model_config(cfg);
  mc.seed += seed_offset;
  auto m = std::make_shared<models::ESANet>(mc);
  m->eval();
  return m;
}

// A generated data set and a run folder whose best checkpoint is a freshly initialised network.
struct RunFixture {
  test::TempDir tmp{"eval_tool"};
  std::string data, run;
  Config cfg;
  RunFixture(int img_w, int img_h, int val, int test_frames = 1) {
    data = tmp / "data";
    run = tmp / "run";
    DatagenOptions g;
    g.out = data;
    g.train = 2;
    g.val = val;
    g.test = test_frames;
    g.size = {img_w, img_h};
    g.seed = 3;
    generate_dataset(g);
    cfg = test::tiny_run_config(data);
    const ScanResult train = scan_split(cfg.data, "train", true);
    const DatasetStats stats = compute_stats(train.dataset);
    test::make_run_folder(run, cfg, stats);
  }
  EvalToolOptions options() const {
    EvalToolOptions o;
    o.run_dir = run;
    o.speed.warmup = 0;
    o.speed.min_runs = 1;
    o.speed.min_seconds = 0;
    return o;
  }
};

}  // namespace

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
  MetricAccumulator acc(cfg, Device::cpu());
  acc.add(p, labels, gt);

  // Confusion (rows = label): a->a 3, b->a 1, b->b 3; the ignored pixel is not counted.
  const ops::SegmentationMetrics s = *acc.segmentation();
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
  const ops::DepthMetrics d = *acc.depth();
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
  CHECK_THROWS_WITH_AS(acc.add(p, wrong, ImageF()), doctest::Contains("labels' size 3x2"), Error);
}

TEST_CASE("softmax_channels and flip_width match plain loops") {
  const Tensor x = ops::mul_scalar(test::randn({2, 5, 3, 7}), 4.0);
  CHECK_CLOSE(as_f64(softmax_channels(x)), softmax_ref(x), 1e-6, 1e-5);
  // Logits far beyond exp's range still give probabilities.
  const Tensor big = from_vector({1000, 999, -1000, 0}, {1, 2, 1, 2});
  CHECK_CLOSE(as_f64(softmax_channels(big)), softmax_ref(big), 1e-7, 1e-6);
  CHECK_CLOSE(flip_width(x), flip_ref(x), 0.0, 0.0);
  const Tensor odd = test::randn({1, 1, 2, 5}).narrow(3, 1, 3);  // a non-contiguous view
  CHECK_CLOSE(flip_width(odd), flip_ref(odd), 0.0, 0.0);
}

TEST_CASE("slide_positions cover the axis with two thirds overlap") {
  CHECK(slide_positions(64, 64) == std::vector<int>{0});
  CHECK(slide_positions(96, 64) == std::vector<int>{0, 21, 32});
  CHECK(slide_positions(80, 64) == std::vector<int>{0, 16});
  for (int len : {97, 200, 641}) {
    const std::vector<int> pos = slide_positions(len, 96);
    std::vector<int> cover(static_cast<size_t>(len), 0);
    for (size_t i = 0; i < pos.size(); ++i) {
      for (int x = pos[i]; x < pos[i] + 96; ++x) ++cover.at(static_cast<size_t>(x));
      if (i) CHECK(pos[i] - pos[i - 1] <= 32);  // overlap of at least 2/3
    }
    CHECK(pos.back() == len - 96);
    for (int c : cover) CHECK(c >= 1);
  }
  CHECK_THROWS_AS(slide_positions(63, 64), Error);
}

TEST_CASE("flip TTA equals the explicit average of the image and its mirror") {
  autograd::NoGradGuard no_grad;
  const Config cfg = test::tiny_run_config("unused", 64, 64);
  auto m = fresh_model(cfg);
  InferenceOptions io;
  io.tta = Tta::flip;
  const Predictor pred(cfg, test::made_up_stats(3.0, 1.5, 7), {m}, Device::cpu(), io);
  CHECK(pred.passes() == 2);
  const Tensor rgb = test::randn({2, 3, 64, 64}), depth = test::randn({2, 1, 64, 64});
  const NetOutput o = pred.forward(rgb, depth);
  REQUIRE(o.probabilities);

  const models::ESANetOutput a = m->forward(rgb, depth);
  const models::ESANetOutput b = m->forward(flip_ref(rgb), flip_ref(depth));
  const Tensor sem_ref = ops::mul_scalar(ops::add(softmax_ref(a.semantic), flip_ref(softmax_ref(b.semantic))), 0.5);
  const Tensor depth_ref = ops::mul_scalar(ops::add(as_f64(a.depth), as_f64(flip_ref(b.depth))), 0.5);
  CHECK_CLOSE(as_f64(o.semantic), sem_ref, 1e-6, 1e-5);
  CHECK_CLOSE(as_f64(o.depth), depth_ref, 1e-6, 1e-5);
  // The mirrored pass did contribute: the network is not mirror-symmetric.
  CHECK(max_abs_diff(o.semantic, softmax_ref(a.semantic)) > 1e-6);
  CHECK(max_abs_diff(o.depth, a.depth) > 1e-7);
}

TEST_CASE("an ensemble of one model equals the model") {
  autograd::NoGradGuard no_grad;
  const Config cfg = test::tiny_run_config("unused", 64, 64);
  auto m = fresh_model(cfg);
  const Predictor pred(cfg, test::made_up_stats(3.0, 1.5, 7), {m}, Device::cpu());
  CHECK(pred.passes() == 1);
  const Tensor rgb = test::randn({2, 3, 64, 64}), depth = test::randn({2, 1, 64, 64});
  const NetOutput o = pred.forward(rgb, depth);
  const models::ESANetOutput ref = m->forward(rgb, depth);
  CHECK_FALSE(o.probabilities);  // one pass: the logits themselves, as ESANet evaluates
  CHECK_CLOSE(o.semantic, ref.semantic, 0.0, 0.0);
  CHECK_CLOSE(o.depth, ref.depth, 0.0, 0.0);
}

TEST_CASE("an ensemble of a model with itself equals the model") {
  autograd::NoGradGuard no_grad;
  const Config cfg = test::tiny_run_config("unused", 64, 64);
  auto m = fresh_model(cfg);
  auto twin = fresh_model(cfg, 1);
  twin->load_state_dict(m->state_dict());
  const Predictor pred(cfg, test::made_up_stats(3.0, 1.5, 7), {m, twin}, Device::cpu());
  const Tensor rgb = test::randn({1, 3, 64, 64}), depth = test::randn({1, 1, 64, 64});
  const NetOutput o = pred.forward(rgb, depth);
  const models::ESANetOutput ref = m->forward(rgb, depth);
  REQUIRE(o.probabilities);
  CHECK_CLOSE(o.semantic, softmax_channels(ref.semantic), 0.0, 0.0);
  CHECK_CLOSE(o.depth, ref.depth, 0.0, 0.0);
  CHECK_CLOSE(as_f64(o.semantic), softmax_ref(ref.semantic), 1e-6, 1e-5);
}

TEST_CASE("an ensemble of two models averages their probabilities and depth") {
  autograd::NoGradGuard no_grad;
  const Config cfg = test::tiny_run_config("unused", 64, 64);
  auto m1 = fresh_model(cfg), m2 = fresh_model(cfg, 11);
  const Predictor pred(cfg, test::made_up_stats(3.0, 1.5, 7), {m1, m2}, Device::cpu());
  const Tensor rgb = test::randn({2, 3, 64, 64}), depth = test::randn({2, 1, 64, 64});
  const NetOutput o = pred.forward(rgb, depth);
  const models::ESANetOutput a = m1->forward(rgb, depth), b = m2->forward(rgb, depth);
  CHECK_CLOSE(as_f64(o.semantic), ops::mul_scalar(ops::add(softmax_ref(a.semantic), softmax_ref(b.semantic)), 0.5),
              1e-6, 1e-5);
  CHECK_CLOSE(as_f64(o.depth), ops::mul_scalar(ops::add(as_f64(a.depth), as_f64(b.depth)), 0.5), 1e-6, 1e-5);
  CHECK(max_abs_diff(a.depth, b.depth) > 1e-6);  // two different networks
}

TEST_CASE("slide mode on an image of the network input size equals whole mode") {
  const Config cfg = test::tiny_run_config("unused", 64, 64);
  InferenceOptions whole_opt, slide_opt;
  slide_opt.mode = InferMode::slide;
  auto m = fresh_model(cfg);
  const DatasetStats stats = test::made_up_stats(3.0, 1.5, 7);
  const Predictor whole(cfg, stats, {m}, Device::cpu(), whole_opt), slide(cfg, stats, {m}, Device::cpu(), slide_opt);
  const TestImage img = random_image(64, 64, 5);
  const ImagePrediction w = whole.predict({img.view()}).front();
  // One window: the windowed pass sees exactly the whole-image input.
  const ImagePrediction s = slide.predict_slide(img.view());
  REQUIRE(s.probabilities);
  CHECK_CLOSE(s.semantic, softmax_channels(w.semantic), 0.0, 0.0);
  CHECK_CLOSE(s.depth, w.depth, 0.0, 0.0);
  // And predict() in slide mode takes the whole-image path for it.
  const ImagePrediction s2 = slide.predict({img.view()}).front();
  CHECK_CLOSE(s2.semantic, w.semantic, 0.0, 0.0);
}

TEST_CASE("slide mode averages the overlapping windows") {
  autograd::NoGradGuard no_grad;
  const Config cfg = test::tiny_run_config("unused", 64, 64);
  InferenceOptions io;
  io.mode = InferMode::slide;
  io.batch = 4;
  auto m = fresh_model(cfg);
  const DatasetStats stats = test::made_up_stats(3.0, 1.5, 7);
  const Predictor slide(cfg, stats, {m}, Device::cpu(), io);
  const TestImage img = random_image(96, 80, 9);
  const ImagePrediction s = slide.predict({img.view()}).front();
  REQUIRE(s.semantic.shape() == Shape{1, 7, 80, 96});
  REQUIRE(s.depth.shape() == Shape{1, 1, 80, 96});

  // The reference: every window cut out by hand, predicted alone, summed and divided per pixel.
  const std::vector<int> xs{0, 21, 32}, ys{0, 16};
  const int C = 7, W = 96, H = 80;
  std::vector<double> sem(static_cast<size_t>(C) * W * H, 0.0), dep(static_cast<size_t>(W) * H, 0.0),
      count(static_cast<size_t>(W) * H, 0.0);
  const Predictor whole(cfg, stats, {m}, Device::cpu());
  for (int y0 : ys)
    for (int x0 : xs) {
      const TestImage win{crop(img.rgb, x0, y0, 64, 64), crop(img.depth, x0, y0, 64, 64)};
      auto [rgb, depth] = whole.network_inputs({win.view()});
      const models::ESANetOutput o = m->forward(rgb, depth);
      const std::vector<double> p = softmax_ref(o.semantic).to_f64_vector(), d = o.depth.to_f64_vector();
      for (int y = 0; y < 64; ++y)
        for (int x = 0; x < 64; ++x) {
          const size_t at = static_cast<size_t>(y0 + y) * W + (x0 + x);
          for (int c = 0; c < C; ++c)
            sem[static_cast<size_t>(c) * W * H + at] += p[(static_cast<size_t>(c) * 64 + y) * 64 + x];
          dep[at] += d[static_cast<size_t>(y) * 64 + x] * cfg.data.max_depth;
          count[at] += 1;
        }
    }
  for (size_t i = 0; i < count.size(); ++i) {
    REQUIRE(count[i] >= 1);
    dep[i] /= count[i];
    for (int c = 0; c < C; ++c) sem[static_cast<size_t>(c) * W * H + i] /= count[i];
  }
  CHECK(count[0] == 1);
  CHECK(count[static_cast<size_t>(40) * W + 40] == 6);  // inside all six windows
  CHECK_CLOSE(as_f64(s.semantic), from_vector(sem, {1, C, H, W}), 1e-6, 1e-5);
  CHECK_CLOSE(as_f64(s.depth), from_vector(dep, {1, 1, H, W}), 1e-5, 1e-5);
}

TEST_CASE("slide mode stretches a side shorter than the input and returns the image size") {
  const Config cfg = test::tiny_run_config("unused", 64, 64);
  InferenceOptions io;
  io.mode = InferMode::slide;
  const Predictor slide(cfg, test::made_up_stats(3.0, 1.5, 7), {fresh_model(cfg)}, Device::cpu(), io);
  const TestImage img = random_image(100, 40, 4);
  const ImagePrediction s = slide.predict({img.view()}).front();
  REQUIRE(s.semantic.shape() == Shape{1, 7, 40, 100});
  REQUIRE(s.depth.shape() == Shape{1, 1, 40, 100});
  const std::vector<double> p = s.semantic.to_f64_vector();
  const size_t plane = 40 * 100;
  for (size_t i = 0; i < plane; i += 97) {
    double sum = 0;
    for (int c = 0; c < 7; ++c) sum += p[c * plane + i];
    CHECK(sum == doctest::Approx(1.0).epsilon(1e-5));
  }
  for (double d : s.depth.to_f64_vector()) CHECK((d > 0 && d < cfg.data.max_depth));
}

TEST_CASE("evaluation of a run folder scores every image at its original resolution") {
  // 200x150 images against a 160x128 network input.
  RunFixture f(200, 150, 3);
  test::TempDir out("eval_tool_out");
  EvalToolOptions o = f.options();
  o.visuals = 2;
  o.json_path = out / "report/val.json";
  const EvalReport r = run_evaluation(o);
  CHECK(r.images == 3);
  CHECK(r.checkpoints == std::vector<std::string>{f.run + "/checkpoints/best.safetensors"});
  REQUIRE(r.segmentation.has_value());
  REQUIRE(r.depth.has_value());
  CHECK(r.segmentation->pixels == 3 * 200 * 150);  // every label pixel, none at 160x128

  // The same evaluation assembled by hand: the loader's preprocessing, the network, the logits
  // and depth resized to each ground truth's size, and the metric ops.
  {
    autograd::NoGradGuard no_grad;
    const Config cfg = load_run_config(f.run);
    const DatasetStats stats = load_stats(f.run + "/mtl_stats.json");
    auto m = load_model(cfg, f.run + "/checkpoints/best.safetensors", Device::cpu());
    const ScanResult val = scan_split(cfg.data, "val", true);
    Tensor conf = zeros({7, 7}, DType::i64);
    ops::DepthMetricState st = ops::DepthMetricState::zeros(Device::cpu());
    const AugmentConfig ac = AugmentConfig::evaluation(cfg);
    for (size_t i = 0; i < val.dataset.size(); ++i) {
      const Sample s = val.dataset.load(i);
      const Prepared pr = prepare(s, draw_augment(ac, 0, 0, static_cast<int64_t>(i)), ac);
      Tensor rgb = empty({1, 3, 128, 160}), depth = empty({1, 1, 128, 160});
      normalize_rgb(pr.rgb, rgb.data<float>());
      depth_input(pr.depth, stats.depth_mean, stats.depth_std, depth.data<float>());
      const models::ESANetOutput net = m->forward(rgb, depth);
      const int w = s.labels.width, h = s.labels.height;
      ops::ConfusionOptions co;
      co.ignore_index = cfg.data.ignore_index;
      ops::accumulate_confusion(conf, ops::interpolate_bilinear(net.semantic, h, w),
                                from_data(s.labels.data.data(), {1, h, w}), co);
      ops::accumulate_depth_metrics(st, ops::mul_scalar(ops::interpolate_bilinear(net.depth, h, w), cfg.data.max_depth),
                                    from_data(s.depth.data.data(), {1, 1, h, w}));
    }
    const ops::SegmentationMetrics seg = ops::segmentation_metrics(conf);
    const ops::DepthMetrics dep = ops::depth_metrics(st);
    CHECK(r.segmentation->miou == doctest::Approx(seg.miou).epsilon(1e-12));
    CHECK(r.segmentation->pixel_accuracy == doctest::Approx(seg.pixel_accuracy).epsilon(1e-12));
    for (size_t c = 0; c < seg.iou.size(); ++c) {
      CHECK(r.segmentation->iou[c].has_value() == seg.iou[c].has_value());
      if (seg.iou[c]) CHECK(*r.segmentation->iou[c] == doctest::Approx(*seg.iou[c]).epsilon(1e-12));
    }
    CHECK(r.depth->pixels == dep.pixels);
    CHECK(r.depth->rmse == doctest::Approx(dep.rmse).epsilon(1e-9));
    CHECK(r.depth->abs_rel == doctest::Approx(dep.abs_rel).epsilon(1e-9));
    CHECK(r.depth->delta1 == doctest::Approx(dep.delta1).epsilon(1e-9));
  }

  // The report: exactly the documented keys, in order; the panels beside it.
  const nlohmann::json j = nlohmann::json::parse(test::read_text(o.json_path));
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  std::sort(keys.begin(), keys.end());
  CHECK(keys == std::vector<std::string>{"checkpoint", "depth", "images", "semantic", "speed", "split"});
  CHECK(j["checkpoint"] == f.run + "/checkpoints/best.safetensors");
  CHECK(j["split"] == "val");
  CHECK(j["images"] == 3);
  CHECK(j["semantic"].size() == 3);
  CHECK(j["semantic"]["per_class_iou"].size() == 7);
  CHECK(j["semantic"]["per_class_iou"].contains("topdownfarm"));
  CHECK(j["semantic"]["miou"].get<double>() == doctest::Approx(r.segmentation->miou));
  CHECK(j["depth"].size() == 7);
  CHECK(j["depth"]["rmse"].get<double>() == doctest::Approx(r.depth->rmse));
  CHECK(j["speed"].size() == 4);
  CHECK(j["speed"]["batch"] == 2);  // eval.batch_size
  CHECK(j["speed"]["latency_ms"].get<double>() > 0);
  CHECK(j["speed"]["images_per_s"].get<double>() > 0);
  CHECK_FALSE(j["speed"]["device"].get<std::string>().empty());
  REQUIRE(r.visuals.size() == 2);
  for (const std::string& v : r.visuals) {
    CHECK(fs::path(v).parent_path() == fs::path(o.json_path).parent_path());
    const ImageInfo info = read_image_info(v);
    CHECK(info.height == 150);  // panels at the original resolution
  }
  CHECK_FALSE(fs::exists(f.run + "/eval_val"));
}

TEST_CASE("slide mode ensembles and TTA agree with whole mode where they must") {
  // Images exactly the network input: one window, and no resizing anywhere.
  RunFixture f(160, 128, 2);
  const EvalReport base = run_evaluation(f.options());
  REQUIRE(base.segmentation.has_value());
  auto same = [&](const EvalReport& r) {
    REQUIRE(r.segmentation.has_value());
    REQUIRE(r.depth.has_value());
    CHECK(r.segmentation->miou == doctest::Approx(base.segmentation->miou).epsilon(1e-12));
    CHECK(r.segmentation->pixel_accuracy == doctest::Approx(base.segmentation->pixel_accuracy).epsilon(1e-12));
    CHECK(r.depth->rmse == doctest::Approx(base.depth->rmse).epsilon(1e-9));
    CHECK(r.depth->abs_rel == doctest::Approx(base.depth->abs_rel).epsilon(1e-9));
  };
  {  // slide
    EvalToolOptions o = f.options();
    o.inference.mode = InferMode::slide;
    same(run_evaluation(o));
  }
  {  // an ensemble of one named checkpoint
    EvalToolOptions o = f.options();
    o.checkpoints = {"best.safetensors"};
    same(run_evaluation(o));
  }
  {  // an ensemble of the model with itself
    EvalToolOptions o = f.options();
    o.checkpoints = {"best.safetensors", f.run + "/checkpoints/best.safetensors"};
    const EvalReport r = run_evaluation(o);
    CHECK(r.checkpoints.size() == 2);
    same(r);
    CHECK(eval_report_json(r)["checkpoint"].is_array());
  }
  {  // flip TTA changes the result
    EvalToolOptions o = f.options();
    o.inference.tta = Tta::flip;
    const EvalReport r = run_evaluation(o);
    CHECK(r.depth->rmse != doctest::Approx(base.depth->rmse).epsilon(1e-9));
  }
}

TEST_CASE("the run's last checkpoint is used with a note when there is no best one") {
  test::TempDir tmp("eval_tool_ckpt");
  const std::string run = tmp / "run";
  const Config cfg = test::tiny_run_config(tmp / "data");
  test::make_run_folder(run, cfg, test::made_up_stats(3, 1, 7), false, true);
  std::vector<std::string> notes;
  CHECK(resolve_checkpoints(run, {}, notes) == std::vector<std::string>{run + "/checkpoints/last.safetensors"});
  REQUIRE(notes.size() == 1);
  CHECK(notes[0].find("last") != std::string::npos);
  notes.clear();
  CHECK(resolve_checkpoints(run, {"last.safetensors"}, notes) ==
        std::vector<std::string>{run + "/checkpoints/last.safetensors"});
  CHECK(notes.empty());
  CHECK_THROWS_WITH_AS(resolve_checkpoints(run, {"best.safetensors"}, notes), doctest::Contains("best.safetensors"),
                       Error);
  fs::remove(run + "/checkpoints/last.safetensors");
  CHECK_THROWS_WITH_AS(resolve_checkpoints(run, {}, notes), doctest::Contains("has no checkpoint"), Error);

  // Statistics: the run's own file, else the data root's cache with a note, else an error.
  fs::remove(run + "/mtl_stats.json");
  CHECK_THROWS_WITH_AS(load_run_stats(run, cfg, notes), doctest::Contains("mtl_stats.json"), Error);
  fs::create_directories(tmp / "data");
  test::make_run_folder(tmp / "elsewhere", cfg, test::made_up_stats(2.5, 1.25, 7));
  fs::copy_file(tmp / "elsewhere/mtl_stats.json", tmp / "data/mtl_stats.json");
  notes.clear();
  CHECK(load_run_stats(run, cfg, notes).depth_mean == 2.5);
  CHECK(notes.size() == 1);
}

TEST_CASE("the report leaves out absent tasks and writes absent classes as null") {
  EvalReport r;
  r.checkpoints = {"a.safetensors"};
  r.split = "test";
  r.images = 4;
  r.class_names = {"x", "y"};
  ops::SegmentationMetrics s;
  s.iou = {0.5, std::nullopt};
  s.miou = 0.5;
  s.pixel_accuracy = 0.75;
  s.pixels = 10;
  r.segmentation = s;
  r.speed = {"Some CPU", 8, 12.5, 80.0};
  const nlohmann::ordered_json j = eval_report_json(r);
  CHECK(j.dump() ==
        R"({"checkpoint":"a.safetensors","split":"test","images":4,"semantic":{"miou":0.5,"pixel_accuracy":0.75,)"
        R"("per_class_iou":{"x":0.5,"y":null}},)"
        R"("speed":{"device":"Some CPU","batch":8,"latency_ms":12.5,"images_per_s":80.0}})");
  const std::string table = format_eval_report(r);
  CHECK(table.find("absent") != std::string::npos);
  CHECK(table.find("0.5000") != std::string::npos);
  CHECK(table.find("Some CPU") != std::string::npos);
  CHECK(table.find("depth") == std::string::npos);
  r.class_names = {"x"};
  CHECK_THROWS_AS(eval_report_json(r), Error);
}

TEST_CASE("measure_speed times batch 1 and the requested batch") {
  const Config cfg = test::tiny_run_config("unused", 64, 64);
  const Predictor pred(cfg, test::made_up_stats(3.0, 1.5, 7), {fresh_model(cfg)}, Device::cpu());
  SpeedOptions so;
  so.warmup = 1;
  so.min_runs = 2;
  so.min_seconds = 0;
  const SpeedResult s = measure_speed(pred, test::randn({1, 3, 64, 64}), test::randn({1, 1, 64, 64}), 3, so);
  CHECK(s.batch == 3);
  CHECK(s.latency_ms > 0);
  CHECK(s.images_per_s > 0);
  CHECK(s.device == device_display_name(Device::cpu()));
  CHECK_FALSE(s.device.empty());
  CHECK_THROWS_AS(measure_speed(pred, test::randn({2, 3, 64, 64}), test::randn({2, 1, 64, 64}), 1, so), Error);
}

TEST_SUITE("cuda") {
TEST_CASE("inference and metrics on CUDA match the CPU") {
  MTL_REQUIRE_GPU();  // cuDNN
  autograd::NoGradGuard no_grad;
  const bool tf32 = cuda::allow_tf32();
  cuda::set_allow_tf32(false);
  test::PoisonGuard poison;
  const Tensor x = test::randn({2, 7, 5, 9});
  CHECK_CLOSE(softmax_channels(x.cuda()).cpu(), softmax_channels(x), 1e-6, 1e-5);
  CHECK_CLOSE(flip_width(x.cuda()).cpu(), flip_ref(x), 0.0, 0.0);

  const Config cfg = test::tiny_run_config("unused", 64, 64);
  auto cpu_model = fresh_model(cfg), gpu_model = fresh_model(cfg);
  gpu_model->load_state_dict(cpu_model->state_dict());
  gpu_model->to(Device::cuda());
  InferenceOptions io;
  io.tta = Tta::flip;
  io.mode = InferMode::slide;
  io.batch = 3;
  const DatasetStats stats = test::made_up_stats(3.0, 1.5, 7);
  const Predictor on_cpu(cfg, stats, {cpu_model}, Device::cpu(), io);
  const Predictor on_gpu(cfg, stats, {gpu_model}, Device::cuda(), io);
  const TestImage img = random_image(96, 80, 21);
  const ImagePrediction a = on_cpu.predict({img.view()}).front(), b = on_gpu.predict({img.view()}).front();
  CHECK(b.semantic.is_cuda());
  CHECK(test::relative_error(b.semantic.cpu(), a.semantic) < 1e-4);
  CHECK(test::relative_error(b.depth.cpu(), a.depth) < 1e-4);

  // The same ground truth scored on either device.
  ImageI32 labels(96, 80, 1);
  for (size_t i = 0; i < labels.data.size(); ++i) labels.data[i] = static_cast<int32_t>(i % 7);
  MetricAccumulator ma(cfg, Device::cpu()), mb(cfg, Device::cuda());
  ma.add(a, labels, img.depth);
  mb.add(b, labels, img.depth);
  CHECK(mb.segmentation()->pixels == ma.segmentation()->pixels);
  // Argmax near-ties may flip between devices: a few pixels of 7680 at most.
  CHECK(std::abs(mb.segmentation()->pixel_accuracy - ma.segmentation()->pixel_accuracy) < 0.005);
  CHECK(mb.depth()->rmse == doctest::Approx(ma.depth()->rmse).epsilon(1e-4));

  SpeedOptions so;
  so.min_runs = 2;
  so.min_seconds = 0;
  const SpeedResult s = measure_speed(on_gpu, test::randn({1, 3, 64, 64}), test::randn({1, 1, 64, 64}), 4, so);
  CHECK(s.device == cuda::device_name());
  CHECK(s.images_per_s > 0);
  cuda::set_allow_tf32(tf32);
}
}

#ifdef MTL_EVAL_EXE
TEST_CASE("mtl_eval writes the table and the JSON report and fails clearly") {
  RunFixture f(192, 144, 2);
  test::TempDir out("eval_tool_app");
  const std::string exe = MTL_EVAL_EXE;
  const std::string json = out / "r/eval.json";
  {
    const auto r = test::run_command(exe + " " + f.run + " --split test --json " + json + " --visuals 1 --speed-runs 1",
                                     out);
    INFO(r.err);
    CHECK(r.status == 0);
    CHECK(r.out.find("mIoU") != std::string::npos);
    CHECK(r.out.find("topdownfarm") != std::string::npos);
    CHECK(r.out.find("delta1") != std::string::npos);
    CHECK(r.out.find("ms/image") != std::string::npos);
    const nlohmann::json j = nlohmann::json::parse(test::read_text(json));
    CHECK(j["split"] == "test");
    CHECK(j["images"] == 1);
    CHECK(fs::exists(out / "r/panel_000000.png"));
  }
  auto fails = [&](const std::string& args, int status, const std::string& names) {
    const std::string bad_json = out / "bad/eval.json";
    const auto r = test::run_command(exe + " " + args + " --json " + bad_json, out);
    CHECK(r.status == status);
    CHECK(r.err.find("mtl_eval: error: ") == 0);
    CHECK(r.err.find(names) != std::string::npos);
    CHECK_FALSE(fs::exists(bad_json));
    CHECK_FALSE(fs::exists(out / "bad"));
  };
  fails(f.run + " --split training", 2, "'training'");
  fails(f.run + " --tta mirror", 2, "--tta");
  fails(out / "no_such_run", 2, out / "no_such_run");
  fails(f.run + " --checkpoint gone.safetensors", 1, "gone.safetensors");
  fails(f.run + " --data " + (out / "nowhere"), 1, "nowhere");
  fs::remove(f.run + "/checkpoints/best.safetensors");
  fails(f.run, 1, "best.safetensors");
  CHECK_FALSE(fs::exists(f.run + "/eval_val"));
}
#endif
