#pragma once
// The process-wide CUDA context: one device, one stream, cuBLAS and cuDNN handles, all created on
// first use. On a machine without a GPU available() is false and nothing is printed.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <string>

namespace mtl::cuda {

bool available();     // a usable CUDA device exists (cached; never throws)
int device_count();   // 0 without a driver or device
void require();       // throws mtl::Error explaining why CUDA cannot be used
cudaStream_t stream();
cublasHandle_t cublas();
cudnnHandle_t cudnn();
void synchronize();   // waits for the stream and surfaces asynchronous errors
std::string device_name();
// Which GPU of the machine the context uses (default 0): one process per GPU in data-parallel
// training picks its local rank's. Must come before the first CUDA use; a later call with another
// index throws mtl::Error.
void select_device(int index);
int selected_device();

// TF32 tensor-core math for float32 GEMMs and convolutions (on by default, as in PyTorch).
void set_allow_tf32(bool on);
bool allow_tf32();
// Deterministic algorithms only (cuDNN convolutions, reductions).
void set_deterministic(bool on);
bool deterministic();

}  // namespace mtl::cuda
