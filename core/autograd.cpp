#include "core/autograd.h"

#include <unordered_map>

#include "core/bfloat16.h"
#include "core/cuda_check.h"
#include "core/cuda_context.h"
#include "core/error.h"

namespace mtl::autograd {

namespace {
thread_local bool g_grad_mode = true;

Edge edge_of(const Tensor& t) {
  Edge e;
  if (!t.defined() || !t.requires_grad()) return e;
  if (t.grad_fn())
    e.fn = t.grad_fn(), e.input_nr = t.output_nr();
  else
    e.leaf = t.impl_ptr();
  e.shape = t.shape();
  e.dtype = t.dtype();
  e.device = t.device();
  return e;
}

void check_grad(const Edge& e, const Tensor& g, const std::string& producer) {
  MTL_ASSERT(g.shape() == e.shape && g.dtype() == e.dtype && g.device() == e.device, "backward of ",
             producer, " produced gradient ", g.describe(), " for an input ", dtype_name(e.dtype),
             shape_str(e.shape), " on ", e.device.str());
  MTL_ASSERT(g.is_contiguous(), "backward of ", producer, " produced a non-contiguous gradient");
}

void add_into(Tensor& slot, const Tensor& g) { slot = slot.defined() ? accumulate(slot, g) : g; }
}  // namespace

bool grad_mode_enabled() { return g_grad_mode; }
void set_grad_mode(bool on) { g_grad_mode = on; }

bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!g_grad_mode) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

void connect(const std::shared_ptr<Node>& node, const std::vector<Tensor>& inputs,
             const std::vector<Tensor>& outputs) {
  node->next.clear();
  for (const Tensor& t : inputs) node->next.push_back(edge_of(t));
  node->num_outputs = static_cast<uint32_t>(outputs.size());
  for (size_t i = 0; i < outputs.size(); ++i) {
    TensorImpl& o = outputs[i].impl();
    o.grad_fn = node;
    o.output_nr = static_cast<uint32_t>(i);
    o.requires_grad = true;
  }
}

Tensor accumulate(const Tensor& a, const Tensor& b) {
  MTL_ASSERT(a.shape() == b.shape() && a.dtype() == b.dtype() && a.device() == b.device(),
             "accumulate ", a.describe(), " + ", b.describe());
  MTL_ASSERT(a.is_contiguous() && b.is_contiguous(), "accumulate needs contiguous gradients");
  Tensor out = a.clone();
  int64_t n = out.numel();
  if (n == 0) return out;
  if (out.device().is_cpu()) {
    if (out.dtype() == DType::f32) {
      float* o = out.data<float>();
      const float* x = b.data<float>();
      for (int64_t i = 0; i < n; ++i) o[i] += x[i];
    } else if (out.dtype() == DType::f64) {
      double* o = out.data<double>();
      const double* x = b.data<double>();
      for (int64_t i = 0; i < n; ++i) o[i] += x[i];
    } else if (out.dtype() == DType::bf16) {
      // As cuBLAS does on the device: the sum in float32, rounded once.
      bf16* o = out.data<bf16>();
      const bf16* x = b.data<bf16>();
      for (int64_t i = 0; i < n; ++i) o[i] = bf16(static_cast<float>(o[i]) + static_cast<float>(x[i]));
    } else {
      MTL_CHECK(false, "gradient accumulation is not supported for ", out.describe());
    }
    return out;
  }
  // On the device, y += 1*x through cuBLAS: no kernel needed at this layer.
  MTL_CHECK(n <= INT32_MAX, "gradient too large to accumulate: ", out.describe());
  if (out.dtype() == DType::f32) {
    float one = 1.f;
    MTL_CUBLAS_CHECK(cublasSaxpy(cuda::cublas(), static_cast<int>(n), &one, b.data<float>(), 1,
                                 out.data<float>(), 1));
  } else if (out.dtype() == DType::f64) {
    double one = 1.0;
    MTL_CUBLAS_CHECK(
        cublasDaxpy(cuda::cublas(), static_cast<int>(n), &one, b.data<double>(), 1, out.data<double>(), 1));
  } else if (out.dtype() == DType::bf16) {
    float one = 1.f;
    MTL_CUBLAS_CHECK(cublasAxpyEx(cuda::cublas(), static_cast<int>(n), &one, CUDA_R_32F, b.data_ptr(), CUDA_R_16BF, 1,
                                  out.data_ptr(), CUDA_R_16BF, 1, CUDA_R_32F));
  } else {
    MTL_CHECK(false, "gradient accumulation is not supported for ", out.describe());
  }
  return out;
}

void backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads) {
  MTL_CHECK(roots.size() == grads.size(), "backward: ", roots.size(), " roots but ", grads.size(), " gradients");
  std::unordered_map<Node*, int> deps;
  std::unordered_map<Node*, std::vector<Tensor>> buffers;
  std::vector<std::shared_ptr<Node>> stack, ready;

  for (size_t i = 0; i < roots.size(); ++i) {
    const Tensor& r = roots[i];
    MTL_CHECK(r.requires_grad(), "backward on a tensor that does not require grad: ", r.describe());
    MTL_CHECK(grads[i].shape() == r.shape() && grads[i].dtype() == r.dtype() && grads[i].device() == r.device(),
              "backward: gradient ", grads[i].describe(), " does not match root ", r.describe());
    if (r.grad_fn() && !deps.count(r.grad_fn().get())) {
      deps[r.grad_fn().get()] = 0;
      stack.push_back(r.grad_fn());
    }
  }
  // Count, for each node, how many edges lead into it.
  std::vector<std::shared_ptr<Node>> order = stack;
  while (!stack.empty()) {
    auto n = stack.back();
    stack.pop_back();
    for (const Edge& e : n->next) {
      if (!e.fn) continue;
      auto [it, inserted] = deps.try_emplace(e.fn.get(), 0);
      ++it->second;
      if (inserted) stack.push_back(e.fn), order.push_back(e.fn);
    }
  }
  for (size_t i = 0; i < roots.size(); ++i) {
    const Tensor& r = roots[i];
    Tensor g = grads[i].is_contiguous() ? grads[i] : grads[i].clone();
    if (r.grad_fn()) {
      auto& buf = buffers[r.grad_fn().get()];
      buf.resize(r.grad_fn()->num_outputs);
      add_into(buf[r.output_nr()], g);
    } else {
      Tensor leaf(r.impl_ptr());
      leaf.set_grad(leaf.grad().defined() ? accumulate(leaf.grad(), g) : g.clone());
    }
  }
  for (auto& n : order)
    if (deps[n.get()] == 0) ready.push_back(n);

  while (!ready.empty()) {
    std::shared_ptr<Node> node = ready.back();
    ready.pop_back();
    std::vector<Tensor> in = std::move(buffers[node.get()]);
    buffers.erase(node.get());
    in.resize(node->num_outputs);
    bool any = false;
    for (auto& g : in) any = any || g.defined();
    std::vector<Tensor> out;
    if (any) {
      MTL_CHECK(!node->released, "backward through ", node->name(),
                " a second time: its saved tensors were freed by the first backward");
      NoGradGuard no_grad;  // backward itself is not recorded
      out = node->apply(in);
      MTL_ASSERT(out.size() == node->next.size(), node->name(), " returned ", out.size(),
                 " gradients for ", node->next.size(), " inputs");
    }
    node->release_saved();
    node->released = true;
    for (size_t i = 0; i < node->next.size(); ++i) {
      const Edge& e = node->next[i];
      const Tensor g = i < out.size() ? out[i] : Tensor();
      if (g.defined() && e.valid()) check_grad(e, g, node->name());
      if (e.leaf && g.defined()) {
        Tensor leaf(e.leaf);
        // A fresh tensor: the same gradient may also reach another input, and optimizers may
        // change leaf gradients in place.
        leaf.set_grad(leaf.grad().defined() ? accumulate(leaf.grad(), g) : g.clone());
      } else if (e.fn) {
        if (g.defined()) {
          auto& buf = buffers[e.fn.get()];
          buf.resize(e.fn->num_outputs);
          add_into(buf[e.input_nr], g);
        }
        if (--deps[e.fn.get()] == 0) ready.push_back(e.fn);
      }
    }
  }
}

}  // namespace mtl::autograd
