#pragma once
// Evaluation metrics for segmentation and depth. The counts and sums accumulate on the tensors'
// device across batches (no host synchronisation unless label checking is on); the metrics are
// computed from them on the host, once per evaluation.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace mtl::ops {

// ---- segmentation ----

struct ConfusionOptions {
  int64_t ignore_index = -1;
  // Invalid labels (a target that is neither a class nor ignore_index, a predicted label that is
  // not a class) are an mtl::Error naming the value; finding out costs one host synchronisation
  // per call. With false there is none and such pixels are not counted.
  bool check_labels = true;
};

// Adds a batch into `confusion` (I64 [C, C] on the inputs' device; rows = target class, columns =
// predicted class). `pred` is either logits [N, C, *] (float; the prediction is the argmax over C,
// the first maximum on ties, NaN never chosen) or a label map of the target's shape (integer).
// `target` [N, *] is uint8, int32 or int64. CUDA supports up to 256 classes.
void accumulate_confusion(const Tensor& confusion, const Tensor& pred, const Tensor& target,
                          const ConfusionOptions& o = {});
// A new confusion matrix for one batch.
Tensor confusion_matrix(const Tensor& pred, const Tensor& target, int64_t num_classes, const ConfusionOptions& o = {});

struct SegmentationMetrics {
  // Per class: TP / (TP + FP + FN); nullopt for a class in neither the targets nor the predictions.
  std::vector<std::optional<double>> iou;
  double miou = 0;            // mean over the classes present; NaN when none is
  double pixel_accuracy = 0;  // correct / counted pixels; NaN when none was counted
  int64_t pixels = 0;         // counted pixels
  // Per class: TP / (TP + FN), the share of the class's pixels labelled right (recall); nullopt
  // for a class absent from the targets. The mean is over the classes present in the targets.
  std::vector<std::optional<double>> accuracy;
  double mean_accuracy = 0;
  // Per class: Dice, 2 TP / (2 TP + FP + FN); nullopt where the IoU is. The mean is over the same
  // classes as mIoU.
  std::vector<std::optional<double>> f1;
  double mean_f1 = 0;
};

// From row-major counts [C * C] (rows = target).
SegmentationMetrics segmentation_metrics(const std::vector<int64_t>& confusion, int64_t num_classes);
// From an I64 [C, C] tensor on any device (copied to the host).
SegmentationMetrics segmentation_metrics(const Tensor& confusion);

// Accumulates a confusion matrix over batches on one device.
class ConfusionMatrix {
 public:
  ConfusionMatrix(int64_t num_classes, Device device = Device::cpu(), ConfusionOptions o = {});
  void update(const Tensor& pred, const Tensor& target) { accumulate_confusion(counts_, pred, target, opts_); }
  void reset();
  const Tensor& counts() const { return counts_; }
  int64_t num_classes() const { return counts_.size(0); }
  SegmentationMetrics compute() const { return segmentation_metrics(counts_); }

 private:
  Tensor counts_;
  ConfusionOptions opts_;
};

// ---- depth ----

struct DepthMetricOptions {
  // Predictions are clamped to max(pred, min_pred) so that the log and ratio metrics stay finite.
  double min_pred = 1e-6;
};

// Running sums over valid pixels (target > 0): sums F64 [4] (|p-t|/t, (p-t)^2/t, (p-t)^2,
// (log p - log t)^2) and counts I64 [4] (valid, delta1, delta2, delta3), on one device.
struct DepthMetricState {
  Tensor sums;
  Tensor counts;
  static DepthMetricState zeros(Device device);
};

// Adds a batch (pred and target of one shape, float, metres) into `state`.
void accumulate_depth_metrics(DepthMetricState& state, const Tensor& pred, const Tensor& target,
                              const DepthMetricOptions& o = {});

// Pixel-averaged over every valid pixel seen; NaN when there was none. rmse and rmse_log are the
// roots of the mean squares; delta_k the fraction with max(p/t, t/p) < 1.25^k.
struct DepthMetrics {
  int64_t pixels = 0;
  double abs_rel = 0, sq_rel = 0, rmse = 0, rmse_log = 0, delta1 = 0, delta2 = 0, delta3 = 0;
};

// The metrics by name, in the order reports list them: abs_rel, sq_rel, rmse, rmse_log, delta1,
// delta2, delta3.
std::vector<std::pair<std::string, double>> named_values(const DepthMetrics& d);

DepthMetrics depth_metrics(const std::array<double, 4>& sums, const std::array<int64_t, 4>& counts);
DepthMetrics depth_metrics(const DepthMetricState& state);  // copies the state to the host

class DepthMetricAccumulator {
 public:
  explicit DepthMetricAccumulator(Device device = Device::cpu(), DepthMetricOptions o = {});
  void update(const Tensor& pred, const Tensor& target) { accumulate_depth_metrics(state_, pred, target, opts_); }
  void reset() { state_ = DepthMetricState::zeros(state_.sums.device()); }
  const DepthMetricState& state() const { return state_; }
  DepthMetrics compute() const { return depth_metrics(state_); }

 private:
  DepthMetricState state_;
  DepthMetricOptions opts_;
};

}  // namespace mtl::ops
