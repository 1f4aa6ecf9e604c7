// Predictor: flip TTA, ensembles and sliding windows against explicit references (windows cut by
// hand, mirrored inputs, probabilities averaged by plain loops), and CUDA against the CPU.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "core/error.h"
#include "ops/ops.h"
#include "tests/support/compare.h"
#include "tests/support/gpu.h"
#include "tests/support/random.h"
#include "tests/support/references.h"
#include "tests/support/run_folder.h"
#include "train/data/transforms.h"
#include "train/eval/metrics.h"
#include "train/eval/predictor.h"
#include "train/eval/speed.h"

using namespace mtl;
using namespace mtl::train;

namespace {

Tensor as_f64(const Tensor& t) { return ops::to(t, DType::f64); }

// A CPU predictor over `models` with made-up statistics and TTA `tta` at `scales`.
Predictor cpu_predictor(const Config& cfg, std::vector<std::shared_ptr<models::ESANet>> models, Tta tta = Tta::none,
                        std::vector<double> scales = {}) {
  InferenceOptions io;
  io.tta = tta;
  if (!scales.empty()) io.scales = std::move(scales);
  return Predictor(cfg, test::made_up_stats(3.0, 1.5, 7), std::move(models), Device::cpu(), io);
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  std::vector<double> x = a.to_f64_vector(), y = b.to_f64_vector();
  REQUIRE(x.size() == y.size());
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

}  // namespace

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
  auto m = test::fresh_model(cfg);
  const Predictor pred = cpu_predictor(cfg, {m}, Tta::flip);
  CHECK(pred.passes() == 2);
  const Tensor rgb = test::randn({2, 3, 64, 64}), depth = test::randn({2, 1, 64, 64});
  const NetOutput o = pred.forward(rgb, depth);
  REQUIRE(o.probabilities);

  const models::ESANetOutput a = m->forward(rgb, depth);
  const models::ESANetOutput b = m->forward(test::flip_ref(rgb), test::flip_ref(depth));
  const Tensor sem_ref = ops::mul_scalar(ops::add(test::softmax_ref(a.semantic, 1), test::flip_ref(test::softmax_ref(b.semantic, 1))), 0.5);
  const Tensor depth_ref = ops::mul_scalar(ops::add(as_f64(a.depth), as_f64(test::flip_ref(b.depth))), 0.5);
  CHECK_CLOSE(as_f64(o.semantic), sem_ref, 1e-6, 1e-5);
  CHECK_CLOSE(as_f64(o.depth), depth_ref, 1e-6, 1e-5);
  // The mirrored pass did contribute: the network is not mirror-symmetric.
  CHECK(max_abs_diff(o.semantic, test::softmax_ref(a.semantic, 1)) > 1e-6);
  CHECK(max_abs_diff(o.depth, a.depth) > 1e-7);
}

TEST_CASE("multiscale TTA equals the hand average of the scaled predictions") {
  autograd::NoGradGuard no_grad;
  const Config cfg = test::tiny_run_config("unused", 64, 64);
  auto m = test::fresh_model(cfg);
  const Predictor pred = cpu_predictor(cfg, {m}, Tta::multiscale, {0.5, 1.0, 1.5});
  CHECK(pred.passes() == 3);
  const Tensor rgb = test::randn({2, 3, 64, 64}), depth = test::randn({2, 1, 64, 64});
  const NetOutput o = pred.forward(rgb, depth);
  REQUIRE(o.probabilities);
  Tensor sem, dep;
  for (int64_t side : {32, 64, 96}) {  // 0.5, 1 and 1.5 times 64
    const Tensor r = side == 64 ? rgb : ops::interpolate_bilinear(rgb, side, side);
    const Tensor d = side == 64 ? depth : ops::interpolate_nearest(depth, side, side);
    const models::ESANetOutput out = m->forward(r, d);
    Tensor p = ops::softmax(out.semantic, 1), q = out.depth;
    if (side != 64) p = ops::interpolate_bilinear(p, 64, 64), q = ops::interpolate_bilinear(q, 64, 64);
    sem = sem.defined() ? ops::add(sem, p) : p;
    dep = dep.defined() ? ops::add(dep, q) : q;
  }
  CHECK_CLOSE(o.semantic, ops::mul_scalar(sem, 1.0 / 3), 1e-6, 1e-5);
  CHECK_CLOSE(o.depth, ops::mul_scalar(dep, 1.0 / 3), 1e-6, 1e-5);
  // The scaled passes did contribute.
  CHECK(max_abs_diff(o.semantic, ops::softmax(m->forward(rgb, depth).semantic, 1)) > 1e-6);
  // multiscale_flip adds each scale's mirror: six passes.
  CHECK(cpu_predictor(cfg, {m}, Tta::multiscale_flip, {0.5, 1.0, 1.5}).passes() == 6);
}

