#include "core/tensor.h"

#include <cmath>
#include <cstring>
#include <numeric>

#include "core/autograd.h"
#include "core/cuda_check.h"
#include "core/cuda_context.h"
#include "core/error.h"
#include "core/generator.h"

namespace mtl {

namespace {

double read_as_double(const void* base, DType t, int64_t i) {
  switch (t) {
    case DType::f32: return static_cast<const float*>(base)[i];
    case DType::f64: return static_cast<const double*>(base)[i];
    case DType::bf16: return static_cast<float>(static_cast<const bf16*>(base)[i]);
    case DType::i32: return static_cast<const int32_t*>(base)[i];
    case DType::i64: return static_cast<double>(static_cast<const int64_t*>(base)[i]);
    case DType::u8: return static_cast<const uint8_t*>(base)[i];
    case DType::b8: return static_cast<const bool*>(base)[i] ? 1.0 : 0.0;
  }
  return 0;
}

void write_from_double(void* base, DType t, int64_t i, double v) {
  switch (t) {
    case DType::f32: static_cast<float*>(base)[i] = static_cast<float>(v); break;
    case DType::f64: static_cast<double*>(base)[i] = v; break;
    case DType::bf16: static_cast<bf16*>(base)[i] = bf16(static_cast<float>(v)); break;
    case DType::i32: static_cast<int32_t*>(base)[i] = static_cast<int32_t>(v); break;
    case DType::i64: static_cast<int64_t*>(base)[i] = static_cast<int64_t>(v); break;
    case DType::u8: static_cast<uint8_t*>(base)[i] = static_cast<uint8_t>(v); break;
    case DType::b8: static_cast<bool*>(base)[i] = v != 0; break;
  }
}

// Calls f(storage_offset) for every element of a strided layout in row-major logical order.
template <typename F>
void for_each_offset(const Shape& shape, const Shape& strides, int64_t offset, F&& f) {
  int64_t n = numel(shape);
  if (n == 0) return;
  std::vector<int64_t> idx(shape.size(), 0);
  int64_t off = offset;
  for (int64_t k = 0; k < n; ++k) {
    f(off);
    for (size_t d = shape.size(); d-- > 0;) {
      if (++idx[d] < shape[d]) {
        off += strides[d];
        break;
      }
      off -= strides[d] * (shape[d] - 1);
      idx[d] = 0;
    }
  }
}

std::shared_ptr<TensorImpl> make_impl(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape) MTL_CHECK(d >= 0, "negative dimension in shape ", shape_str(shape));
  if (device.is_cuda()) cuda::require();
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(static_cast<size_t>(numel(shape)) * dtype_size(dtype), device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return impl;
}

// Host buffer of values converted to `dtype`, then placed on the device.
Tensor from_host_doubles(const std::vector<double>& v, const Shape& shape, Options o) {
  Tensor host(make_impl(shape, o.dtype, Device::cpu()));
  void* p = host.data_ptr();
  for (size_t i = 0; i < v.size(); ++i) write_from_double(p, o.dtype, static_cast<int64_t>(i), v[i]);
  return o.device.is_cpu() ? host : host.to(o.device);
}

}  // namespace

TensorImpl& Tensor::impl() const {
  MTL_CHECK(impl_ != nullptr, "use of an undefined tensor");
  return *impl_;
}

int64_t Tensor::size(int64_t d) const { return shape()[wrap_dim(d, dim())]; }
int64_t Tensor::stride(int64_t d) const { return strides()[wrap_dim(d, dim())]; }

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (size_t i = shape().size(); i-- > 0;) {
    if (shape()[i] == 1) continue;
    if (strides()[i] != expected) return false;
    expected *= shape()[i];
  }
  return true;
}

std::string Tensor::describe() const {
  if (!defined()) return "undefined tensor";
  return std::string(dtype_name(dtype())) + shape_str(shape()) + " on " + device().str();
}

void* Tensor::data_ptr() const {
  return static_cast<char*>(impl().storage->data()) + impl().offset * static_cast<int64_t>(dtype_size(dtype()));
}

