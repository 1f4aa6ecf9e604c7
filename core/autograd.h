#pragma once
// The autograd graph: ops record a Node per differentiable call, holding the tensors its backward
// needs (saved detached, so a node never keeps its own output's graph alive) and one Edge per
// input. backward() runs the nodes in topological order, sums gradients that meet at a node or a
// leaf, and frees each node's saved tensors once it has run.
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace mtl::autograd {

class Node;

struct Edge {
  std::shared_ptr<Node> fn;           // the producer of the input, or
  std::shared_ptr<TensorImpl> leaf;   // the leaf itself (requires_grad, no grad_fn)
  uint32_t input_nr = 0;              // which output of `fn`
  // Expected gradient layout, checked by the engine so that a wrong backward fails loudly.
  Shape shape;
  DType dtype = DType::f32;
  Device device;
  bool valid() const { return fn || leaf; }
};

class Node {
 public:
  virtual ~Node() = default;
  // One gradient per output (undefined = zero); returns one per input (undefined = none).
  virtual std::vector<Tensor> apply(std::vector<Tensor>& grad_outputs) = 0;
  virtual std::string name() const = 0;
  // Drops saved tensors; called once the node has run.
  virtual void release_saved() {}

  std::vector<Edge> next;
  uint32_t num_outputs = 1;
  bool released = false;
};

bool grad_mode_enabled();
void set_grad_mode(bool on);

class NoGradGuard {
 public:
  NoGradGuard() : prev_(grad_mode_enabled()) { set_grad_mode(false); }
  ~NoGradGuard() { set_grad_mode(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// True when grad mode is on and any defined input requires grad.
bool needs_grad(const std::vector<Tensor>& inputs);
// Links `node` to `inputs` (one edge each, invalid for inputs that need no grad) and makes it the
// grad_fn of `outputs` (output_nr in order), which then require grad.
void connect(const std::shared_ptr<Node>& node, const std::vector<Tensor>& inputs,
             const std::vector<Tensor>& outputs);
void backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads);

// a + b for contiguous floating tensors of one shape, as a new tensor (gradient accumulation).
Tensor accumulate(const Tensor& a, const Tensor& b);

}  // namespace mtl::autograd
