#pragma once
// mtl_eval's job (docs/evaluation.md): a trained run's checkpoint(s) on the val or test split,
// with segmentation metrics at each label's original resolution, depth metrics in metres at the
// depth map's original resolution, the forward speed, a console table, panels and a JSON report.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ops/metrics.h"
#include "train/config.h"
#include "train/image_io.h"
#include "train/inference.h"

namespace mtl::train {

// ---- metrics at the original resolution ----

// Confusion matrix and depth sums over images on one device.
class MetricAccumulator {
 public:
  MetricAccumulator(const Config& cfg, Device device);
  // One image: its prediction at the ground truth's size (Predictor::predict), its labels (class
  // ids or ignore_index; empty when there are none) and its depth in metres (0 = invalid; empty
  // when there is none). The argmax over classes picks the first maximum on ties. Throws
  // mtl::Error when a size differs.
  void add(const ImagePrediction& p, const ImageI32& labels, const ImageF& depth);
  std::optional<ops::SegmentationMetrics> segmentation() const;
  std::optional<ops::DepthMetrics> depth() const;

 private:
  Device device_;
  std::optional<ops::ConfusionMatrix> confusion_;
  std::optional<ops::DepthMetricAccumulator> depth_;
};

// ---- speed ----

struct SpeedOptions {
  int warmup = -1;           // untimed passes per batch size first; < 0: 1 on the CPU, 3 on CUDA
  int min_runs = 3;          // timed passes at least ...
  double min_seconds = 1.0;  // ... and until this much time has passed ...
  int max_runs = 50;         // ... but no more than this many
};

struct SpeedResult {
  std::string device;        // the device's name
  int batch = 1;             // the throughput's batch size
  double latency_ms = 0;     // median time of one batch-1 prediction
  double images_per_s = 0;   // batch * runs / total time at `batch`
};

// The CPU's "model name" from /proc/cpuinfo (or "unknown CPU"), or cuda::device_name().
std::string device_display_name(Device device);

// Times Predictor::forward (every model and TTA pass, combined) on copies of one sample's
// network inputs (rgb [1, 3, H, W], depth [1, 1, H, W], any device) at batch 1 and at `batch`,
// with warm-up and a device synchronisation around each timed pass; data loading and the
// transfer of the inputs are not timed.
SpeedResult measure_speed(const Predictor& predictor, const Tensor& rgb, const Tensor& depth, int batch,
                          const SpeedOptions& o = {});

// ---- the whole evaluation ----

struct EvalToolOptions {
  std::string run_dir;
  std::vector<std::string> checkpoints;  // empty: the run's best (or last)
  std::string split = "val";             // val or test
  std::string data_root;                 // replaces data.root (and data.sources) when set
  InferenceOptions inference{Tta::none, InferMode::whole, 0};  // batch <= 0: eval.batch_size
  int visuals = 0;                       // panels of the first N images
  std::string json_path;                 // the JSON report, when set
  std::optional<Device> device;          // default runtime.device
  SpeedOptions speed;
  // Called after each image with (done, total), for a progress display.
  std::function<void(int64_t, int64_t)> progress;
};

struct EvalReport {
  std::vector<std::string> checkpoints;
  std::string split;
  Tta tta = Tta::none;
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

// Checks the options, loads the run, evaluates every sample of the split, measures the speed and
// writes the panels and the JSON report (atomically). Throws mtl::Error naming the file, folder
// or option at fault.
EvalReport run_evaluation(const EvalToolOptions& o);

// {"checkpoint": path (or a list when several), "split", "images", "semantic": {"miou",
// "pixel_accuracy", "per_class_iou": {name: iou or null}}, "depth": {"abs_rel", "sq_rel", "rmse",
// "rmse_log", "delta1", "delta2", "delta3"}, "speed": {"device", "batch", "latency_ms",
// "images_per_s"}}; semantic and depth left out when absent, NaN written as null.
nlohmann::ordered_json eval_report_json(const EvalReport& r);
// The console table: per-class IoU by name ("absent" for classes in neither the labels nor the
// predictions), mIoU and pixel accuracy, the depth metrics, the speed.
std::string format_eval_report(const EvalReport& r);

// Where the panels go: beside the JSON report when there is one, else RUN_DIR/eval_<split>/.
std::string visuals_dir(const EvalToolOptions& o);

}  // namespace mtl::train
