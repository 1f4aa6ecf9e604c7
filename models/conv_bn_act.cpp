#include "models/conv_bn_act.h"

#include "models/norm.h"
#include "ops/ops.h"

namespace mtl::models {

ConvBNAct::ConvBNAct(int64_t in, int64_t out, int64_t kernel, nn::NormKind norm, Generator& gen, bool act,
                     int64_t stride)
    : act_(act) {
  nn::Conv2dOptions o;
  o.in = in, o.out = out, o.kernel = {kernel, kernel}, o.padding = {kernel / 2, kernel / 2};
  o.stride = {stride, stride};
  o.bias = false;
  conv = register_module("conv", std::make_shared<nn::Conv2d>(o, gen));
  bn = register_module("bn", make_norm(norm, out));
}

Tensor ConvBNAct::forward(const Tensor& x) {
  Tensor y = bn->forward(conv->forward(x));
  return act_ ? ops::relu(y) : y;
}

}  // namespace mtl::models
