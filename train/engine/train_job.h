#pragma once
// mtl_train's job: a Trainer with the default hooks, run to the end; and the model summary of
// `mtl_train CONFIG --summary`.
#include <string>

#include "train/config/config.h"
#include "train/engine/trainer.h"

namespace mtl::train {

// Runs training; throws mtl::Error for configuration, data and checkpoint problems. Launched by
// mpirun or with torchrun/SLURM's variables (train/dist/launch.h), it first starts the process
// group (init_process_group) unless `opts` brings one; the caller ends it
// (finalize_process_group, or abort_process_group after an error).
TrainSummary run_training(Config cfg, const TrainOptions& opts);

// Every top-level module with its parameter count and, last, "total parameters: N".
std::string model_summary(const Config& cfg);

}  // namespace mtl::train
