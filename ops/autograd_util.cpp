#include "ops/autograd_util.h"

namespace mtl::ops {

void record(const char* name, const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs,
            BackwardFn fn) {
  if (!autograd::needs_grad(inputs)) return;
  std::vector<Shape> shapes;
  for (const Tensor& o : outputs) shapes.push_back(o.shape());
  const Options opts = outputs.at(0).options();
  auto wrapped = [fn = std::move(fn), shapes, opts](const std::vector<Tensor>& grads) {
    std::vector<Tensor> g = grads;
    for (size_t i = 0; i < g.size(); ++i)
      if (!g[i].defined()) g[i] = zeros(shapes[i], opts);
    return fn(g);
  };
  autograd::connect(std::make_shared<LambdaNode>(name, std::move(wrapped)), inputs, outputs);
}

}  // namespace mtl::ops
