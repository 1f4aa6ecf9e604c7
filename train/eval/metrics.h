#pragma once
// The one metrics accumulator for the multi-task model, used by validation during training (at
// network resolution, batch by batch) and by mtl_eval (at each image's original resolution): a
// confusion matrix for segmentation and depth error sums in metres, on the device, read once.
#include <optional>

#include "ops/metrics.h"
#include "train/config/config.h"
#include "train/data/image_io.h"
#include "train/dist/communicator.h"

namespace mtl::train {

struct EvalMetrics {
  std::optional<ops::SegmentationMetrics> segmentation;  // absent without the semantic task
  std::optional<ops::DepthMetrics> depth;                // metres; absent without the depth task
};

class MetricsAccumulator {
 public:
  // The tasks, classes and ignore_index of `cfg`. `check_labels` false skips the per-update host
  // synchronisation that validates label values (for data the scan has validated).
  MetricsAccumulator(const Config& cfg, Device device, bool check_labels = true);
  void reset();
  // One batch, either input pair undefined to skip it: `semantic` scores [N, C, H, W] (logits or
  // probabilities; the argmax, the first maximum on ties) against `labels` [N, H, W] (class ids
  // or ignore_index); `depth` [N, 1, H, W] metres against `depth_gt` (metres, 0 = invalid).
  // Throws mtl::Error when a prediction's size differs from its ground truth's.
  void update(const Tensor& semantic, const Tensor& labels, const Tensor& depth, const Tensor& depth_gt);
  // One image's prediction at its own size ([1, C, h, w] scores, [1, 1, h, w] metres) against its
  // ground truth as read from disk; an empty image skips its task.
  void update_image(const Tensor& semantic, const ImageI32& labels, const Tensor& depth, const ImageF& depth_gt);
  EvalMetrics compute() const;
  // Data parallelism: the counts and sums of every rank's share, summed on every rank (a
  // collective), so that compute() gives the metrics of the whole set, not a mean of the ranks'.
  void all_reduce(Communicator& comm);

 private:
  Device device_;
  std::optional<ops::ConfusionMatrix> confusion_;
  std::optional<ops::DepthMetricAccumulator> depth_;
};

}  // namespace mtl::train
