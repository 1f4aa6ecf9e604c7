#pragma once
// Argument checks and device/dtype dispatch shared by the ops.
#include <string>

#include "core/cuda_context.h"
#include "core/error.h"
#include "core/tensor.h"
#include "kernels/layout.h"

namespace mtl::ops::detail {

void check_defined(const Tensor& t, const char* op, const char* arg);
// Same device and dtype, naming both tensors otherwise.
void check_same(const Tensor& a, const Tensor& b, const char* op);
// CPU: float32 or float64. CUDA: float32 only (a missing CUDA dtype is an error, never a fallback).
void check_float(const Tensor& t, const char* op);

// Calls f with a value of the tensor's floating scalar type (CPU: float or double).
template <typename F>
void dispatch_cpu_float(const Tensor& t, const char* op, F&& f) {
  if (t.dtype() == DType::f32) return f(float{});
  if (t.dtype() == DType::f64) return f(double{});
  throw Error(std::string(op) + ": unsupported dtype for " + t.describe());
}

// A tensor's data, or null for an undefined (optional) tensor.
template <typename T>
T* data_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

// The product of the dimensions from `from` on (1 when there are none).
inline int64_t trailing_numel(const Shape& s, size_t from) {
  int64_t p = 1;
  for (size_t d = from; d < s.size(); ++d) p *= s[d];
  return p;
}

// Layout over `shape` with operand 0 contiguous and operands 1.. given (broadcast to `shape`).
kernels::Layout make_layout(const Shape& shape, const std::vector<const Tensor*>& operands);
// Layout for copying `src` into `dst` of the same shape (operand 0 = dst, 1 = src).
kernels::Layout copy_layout(const Tensor& dst, const Tensor& src);

}  // namespace mtl::ops::detail
