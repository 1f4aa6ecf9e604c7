#pragma once
// mtl_train's job: build the data, model, objective, balancer and optimiser from a Config, run
// the epochs with validation, logging and checkpoints, and resume a run where it stopped.
#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "train/config.h"

namespace mtl::train {

struct TrainOptions {
  std::string config_name = "run";  // names the default run folder: runs/<name>-<time>
  std::string output_dir;           // the run folder; default runs/<config_name>-<YYYYmmdd-HHMMSS>
  std::string resume_dir;           // continue this run (its config.yaml and checkpoints/last)
  std::string init_from;            // weights loaded non-strictly before training
  std::optional<Device> device;     // overrides runtime.device
  bool quiet = false;               // no console lines (tests)
  // For tests: stop as if interrupted once this many optimiser steps have been taken.
  std::optional<int64_t> stop_after_steps;
};

struct TrainSummary {
  std::string run_dir;
  int64_t epochs_done = 0;
  int64_t steps = 0;
  bool interrupted = false;
  bool early_stopped = false;
  std::optional<double> best;
  int64_t best_epoch = -1;
  std::string best_checkpoint;  // empty when no validation ran
};

// Runs training; throws mtl::Error for configuration, data and checkpoint problems.
TrainSummary run_training(Config cfg, const TrainOptions& opts);

// Printed by `mtl_train CONFIG --summary`: every top-level module with its parameter count and,
// last, "total parameters: N".
std::string model_summary(const Config& cfg);

// Set by SIGINT/SIGTERM while run_training() runs: the current step finishes, a checkpoint is written
// and run_training() returns with interrupted = true.
std::atomic<bool>& stop_requested();

}  // namespace mtl::train
