#pragma once
#include "core/generator.h"
#include "nn/module.h"

namespace mtl::nn {

// y = x W^T + b for x [N, in]; W [out, in] as in PyTorch.
class Linear : public Module {
 public:
  Linear(int64_t in, int64_t out, bool bias, Generator& gen, Options o = {});
  Tensor forward(const Tensor& x) override;
  Tensor weight, bias;
};

}  // namespace mtl::nn
