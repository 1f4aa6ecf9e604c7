#pragma once
// The run's textual record: metrics.jsonl (one JSON object per line, Detectron2 style, so pandas
// and jq read it while training runs), the records the trainer writes there, and the console
// lines. The formatting functions are pure, so their exact output is testable.
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ops/metrics.h"

namespace mtl::train {

// Appends one compact JSON line per record and flushes it, so a crash loses at most the record
// being written. NaN and infinities become null (JSON has neither).
class MetricsLog {
 public:
  // Opens `path` for appending (a resumed run continues its file), creating the parent folder.
  // Throws mtl::Error naming the path when it cannot.
  explicit MetricsLog(const std::string& path);
  ~MetricsLog();
  MetricsLog(MetricsLog&& o) noexcept;
  MetricsLog& operator=(MetricsLog&& o) noexcept;
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  const std::string& path() const { return path_; }
  void log(const nlohmann::json& record);
  void log(const nlohmann::ordered_json& record);

 private:
  void write_line(const std::string& line);
  std::string path_;
  std::FILE* file_ = nullptr;
};

using NamedValues = std::vector<std::pair<std::string, double>>;  // in display order

// One logged training step; times in seconds. Task names key the losses and weights.
struct TrainRecord {
  int epoch = 0;      // 1-based
  int64_t step = 0;   // global optimiser step
  double lr = 0;
  double loss = 0;    // the balanced total that was back-propagated
  NamedValues task_losses;   // "semantic" -> 0.61: raw loss per task
  NamedValues task_weights;  // "semantic" -> 1.0: the balancer's current weight per task
  NamedValues extra;         // anything else, logged under its own key ("grad_norm", ...)
  double data_time = 0;      // waiting for the loader, per step
  double step_time = 0;      // whole step, data included
  double images_per_s = 0;
  std::optional<double> memory_mb;  // device memory in use; none on the CPU
};

// {"type":"train","epoch","step","lr","loss","loss/<task>"...,"weight/<task>"...,<extra>...,
//  "data_time","step_time","images_per_s","memory_mb"}
nlohmann::ordered_json train_record(const TrainRecord& r);

struct EvalRecord {
  int epoch = 0;
  int64_t step = 0;
  std::optional<double> loss;  // validation loss, when computed
  NamedValues task_losses;
  std::optional<ops::SegmentationMetrics> segmentation;
  std::vector<std::string> class_names;  // one per class of `segmentation`, or empty (indices)
  std::optional<ops::DepthMetrics> depth;
  double time_s = 0;  // how long the evaluation took
};

// {"type":"eval","epoch","step",["loss","loss/<task>"...],"miou","pixel_accuracy",
//  "per_class_iou":{"<name>": iou or null},"depth_abs_rel","depth_sq_rel","depth_rmse",
//  "depth_rmse_log","depth_delta1","depth_delta2","depth_delta3","depth_pixels","time_s"}.
// The depth keys match the config's monitor names (depth_rmse, depth_abs_rel). Throws
// mtl::Error when class_names is non-empty and does not match the number of classes.
nlohmann::ordered_json eval_record(const EvalRecord& r);

// The numbers of a record as TensorBoard scalars: "<type>/<key>" for each number, nested objects
// flattened ("eval/per_class_iou/path"); null, strings, "epoch" and "step" are left out.
NamedValues record_scalars(const nlohmann::ordered_json& record);

// ---- console ----

// Whole seconds as h:mm:ss (hours unbounded: "27:03:09"); "-:--:--" for a negative, non-finite
// or absurd (>= 1e9 s) duration: an ETA not yet known.
std::string format_duration(double seconds);
// "%.2e": 1e-3 -> "1.00e-03".
std::string format_lr(double lr);

struct Progress {
  int epochs = 0;         // total
  int64_t total_steps = 0;
  double eta_s = -1;      // negative: unknown
};

// "epoch 3/50 | step 120/1000 | eta 0:12:34 | lr 1.00e-03 | loss 1.2346 (semantic 0.8123,
//  depth 0.4222) | w semantic 1.000, depth 0.500 | data 0.012s step 0.250s | 32.0 img/s |
//  mem 1234 MB" on one line; the task parts and memory are left out when absent.
std::string format_train_line(const TrainRecord& r, const Progress& p);
// "eval epoch 3 step 1200 | loss 0.9000 | miou 0.5234 | pixel_acc 0.8123 | depth rmse 0.4123
//  abs_rel 0.1234 delta1 0.8123 | 12.3s"; absent parts left out.
std::string format_eval_line(const EvalRecord& r);
// "[#########>          ]  45%" with `width` cells between the brackets; done is clamped to
// [0, total] and total <= 0 counts as nothing done.
std::string progress_bar(int64_t done, int64_t total, int width = 30);
// True when stdout is a terminal: then a progress bar redrawn with '\r' reads well; in a log
// file it would not.
bool stdout_is_tty();

}  // namespace mtl::train
