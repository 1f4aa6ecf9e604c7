#pragma once
// The training loop, in the manner of Detectron2's engine/train_loop.py: a Trainer holds the run's
// state (data, model, objective, balancer, optimiser, the loop state), `run_step()` takes one
// optimiser step, and `train()` runs the epochs and calls the registered hooks around each step
// and epoch. Everything else (the learning-rate schedule, logging, validation with the best
// checkpoint and early stopping, checkpoints, interruption) is a hook (engine/hooks.h).
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "models/esanet.h"
#include "ops/metrics.h"
#include "train/config/config.h"
#include "train/data/loader.h"
#include "train/dist/communicator.h"
#include "train/dist/gradient_sync.h"
#include "train/log/record_store.h"
#include "train/objective/balancer.h"
#include "train/objective/objective.h"
#include "train/optim/adamw.h"
#include "train/run/checkpoint.h"

namespace mtl::train {

struct TrainOptions {
  std::string config_name = "run";  // names the default run folder: runs/<name>-<time>
  std::string output_dir;           // the run folder; default runs/<config_name>-<YYYYmmdd-HHMMSS>
  std::string resume_dir;           // continue this run (its config.yaml and checkpoints/last)
  std::string init_from;            // pretrained weights mapped and loaded before training (run/pretrained.h)
  std::optional<Device> device;     // overrides runtime.device
  bool quiet = false;               // no console lines (tests)
  // For tests: stop as if interrupted once this many optimiser steps have been taken.
  std::optional<int64_t> stop_after_steps;
  // Data parallelism: this process's group (run_training() starts it from the launch's
  // environment); null: one process, exactly as without it.
  std::shared_ptr<Communicator> comm;
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

// What the last optimiser step left for the hooks. The losses were read to the host once, for
// the non-finite guard.
struct StepInfo {
  double lr = 0;
  std::map<std::string, double> losses;  // per task, and "total": the balanced total
  BalancedLoss balanced;
  TaskLosses task_losses;
  Tensor grad_norm;  // defined when clipping is on (AdamW::step)
  Batch batch;       // the step's last batch
  double data_time = 0, step_time = 0;  // seconds, from the start of run_step()
  int64_t images = 0;                   // samples over the step's batches (every rank's)
};

// The epoch that just ended, for the hooks' after_epoch.
struct EpochInfo {
  int64_t epoch = 0;                          // 1-based
  std::map<std::string, double> mean_losses;  // per task, over the epoch's batches
  std::optional<ops::SegmentationMetrics> segmentation;  // on the training batches, at network resolution
  int64_t images = 0;
  double seconds = 0;  // in run_step(), summed across interruptions
};

class Trainer;

class HookBase {
 public:
  virtual ~HookBase() = default;
  virtual void before_train(Trainer&) {}
  virtual void before_step(Trainer&) {}
  // After each batch's backward pass, before the gradients are checked and applied (Lightning's
  // on_after_backward): the place to look at or change gradients.
  virtual void after_backward(Trainer&) {}
  virtual void after_step(Trainer&) {}
  // After an epoch's last batch, once the state points at the next epoch (state().epoch is the
  // number of epochs done).
  virtual void after_epoch(Trainer&) {}
  // Also after an interruption.
  virtual void after_train(Trainer&) {}
};

class Trainer {
 public:
  // Reads the data, builds the model, objective, balancer and optimiser, loads --init-from or the
  // state of --resume, then creates the run folder (only now, so that bad input leaves nothing
  // behind). Throws mtl::Error for configuration, data and checkpoint problems.
  Trainer(Config cfg, TrainOptions opts);

  void register_hook(std::unique_ptr<HookBase> hook) { hooks_.push_back(std::move(hook)); }
  // The epochs from the current state, with the hooks; returns at the end, at early stopping or
  // after stop().
  TrainSummary train();
  // One optimiser step: batches of the current epoch forward and backward until `optim.accumulate`
  // of them have been summed, then the update at lr(). A batch with a non-finite loss, or a step
  // with a non-finite gradient norm, is skipped (train.on_nonfinite: skip) or saves the last
  // checkpoint and throws mtl::Error naming the step and the values (stop). False, without a
  // step, when the epoch has no batches left.
  bool run_step();

