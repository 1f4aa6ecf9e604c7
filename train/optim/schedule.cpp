#include "train/optim/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"

namespace mtl::train {

void LrSchedule::validate() const {
  MTL_CHECK(std::isfinite(base_lr) && base_lr >= 0, "schedule: base learning rate must be finite and >= 0, got ",
            base_lr);
  MTL_CHECK(std::isfinite(min_lr) && min_lr >= 0, "schedule: min_lr must be finite and >= 0, got ", min_lr);
  MTL_CHECK(policy == SchedulePolicy::constant || min_lr <= base_lr, "schedule: min_lr (", min_lr,
            ") is larger than the base learning rate (", base_lr, ")");
  MTL_CHECK(total_steps >= 1, "schedule: the run needs at least one step, got ", total_steps);
  MTL_CHECK(warmup_steps >= 0 && warmup_steps <= total_steps, "schedule: warm-up of ", warmup_steps,
            " steps does not fit the run of ", total_steps, " steps");
}

double LrSchedule::lr(int64_t step) const {
  MTL_CHECK(step >= 0, "schedule: negative step ", step);
  if (step < warmup_steps) return base_lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  if (policy == SchedulePolicy::constant) return base_lr;
  const int64_t decay_steps = total_steps - warmup_steps;
  // A run that is all warm-up has nothing left to decay over: it ends at min_lr.
  const double progress = decay_steps <= 0 ? 1.0
                                           : std::min(1.0, static_cast<double>(step - warmup_steps) /
                                                               static_cast<double>(decay_steps));
  if (policy == SchedulePolicy::linear) return min_lr + (base_lr - min_lr) * (1.0 - progress);
  return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + std::cos(std::numbers::pi * progress));
}

LrSchedule make_schedule(const ScheduleConfig& cfg, double base_lr, int64_t steps_per_epoch, int64_t epochs) {
  MTL_CHECK(steps_per_epoch >= 1, "schedule: an epoch has ", steps_per_epoch,
            " optimiser steps; the training set is smaller than one batch (check train.batch_size and "
            "train.drop_last)");
  MTL_CHECK(epochs >= 1, "schedule: train.epochs must be >= 1, got ", epochs);
  LrSchedule s;
  s.policy = cfg.policy;
  s.base_lr = base_lr;
  s.min_lr = cfg.min_lr;
  s.total_steps = steps_per_epoch * epochs;
  s.warmup_steps = cfg.warmup_steps > 0 ? cfg.warmup_steps
                                        : std::llround(cfg.warmup_epochs * static_cast<double>(steps_per_epoch));
  MTL_CHECK(s.warmup_steps <= s.total_steps, "schedule: the warm-up (", s.warmup_steps,
            " steps from schedule.warmup_steps / schedule.warmup_epochs) is longer than the run (", s.total_steps,
            " steps = ", epochs, " epochs x ", steps_per_epoch, " steps)");
  MTL_CHECK(cfg.policy == SchedulePolicy::constant || cfg.min_lr <= base_lr, "schedule.min_lr (", cfg.min_lr,
            ") is larger than optim.lr (", base_lr, ")");
  s.validate();
  return s;
}

}  // namespace mtl::train
