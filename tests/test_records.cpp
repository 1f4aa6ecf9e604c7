// metrics.jsonl records and console lines: every line parses as JSON with the expected keys,
// appending continues a file, non-finite numbers become null, and the console strings are exact.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "tests/support/temp_dir.h"
#include "train/log/console.h"
#include "train/log/metrics_log.h"
#include "train/log/records.h"

using namespace mtl;
using namespace mtl::train;
namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace {

std::vector<std::string> lines_of(const fs::path& p) {
  std::ifstream f(p);
  std::vector<std::string> out;
  for (std::string line; std::getline(f, line);) out.push_back(line);
  return out;
}

std::vector<std::string> keys_of(const ojson& j) {
  std::vector<std::string> out;
  for (auto it = j.begin(); it != j.end(); ++it) out.push_back(it.key());
  return out;
}

TrainRecord sample_train() {
  TrainRecord r;
  r.epoch = 3;
  r.step = 120;
  r.lr = 1e-3;
  r.loss = 1.23457;
  r.loss_unweighted = 1.23455;
  r.task_losses = {{"semantic", 0.81234}, {"depth", 0.42221}};
  r.loss_parts = {{"semantic/main", 0.5}, {"semantic/side_8", 0.31234}};
  r.task_weights = {{"semantic", 1.0}, {"depth", 0.5}};
  r.data_time = 0.0123;
  r.step_time = 0.25;
  r.images_per_s = 32.0;
  r.memory_mb = 1234.4;
  return r;
}

EvalRecord sample_eval() {
  EvalRecord r;
  r.epoch = 3;
  r.step = 1200;
  r.loss = 0.9;
  ops::SegmentationMetrics s;
  s.iou = {0.75, std::nullopt, 0.29682};
  s.accuracy = {0.8, std::nullopt, 0.5};
  s.f1 = {6.0 / 7.0, std::nullopt, 0.45775};
  s.miou = 0.52341;
  s.mean_accuracy = 0.65;
  s.mean_f1 = 0.65766;
  s.pixel_accuracy = 0.81234;
  s.pixels = 1000;
  r.segmentation = s;
  r.class_names = {"background", "chamoe", "path"};
  ops::DepthMetrics d;
  d.pixels = 500;
  d.abs_rel = 0.12341;
  d.sq_rel = 0.05;
  d.rmse = 0.41234;
  d.rmse_log = 0.2;
  d.delta1 = 0.81234;
  d.delta2 = 0.9;
  d.delta3 = 0.95;
  r.depth = d;
  r.ms_per_image = 4.5;
  r.images_per_s = 222.2;
  r.time_s = 12.34;
  return r;
}

}  // namespace

TEST_CASE("train record has the Detectron2 style keys in order") {
  const ojson j = train_record(sample_train());
  CHECK(keys_of(j) == std::vector<std::string>{"type", "epoch", "step", "lr", "loss", "loss_unweighted",
                                               "loss/semantic", "loss/depth", "loss/semantic/main",
                                               "loss/semantic/side_8", "weight/semantic", "weight/depth",
                                               "data_time", "step_time", "images_per_s", "memory_mb"});
  CHECK(j["loss_unweighted"].get<double>() == 1.23455);
  CHECK(j["loss/semantic/side_8"].get<double>() == 0.31234);
  CHECK(j["type"] == "train");
  CHECK(j["epoch"] == 3);
  CHECK(j["step"] == 120);
  CHECK(j["lr"].get<double>() == 1e-3);
  CHECK(j["loss/depth"].get<double>() == 0.42221);
  CHECK(j["weight/depth"].get<double>() == 0.5);
  CHECK(j["memory_mb"].get<double>() == 1234.4);

  TrainRecord cpu = sample_train();
  cpu.memory_mb.reset();
  cpu.loss = std::numeric_limits<double>::quiet_NaN();
  cpu.extra = {{"grad_norm", 2.5}};
  const ojson k = train_record(cpu);
  CHECK(k["memory_mb"].is_null());
  CHECK(k["loss"].is_null());
  CHECK(k["grad_norm"].get<double>() == 2.5);
}