void Tensor::check_dtype(DType t) const {
  MTL_CHECK(dtype() == t, "tensor ", describe(), " accessed as ", dtype_name(t));
}

void Tensor::check_view_allowed(const char* what) const {
  MTL_CHECK(!(requires_grad() && autograd::grad_mode_enabled()), "Tensor::", what,
            " is not differentiable; use ops::", what, " (or detach()) on ", describe());
}

Tensor Tensor::as_strided(const Shape& shape, const Shape& strides, int64_t offset) const {
  MTL_CHECK(shape.size() == strides.size(), "as_strided: shape ", shape_str(shape), " and strides ",
            shape_str(strides), " differ in length");
  auto v = std::make_shared<TensorImpl>();
  v->storage = impl().storage;
  v->offset = offset;
  v->shape = shape;
  v->strides = strides;
  v->dtype = dtype();
  return Tensor(v);
}

Tensor Tensor::view(const Shape& new_shape) const {
  check_view_allowed("reshape");
  MTL_CHECK(is_contiguous(), "view of non-contiguous tensor ", describe(), "; use ops::reshape");
  Shape s = new_shape;
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      MTL_CHECK(infer < 0, "view: more than one -1 in ", shape_str(new_shape));
      infer = static_cast<int>(i);
    } else {
      known *= s[i];
    }
  }
  if (infer >= 0) {
    MTL_CHECK(known > 0 && numel() % known == 0, "cannot view ", describe(), " as ", shape_str(new_shape));
    s[infer] = numel() / known;
  }
  MTL_CHECK(mtl::numel(s) == numel(), "cannot view ", describe(), " as ", shape_str(new_shape),
            ": element counts differ");
  return as_strided(s, contiguous_strides(s), offset());
}

Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  check_view_allowed("permute");
  MTL_CHECK(static_cast<int64_t>(dims.size()) == dim(), "permute of ", describe(), " needs ", dim(),
            " dimensions, got ", dims.size());
  Shape s(dims.size()), st(dims.size());
  std::vector<bool> seen(dims.size(), false);
  for (size_t i = 0; i < dims.size(); ++i) {
    int d = wrap_dim(dims[i], dim());
    MTL_CHECK(!seen[d], "permute: dimension ", d, " repeated");
    seen[d] = true;
    s[i] = shape()[d];
    st[i] = strides()[d];
  }
  return as_strided(s, st, offset());
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  std::vector<int64_t> p(dim());
  std::iota(p.begin(), p.end(), 0);
  std::swap(p[wrap_dim(d0, dim())], p[wrap_dim(d1, dim())]);
  return permute(p);
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  check_view_allowed("slice");
  int w = wrap_dim(d, dim());
  MTL_CHECK(start >= 0 && length >= 0 && start + length <= shape()[w], "narrow(dim ", w, ", start ", start,
            ", length ", length, ") out of range for ", describe());
  Shape s = shape();
  s[w] = length;
  return as_strided(s, strides(), offset() + start * strides()[w]);
}

Tensor Tensor::unsqueeze(int64_t d) const {
  check_view_allowed("reshape");
  int w = wrap_dim(d, dim() + 1);
  Shape s = shape(), st = strides();
  int64_t stv = w < dim() ? strides()[w] * shape()[w] : 1;
  s.insert(s.begin() + w, 1);
  st.insert(st.begin() + w, stv);
  return as_strided(s, st, offset());
}

Tensor Tensor::squeeze(int64_t d) const {
  check_view_allowed("reshape");
  int w = wrap_dim(d, dim());
  MTL_CHECK(shape()[w] == 1, "squeeze: dimension ", w, " of ", describe(), " is not 1");
  Shape s = shape(), st = strides();
  s.erase(s.begin() + w);
  st.erase(st.begin() + w);
  return as_strided(s, st, offset());
}

