#pragma once
// Recording an op's backward: one Node whose apply is a lambda. Capture what the backward needs
// *detached* (t.detach()), never an output with its history, or the node would keep itself
// alive. The captures are destroyed once backward has run (saved tensors freed).
#include <functional>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/tensor.h"

namespace mtl::ops {

using BackwardFn = std::function<std::vector<Tensor>(const std::vector<Tensor>& grads)>;

class LambdaNode : public autograd::Node {
 public:
  LambdaNode(std::string name, BackwardFn fn) : name_(std::move(name)), fn_(std::move(fn)) {}
  std::vector<Tensor> apply(std::vector<Tensor>& grads) override { return fn_(grads); }
  std::string name() const override { return name_; }
  void release_saved() override { fn_ = nullptr; }

 private:
  std::string name_;
  BackwardFn fn_;
};

// Records `fn` as the backward of `outputs` when any input needs a gradient. Gradients of
// outputs that received none arrive as zeros, so backward lambdas never see undefined tensors.
void record(const char* name, const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs, BackwardFn fn);

}  // namespace mtl::ops
