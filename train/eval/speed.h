#pragma once
// Forward-pass speed as mtl_eval reports it: median batch-1 latency and throughput at a batch size,
// after warm-up, with the device synchronised around each timed pass.
#include <string>

#include "core/tensor.h"
#include "train/eval/predictor.h"

namespace mtl::train {

struct SpeedOptions {
  int warmup = -1;           // untimed passes per batch size first; < 0: 1 on the CPU, 3 on CUDA
  int min_runs = 3;          // timed passes at least ...
  double min_seconds = 1.0;  // ... and until this much time has passed ...
  int max_runs = 50;         // ... but no more than this many
};

struct SpeedResult {
  std::string device;        // the device's name
  std::string precision;     // runtime.precision: fp32 or bf16
  int batch = 1;             // the throughput's batch size
  double latency_ms = 0;     // median time of one batch-1 prediction
  double images_per_s = 0;   // batch * runs / total time at `batch`
};

// The CPU's "model name" from /proc/cpuinfo (or "unknown CPU"), or cuda::device_name().
std::string device_display_name(Device device);

// Times Predictor::forward (every model and TTA pass, combined) on copies of one sample's
// network inputs (rgb [1, 3, H, W], depth [1, 1, H, W], any device) at batch 1 and at `batch`,
// with warm-up and a device synchronisation around each timed pass; data loading and the
// transfer of the inputs are not timed.
SpeedResult measure_speed(const Predictor& predictor, const Tensor& rgb, const Tensor& depth, int batch,
                          const SpeedOptions& o = {});

}  // namespace mtl::train