Tensor Tensor::to(Device d) const {
  if (d == device()) return *this;
  if (d.is_cuda()) cuda::require();
  Tensor src = *this;
  if (!is_contiguous()) {
    MTL_CHECK(device().is_cpu(), "Tensor::to: ", describe(), " is not contiguous; call ops::contiguous first");
    src = clone();
  }
  Tensor out(make_impl(shape(), dtype(), d));
  copy_bytes(out, src);
  return out;
}

Tensor Tensor::clone() const {
  Tensor out(make_impl(shape(), dtype(), device()));
  if (is_contiguous()) {
    copy_bytes(out, *this);
    return out;
  }
  MTL_CHECK(device().is_cpu(), "Tensor::clone of non-contiguous ", describe(), "; use ops::contiguous");
  size_t es = dtype_size(dtype());
  const char* src = static_cast<const char*>(impl().storage->data());
  char* dst = static_cast<char*>(out.data_ptr());
  for_each_offset(shape(), strides(), offset(), [&](int64_t off) {
    std::memcpy(dst, src + off * static_cast<int64_t>(es), es);
    dst += es;
  });
  return out;
}

void copy_bytes(const Tensor& dst, const Tensor& src) {
  MTL_CHECK(dst.is_contiguous() && src.is_contiguous(), "copy_bytes needs contiguous tensors, got ",
            dst.describe(), " and ", src.describe());
  MTL_CHECK(dst.nbytes() == src.nbytes() && dst.dtype() == src.dtype(), "copy_bytes: ", dst.describe(),
            " and ", src.describe(), " differ");
  if (dst.nbytes() == 0) return;
  if (dst.device().is_cpu() && src.device().is_cpu()) {
    std::memcpy(dst.data_ptr(), src.data_ptr(), dst.nbytes());
    return;
  }
  cudaMemcpyKind kind = src.device().is_cpu() ? cudaMemcpyHostToDevice
                        : dst.device().is_cpu() ? cudaMemcpyDeviceToHost
                                                : cudaMemcpyDeviceToDevice;
  MTL_CUDA_CHECK(cudaMemcpyAsync(dst.data_ptr(), src.data_ptr(), dst.nbytes(), kind, cuda::stream()));
  // Pageable host memory may be reused by the caller as soon as we return.
  if (kind != cudaMemcpyDeviceToDevice) cuda::synchronize();
}

std::vector<double> Tensor::to_f64_vector() const {
  Tensor h = device().is_cpu() ? *this : (is_contiguous() ? to(Device::cpu()) : Tensor());
  MTL_CHECK(h.defined(), "to_f64_vector: non-contiguous CUDA tensor ", describe());
  std::vector<double> out;
  out.reserve(static_cast<size_t>(numel()));
  const void* base = h.impl().storage->data();
  for_each_offset(h.shape(), h.strides(), h.offset(),
                  [&](int64_t off) { out.push_back(read_as_double(base, h.dtype(), off)); });
  return out;
}

double Tensor::item() const {
  MTL_CHECK(numel() == 1, "item() needs a one-element tensor, got ", describe());
  return to_f64_vector()[0];
}

int64_t Tensor::linear_index(const std::vector<int64_t>& index) const {
  MTL_CHECK(device().is_cpu(), "element access on ", describe(), "; copy it to the cpu first");
  MTL_CHECK(static_cast<int64_t>(index.size()) == dim(), "index of length ", index.size(), " for ", describe());
  int64_t off = offset();
  for (size_t i = 0; i < index.size(); ++i) {
    MTL_CHECK(index[i] >= 0 && index[i] < shape()[i], "index ", index[i], " out of range in dimension ", i,
              " of ", describe());
    off += index[i] * strides()[i];
  }
  return off;
}

double Tensor::at(const std::vector<int64_t>& index) const {
  return read_as_double(impl().storage->data(), dtype(), linear_index(index));
}

void Tensor::set(const std::vector<int64_t>& index, double value) {
  write_from_double(impl().storage->data(), dtype(), linear_index(index), value);
}

