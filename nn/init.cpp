#include "nn/init.h"

#include <cmath>

#include "core/autograd.h"
#include "core/error.h"
#include "ops/shape.h"

namespace mtl::nn::init {

int64_t fan_in(const Tensor& w) {
  MTL_CHECK(w.dim() >= 2, "fan_in of ", w.describe());
  int64_t r = 1;
  for (int64_t d = 2; d < w.dim(); ++d) r *= w.size(d);
  return w.size(1) * r;
}

int64_t fan_out(const Tensor& w) {
  MTL_CHECK(w.dim() >= 2, "fan_out of ", w.describe());
  int64_t r = 1;
  for (int64_t d = 2; d < w.dim(); ++d) r *= w.size(d);
  return w.size(0) * r;
}

void assign(Tensor& t, const std::vector<double>& values) {
  autograd::NoGradGuard ng;
  Tensor src = from_vector(values, t.shape(), Options(t.dtype(), t.device()));
  ops::copy_(t, src);
}

void kaiming_normal_fan_out(Tensor& w, Generator& gen) {
  std::vector<double> v(static_cast<size_t>(w.numel()));
  gen.fill_normal(v.data(), v.size(), 0.0, std::sqrt(2.0 / static_cast<double>(fan_out(w))));
  assign(w, v);
}

void default_uniform(Tensor& t, int64_t fi, Generator& gen) {
  const double bound = fi > 0 ? 1.0 / std::sqrt(static_cast<double>(fi)) : 0.0;
  std::vector<double> v(static_cast<size_t>(t.numel()));
  gen.fill_uniform(v.data(), v.size(), -bound, bound);
  assign(t, v);
}

void constant(Tensor& t, double value) { assign(t, std::vector<double>(static_cast<size_t>(t.numel()), value)); }

}  // namespace mtl::nn::init
