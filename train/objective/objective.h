#pragma once
// The multi-task objective: per-task losses from the model's outputs and a batch, before the
// balancer combines them. Semantic: the fused cross-entropy at full resolution plus, in training,
// the deep-supervision side outputs at 1/8, 1/16 and 1/32 (summed with equal weight, as ESANet
// does), with class weights, ignore_index and the batch's per-sample weights. Depth: SILog or
// masked L1 on the normalised target over valid pixels.
#include <map>
#include <string>
#include <vector>

#include "models/esanet.h"
#include "train/config/config.h"
#include "train/data/loader.h"

namespace mtl::train {

struct TaskLosses {
  std::map<std::string, Tensor> task;  // "semantic", "depth": 0-d, differentiable
  // The terms of a task that has several, detached (Detectron2's loss dictionary):
  // "semantic/main" (full resolution) and "semantic/side_8", "/side_16", "/side_32" (deep
  // supervision), which sum to task["semantic"].
  std::map<std::string, Tensor> parts;
  // Per sample [B], detached: each image's own full-resolution loss, for per-source logging.
  std::map<std::string, Tensor> per_sample;
};

class Objective {
 public:
  // `class_weights`: one per class, or empty for none.
  Objective(const Config& cfg, const std::vector<double>& class_weights, Device device);
  TaskLosses compute(const models::ESANetOutput& out, const Batch& batch) const;
  std::vector<std::string> tasks() const;

 private:
  Config cfg_;
  Tensor class_weights_;
};

}  // namespace mtl::train