Tensor& Tensor::set_requires_grad(bool on) {
  MTL_CHECK(is_leaf(), "set_requires_grad on a non-leaf tensor ", describe());
  MTL_CHECK(!on || is_floating(dtype()), "only floating-point tensors can require grad, got ", describe());
  impl().requires_grad = on;
  return *this;
}

void Tensor::set_grad(const Tensor& g) {
  if (g.defined())
    MTL_CHECK(g.shape() == shape() && g.dtype() == dtype() && g.device() == device(), "gradient ",
              g.describe(), " does not match tensor ", describe());
  impl().grad = g.impl_ptr();
}

void Tensor::backward(const Tensor& grad) const {
  MTL_CHECK(requires_grad(), "backward on a tensor that does not require grad: ", describe());
  Tensor g = grad;
  if (!g.defined()) {
    MTL_CHECK(numel() == 1, "backward() without a gradient needs a one-element tensor, got ", describe());
    g = ones(shape(), options());
  }
  autograd::backward({*this}, {g});
}

Tensor Tensor::detach() const { return as_strided(shape(), strides(), offset()); }

Tensor empty(const Shape& shape, Options o) { return Tensor(make_impl(shape, o.dtype, o.device)); }

Tensor zeros(const Shape& shape, Options o) {
  Tensor t = empty(shape, o);
  if (t.nbytes() == 0) return t;
  if (o.device.is_cpu())
    std::memset(t.data_ptr(), 0, t.nbytes());
  else
    MTL_CUDA_CHECK(cudaMemsetAsync(t.data_ptr(), 0, t.nbytes(), cuda::stream()));
  return t;
}

Tensor full(const Shape& shape, double value, Options o) {
  return from_host_doubles(std::vector<double>(static_cast<size_t>(numel(shape)), value), shape, o);
}

Tensor ones(const Shape& shape, Options o) { return full(shape, 1.0, o); }

Tensor arange(int64_t n, Options o) { return arange(0.0, static_cast<double>(n), 1.0, o); }

Tensor arange(double start, double end, double step, Options o) {
  MTL_CHECK(step != 0, "arange: step is 0");
  int64_t n = std::max<int64_t>(0, static_cast<int64_t>(std::ceil((end - start) / step)));
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = start + static_cast<double>(i) * step;
  return from_host_doubles(v, {n}, o);
}

Tensor uniform(const Shape& shape, double lo, double hi, Generator& gen, Options o) {
  std::vector<double> v(static_cast<size_t>(numel(shape)));
  gen.fill_uniform(v.data(), v.size(), lo, hi);
  return from_host_doubles(v, shape, o);
}

Tensor normal(const Shape& shape, double mean, double stddev, Generator& gen, Options o) {
  std::vector<double> v(static_cast<size_t>(numel(shape)));
  gen.fill_normal(v.data(), v.size(), mean, stddev);
  return from_host_doubles(v, shape, o);
}

Tensor from_vector(const std::vector<double>& values, const Shape& shape, Options o) {
  MTL_CHECK(static_cast<int64_t>(values.size()) == numel(shape), "from_vector: ", values.size(),
            " values for shape ", shape_str(shape));
  return from_host_doubles(values, shape, o);
}

template <typename T>
Tensor from_data(const T* data, const Shape& shape, Device device) {
  Tensor host(make_impl(shape, dtype_v<T>, Device::cpu()));
  if (host.nbytes()) std::memcpy(host.data_ptr(), data, host.nbytes());
  return device.is_cpu() ? host : host.to(device);
}
template Tensor from_data<float>(const float*, const Shape&, Device);
template Tensor from_data<double>(const double*, const Shape&, Device);
template Tensor from_data<bf16>(const bf16*, const Shape&, Device);
template Tensor from_data<int32_t>(const int32_t*, const Shape&, Device);
template Tensor from_data<int64_t>(const int64_t*, const Shape&, Device);
template Tensor from_data<uint8_t>(const uint8_t*, const Shape&, Device);
template Tensor from_data<bool>(const bool*, const Shape&, Device);

}  // namespace mtl
