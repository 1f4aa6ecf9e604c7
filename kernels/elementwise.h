#pragma once
// Elementwise kernels. `Layout` operands: 0 = output (contiguous), 1 = a, 2 = b. When `flat` is
// set every operand is contiguous with the same shape and the kernels take the fast path
// (16-byte vector loads on CUDA where alignment allows).
#include <cuda_runtime.h>

#include <cstdint>

#include "core/bfloat16.h"
#include "kernels/layout.h"

namespace mtl::kernels {

enum class BinaryOp : uint8_t { add, sub, mul, div, maximum, minimum };
enum class UnaryOp : uint8_t { neg, exp, log, sqrt, relu, sigmoid, abs, square, tanh };
// Gradient of a unary op given the upstream gradient g and either the input x or the output y:
// relu (y), sigmoid (y), exp (y), log (x), sqrt (y), tanh (y), abs (x), pow (x, p), clamp (x, lo, hi).
enum class UnaryGradOp : uint8_t { relu, sigmoid, exp, log, sqrt, tanh, abs, pow, clamp };

struct Scalars {
  double a = 0, b = 0;  // pow: a = exponent; clamp: [a, b]; affine: out = a*x + b
};

namespace cpu {
template <typename T>
void binary(BinaryOp op, T* out, const T* a, const T* b, const Layout& l, bool flat);
template <typename T>
void unary(UnaryOp op, T* out, const T* x, int64_t n);
template <typename T>
void pow_scalar(T* out, const T* x, double p, int64_t n);
template <typename T>
void clamp(T* out, const T* x, double lo, double hi, int64_t n);
template <typename T>
void affine(T* out, const T* x, double a, double b, int64_t n);  // a*x + b
template <typename T>
void unary_grad(UnaryGradOp op, T* gx, const T* g, const T* xy, Scalars s, int64_t n);
}  // namespace cpu

namespace cuda {
// T: float or bf16 (loaded into float, computed in float, rounded once on store).
template <typename T>
void binary(BinaryOp op, T* out, const T* a, const T* b, const Layout& l, bool flat, cudaStream_t s);
template <typename T>
void unary(UnaryOp op, T* out, const T* x, int64_t n, cudaStream_t s);
template <typename T>
void pow_scalar(T* out, const T* x, double p, int64_t n, cudaStream_t s);
template <typename T>
void clamp(T* out, const T* x, double lo, double hi, int64_t n, cudaStream_t s);
template <typename T>
void affine(T* out, const T* x, double a, double b, int64_t n, cudaStream_t s);
template <typename T>
void unary_grad(UnaryGradOp op, T* gx, const T* g, const T* xy, Scalars sc, int64_t n, cudaStream_t s);
}  // namespace cuda

}  // namespace mtl::kernels