TEST_CASE("TTA views: sides rounded to multiples of 32, the plain view first") {
  const TtaOptions o{Tta::multiscale_flip, {1.25, 0.75, 1.0}};
  const std::vector<TtaView> v = tta_views(o, 128, 160);
  REQUIRE(v.size() == 6);
  CHECK((v[0].height == 128 && v[0].width == 160 && !v[0].flip));  // scale 1 moved first
  CHECK(v[1].flip);
  CHECK((v[2].height == 160 && v[2].width == 192));  // 1.25: 160 and 200 -> 192
  CHECK((v[4].height == 96 && v[4].width == 128));   // 0.75: 96 and 120 -> 128
  CHECK(tta_views({Tta::none, {}}, 64, 96).size() == 1);
  CHECK(tta_views({Tta::multiscale, {0.1}}, 64, 64).front().height == 32);  // at least 32
  CHECK_THROWS_WITH_AS(tta_views({Tta::multiscale, {}}, 64, 64), doctest::Contains("at least one scale"), Error);
}

TEST_CASE("an ensemble of one model equals the model") {
  autograd::NoGradGuard no_grad;
  const Config cfg = test::tiny_run_config("unused", 64, 64);
  auto m = test::fresh_model(cfg);
  const Predictor pred = cpu_predictor(cfg, {m});
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
  auto m = test::fresh_model(cfg);
  auto twin = test::fresh_model(cfg, 1);
  twin->load_state_dict(m->state_dict());
  const Predictor pred = cpu_predictor(cfg, {m, twin});
  const Tensor rgb = test::randn({1, 3, 64, 64}), depth = test::randn({1, 1, 64, 64});
  const NetOutput o = pred.forward(rgb, depth);
  const models::ESANetOutput ref = m->forward(rgb, depth);
  REQUIRE(o.probabilities);
  CHECK_CLOSE(o.semantic, ops::softmax(ref.semantic, 1), 0.0, 0.0);
  CHECK_CLOSE(o.depth, ref.depth, 0.0, 0.0);
  CHECK_CLOSE(as_f64(o.semantic), test::softmax_ref(ref.semantic, 1), 1e-6, 1e-5);
}

TEST_CASE("an ensemble of two models averages their probabilities and depth") {
  autograd::NoGradGuard no_grad;
  const Config cfg = test::tiny_run_config("unused", 64, 64);
  auto m1 = test::fresh_model(cfg), m2 = test::fresh_model(cfg, 11);
  const Predictor pred = cpu_predictor(cfg, {m1, m2});
  const Tensor rgb = test::randn({2, 3, 64, 64}), depth = test::randn({2, 1, 64, 64});
  const NetOutput o = pred.forward(rgb, depth);
  const models::ESANetOutput a = m1->forward(rgb, depth), b = m2->forward(rgb, depth);
  CHECK_CLOSE(as_f64(o.semantic), ops::mul_scalar(ops::add(test::softmax_ref(a.semantic, 1), test::softmax_ref(b.semantic, 1)), 0.5),
              1e-6, 1e-5);
  CHECK_CLOSE(as_f64(o.depth), ops::mul_scalar(ops::add(as_f64(a.depth), as_f64(b.depth)), 0.5), 1e-6, 1e-5);
  CHECK(max_abs_diff(a.depth, b.depth) > 1e-6);  // two different networks
}

