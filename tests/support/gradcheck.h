#pragma once
// Caffe-style gradient checker: the analytic gradient of a random projection <w, f(inputs)>
// against central finite differences, in float64 on the CPU.
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace mtl::test {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-5;
  double rtol = 1e-3;
  uint64_t seed = 1234;  // for the projection weights
};

struct GradcheckResult {
  bool ok = true;
  std::string message;  // names the input, the element and both values on failure
};

// `inputs` must be float64 CPU tensors; those with requires_grad set are checked. `f` may return
// any shape; it is called many times and must be deterministic.
GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                          const std::vector<Tensor>& inputs, GradcheckOptions opts = {});

// The gradient of x after backpropagating `gy` through f(x), for a fresh leaf copy of x (any
// device): compares backward passes against references and across devices.
template <typename F>
Tensor grad_of(const Tensor& x_in, const Tensor& gy, F&& f) {
  Tensor x = x_in.detach().clone();
  x.set_requires_grad(true);
  f(x).backward(gy);
  return x.grad();
}

}  // namespace mtl::test

#define CHECK_GRADCHECK(...)                                   \
  do {                                                         \
    auto mtl_gc_ = ::mtl::test::gradcheck(__VA_ARGS__);        \
    INFO(mtl_gc_.message);                                     \
    CHECK(mtl_gc_.ok);                                         \
  } while (0)
