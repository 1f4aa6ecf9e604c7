#pragma once
// Synchronised batch normalisation (PyTorch's SyncBatchNorm): in data-parallel training each
// process holds a share of the global batch, and these statistics are those of the whole batch.
// The op knows nothing of processes: it is given a function that sums a tensor in place over
// them (an all-reduce; the identity in one process).
#include <functional>

#include "core/tensor.h"

namespace mtl::ops {

// Sums `t` in place over the processes that share the batch. Every process calls it at the same
// points with the same shapes.
using ChannelSum = std::function<void(const Tensor&)>;

// Training-mode batch_norm2d (ops/batch_norm.h) over the global batch. Forward: the per-channel
// sum, sum of squares and count (float64) summed by `sum`, giving the global mean and biased
// variance; running_mean/running_var, when defined, take the global batch's mean and unbiased
// variance. Backward: the per-channel sums of gy and gy * xhat are summed the same way for the
// input gradient, which is thereby d(sum of every process's loss)/dx; the weight and bias
// gradients stay this process's own (the gradient all-reduce averages them with the others').
// Differentiable in x, weight and bias.
Tensor sync_batch_norm2d(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                         Tensor running_var, const ChannelSum& sum, double momentum = 0.1, double eps = 1e-5);

}  // namespace mtl::ops
