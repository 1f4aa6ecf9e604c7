#include "nn/linear.h"

#include "nn/init.h"
#include "nn/layers.h"
#include "ops/ops.h"

namespace mtl::nn {

Linear::Linear(int64_t in, int64_t out, bool has_bias, Generator& gen, Options o) {
  weight = empty({out, in}, o);
  init::default_uniform(weight, in, gen);
  register_parameter("weight", &weight);
  if (has_bias) {
    bias = empty({out}, o);
    init::default_uniform(bias, in, gen);
    register_parameter("bias", &bias);
  }
}

Tensor Linear::forward(const Tensor& x) {
  MTL_CHECK(x.dim() == 2 && x.size(1) == weight.size(1), "Linear(", weight.size(1), " -> ", weight.size(0), "): input ",
            x.describe(), " is not [N, ", weight.size(1), "]");
  Tensor wt = ops::permute(compute_weight(weight, x), {1, 0});
  Tensor y = ops::matmul(x, wt);
  return bias.defined() ? ops::add(y, compute_weight(bias, x)) : y;
}

}  // namespace mtl::nn
