#pragma once
// Checkpoints: one safetensors file holding the model's state dict under its own names (so
// PyTorch or mtl_eval read it directly as weights), and, in `last.safetensors`, everything else a
// run needs to continue: the optimiser's moments ("__optimizer__/..."), the balancer's state
// ("__balancer__/...") and the loop state as JSON in the metadata. Written atomically.
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "nn/module.h"

namespace mtl::train {

class AdamW;

// Where the loop stands; enough to continue bit for bit.
struct TrainState {
  int64_t epoch = 0;          // the current epoch, 0-based
  int64_t batch = 0;          // the next batch of that epoch
  int64_t step = 0;           // optimiser steps taken
  int64_t batches_seen = 0;   // batches consumed (for gradient accumulation)
  int64_t skipped_steps = 0;  // non-finite steps skipped
  std::optional<double> best; // the best value of the monitor so far
  int64_t best_epoch = -1;
  int bad_evals = 0;          // validations without improvement (early stopping)
  // Task-loss sums over the current epoch (DWA and epoch summaries) and how many batches.
  std::map<std::string, double> epoch_loss_sum;
  int64_t epoch_batches = 0;
  double epoch_seconds = 0;   // training time spent in the current epoch so far
  bool finished = false;      // the run ended (all epochs, or early stopping)
  // checkpoint.keep_top_k: the kept files and their monitored values, best first.
  std::vector<std::pair<double, std::string>> top_k;
  // Data parallelism: samples per batch over every rank (train.batch_size x world size; 0 in a
  // checkpoint written before there was any: one process), the samples of the epoch's order before
  // its batch 0 (the loader's grid offset after a resume with another global batch), and the steps
  // the learning-rate schedule runs ahead of `step` since such a resume.
  int64_t global_batch = 0;
  int64_t epoch_offset = 0;
  int64_t schedule_offset = 0;
};

std::string state_to_json(const TrainState& s);
TrainState state_from_json(const std::string& json, const std::string& source);

struct Checkpoint {
  std::map<std::string, Tensor> model;      // the model's state dict
  std::map<std::string, Tensor> optimizer;  // empty in weights-only files
  std::map<std::string, Tensor> balancer;
  std::map<std::string, Tensor> loop;       // tensors of the loop state ("__loop__/...")
  std::optional<TrainState> state;
  std::map<std::string, std::string> metadata;
};

// `loop`: tensors that belong to the loop state (the training metrics' running counts), saved
// with `state`.
void save_checkpoint(const std::string& path, const nn::Module& model, const AdamW* optimizer,
                     const nn::Module* balancer, const TrainState* state,
                     std::map<std::string, std::string> metadata = {},
                     const std::map<std::string, Tensor>& loop = {});
// Throws mtl::Error naming the file when it is missing, unreadable or not a checkpoint.
Checkpoint load_checkpoint(const std::string& path);

}  // namespace mtl::train
