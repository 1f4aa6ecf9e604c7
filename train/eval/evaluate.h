#pragma once
// Validation during training: the model over one epoch of an evaluation loader, at network
// resolution, with the task losses, the metrics (MetricsAccumulator, on eval.tta's combined
// prediction; the losses on the plain one) and panels of the first samples.
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "models/esanet.h"
#include "train/config/config.h"
#include "train/data/image_io.h"
#include "train/data/loader.h"
#include "train/eval/metrics.h"
#include "train/objective/objective.h"

namespace mtl::train {

struct EvalOutcome {
  EvalMetrics metrics;                        // depth in metres
  std::map<std::string, double> task_losses;  // mean over batches
  double loss = 0;                            // sum of the task means (unweighted)
  std::vector<std::pair<std::string, ImageU8>> panels;  // (sample name, panel) of the first samples
  int64_t images = 0;
  double seconds = 0;
  // The forward passes after the first batch (a warm-up), the device synchronised around each.
  int64_t timed_images = 0;
  double forward_seconds = 0;
};

// Runs `model` (switched to evaluation mode and back) over one epoch of `loader`, which must give
// depth in metres (LoaderOptions::evaluation). `objective` may be null (no losses). With `comm`
// (data parallelism; a collective), the loader holds this rank's share of the set and the
// metrics, losses and image count are those of every rank's together: the confusion matrices and
// depth sums are summed, and the loss is the mean over all ranks' batches. Panels and timings stay
// this rank's.
EvalOutcome evaluate(models::ESANet& model, Loader& loader, const Config& cfg, const Objective* objective, int visuals,
                     Communicator* comm = nullptr);

// The value of the monitored metric (nullopt when the model lacks its task), and whether higher
// is better.
std::optional<double> monitor_value(const EvalOutcome& e, Monitor m);
bool monitor_higher_is_better(Monitor m);

}  // namespace mtl::train
