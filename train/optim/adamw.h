#pragma once
// AdamW with decoupled weight decay (Loshchilov & Hutter), with the semantics of PyTorch's
// torch.optim.AdamW, parameter groups, and optional global gradient-norm clipping folded into
// the update. Formulas and choices: docs/optimisation.md.
//
// On CUDA a step is, per parameter group, one fused multi-tensor kernel (plus, with clipping,
// one norm pass over all gradients and a one-block finalisation); it allocates nothing and does
// not synchronise with the host. The optimiser keeps device pointers to the parameters: build
// it after the model has been moved to its device and converted to its dtype (Module::to
// replaces parameter tensors; loading a state dict copies in place and is fine).
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "kernels/adamw.h"
#include "train/optim/param_groups.h"

namespace mtl::train {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double max_grad_norm = 0.0;  // > 0: scale all gradients by min(1, max_grad_norm / (norm + 1e-6))
};

class AdamW {
 public:
  // All parameters must be contiguous floating tensors on one device with one dtype (CPU: F32 or
  // F64; CUDA: F32), with unique names, each in one group only.
  explicit AdamW(std::vector<ParamGroup> groups, AdamWOptions opts = {});
  AdamW(const AdamW&) = delete;
  AdamW& operator=(const AdamW&) = delete;

  // One update at learning rate `lr` (times each group's lr_scale). Parameters whose gradient
  // is undefined are skipped and their step count does not advance, as in PyTorch. Gradients
  // are read, never modified (clipping scales them inside the update).
  // Returns, when clipping is on, the global L2 norm of the gradients before clipping: a 0-d
  // tensor on the parameters' device whose storage is reused by every step (read or clone it
  // before the next one). Without clipping it returns an undefined tensor.
  Tensor step(double lr);
  // The global L2 norm of the current gradients (undefined ones count as zero) as a new 0-d
  // tensor on the parameters' device, without updating anything: for logging when clipping is
  // off. Deterministic: fixed-order partial sums, no atomics.
  Tensor grad_norm();
  // Drops every parameter's gradient.
  void zero_grad();

  // "<param>.exp_avg", "<param>.exp_avg_sq" (tensors like the parameter, aliases of the live
  // state: clone them to keep a snapshot) and "<param>.step" (0-d I64 on the CPU).
  std::map<std::string, Tensor> state_dict() const;
  // Copies a state in (cast to the parameters' dtype, moved to their device). Every key must be
  // present with the right shape and no other key may be: otherwise mtl::Error lists each
  // offending tensor by name and nothing is changed.
  void load_state_dict(const std::map<std::string, Tensor>& sd, const std::string& source = "optimizer state");

  const std::vector<ParamGroup>& groups() const { return groups_; }
  const AdamWOptions& options() const { return opts_; }
  int64_t step_count(const std::string& param) const;  // throws for an unknown name
  int64_t num_parameters() const;                      // elements over all groups

 private:
  struct Entry {
    std::string name;
    Tensor param, m, v;
    int64_t step = 0;
    int group = 0;
  };
  // A run of tensors of one group that one launch covers (at most kAdamWMaxTensors).
  struct Segment {
    int group = 0;
    int64_t t0 = 0, t1 = 0;  // entries [t0, t1)
    int64_t c0 = 0, c1 = 0;  // chunks [c0, c1)
  };

  kernels::AdamWScalars scalars(int group, double lr, int64_t step) const;
  void check_grads() const;
  void step_cpu(double lr);
  void step_cuda(double lr);
  double cpu_sum_squares() const;
  void cuda_norm(float* norm, float* scale);
  void build_cuda_tables();
  void fill_cuda_grads();
  const kernels::cuda::AdamWTensor* tensor_table() const {
    return reinterpret_cast<const kernels::cuda::AdamWTensor*>(tensor_table_.data_ptr());
  }
  const kernels::cuda::AdamWChunk* chunk_table() const {
    return reinterpret_cast<const kernels::cuda::AdamWChunk*>(chunk_table_.data_ptr());
  }

  std::vector<ParamGroup> groups_;
  AdamWOptions opts_;
  std::vector<Entry> entries_;
  Device device_;
  DType dtype_ = DType::f32;

  // CUDA: tables uploaded once, scratch reused by every step.
  std::vector<Segment> segments_;
  int64_t num_chunks_ = 0;
  Tensor tensor_table_, chunk_table_;  // U8 device buffers of AdamWTensor / AdamWChunk
  Tensor partials_, scale_;            // F32 [num_chunks], F32 []
  std::vector<kernels::cuda::AdamWGrads> grads_;  // one per segment, refilled each step
  kernels::cuda::AdamWGrads masked_{};
  Tensor norm_;  // F32/F64 [] on device_, returned by step()
};

}  // namespace mtl::train