  const Config& config() const { return cfg_; }
  const TrainOptions& options() const { return opts_; }
  const std::string& run_dir() const { return run_dir_; }
  Device device() const { return device_; }
  TrainState& state() { return st_; }
  models::ESANet& model() { return *model_; }
  Loader& val_loader() { return *val_loader_; }
  const Objective& objective() const { return *objective_; }
  RecordStore& records() { return records_; }
  const StepInfo& last_step() const { return last_; }
  const EpochInfo& last_epoch() const { return last_epoch_; }
  bool interrupted() const { return interrupted_; }
  // The parameters the optimiser updates (the model's and the balancer's), by name.
  const std::vector<std::pair<std::string, Tensor>>& parameters() const { return parameters_; }
  // Data parallelism: the group (null in one process), this process's rank and the world size.
  // Only rank 0 writes the run folder; every rank computes the same step.
  Communicator* communicator() const { return opts_.comm.get(); }
  int rank() const { return opts_.comm ? opts_.comm->rank() : 0; }
  int world_size() const { return opts_.comm ? opts_.comm->size() : 1; }
  bool is_writer() const { return rank() == 0; }
  // The sources the training samples come from (per-source loss logging).
  const std::vector<DataSource>& sources() const;
  int64_t batches_per_epoch() const { return batches_per_epoch_; }
  // Of the current epoch: fewer than batches_per_epoch() in an epoch resumed with another global
  // batch size (its grid starts where the run stopped).
  int64_t batches_in_epoch() const { return train_loader_->batches_in_epoch(); }
  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  int64_t total_steps() const { return steps_per_epoch_ * cfg_.train.epochs; }
  // Where the learning-rate schedule and the progress stand, in steps of the current global batch:
  // state().step, plus the shift a resume with another global batch size brings.
  int64_t schedule_step() const { return st_.step + st_.schedule_offset; }

  double lr() const { return lr_; }
  void set_lr(double lr) { lr_ = lr; }
  // A line on the console (nothing with TrainOptions::quiet).
  void message(const std::string& line) { records_.message(line); }
  // Ends train() once the current hooks have run; `interrupted` goes into the summary.
  void stop(bool interrupted);
  // Marks the run finished before its last epoch (TrainSummary::early_stopped).
  void early_stop();
  // checkpoints/last.safetensors: the model, optimiser, balancer and loop state. The save_*
  // functions are called by every rank (the state gathers the ranks' training counts) and write
  // on rank 0 only.
  void save_last() { save_state(run_dir_ + "/checkpoints/last.safetensors"); }
  // The same at `path`.
  void save_state(const std::string& path);
  // checkpoints/best.safetensors: the model only, with the monitored value in the metadata.
  void save_best(double value) { save_weights(run_dir_ + "/checkpoints/best.safetensors", value, st_.best_epoch); }
  // The model only at `path`, with the monitored value and its epoch in the metadata.
  void save_weights(const std::string& path, double value, int64_t epoch);

 private:
  void end_epoch();
  // A non-finite loss or gradient norm: counted and skipped, or saved and thrown.
  void non_finite(const std::string& what, const std::map<std::string, double>& values);
  // Data parallelism: the losses of the global batch from every rank's `values` of batch `b`,
  // weighted by the ranks' shares; the same bits on every rank.
  std::map<std::string, double> global_losses(const std::map<std::string, double>& values, const Batch& b);
  // Continues a run saved with another global batch size at the same sample and schedule position.
  void adopt_global_batch();

  Config cfg_;
  TrainOptions opts_;
  Device device_;
  std::string run_dir_;
  bool already_finished_ = false;  // --resume of a run that had ended
  std::unique_ptr<Loader> train_loader_, val_loader_;
  int64_t batches_per_epoch_ = 0, steps_per_epoch_ = 0;
  int accumulate_ = 1;
  std::unique_ptr<models::ESANet> model_;
  std::unique_ptr<Objective> objective_;
  std::shared_ptr<Balancer> balancer_;
  std::vector<std::pair<std::string, Tensor>> parameters_;
  std::unique_ptr<AdamW> optimizer_;
  std::unique_ptr<GradientSync> grad_sync_;  // data parallelism only
  TrainState st_;
  double lr_ = 0;
  StepInfo last_;
  EpochInfo last_epoch_;
  // The training batches' confusion matrix over the current epoch, on the device (semantic task).
  std::optional<ops::ConfusionMatrix> train_confusion_;
  int64_t epoch_images_ = 0;
  RecordStore records_;
  std::vector<std::unique_ptr<HookBase>> hooks_;
  bool stop_ = false, interrupted_ = false, early_stopped_ = false;
};

}  // namespace mtl::train
