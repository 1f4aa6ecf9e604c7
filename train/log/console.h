#pragma once
// The console: one line per logged step and per evaluation, durations, a progress bar. The
// functions are pure, so their exact output is testable.
#include <cstdint>
#include <string>

#include "train/log/records.h"

namespace mtl::train {

// Whole seconds as h:mm:ss (hours unbounded: "27:03:09"); "-:--:--" for a negative, non-finite
// or absurd (>= 1e9 s) duration: an ETA not yet known.
std::string format_duration(double seconds);
// "%.2e": 1e-3 -> "1.00e-03".
std::string format_lr(double lr);

struct Progress {
  int epochs = 0;         // total
  int64_t total_steps = 0;
  double eta_s = -1;      // negative: unknown
};

// "epoch 3/50 | step 120/1000 | eta 0:12:34 | lr 1.00e-03 | loss 1.2346 (semantic 0.8123,
//  depth 0.4222) | w semantic 1.000, depth 0.500 | data 0.012s step 0.250s | 32.0 img/s |
//  mem 1234 MB" on one line; the task parts and memory are left out when absent.
std::string format_train_line(const TrainRecord& r, const Progress& p);
// "epoch 3 done | loss semantic 0.8123, depth 0.4222 | miou 0.5234 pixel_acc 0.8123 | 400 images in
//  12.3s"; absent parts left out.
std::string format_epoch_line(const EpochRecord& r);
// "eval epoch 3 step 1200 | loss 0.9000 | miou 0.5234 | pixel_acc 0.8123 | depth rmse 0.4123
//  abs_rel 0.1234 delta1 0.8123 | 12.3s"; absent parts left out.
std::string format_eval_line(const EvalRecord& r);
// "[#########>          ]  45%" with `width` cells between the brackets; done is clamped to
// [0, total] and total <= 0 counts as nothing done.
std::string progress_bar(int64_t done, int64_t total, int width = 30);
// True when stdout is a terminal: then a progress bar redrawn with '\r' reads well; in a log
// file it would not.
bool stdout_is_tty();

}  // namespace mtl::train
