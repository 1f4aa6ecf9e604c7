#pragma once
// Tensor: a strided view of shared Storage with a dtype and device, plus autograd state.
// Copying a Tensor copies a handle; both handles see the same data and gradient.
//
// The view methods here (view, permute, narrow, transpose, unsqueeze, squeeze) alias storage and
// are not recorded by autograd: on a tensor that requires grad (with grad mode on) they throw, and
// the differentiable versions live in ops/ (ops::reshape, ops::permute, ops::slice, ...).
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/shape.h"
#include "core/storage.h"

namespace mtl {

class Generator;
namespace autograd {
class Node;
}

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements
  Shape shape;
  Shape strides;  // in elements
  DType dtype = DType::f32;
  // autograd
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;
  std::shared_ptr<autograd::Node> grad_fn;
  uint32_t output_nr = 0;
};

struct Options {
  DType dtype = DType::f32;
  Device device = Device::cpu();
  Options() = default;
  Options(DType t) : dtype(t) {}  // NOLINT: allows zeros(s, DType::f64)
  Options(DType t, Device d) : dtype(t), device(d) {}
  Options(Device d) : device(d) {}  // NOLINT
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  const Shape& strides() const { return impl().strides; }
  int64_t dim() const { return static_cast<int64_t>(impl().shape.size()); }
  int64_t size(int64_t d) const;
  int64_t stride(int64_t d) const;
  int64_t numel() const { return mtl::numel(impl().shape); }
  int64_t offset() const { return impl().offset; }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device(); }
  Options options() const { return {dtype(), device()}; }
  bool is_cuda() const { return device().is_cuda(); }
  bool is_contiguous() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype()); }
  const std::shared_ptr<Storage>& storage() const { return impl().storage; }
  // "F32[2, 3] on cpu", for error messages.
  std::string describe() const;

  void* data_ptr() const;
  template <typename T>
  T* data() const {
    check_dtype(dtype_v<T>);
    return static_cast<T*>(data_ptr());
  }

  // Aliasing views (not differentiable; see the note at the top).
  Tensor view(const Shape& shape) const;  // contiguous only; one dimension may be -1
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor squeeze(int64_t dim) const;
  Tensor as_strided(const Shape& shape, const Shape& strides, int64_t offset) const;

  // Copies of contiguous tensors between devices (same dtype). Non-contiguous CPU tensors are
  // made contiguous on the way; for CUDA ones use ops::contiguous first.
  Tensor to(Device d) const;
  Tensor cpu() const { return to(Device::cpu()); }
  Tensor cuda() const { return to(Device::cuda()); }
  Tensor clone() const;  // same device, contiguous, no autograd history

  // Host values as double, in logical (row-major) order, for any dtype and layout. For tests,
  // logging and I/O; copies from the device when needed.
  std::vector<double> to_f64_vector() const;
  double item() const;  // the single element of a one-element tensor
  // Element access on CPU tensors, any layout.
  double at(const std::vector<int64_t>& index) const;
  void set(const std::vector<int64_t>& index, double value);

  // Autograd.
  bool requires_grad() const { return impl().requires_grad; }
  Tensor& set_requires_grad(bool on);  // leaves only
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  Tensor grad() const { return Tensor(impl().grad); }
  void set_grad(const Tensor& g);
  void zero_grad() { impl().grad.reset(); }
  const std::shared_ptr<autograd::Node>& grad_fn() const { return impl().grad_fn; }
  uint32_t output_nr() const { return impl().output_nr; }
  // Runs backpropagation from this tensor; `grad` defaults to 1 for a one-element tensor.
  void backward(const Tensor& grad = Tensor()) const;
  // Same data, no history, does not require grad.
  Tensor detach() const;

  TensorImpl& impl() const;
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& o) const { return impl_ == o.impl_; }

 private:
  void check_dtype(DType t) const;
  void check_view_allowed(const char* what) const;
  int64_t linear_index(const std::vector<int64_t>& index) const;
  std::shared_ptr<TensorImpl> impl_;
};

// Factories.
Tensor empty(const Shape& shape, Options o = {});
Tensor zeros(const Shape& shape, Options o = {});
Tensor ones(const Shape& shape, Options o = {});
Tensor full(const Shape& shape, double value, Options o = {});
Tensor arange(int64_t n, Options o = {});                         // 0 .. n-1
Tensor arange(double start, double end, double step, Options o = {});
Tensor uniform(const Shape& shape, double lo, double hi, Generator& gen, Options o = {});
Tensor normal(const Shape& shape, double mean, double stddev, Generator& gen, Options o = {});
// From host values, converted to the dtype; shape must hold values.size() elements.
Tensor from_vector(const std::vector<double>& values, const Shape& shape, Options o = {});
template <typename T>
Tensor from_data(const T* data, const Shape& shape, Device device = Device::cpu());

// Raw byte copy between contiguous tensors of equal size and dtype on any devices.
void copy_bytes(const Tensor& dst, const Tensor& src);

}  // namespace mtl
