#pragma once
// Evaluation of a model on a loader's batches: semantic confusion matrix and depth metrics
// accumulated on the device, the task losses, and panels of the first samples. Used for the
// trainer's validation; mtl_eval builds on it.
#include <optional>
#include <string>
#include <vector>

#include "models/esanet.h"
#include "ops/metrics.h"
#include "train/config.h"
#include "train/image_io.h"
#include "train/loader.h"
#include "train/objective.h"

namespace mtl::train {

struct EvalOutcome {
  std::optional<ops::SegmentationMetrics> segmentation;
  std::optional<ops::DepthMetrics> depth;  // metres
  std::map<std::string, double> task_losses;  // mean over batches
  double loss = 0;                            // sum of the task means (unweighted)
  std::vector<ImageU8> panels;                // the first `visuals` samples
  std::vector<std::string> panel_names;
  int64_t images = 0;
  double seconds = 0;
};

// Runs `model` (switched to evaluation mode and back) over one epoch of `loader`, which must give
// depth in metres (LoaderOptions::evaluation). `objective` may be null (no losses).
EvalOutcome evaluate(models::ESANet& model, Loader& loader, const Config& cfg, const Objective* objective,
                     int visuals);

// The value of the monitored metric, and whether higher is better.
std::optional<double> monitor_value(const EvalOutcome& e, Monitor m);
bool monitor_higher_is_better(Monitor m);

}  // namespace mtl::train
