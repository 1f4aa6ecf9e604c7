#pragma once
// The hooks a training run is made of (Detectron2's engine/hooks.py, for this trainer). Registered
// in this order by default_hooks(): the schedule sets each step's learning rate, logging writes
// the step and epoch records, validation keeps the best checkpoints and stops early,
// checkpointing writes last.safetensors, interruption stops cleanly on SIGINT/SIGTERM, and the
// test evaluates the best checkpoint at the end.
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <vector>

#include "train/engine/trainer.h"
#include "train/optim/schedule.h"

namespace mtl::train {

// The learning rate of each optimiser step from schedule.* (warm-up, then cosine, linear or
// constant), set before the step.
class LrScheduleHook : public HookBase {
 public:
  explicit LrScheduleHook(LrSchedule schedule) : schedule_(schedule) {}
  void before_step(Trainer& t) override;

 private:
  LrSchedule schedule_;
};

// Every log.every optimiser steps (and at the last one): a training record with the losses and
// their parts, the balancer's weights, the gradient norm, each source's own loss, times, speed and
// memory. After every epoch: the epoch's record (mean losses, training mIoU and pixel accuracy).
class LoggingHook : public HookBase {
 public:
  void before_train(Trainer& t) override;
  void after_step(Trainer& t) override;
  void after_epoch(Trainer& t) override;

 private:
  std::chrono::steady_clock::time_point start_;
  int64_t first_step_ = 0;
};

// Validation at the ends of epochs (every train.val_every, and the last) and every
// train.val_every_steps optimiser steps: the record with panels, the best checkpoint by
// train.monitor, the checkpoint.keep_top_k best ones, and early stopping after
// train.early_stopping.patience validations without an improvement of at least min_delta. At the
// end, a line with the best value and its epoch.
class ValidationHook : public HookBase {
 public:
  void after_step(Trainer& t) override;
  void after_epoch(Trainer& t) override;
  void after_train(Trainer& t) override;

 private:
  // `epoch`: the 1-based epoch the validation belongs to.
  void validate(Trainer& t, int64_t epoch, bool epoch_end);
  void keep_top_k(Trainer& t, double value, int64_t epoch);
  std::optional<EvalRecord> best_;  // of this session's validations
};

// checkpoints/last.safetensors at the end of every epoch and when early stopping ends the run
// between epoch ends; checkpoints/epochNNN.safetensors every checkpoint.every_epochs epochs.
class CheckpointHook : public HookBase {
 public:
  void after_step(Trainer& t) override;
  void after_epoch(Trainer& t) override;
};

// When training ends (all epochs, early stopping, or an interruption with train.test_on_interrupt):
// the best checkpoint (else the last) on the test split at the labels' original resolution, as
// mtl_eval does it, into RUN/test_metrics.json and panels in RUN/eval_test/, and a summary line.
// Nothing when the data has no test split. In data-parallel training rank 0 alone runs it.
class TestHook : public HookBase {
 public:
  void after_train(Trainer& t) override;
};

// Set by SIGINT/SIGTERM while an InterruptHook is installed (and by tests).
std::atomic<bool>& stop_requested();

// On SIGINT/SIGTERM (or TrainOptions::stop_after_steps) the step in progress finishes, last is
// saved and training stops; the signal handlers are installed for the duration of train(). In
// data-parallel training the ranks agree after every step, so a signal to any one stops all.
class InterruptHook : public HookBase {
 public:
  InterruptHook();
  ~InterruptHook() override;
  void before_train(Trainer& t) override;
  void after_step(Trainer& t) override;
  void after_train(Trainer& t) override;

 private:
  struct Signals;
  std::unique_ptr<Signals> signals_;
};

// The hooks of a run, from its configuration, in the order above.
std::vector<std::unique_ptr<HookBase>> default_hooks(const Trainer& t);

}  // namespace mtl::train
