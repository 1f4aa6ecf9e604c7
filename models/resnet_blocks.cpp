#include "models/resnet_blocks.h"

#include "models/norm.h"

#include "ops/ops.h"

namespace mtl::models {

namespace {
std::shared_ptr<nn::Conv2d> conv(int64_t in, int64_t out, std::array<int64_t, 2> k, std::array<int64_t, 2> stride,
                                 std::array<int64_t, 2> pad, bool bias, Generator& gen) {
  nn::Conv2dOptions o;
  o.in = in, o.out = out, o.kernel = k, o.stride = stride, o.padding = pad, o.bias = bias;
  return std::make_shared<nn::Conv2d>(o, gen);
}
}  // namespace

std::shared_ptr<nn::Sequential> make_downsample(int64_t in, int64_t out, int64_t stride, nn::NormKind norm,
                                                Generator& gen) {
  auto s = std::make_shared<nn::Sequential>();
  s->push_back(conv(in, out, {1, 1}, {stride, stride}, {0, 0}, false, gen));
  s->push_back(make_norm(norm, out));
  return s;
}

BasicBlock::BasicBlock(int64_t in, int64_t planes, int64_t stride, nn::NormKind norm, Generator& gen) {
  conv1 = register_module("conv1", conv(in, planes, {3, 3}, {stride, stride}, {1, 1}, false, gen));
  bn1 = register_module("bn1", make_norm(norm, planes));
  conv2 = register_module("conv2", conv(planes, planes, {3, 3}, {1, 1}, {1, 1}, false, gen));
  bn2 = register_module("bn2", make_norm(norm, planes));
  if (stride != 1 || in != planes) downsample = register_module("downsample", make_downsample(in, planes, stride, norm, gen));
}

Tensor BasicBlock::forward(const Tensor& x) {
  Tensor out = ops::relu(bn1->forward(conv1->forward(x)));
  out = bn2->forward(conv2->forward(out));
  Tensor identity = downsample ? downsample->forward(x) : x;
  return ops::relu(ops::add(out, identity));
}

Bottleneck::Bottleneck(int64_t in, int64_t planes, int64_t stride, nn::NormKind norm, Generator& gen) {
  const int64_t out = planes * kExpansion;
  conv1 = register_module("conv1", conv(in, planes, {1, 1}, {1, 1}, {0, 0}, false, gen));
  bn1 = register_module("bn1", make_norm(norm, planes));
  conv2 = register_module("conv2", conv(planes, planes, {3, 3}, {stride, stride}, {1, 1}, false, gen));
  bn2 = register_module("bn2", make_norm(norm, planes));
  conv3 = register_module("conv3", conv(planes, out, {1, 1}, {1, 1}, {0, 0}, false, gen));
  bn3 = register_module("bn3", make_norm(norm, out));
  if (stride != 1 || in != out) downsample = register_module("downsample", make_downsample(in, out, stride, norm, gen));
}

Tensor Bottleneck::forward(const Tensor& x) {
  Tensor out = ops::relu(bn1->forward(conv1->forward(x)));
  out = ops::relu(bn2->forward(conv2->forward(out)));
  out = bn3->forward(conv3->forward(out));
  Tensor identity = downsample ? downsample->forward(x) : x;
  return ops::relu(ops::add(out, identity));
}

NonBottleneck1D::NonBottleneck1D(int64_t in, int64_t planes, int64_t stride, nn::NormKind norm, Generator& gen) {
  conv3x1_1 = register_module("conv3x1_1", conv(in, planes, {3, 1}, {stride, 1}, {1, 0}, true, gen));
  conv1x3_1 = register_module("conv1x3_1", conv(planes, planes, {1, 3}, {1, stride}, {0, 1}, true, gen));
  bn1 = register_module("bn1", make_norm(norm, planes, 1e-3));
  conv3x1_2 = register_module("conv3x1_2", conv(planes, planes, {3, 1}, {1, 1}, {1, 0}, true, gen));
  conv1x3_2 = register_module("conv1x3_2", conv(planes, planes, {1, 3}, {1, 1}, {0, 1}, true, gen));
  bn2 = register_module("bn2", make_norm(norm, planes, 1e-3));
  if (stride != 1 || in != planes) downsample = register_module("downsample", make_downsample(in, planes, stride, norm, gen));
}

Tensor NonBottleneck1D::forward(const Tensor& x) {
  Tensor out = ops::relu(conv3x1_1->forward(x));
  out = ops::relu(bn1->forward(conv1x3_1->forward(out)));
  out = ops::relu(conv3x1_2->forward(out));
  out = bn2->forward(conv1x3_2->forward(out));
  Tensor identity = downsample ? downsample->forward(x) : x;
  return ops::relu(ops::add(out, identity));
}

}  // namespace mtl::models
