#pragma once
// Differentiable elementwise ops. Binary ops broadcast NumPy-style; both operands must share
// device and dtype.
#include "core/tensor.h"

namespace mtl::ops {

Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor add_scalar(const Tensor& x, double s);
Tensor mul_scalar(const Tensor& x, double s);
Tensor affine(const Tensor& x, double a, double b);  // a*x + b
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor square(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor pow(const Tensor& x, double p);
Tensor clamp(const Tensor& x, double lo, double hi);
Tensor relu(const Tensor& x);
Tensor sigmoid(const Tensor& x);
// Materialises x broadcast to `shape` (differentiable).
Tensor broadcast_to(const Tensor& x, const Shape& shape);

inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator-(const Tensor& a) { return neg(a); }
inline Tensor operator*(const Tensor& a, double s) { return mul_scalar(a, s); }
inline Tensor operator*(double s, const Tensor& a) { return mul_scalar(a, s); }
inline Tensor operator+(const Tensor& a, double s) { return add_scalar(a, s); }

}  // namespace mtl::ops
