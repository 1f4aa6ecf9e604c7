#include "ops/dispatch.h"

#include <algorithm>

#include "kernels/copy.h"
#include "ops/shape.h"

namespace mtl::ops::detail {

void check_defined(const Tensor& t, const char* op, const char* arg) {
  MTL_CHECK(t.defined(), op, ": argument '", arg, "' is an undefined tensor");
}

void check_same(const Tensor& a, const Tensor& b, const char* op) {
  MTL_CHECK(a.device() == b.device(), op, ": tensors on different devices: ", a.describe(), " and ", b.describe());
  MTL_CHECK(a.dtype() == b.dtype(), op, ": tensors of different dtypes: ", a.describe(), " and ", b.describe());
}

void check_float(const Tensor& t, const char* op) {
  if (t.is_cuda())
    MTL_CHECK(t.dtype() == DType::f32, op, " on CUDA supports F32 tensors, got ", t.describe());
  else
    MTL_CHECK(t.dtype() == DType::f32 || t.dtype() == DType::f64, op, " supports F32 and F64 tensors, got ",
              t.describe());
}

void check_float_or_bf16(const Tensor& t, const char* op) {
  if (t.is_cuda())
    MTL_CHECK(t.dtype() == DType::f32 || t.dtype() == DType::bf16, op, " on CUDA supports F32 and BF16 tensors, got ",
              t.describe());
  else
    MTL_CHECK(t.dtype() == DType::f32 || t.dtype() == DType::f64 || t.dtype() == DType::bf16, op,
              " supports F32, F64 and BF16 tensors, got ", t.describe());
}

namespace {
bool cpu_bf16(const Tensor* t) { return t && t->defined() && !t->is_cuda() && t->dtype() == DType::bf16; }
}  // namespace

Bf16AsF32::Bf16AsF32(std::initializer_list<Tensor*> inputs, std::initializer_list<Tensor*> outputs) {
  // Outputs first: one that is also an input (updated in place) keeps its value.
  for (Tensor* t : outputs)
    if (cpu_bf16(t)) {
      const bool read = std::find(inputs.begin(), inputs.end(), t) != inputs.end();
      outputs_.emplace_back(t, *t);
      *t = read ? to(t->detach(), DType::f32) : empty(t->shape(), DType::f32);
    }
  for (Tensor* t : inputs)
    if (cpu_bf16(t)) {
      inputs_.emplace_back(t, *t);
      *t = to(t->detach(), DType::f32);
    }
}

void Bf16AsF32::finish() {
  for (auto& [var, original] : outputs_) {
    kernels::cpu::cast(original.data_ptr(), DType::bf16, var->data_ptr(), DType::f32, var->numel());
    *var = original;
  }
  for (auto& [var, original] : inputs_) *var = original;
  outputs_.clear();
  inputs_.clear();
}

kernels::Layout make_layout(const Shape& shape, const std::vector<const Tensor*>& operands) {
  // Drop dimensions of size 1 (their strides never matter) to shorten index arithmetic.
  kernels::Layout l;
  const int nd = static_cast<int>(shape.size());
  Shape out_strides = contiguous_strides(shape);
  for (int d = 0; d < nd; ++d) {
    if (shape[d] == 1) continue;
    MTL_CHECK(l.ndim < kernels::kMaxDims, "tensor with more than ", kernels::kMaxDims, " non-trivial dimensions");
    l.size[l.ndim] = shape[d];
    l.stride[0][l.ndim] = out_strides[d];
    for (size_t k = 0; k < operands.size(); ++k) {
      const Tensor& t = *operands[k];
      int td = d - (nd - static_cast<int>(t.dim()));
      l.stride[k + 1][l.ndim] = (td < 0 || t.shape()[td] == 1) ? 0 : t.strides()[td];
    }
    ++l.ndim;
  }
  return l;
}

kernels::Layout copy_layout(const Tensor& dst, const Tensor& src) {
  MTL_ASSERT(dst.shape() == src.shape(), "copy_layout ", dst.describe(), " <- ", src.describe());
  kernels::Layout l;
  for (int64_t d = 0; d < dst.dim(); ++d) {
    if (dst.shape()[d] == 1) continue;
    MTL_CHECK(l.ndim < kernels::kMaxDims, "tensor with more than ", kernels::kMaxDims, " non-trivial dimensions");
    l.size[l.ndim] = dst.shape()[d];
    l.stride[0][l.ndim] = dst.strides()[d];
    l.stride[1][l.ndim] = src.strides()[d];
    ++l.ndim;
  }
  return l;
}

}  // namespace mtl::ops::detail
