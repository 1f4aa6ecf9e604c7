#pragma once
// Module: a tree of named parameters, buffers and children, as in PyTorch, so that state-dict
// keys are dotted paths ("encoder.layer1.0.conv1.weight") that match the reference
// implementation's checkpoints. Parameters and buffers are registered by pointer to the member
// that holds them, so moving a module to a device or loading a state dict updates the tensors
// the layer's forward uses.
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace mtl::nn {

// What a state-dict load matched and what it did not.
struct LoadReport {
  std::vector<std::string> missing;         // in the module, not in the file
  std::vector<std::string> unexpected;      // in the file, not in the module
  std::vector<std::string> shape_mismatch;  // "name: file F32[40, 128, 3, 3] vs model F32[7, 128, 3, 3]"
  int64_t loaded = 0;
  bool clean() const { return missing.empty() && unexpected.empty() && shape_mismatch.empty(); }
  std::string str() const;  // one line per problem, for the console
};

class Module {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Unary modules (layers, blocks) override this; containers of several inputs define their own.
  virtual Tensor forward(const Tensor& x);
  Tensor operator()(const Tensor& x) { return forward(x); }

  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  std::vector<std::pair<std::string, Tensor>> named_buffers() const;
  std::vector<Tensor> parameters() const;
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const { return children_; }
  int64_t num_parameters() const;
  // Calls f(dotted name, module) for this module ("") and every descendant, parents first.
  void visit(const std::function<void(const std::string&, Module&)>& f, const std::string& prefix = "");

  // A frozen module ignores train(true) and stays in evaluation mode.
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  // Fixes this module and its descendants for fine-tuning: their parameters stop requiring
  // gradients, and they run in evaluation mode from now on whatever train() says, so BatchNorm
  // normalises with its running statistics and never updates them.
  void freeze();
  bool is_frozen() const { return frozen_; }
  void to(Device device);
  // Converts floating parameters and buffers (float64 for gradient checks of whole blocks).
  void to(DType dtype);
  void zero_grad();

  // Parameters and buffers by dotted name (CPU copies are not made: tensors as they are).
  std::map<std::string, Tensor> state_dict() const;
  // Copies matching tensors in (cast to each target's dtype, moved to its device). Strict: any
  // missing, unexpected or mis-shaped tensor is an error listing all of them and nothing is
  // changed. Non-strict: loads what matches and reports the rest.
  LoadReport load_state_dict(const std::map<std::string, Tensor>& sd, bool strict = true,
                             const std::string& source = "state dict");
  void save(const std::string& path, const std::map<std::string, std::string>& metadata = {}) const;
  LoadReport load(const std::string& path, bool strict = true);

 protected:
  // `slot` must outlive the module's use (a member of the derived class).
  void register_parameter(const std::string& name, Tensor* slot);
  void register_buffer(const std::string& name, Tensor* slot);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    add_child(name, m);
    return m;
  }
  void add_child(const std::string& name, std::shared_ptr<Module> m);

 private:
  void collect(const std::string& prefix, bool params, bool buffers,
               std::vector<std::pair<std::string, Tensor*>>& out) const;
  std::vector<std::pair<std::string, Tensor*>> params_, buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
  bool frozen_ = false;
};

using ModulePtr = std::shared_ptr<Module>;

}  // namespace mtl::nn