TEST_CASE("eval record names classes and keeps absent ones as null") {
  const ojson j = eval_record(sample_eval());
  CHECK(keys_of(j) == std::vector<std::string>{"type", "epoch", "step", "loss", "miou", "pixel_accuracy",
                                               "mean_accuracy", "mean_f1", "per_class_iou", "per_class_accuracy",
                                               "per_class_f1", "depth_abs_rel", "depth_sq_rel", "depth_rmse",
                                               "depth_rmse_log", "depth_delta1", "depth_delta2", "depth_delta3",
                                               "depth_pixels", "ms_per_image", "images_per_s", "time_s"});
  CHECK(j["mean_f1"].get<double>() == 0.65766);
  CHECK(j["per_class_accuracy"]["path"].get<double>() == 0.5);
  CHECK(j["per_class_f1"]["chamoe"].is_null());
  CHECK(j["ms_per_image"].get<double>() == 4.5);
  CHECK(j["type"] == "eval");
  CHECK(j["miou"].get<double>() == 0.52341);
  CHECK(keys_of(j["per_class_iou"]) == std::vector<std::string>{"background", "chamoe", "path"});
  CHECK(j["per_class_iou"]["background"].get<double>() == 0.75);
  CHECK(j["per_class_iou"]["chamoe"].is_null());
  CHECK(j["depth_rmse"].get<double>() == 0.41234);
  CHECK(j["depth_pixels"] == 500);

  // Semantic only, unnamed classes, a NaN mIoU (no class present).
  EvalRecord sem = sample_eval();
  sem.depth.reset();
  sem.loss.reset();
  sem.class_names.clear();
  sem.segmentation->miou = std::numeric_limits<double>::quiet_NaN();
  const ojson k = eval_record(sem);
  CHECK(!k.contains("depth_rmse"));
  CHECK(!k.contains("loss"));
  CHECK(k["miou"].is_null());
  CHECK(keys_of(k["per_class_iou"]) == std::vector<std::string>{"0", "1", "2"});

  EvalRecord wrong = sample_eval();
  wrong.class_names = {"a", "b"};
  CHECK_THROWS_WITH_AS(eval_record(wrong), doctest::Contains("2 class names for 3 classes"), Error);
}

TEST_CASE("metrics.jsonl lines parse and appending continues the file") {
  test::TempDir dir("test_run_log");
  const fs::path path = dir.path / "run" / "metrics.jsonl";  // MetricsLog makes the run folder
  {
    MetricsLog log(path.string());
    CHECK(log.path() == path.string());
    log.log(train_record(sample_train()));
    log.log(eval_record(sample_eval()));
    // Visible before the log is closed: every record is flushed.
    CHECK(lines_of(path).size() == 2);
  }
  {
    MetricsLog log(path.string());  // a resumed run
    nlohmann::json plain = {{"type", "note"}, {"value", std::numeric_limits<double>::infinity()}, {"name", "a\xff"}};
    log.log(plain);
  }
  const std::vector<std::string> lines = lines_of(path);
  REQUIRE(lines.size() == 3);
  for (const std::string& line : lines) {
    INFO(line);
    CHECK(nlohmann::json::accept(line));
    CHECK(line.find('\n') == std::string::npos);
  }
  const ojson first = ojson::parse(lines[0]);
  CHECK(first == train_record(sample_train()));
  const ojson second = ojson::parse(lines[1]);
  CHECK(second["per_class_iou"]["chamoe"].is_null());
  CHECK(second["depth_delta1"].get<double>() == 0.81234);
  const nlohmann::json third = nlohmann::json::parse(lines[2]);
  CHECK(third["type"] == "note");
  CHECK(third["value"].is_null());  // JSON has no infinity
}

TEST_CASE("metrics log errors name the path") {
  test::TempDir dir("test_run_log");
  const fs::path blocker = dir.path / "file";
  std::ofstream(blocker) << "x";
  const std::string path = (blocker / "metrics.jsonl").string();
  CHECK_THROWS_WITH_AS(MetricsLog{path}, doctest::Contains(blocker.string().c_str()), Error);
}