TEST_CASE("slide mode on an image of the network input size equals whole mode") {
  const Config cfg = test::tiny_run_config("unused", 64, 64);
  InferenceOptions whole_opt, slide_opt;
  slide_opt.mode = InferMode::slide;
  auto m = test::fresh_model(cfg);
  const DatasetStats stats = test::made_up_stats(3.0, 1.5, 7);
  const Predictor whole(cfg, stats, {m}, Device::cpu(), whole_opt), slide(cfg, stats, {m}, Device::cpu(), slide_opt);
  const test::TestImage img = test::random_image(64, 64, 5);
  const ImagePrediction w = whole.predict({img.view()}).front();
  // One window: the windowed pass sees exactly the whole-image input.
  const ImagePrediction s = slide.predict_slide(img.view());
  REQUIRE(s.probabilities);
  CHECK_CLOSE(s.semantic, ops::softmax(w.semantic, 1), 0.0, 0.0);
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
  auto m = test::fresh_model(cfg);
  const DatasetStats stats = test::made_up_stats(3.0, 1.5, 7);
  const Predictor slide(cfg, stats, {m}, Device::cpu(), io);
  const test::TestImage img = test::random_image(96, 80, 9);
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
      const test::TestImage win{crop(img.rgb, x0, y0, 64, 64), crop(img.depth, x0, y0, 64, 64)};
      auto [rgb, depth] = whole.network_inputs({win.view()});
      const models::ESANetOutput o = m->forward(rgb, depth);
      const std::vector<double> p = test::softmax_ref(o.semantic, 1).to_f64_vector(), d = o.depth.to_f64_vector();
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
  const Predictor slide(cfg, test::made_up_stats(3.0, 1.5, 7), {test::fresh_model(cfg)}, Device::cpu(), io);
  const test::TestImage img = test::random_image(100, 40, 4);
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

TEST_SUITE("cuda") {
TEST_CASE("inference and metrics on CUDA match the CPU") {
  MTL_REQUIRE_CUDA();  // cuDNN, emulated on the CPU execution layer
  autograd::NoGradGuard no_grad;
  const bool tf32 = cuda::allow_tf32();
  cuda::set_allow_tf32(false);
  test::PoisonGuard poison;
  const Config cfg = test::tiny_run_config("unused", 64, 64);
  auto cpu_model = test::fresh_model(cfg), gpu_model = test::fresh_model(cfg);
  gpu_model->load_state_dict(cpu_model->state_dict());
  gpu_model->to(Device::cuda());
  InferenceOptions io;
  io.tta = Tta::flip;
  io.mode = InferMode::slide;
  io.batch = 3;
  const DatasetStats stats = test::made_up_stats(3.0, 1.5, 7);
  const Predictor on_cpu(cfg, stats, {cpu_model}, Device::cpu(), io);
  const Predictor on_gpu(cfg, stats, {gpu_model}, Device::cuda(), io);
  const test::TestImage img = test::random_image(96, 80, 21);
  const ImagePrediction a = on_cpu.predict({img.view()}).front(), b = on_gpu.predict({img.view()}).front();
  CHECK(b.semantic.is_cuda());
  CHECK(test::relative_error(b.semantic.cpu(), a.semantic) < 1e-4);
  CHECK(test::relative_error(b.depth.cpu(), a.depth) < 1e-4);

  // The same ground truth scored on either device.
  ImageI32 labels(96, 80, 1);
  for (size_t i = 0; i < labels.data.size(); ++i) labels.data[i] = static_cast<int32_t>(i % 7);
  MetricsAccumulator ma(cfg, Device::cpu()), mb(cfg, Device::cuda());
  ma.update_image(a.semantic, labels, a.depth, img.depth);
  mb.update_image(b.semantic, labels, b.depth, img.depth);
  const EvalMetrics ea = ma.compute(), eb = mb.compute();
  CHECK(eb.segmentation->pixels == ea.segmentation->pixels);
  // Argmax near-ties may flip between devices: a few pixels of 7680 at most.
  CHECK(std::abs(eb.segmentation->pixel_accuracy - ea.segmentation->pixel_accuracy) < 0.005);
  CHECK(eb.depth->rmse == doctest::Approx(ea.depth->rmse).epsilon(1e-4));

  SpeedOptions so;
  so.min_runs = 2;
  so.min_seconds = 0;
  const SpeedResult s = measure_speed(on_gpu, test::randn({1, 3, 64, 64}), test::randn({1, 1, 64, 64}), 4, so);
  CHECK(s.device == cuda::device_name());
  CHECK(s.images_per_s > 0);
  cuda::set_allow_tf32(tf32);
}
}
