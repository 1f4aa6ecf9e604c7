#pragma once
// The layers ESANet is made of. Parameter and buffer names are PyTorch's (weight, bias,
// running_mean, running_var, num_batches_tracked) so state dicts convert by name.
#include <array>
#include <string>
#include <vector>

#include "core/enum_names.h"
#include "core/generator.h"
#include "nn/module.h"
#include "ops/sync_batch_norm.h"

namespace mtl::nn {

// Mixed precision follows the activations: a layer given bfloat16 input computes in bfloat16 with
// this copy of a float32 weight (a differentiable cast, so the gradient reaches the float32
// master weight); for any other input the weight itself.
Tensor compute_weight(const Tensor& weight, const Tensor& x);

struct Conv2dOptions {
  int64_t in = 0, out = 0;
  std::array<int64_t, 2> kernel{1, 1}, stride{1, 1}, padding{0, 0}, dilation{1, 1};
  int64_t groups = 1;
  bool bias = true;
};

class Conv2d : public Module {
 public:
  // Weight and bias drawn as PyTorch's default (uniform, bound 1/sqrt(fan_in)).
  Conv2d(const Conv2dOptions& o, Generator& gen);
  Tensor forward(const Tensor& x) override;
  const Conv2dOptions& options() const { return o_; }
  Tensor weight, bias;

 private:
  Conv2dOptions o_;
};

class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int64_t channels, double eps = 1e-5, double momentum = 0.1);
  Tensor forward(const Tensor& x) override;
  Tensor weight, bias, running_mean, running_var, num_batches_tracked;
  double eps, momentum;
  // When set, training-mode statistics are those of the whole data-parallel batch: the function
  // sums them over the processes (ops/sync_batch_norm.h; set by train/dist's convert_sync_batch_norm).
  ops::ChannelSum sync;
};

class GroupNorm : public Module {
 public:
  GroupNorm(int64_t groups, int64_t channels, double eps = 1e-5);
  Tensor forward(const Tensor& x) override;
  Tensor weight, bias;
  int64_t groups;
  double eps;
};

enum class NormKind { batchnorm, groupnorm };
MTL_ENUM_NAMES(NormKind, "batchnorm", "groupnorm")

class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) override;
};

class Sigmoid : public Module {
 public:
  Tensor forward(const Tensor& x) override;
};

// Children named "0", "1", ... as nn.Sequential.
class Sequential : public Module {
 public:
  Sequential() = default;
  explicit Sequential(const std::vector<ModulePtr>& mods);
  void push_back(ModulePtr m);
  Tensor forward(const Tensor& x) override;
  size_t size() const { return children().size(); }
  bool empty() const { return children().empty(); }
};

enum class UpsampleMode { learned, bilinear, nearest };
MTL_ENUM_NAMES(UpsampleMode, "learned", "bilinear", "nearest")

// x2 upsampling. `learned` is ESANet's learned-3x3-zeropad: nearest x2, then a depthwise 3x3
// convolution (child "conv") initialised to the separable [1,2,1]/4 kernel with zero bias.
class Upsample : public Module {
 public:
  Upsample(UpsampleMode mode, int64_t channels, Generator& gen);
  Tensor forward(const Tensor& x) override;
  UpsampleMode mode() const { return mode_; }
  std::shared_ptr<Conv2d> conv;

 private:
  UpsampleMode mode_;
};

}  // namespace mtl::nn
