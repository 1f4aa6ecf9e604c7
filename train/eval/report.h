#pragma once
// The report of an evaluation (mtl_eval, and the test at the end of training): its metrics, speed
// and files as JSON and as the console table.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ops/metrics.h"
#include "train/eval/predictor.h"
#include "train/eval/speed.h"

namespace mtl::train {

struct EvalReport {
  std::vector<std::string> checkpoints;
  std::string split;
  Tta tta = Tta::none;
  std::vector<double> scales;  // of multiscale TTA
  InferMode mode = InferMode::whole;
  int64_t images = 0;
  std::vector<std::string> class_names;
  std::optional<ops::SegmentationMetrics> segmentation;  // absent when the model lacks the task
  std::optional<ops::DepthMetrics> depth;                // metres
  SpeedResult speed;
  std::vector<std::string> visuals;  // the panel files written
  std::vector<std::string> notes;    // fallbacks taken (last checkpoint, statistics source)
  double seconds = 0;
};

// {"checkpoint": path (or a list when several), "split", "images", "semantic": {"miou",
// "pixel_accuracy", "mean_accuracy", "mean_f1", "per_class_iou": {name: iou or null},
// "per_class_accuracy": {...}, "per_class_f1": {...}}, "depth": {"abs_rel", "sq_rel", "rmse",
// "rmse_log", "delta1", "delta2", "delta3"}, "speed": {"device", "batch", "latency_ms",
// "images_per_s", "ms_per_image"}}; semantic and depth left out when absent, NaN written as null.
// mtl_eval --json and mtl_train's RUN/test_metrics.json.
nlohmann::ordered_json eval_report_json(const EvalReport& r);
// The console table: per-class IoU by name ("absent" for classes in neither the labels nor the
// predictions), mIoU and pixel accuracy, the depth metrics, the speed.
std::string format_eval_report(const EvalReport& r);

}  // namespace mtl::train