TEST_CASE("record scalars flatten numbers for TensorBoard") {
  const NamedValues t = record_scalars(train_record(sample_train()));
  REQUIRE(t.size() == 13);  // 16 keys less type, epoch and step
  CHECK(t[0] == std::pair<std::string, double>{"train/lr", 1e-3});
  CHECK(t[3] == std::pair<std::string, double>{"train/loss/semantic", 0.81234});
  CHECK(t.back() == std::pair<std::string, double>{"train/memory_mb", 1234.4});

  const NamedValues e = record_scalars(eval_record(sample_eval()));
  std::vector<std::string> tags;
  for (const auto& [tag, v] : e) tags.push_back(tag);
  CHECK(tags == std::vector<std::string>{"eval/loss",
                                         "eval/miou",
                                         "eval/pixel_accuracy",
                                         "eval/mean_accuracy",
                                         "eval/mean_f1",
                                         "eval/per_class_iou/background",
                                         "eval/per_class_iou/path",
                                         "eval/per_class_accuracy/background",
                                         "eval/per_class_accuracy/path",
                                         "eval/per_class_f1/background",
                                         "eval/per_class_f1/path",
                                         "eval/depth_abs_rel",
                                         "eval/depth_sq_rel",
                                         "eval/depth_rmse",
                                         "eval/depth_rmse_log",
                                         "eval/depth_delta1",
                                         "eval/depth_delta2",
                                         "eval/depth_delta3",
                                         "eval/depth_pixels",
                                         "eval/ms_per_image",
                                         "eval/images_per_s",
                                         "eval/time_s"});
  CHECK(e[6].second == 0.29682);
}

TEST_CASE("durations print as h:mm:ss") {
  CHECK(format_duration(0) == "0:00:00");
  CHECK(format_duration(59.4) == "0:00:59");
  CHECK(format_duration(59.6) == "0:01:00");
  CHECK(format_duration(754) == "0:12:34");
  CHECK(format_duration(3600) == "1:00:00");
  CHECK(format_duration(27 * 3600 + 3 * 60 + 9) == "27:03:09");
  CHECK(format_duration(-1) == "-:--:--");
  CHECK(format_duration(std::numeric_limits<double>::quiet_NaN()) == "-:--:--");
  CHECK(format_duration(std::numeric_limits<double>::infinity()) == "-:--:--");
  CHECK(format_duration(1e300) == "-:--:--");
}

TEST_CASE("learning rates print as %.2e") {
  CHECK(format_lr(1e-3) == "1.00e-03");
  CHECK(format_lr(2.5e-4) == "2.50e-04");
  CHECK(format_lr(0.01234) == "1.23e-02");
  CHECK(format_lr(0) == "0.00e+00");
}

TEST_CASE("console lines are exact") {
  CHECK(format_train_line(sample_train(), {50, 1000, 754.4}) ==
        "epoch 3/50 | step 120/1000 | eta 0:12:34 | lr 1.00e-03 | loss 1.2346 (semantic 0.8123, depth 0.4222)"
        " | w semantic 1.000, depth 0.500 | data 0.012s step 0.250s | 32.0 img/s | mem 1234 MB");

  TrainRecord bare;
  bare.epoch = 1;
  bare.step = 5;
  bare.lr = 2.5e-4;
  bare.loss = 0.5;
  bare.step_time = 0.1;
  bare.images_per_s = 10;
  CHECK(format_train_line(bare, {}) ==
        "epoch 1 | step 5 | eta -:--:-- | lr 2.50e-04 | loss 0.5000 | data 0.000s step 0.100s | 10.0 img/s");

  CHECK(format_eval_line(sample_eval()) ==
        "eval epoch 3 step 1200 | loss 0.9000 | miou 0.5234 | pixel_acc 0.8123 | depth rmse 0.4123 abs_rel 0.1234"
        " delta1 0.8123 | 12.3s");
  EvalRecord depth_only = sample_eval();
  depth_only.segmentation.reset();
  depth_only.loss.reset();
  CHECK(format_eval_line(depth_only) == "eval epoch 3 step 1200 | depth rmse 0.4123 abs_rel 0.1234 delta1 0.8123 | 12.3s");
}

TEST_CASE("progress bars fill in proportion") {
  CHECK(progress_bar(45, 100, 20) == "[=========>          ]  45%");
  CHECK(progress_bar(0, 100, 10) == "[>         ]   0%");
  CHECK(progress_bar(99, 100, 10) == "[=========>]  99%");
  CHECK(progress_bar(100, 100, 10) == "[==========] 100%");
  CHECK(progress_bar(150, 100, 4) == "[====] 100%");
  CHECK(progress_bar(-3, 10, 4) == "[>   ]   0%");
  CHECK(progress_bar(5, 0, 4) == "[>   ]   0%");
  CHECK(progress_bar(1, 3).size() == 1 + 30 + 1 + 5);
}
