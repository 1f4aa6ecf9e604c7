#pragma once
// The scalar functions behind the elementwise kernels, shared by the CPU and CUDA versions so
// that both compute the same formulas.
#include <cmath>

#include "kernels/elementwise.h"
#include "kernels/nan_math.h"

namespace mtl::kernels::detail {

template <typename T>
MTL_HD T apply_binary(BinaryOp op, T a, T b) {
  switch (op) {
    case BinaryOp::add: return a + b;
    case BinaryOp::sub: return a - b;
    case BinaryOp::mul: return a * b;
    case BinaryOp::div: return a / b;
    case BinaryOp::maximum: return max_nan(a, b);
    case BinaryOp::minimum: return min_nan(a, b);
  }
  return T(0);
}

template <typename T>
MTL_HD T apply_unary(UnaryOp op, T x) {
  using std::abs, std::exp, std::log, std::sqrt, std::tanh;
  switch (op) {
    case UnaryOp::neg: return -x;
    case UnaryOp::exp: return exp(x);
    case UnaryOp::log: return log(x);
    case UnaryOp::sqrt: return sqrt(x);
    case UnaryOp::relu: return max_nan(x, T(0));
    case UnaryOp::sigmoid:  // stable for large |x|
      return x >= T(0) ? T(1) / (T(1) + exp(-x)) : exp(x) / (T(1) + exp(x));
    case UnaryOp::abs: return abs(x);
    case UnaryOp::square: return x * x;
    case UnaryOp::tanh: return tanh(x);
  }
  return T(0);
}

template <typename T>
MTL_HD T apply_unary_grad(UnaryGradOp op, T g, T v, Scalars s) {
  using std::pow;
  switch (op) {
    case UnaryGradOp::relu: return v > T(0) ? g : T(0);
    case UnaryGradOp::sigmoid: return g * v * (T(1) - v);
    case UnaryGradOp::exp: return g * v;
    case UnaryGradOp::log: return g / v;
    case UnaryGradOp::sqrt: return g / (T(2) * v);
    case UnaryGradOp::tanh: return g * (T(1) - v * v);
    case UnaryGradOp::abs: return v > T(0) ? g : (v < T(0) ? -g : T(0));
    case UnaryGradOp::pow:
      return s.a == 0 ? T(0) : g * T(s.a) * pow(v, T(s.a - 1));
    case UnaryGradOp::clamp: return (v >= T(s.a) && v <= T(s.b)) ? g : T(0);
  }
  return T(0);
}

}  // namespace mtl::kernels::detail
