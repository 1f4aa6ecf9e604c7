#include "train/run/runtime.h"

#include "core/cuda_context.h"
#include "core/error.h"
#include "kernels/threads.h"

namespace mtl::train {

Device resolve_device(DeviceChoice choice) {
  switch (choice) {
    case DeviceChoice::cpu:
      return Device::cpu();
    case DeviceChoice::cuda:
      cuda::require();
      return Device::cuda();
    case DeviceChoice::auto_:
      return cuda::available() ? Device::cuda() : Device::cpu();
  }
  return Device::cpu();
}

Device setup_runtime(const RuntimeConfig& rt, std::optional<Device> device) {
  const Device d = device ? *device : resolve_device(rt.device);
  if (d.is_cuda()) cuda::require();
  kernels::set_cpu_threads(rt.threads);
  cuda::set_deterministic(rt.deterministic);
  return d;
}

DType compute_dtype(Precision p) { return p == Precision::bf16 ? DType::bf16 : DType::f32; }

}  // namespace mtl::train
