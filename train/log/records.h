#pragma once
// What the run logs: one record per logged training step and per evaluation, as JSON objects
// (the lines of metrics.jsonl) and as TensorBoard scalars.
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ops/metrics.h"
#include "train/data/image_io.h"

namespace mtl::train {

using NamedValues = std::vector<std::pair<std::string, double>>;  // in display order

// One logged training step; times in seconds. Task names key the losses and weights.
struct TrainRecord {
  int epoch = 0;      // 1-based
  int64_t step = 0;   // global optimiser step
  double lr = 0;
  double loss = 0;    // the balanced total that was back-propagated
  double loss_unweighted = 0;  // the plain sum of the task losses
  NamedValues task_losses;   // "semantic" -> 0.61: raw loss per task
  NamedValues loss_parts;    // "semantic/side_8" -> 0.70: the terms of a task's loss
  NamedValues task_weights;  // "semantic" -> 1.0: the balancer's current weight per task
  NamedValues extra;         // anything else, logged under its own key ("grad_norm", ...)
  double data_time = 0;      // waiting for the loader, per step
  double step_time = 0;      // whole step, data included
  double images_per_s = 0;
  std::optional<double> memory_mb;  // device memory in use; none on the CPU
};

// {"type":"train","epoch","step","lr","loss","loss_unweighted","loss/<task>"...,"loss/<part>"...,
//  "weight/<task>"...,<extra>...,"data_time","step_time","images_per_s","memory_mb"}
nlohmann::ordered_json train_record(const TrainRecord& r);

// One training epoch, from values the trainer accumulated over all its batches (the metrics on the
// device, at network resolution, as the seed's MetricsAccumulator does).
struct EpochRecord {
  int epoch = 0;       // 1-based
  int64_t step = 0;    // optimiser steps after the epoch
  NamedValues task_losses;  // mean over the epoch's batches
  std::optional<ops::SegmentationMetrics> segmentation;
  int64_t images = 0;
  double time_s = 0;   // training time of the epoch (validation not included)
};

// {"type":"train_epoch","epoch","step","loss/<task>"...,"miou","pixel_accuracy","images","time_s"}
nlohmann::ordered_json epoch_record(const EpochRecord& r);

struct EvalRecord {
  int epoch = 0;
  int64_t step = 0;
  std::optional<double> loss;  // validation loss, when computed
  NamedValues task_losses;
  std::optional<ops::SegmentationMetrics> segmentation;
  std::vector<std::string> class_names;  // one per class of `segmentation`, or empty (indices)
  std::optional<ops::DepthMetrics> depth;
  // Forward passes alone (after a warm-up batch, the device synchronised around each): time per
  // image and images per second, as the seed measures them; absent when nothing was timed.
  std::optional<double> ms_per_image, images_per_s;
  double time_s = 0;  // how long the evaluation took
  // Panels of the first samples (name, picture) for TensorBoard and visuals/, and whether the
  // evaluation closed an epoch (panel files are then named by epoch, else by step).
  std::vector<std::pair<std::string, ImageU8>> panels;
  bool epoch_end = true;
};

// {"type":"eval","epoch","step",["loss","loss/<task>"...],"miou","pixel_accuracy","mean_accuracy",
//  "mean_f1","per_class_iou":{"<name>": iou or null},"per_class_accuracy":{...},"per_class_f1":{...},"depth_abs_rel","depth_sq_rel","depth_rmse",
//  "depth_rmse_log","depth_delta1","depth_delta2","depth_delta3","depth_pixels",["ms_per_image",
//  "images_per_s"],"time_s"}.
// The depth keys match the config's monitor names (depth_rmse, depth_abs_rel). Throws
// mtl::Error when class_names is non-empty and does not match the number of classes.
nlohmann::ordered_json eval_record(const EvalRecord& r);

// A number for JSON: NaN and infinities (JSON has neither) become null, which every reader takes as
// "no value".
nlohmann::ordered_json json_number(double v);
// {"<class name>": value or null, ...} for per-class metrics; class indices when `names` is empty.
// Throws mtl::Error when `names` is given and does not match the number of classes.
nlohmann::ordered_json per_class_json(const std::vector<std::optional<double>>& values,
                                      const std::vector<std::string>& names);

// The numbers of a record as TensorBoard scalars: "<type>/<key>" for each number, nested objects
// flattened ("eval/per_class_iou/path"); null, strings, "epoch" and "step" are left out.
NamedValues record_scalars(const nlohmann::ordered_json& record);

}  // namespace mtl::train
