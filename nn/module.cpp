#include "nn/module.h"

#include <set>
#include <sstream>

#include "core/autograd.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "ops/shape.h"

namespace mtl::nn {

std::string LoadReport::str() const {
  std::ostringstream os;
  for (const auto& m : missing) os << "  missing (left at initialisation): " << m << "\n";
  for (const auto& u : unexpected) os << "  unexpected (ignored): " << u << "\n";
  for (const auto& s : shape_mismatch) os << "  shape mismatch (left at initialisation): " << s << "\n";
  return os.str();
}

Tensor Module::forward(const Tensor&) { throw Error("this module does not take a single tensor input"); }

void Module::register_parameter(const std::string& name, Tensor* slot) {
  MTL_ASSERT(slot && slot->defined(), "parameter '", name, "' is undefined");
  slot->set_requires_grad(true);
  params_.emplace_back(name, slot);
}

void Module::register_buffer(const std::string& name, Tensor* slot) {
  MTL_ASSERT(slot && slot->defined(), "buffer '", name, "' is undefined");
  buffers_.emplace_back(name, slot);
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> m) {
  MTL_ASSERT(m != nullptr, "child module '", name, "' is null");
  children_.emplace_back(name, std::move(m));
}

void Module::collect(const std::string& prefix, bool params, bool buffers,
                     std::vector<std::pair<std::string, Tensor*>>& out) const {
  if (params)
    for (auto& [n, t] : params_) out.emplace_back(prefix + n, t);
  if (buffers)
    for (auto& [n, t] : buffers_) out.emplace_back(prefix + n, t);
  for (auto& [n, c] : children_) c->collect(prefix + n + ".", params, buffers, out);
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Tensor*>> v;
  collect("", true, false, v);
  std::vector<std::pair<std::string, Tensor>> out;
  for (auto& [n, t] : v) out.emplace_back(n, *t);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers() const {
  std::vector<std::pair<std::string, Tensor*>> v;
  collect("", false, true, v);
  std::vector<std::pair<std::string, Tensor>> out;
  for (auto& [n, t] : v) out.emplace_back(n, *t);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_parameters()) out.push_back(t);
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (auto& [name, t] : named_parameters()) n += t.numel();
  return n;
}

void Module::visit(const std::function<void(const std::string&, Module&)>& f, const std::string& prefix) {
  f(prefix, *this);
  for (auto& [n, c] : children_) c->visit(f, prefix.empty() ? n : prefix + "." + n);
}

void Module::train(bool on) {
  training_ = on && !frozen_;
  for (auto& [n, c] : children_) c->train(on);
}

void Module::freeze() {
  frozen_ = true;
  training_ = false;
  for (auto& [n, t] : params_) t->set_requires_grad(false);
  for (auto& [n, c] : children_) c->freeze();
}

void Module::to(Device device) {
  std::vector<std::pair<std::string, Tensor*>> v;
  collect("", true, true, v);
  for (auto& [n, t] : v) {
    if (t->device() == device) continue;
    bool rg = t->requires_grad();
    Tensor moved = t->detach().to(device);
    if (rg) moved.set_requires_grad(true);
    *t = moved;
  }
}

void Module::to(DType dtype) {
  std::vector<std::pair<std::string, Tensor*>> v;
  collect("", true, true, v);
  autograd::NoGradGuard ng;
  for (auto& [n, t] : v) {
    if (!is_floating(t->dtype()) || t->dtype() == dtype) continue;
    bool rg = t->requires_grad();
    Tensor c = ops::to(t->detach(), dtype);
    if (rg) c.set_requires_grad(true);
    *t = c;
  }
}

void Module::zero_grad() {
  for (auto& [n, t] : named_parameters()) Tensor(t).zero_grad();
}

std::map<std::string, Tensor> Module::state_dict() const {
  std::map<std::string, Tensor> sd;
  std::vector<std::pair<std::string, Tensor*>> v;
  collect("", true, true, v);
  for (auto& [n, t] : v) sd[n] = t->detach();
  return sd;
}

LoadReport Module::load_state_dict(const std::map<std::string, Tensor>& sd, bool strict, const std::string& source) {
  std::vector<std::pair<std::string, Tensor*>> v;
  collect("", true, true, v);
  LoadReport r;
  std::set<std::string> known;
  std::vector<std::pair<Tensor*, Tensor>> updates;
  for (auto& [name, slot] : v) {
    known.insert(name);
    auto it = sd.find(name);
    if (it == sd.end()) {
      r.missing.push_back(name);
      continue;
    }
    const Tensor& src = it->second;
    if (src.shape() != slot->shape()) {
      r.shape_mismatch.push_back(name + ": " + source + " has " + dtype_name(src.dtype()) + shape_str(src.shape()) +
                                 ", model has " + dtype_name(slot->dtype()) + shape_str(slot->shape()));
      continue;
    }
    updates.emplace_back(slot, src);
  }
  for (auto& [name, t] : sd)
    if (!known.count(name)) r.unexpected.push_back(name);
  if (strict && !r.clean())
    throw Error("loading " + source + " failed: it does not match the model (" + std::to_string(r.missing.size()) +
                " missing, " + std::to_string(r.unexpected.size()) + " unexpected, " +
                std::to_string(r.shape_mismatch.size()) + " mis-shaped):\n" + r.str());
  autograd::NoGradGuard ng;
  for (auto& [slot, src] : updates) {
    Tensor value = ops::to(ops::to(src.detach(), slot->device()), slot->dtype());
    ops::copy_(*slot, ops::contiguous(value));
    ++r.loaded;
  }
  return r;
}

void Module::save(const std::string& path, const std::map<std::string, std::string>& metadata) const {
  save_safetensors(path, state_dict(), metadata);
}

LoadReport Module::load(const std::string& path, bool strict) {
  SafetensorsFile f = load_safetensors(path);
  return load_state_dict(f.tensors, strict, "'" + path + "'");
}

}  // namespace mtl::nn
