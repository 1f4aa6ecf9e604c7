#pragma once
// model.sync_bn: every BatchNorm2d of a model normalises, in training, with the statistics of the
// whole data-parallel batch (PyTorch's convert_sync_batchnorm).
#include <memory>

#include "nn/module.h"
#include "train/dist/communicator.h"

namespace mtl::train {

// Gives every nn::BatchNorm2d in `model` the communicator's all-reduce as its statistics sum
// (ops/sync_batch_norm.h). Returns how many layers it changed. Every rank must convert the same
// model, since each layer's forward and backward are collectives.
int convert_sync_batch_norm(nn::Module& model, std::shared_ptr<Communicator> comm);

}  // namespace mtl::train
