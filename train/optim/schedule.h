#pragma once
// Learning-rate schedules, per optimiser step: a linear warm-up to base_lr, then cosine or linear
// decay to min_lr, or constant. Pure host functions; formulas in docs/optimisation.md.
#include <cstdint>

#include "train/config/config.h"

namespace mtl::train {

struct LrSchedule {
  SchedulePolicy policy = SchedulePolicy::cosine;
  double base_lr = 1e-3;
  double min_lr = 0.0;        // the value decay ends at (cosine, linear)
  int64_t warmup_steps = 0;   // steps 0 .. warmup_steps-1 ramp up to base_lr
  int64_t total_steps = 1;    // steps in the run; from here on the rate stays at its final value

  // Throws mtl::Error for negative or non-finite rates, min_lr > base_lr, a negative warm-up, or
  // a warm-up longer than the run.
  void validate() const;
  // The rate for 0-based optimiser step `step` (>= 0):
  //   step < warmup:      base * (step + 1) / warmup
  //   afterwards, with progress = min(1, (step - warmup) / (total - warmup)):
  //     cosine:   min + 0.5 * (base - min) * (1 + cos(pi * progress))
  //     linear:   min + (base - min) * (1 - progress)
  //     constant: base
  double lr(int64_t step) const;
};

// The run's schedule from the config: warm-up from schedule.warmup_steps, or from
// schedule.warmup_epochs * steps_per_epoch rounded to the nearest step.
LrSchedule make_schedule(const ScheduleConfig& cfg, double base_lr, int64_t steps_per_epoch, int64_t epochs);

}  // namespace mtl::train
