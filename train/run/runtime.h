#pragma once
// The process set-up that mtl_train, mtl_eval and mtl_predict share: which device, how many CPU
// threads, deterministic algorithms or not.
#include <optional>

#include "core/device.h"
#include "train/config/config.h"

namespace mtl::train {

// runtime.device as a Device: auto is CUDA when a GPU is usable, else the CPU; cuda throws
// mtl::Error explaining why when no GPU is usable.
Device resolve_device(DeviceChoice choice);

// Resolves the device (`device` when given, else runtime.device), requires CUDA to be usable
// when it is chosen, sets the CPU compute threads (runtime.threads) and cuDNN's determinism
// (runtime.deterministic). Returns the device. (runtime.precision goes to the model: see
// compute_dtype.)
Device setup_runtime(const RuntimeConfig& rt, std::optional<Device> device = std::nullopt);

// runtime.precision as the model's compute dtype (models::ESANet::set_compute_dtype): bf16 is
// bfloat16 activations with float32 weights, on the GPU and, computed as the GPU rounds, on the CPU.
DType compute_dtype(Precision p);

}  // namespace mtl::train
