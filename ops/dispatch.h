#pragma once
// Argument checks and device/dtype dispatch shared by the ops.
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

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
// The ops that mixed precision runs on activations also take bfloat16: CPU F32, F64 or BF16,
// CUDA F32 or BF16.
void check_float_or_bf16(const Tensor& t, const char* op);

// Calls f with a value of the tensor's floating scalar type (CPU: float or double).
template <typename F>
void dispatch_cpu_float(const Tensor& t, const char* op, F&& f) {
  if (t.dtype() == DType::f32) return f(float{});
  if (t.dtype() == DType::f64) return f(double{});
  throw Error(std::string(op) + ": unsupported dtype for " + t.describe());
}

// The dtype of the parameters and statistics that go with activations of x's dtype: float32 for
// bfloat16 activations (mixed precision keeps them in float32), x's own dtype otherwise.
inline DType param_dtype(const Tensor& x) { return x.dtype() == DType::bf16 ? DType::f32 : x.dtype(); }

// Calls f with a value of the CUDA kernels' storage type for the tensor: float or bf16.
template <typename F>
void dispatch_cuda_float(const Tensor& t, const char* op, F&& f) {
  if (t.dtype() == DType::f32) return f(float{});
  if (t.dtype() == DType::bf16) return f(bf16{});
  throw Error(std::string(op) + ": unsupported dtype on CUDA for " + t.describe());
}

// bfloat16 on the CPU, computed as the CUDA kernels compute it: they load bfloat16 into float,
// compute in float and round once when they store, so here every bfloat16 CPU tensor among a
// kernel's `inputs` is replaced by its exact float32 copy and each one among its `outputs` by a
// float32 buffer (a copy, when it is an input too); the float32 kernel runs; finish() rounds the
// outputs into the original bfloat16 tensors (to nearest even) and puts every original back in
// its variable. Tensors of other dtypes and CUDA tensors are left alone, so a call site is the
// same for every dtype:
//   detail::Bf16AsF32 emulate({&x, &w}, {&out});
//   dispatch_cpu_float(x, ...);  // x, w and out are float32 here
//   emulate.finish();
class Bf16AsF32 {
 public:
  Bf16AsF32(std::initializer_list<Tensor*> inputs, std::initializer_list<Tensor*> outputs);
  void finish();

 private:
  // A variable and the bfloat16 tensor it held.
  std::vector<std::pair<Tensor*, Tensor>> inputs_, outputs_;
};

// Runs one kernel on the device of the first input for its storage type T: on_cuda(T{}) with T
// float or bf16, or on_cpu(T{}) with T float or double, bfloat16 CPU tensors among `inputs` and
// `outputs` emulated as above. The lambdas read the tensors through the variables passed here.
template <typename Cuda, typename Cpu>
void run_kernel(const char* op, std::initializer_list<Tensor*> inputs, std::initializer_list<Tensor*> outputs,
                Cuda&& on_cuda, Cpu&& on_cpu) {
  Tensor& first = **inputs.begin();
  if (first.is_cuda()) return dispatch_cuda_float(first, op, on_cuda);
  Bf16AsF32 emulate(inputs, outputs);
  dispatch_cpu_float(first, op, on_cpu);
  emulate.finish();
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
