#pragma once
// The network configuration a run's Config describes: the one mapping that mtl_train, mtl_eval
// and mtl_predict share, so that a checkpoint always meets the architecture it was trained as.
#include "models/model_config.h"
#include "train/config.h"

namespace mtl::train {

// The `model` section plus what the network needs from elsewhere: the training input size (the
// adaptive context module's bins) and runtime.seed (the initialisation).
models::ModelConfig model_config(const Config& cfg);

}  // namespace mtl::train
