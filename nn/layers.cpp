#include "nn/layers.h"

#include "core/error.h"
#include "nn/init.h"
#include "ops/ops.h"

namespace mtl::nn {

Tensor compute_weight(const Tensor& weight, const Tensor& x) {
  if (x.dtype() != DType::bf16 || !weight.defined() || weight.dtype() == DType::bf16) return weight;
  return ops::to(weight, DType::bf16);
}

Conv2d::Conv2d(const Conv2dOptions& o, Generator& gen) : o_(o) {
  MTL_CHECK(o.in > 0 && o.out > 0 && o.groups > 0 && o.in % o.groups == 0 && o.out % o.groups == 0,
            "Conv2d: ", o.in, " -> ", o.out, " channels with ", o.groups, " groups is not possible");
  weight = empty({o.out, o.in / o.groups, o.kernel[0], o.kernel[1]});
  init::default_uniform(weight, init::fan_in(weight), gen);
  register_parameter("weight", &weight);
  if (o.bias) {
    bias = empty({o.out});
    init::default_uniform(bias, init::fan_in(weight), gen);
    register_parameter("bias", &bias);
  }
}

Tensor Conv2d::forward(const Tensor& x) {
  ops::Conv2dParams p;
  p.stride_h = o_.stride[0], p.stride_w = o_.stride[1];
  p.pad_h = o_.padding[0], p.pad_w = o_.padding[1];
  p.dil_h = o_.dilation[0], p.dil_w = o_.dilation[1];
  p.groups = o_.groups;
  // The bias stays float32: the convolution adds it in float32 (ops::conv2d).
  return ops::conv2d(x, compute_weight(weight, x), bias, p);
}

BatchNorm2d::BatchNorm2d(int64_t channels, double eps_, double momentum_) : eps(eps_), momentum(momentum_) {
  weight = ones({channels});
  bias = zeros({channels});
  running_mean = zeros({channels});
  running_var = ones({channels});
  // Kept so that state dicts match PyTorch's; mtl always uses `momentum`, never this count.
  num_batches_tracked = zeros({}, DType::i64);
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
  register_buffer("running_mean", &running_mean);
  register_buffer("running_var", &running_var);
  register_buffer("num_batches_tracked", &num_batches_tracked);
}

Tensor BatchNorm2d::forward(const Tensor& x) {
  if (sync && is_training())
    return ops::sync_batch_norm2d(x, weight, bias, running_mean, running_var, sync, momentum, eps);
  return ops::batch_norm2d(x, weight, bias, running_mean, running_var, is_training(), momentum, eps);
}

GroupNorm::GroupNorm(int64_t groups_, int64_t channels, double eps_) : groups(groups_), eps(eps_) {
  MTL_CHECK(groups > 0 && channels % groups == 0, "GroupNorm: ", channels, " channels do not split into ", groups,
            " groups");
  weight = ones({channels});
  bias = zeros({channels});
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
}

Tensor GroupNorm::forward(const Tensor& x) { return ops::group_norm(x, groups, weight, bias, eps); }

Tensor ReLU::forward(const Tensor& x) { return ops::relu(x); }
Tensor Sigmoid::forward(const Tensor& x) { return ops::sigmoid(x); }

Sequential::Sequential(const std::vector<ModulePtr>& mods) {
  for (auto& m : mods) push_back(m);
}

void Sequential::push_back(ModulePtr m) { add_child(std::to_string(children().size()), std::move(m)); }

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (auto& [name, m] : children()) y = m->forward(y);
  return y;
}

Upsample::Upsample(UpsampleMode mode, int64_t channels, Generator& gen) : mode_(mode) {
  if (mode != UpsampleMode::learned) return;
  Conv2dOptions o;
  o.in = o.out = o.groups = channels;
  o.kernel = {3, 3};
  o.padding = {1, 1};
  conv = register_module("conv", std::make_shared<Conv2d>(o, gen));
  std::vector<double> k;
  for (int64_t c = 0; c < channels; ++c)
    for (double v : {0.0625, 0.125, 0.0625, 0.125, 0.25, 0.125, 0.0625, 0.125, 0.0625}) k.push_back(v);
  init::assign(conv->weight, k);
  init::constant(conv->bias, 0.0);
}

Tensor Upsample::forward(const Tensor& x) {
  MTL_CHECK(x.dim() == 4, "Upsample: input ", x.describe(), " is not NCHW");
  const int64_t h = x.size(2) * 2, w = x.size(3) * 2;
  switch (mode_) {
    case UpsampleMode::learned: return conv->forward(ops::interpolate_nearest(x, h, w));
    case UpsampleMode::bilinear: return ops::interpolate_bilinear(x, h, w);
    case UpsampleMode::nearest: return ops::interpolate_nearest(x, h, w);
  }
  return Tensor();
}

}  // namespace mtl::nn
