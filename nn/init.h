#pragma once
// Initialisers, as the reference code uses them. All draw from a seeded mtl::Generator so that a
// model built twice with one seed is identical.
#include "core/generator.h"
#include "core/tensor.h"

namespace mtl::nn::init {

// fan_in = in_channels/groups * kh * kw, fan_out = out_channels * kh * kw (PyTorch's convention
// for a conv weight [out, in/groups, kh, kw]; for a 2-D weight [out, in]: in and out).
int64_t fan_in(const Tensor& w);
int64_t fan_out(const Tensor& w);
// N(0, sqrt(2 / fan_out)): kaiming_normal_(mode='fan_out', nonlinearity='relu').
void kaiming_normal_fan_out(Tensor& w, Generator& gen);
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for conv/linear bias, and the weight
// bound of kaiming_uniform_(a=sqrt(5)).
void default_uniform(Tensor& t, int64_t fan_in, Generator& gen);
void constant(Tensor& t, double value);
// Overwrites t (any device) with host values.
void assign(Tensor& t, const std::vector<double>& values);

}  // namespace mtl::nn::init
