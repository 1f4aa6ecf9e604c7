#pragma once
// Data-parallel gradients: after the backward pass every rank holds the gradients of its own share
// of the global batch; synchronize() replaces them by their average over the ranks, the gradient
// of the mean loss over the global batch. The gradients are packed into flat buckets of about
// `bucket_bytes` (fewer, larger collectives than one per tensor; PyTorch DDP's 25 MiB), one
// all-reduce each, in reverse parameter order (the order in which the backward pass finishes
// them, so that buckets can later start while it still runs).
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "train/dist/communicator.h"

namespace mtl::train {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

inline constexpr int64_t kDefaultBucketBytes = 25ll << 20;

// Tensors laid out back to back in flat buffers, one per run of tensors of one dtype and device,
// each at most `bucket_bytes` (a larger tensor has a bucket of its own).
struct Bucket {
  std::vector<size_t> members;   // indices into the tensors given
  std::vector<int64_t> offsets;  // each member's first element in `flat`
  Tensor flat;                   // 1-D, the members' dtype and device
};
std::vector<Bucket> make_buckets(const NamedTensors& tensors, int64_t bucket_bytes);

// Rank `root`'s values of `tensors` on every rank, bucket by bucket: the same start everywhere.
void broadcast_tensors(const NamedTensors& tensors, Communicator& comm, int root, const std::string& what,
                       int64_t bucket_bytes = kDefaultBucketBytes);

class GradientSync {
 public:
  // `params`: the parameters the optimiser updates (those that do not require grad are left
  // out). `buffers` (BatchNorm's running statistics with per-rank statistics) are broadcast from
  // rank 0 after every synchronisation, as DDP does, so that every rank evaluates and saves the
  // same model.
  GradientSync(const NamedTensors& params, NamedTensors buffers, std::shared_ptr<Communicator> comm,
               int64_t bucket_bytes = kDefaultBucketBytes);

  // Every parameter's gradient becomes the mean over the ranks; a parameter that got no gradient
  // on a rank counts as zeros there, and has a gradient on every rank afterwards. Called by every
  // rank once per optimiser step, after the last backward pass and before the gradient is read.
  void synchronize();

  const std::vector<Bucket>& buckets() const { return buckets_; }
  const NamedTensors& parameters() const { return params_; }  // in bucket order

 private:
  NamedTensors params_, buffers_;
  std::shared_ptr<Communicator> comm_;
  std::vector<Bucket> buckets_, buffer_buckets_;
};

}  // namespace mtl::train
