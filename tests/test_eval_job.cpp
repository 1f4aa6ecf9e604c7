// mtl_eval: metrics at the original resolution against an explicitly assembled pipeline, slide mode,
// TTA and ensembles through the whole tool, the last-checkpoint fallback, the report's shape, the
// speed measurement, and the executable's exit codes, messages and files.
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
#include "train/data/dataset.h"
#include "train/data/synthetic/datagen.h"
#include "train/data/transforms.h"
#include "train/eval/eval_job.h"
#include "train/run/run_folder.h"

using namespace mtl;
using namespace mtl::train;
namespace fs = std::filesystem;

namespace {

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
  CHECK(j["semantic"].size() == 7);
  CHECK(j["semantic"]["per_class_f1"].size() == 7);
  CHECK(j["semantic"]["mean_accuracy"].get<double>() == doctest::Approx(r.segmentation->mean_accuracy));
  CHECK(j["semantic"]["per_class_iou"].size() == 7);
  CHECK(j["semantic"]["per_class_iou"].contains("topdownfarm"));
  CHECK(j["semantic"]["miou"].get<double>() == doctest::Approx(r.segmentation->miou));
  CHECK(j["depth"].size() == 7);
  CHECK(j["depth"]["rmse"].get<double>() == doctest::Approx(r.depth->rmse));
  CHECK(j["speed"].size() == 6);
  CHECK(j["speed"]["precision"] == "fp32");  // the run's runtime.precision
  CHECK(j["speed"]["batch"] == 2);           // eval.batch_size
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

TEST_CASE("--precision bf16 evaluates the float32 checkpoint in bfloat16, close to fp32") {
  RunFixture f(200, 150, 3);
  EvalToolOptions o = f.options();
  const EvalReport a = run_evaluation(o);
  o.precision = Precision::bf16;
  const EvalReport b = run_evaluation(o);
  CHECK(a.speed.precision == "fp32");
  CHECK(b.speed.precision == "bf16");
  REQUIRE(b.segmentation.has_value());
  REQUIRE(b.depth.has_value());
  CHECK(b.segmentation->pixels == a.segmentation->pixels);
  // The same network in bfloat16: a few labels flip, the depth moves by rounding only (an
  // initialised network's logits are close together, so its labels are the most fragile).
  CHECK(b.segmentation->pixel_accuracy == doctest::Approx(a.segmentation->pixel_accuracy).epsilon(0.05));
  CHECK(b.depth->rmse == doctest::Approx(a.depth->rmse).epsilon(0.02));
  CHECK(b.depth->abs_rel == doctest::Approx(a.depth->abs_rel).epsilon(0.02));
  // Not the float32 numbers: the bfloat16 path really ran.
  CHECK(b.depth->rmse != a.depth->rmse);
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
  s.accuracy = {0.75, std::nullopt};
  s.f1 = {2.0 / 3.0, std::nullopt};
  s.miou = 0.5;
  s.pixel_accuracy = 0.75;
  s.mean_accuracy = 0.75;
  s.mean_f1 = 0.25;
  s.pixels = 10;
  r.segmentation = s;
  r.speed = {"Some CPU", "bf16", 8, 12.5, 80.0};
  const nlohmann::ordered_json j = eval_report_json(r);
  CHECK(
      j.dump() ==
      R"({"checkpoint":"a.safetensors","split":"test","images":4,"semantic":{"miou":0.5,"pixel_accuracy":0.75,)"
      R"("mean_accuracy":0.75,"mean_f1":0.25,"per_class_iou":{"x":0.5,"y":null},)"
      R"("per_class_accuracy":{"x":0.75,"y":null},"per_class_f1":{"x":0.6666666666666666,"y":null}},)"
      R"("speed":{"device":"Some CPU","precision":"bf16","batch":8,"latency_ms":12.5,"images_per_s":80.0,)"
      R"("ms_per_image":12.5}})");
  const std::string table = format_eval_report(r);
  CHECK(table.find("absent") != std::string::npos);
  CHECK(table.find("0.5000") != std::string::npos);
  CHECK(table.find("Some CPU in bf16") != std::string::npos);
  CHECK(table.find("depth") == std::string::npos);
  r.class_names = {"x"};
  CHECK_THROWS_AS(eval_report_json(r), Error);
}

TEST_CASE("measure_speed times batch 1 and the requested batch") {
  const Config cfg = test::tiny_run_config("unused", 64, 64);
  const Predictor pred(cfg, test::made_up_stats(3.0, 1.5, 7), {test::fresh_model(cfg)}, Device::cpu());
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
  fails(f.run + " --precision fp16", 2, "--precision must be fp32 or bf16, got 'fp16'");
  fails(out / "no_such_run", 2, out / "no_such_run");
  fails(f.run + " --checkpoint gone.safetensors", 1, "gone.safetensors");
  fails(f.run + " --data " + (out / "nowhere"), 1, "nowhere");
  fs::remove(f.run + "/checkpoints/best.safetensors");
  fails(f.run, 1, "best.safetensors");
  CHECK_FALSE(fs::exists(f.run + "/eval_val"));
}
#endif
