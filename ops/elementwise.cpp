#include "ops/elementwise.h"

#include "kernels/elementwise.h"
#include "ops/autograd_util.h"
#include "ops/dispatch.h"
#include "ops/shape.h"

namespace mtl::ops {

using kernels::BinaryOp;
using kernels::UnaryGradOp;
using kernels::UnaryOp;

namespace {

const char* binary_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::add:
      return "add";
    case BinaryOp::sub:
      return "sub";
    case BinaryOp::mul:
      return "mul";
    case BinaryOp::div:
      return "div";
    case BinaryOp::maximum:
      return "maximum";
    case BinaryOp::minimum:
      return "minimum";
  }
  return "?";
}

Tensor binary_forward(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = binary_name(op);
  detail::check_defined(a, name, "a");
  detail::check_defined(b, name, "b");
  detail::check_same(a, b, name);
  detail::check_float_or_bf16(a, name);
  Shape shape = broadcast_shapes(a.shape(), b.shape());
  Tensor out = empty(shape, a.options());
  Tensor x = a, y = b;
  // The layout is that of the tensors the kernel reads: float32 copies under CPU bfloat16.
  kernels::Layout l;
  bool flat = false;
  auto plan = [&] {
    flat = x.shape() == shape && y.shape() == shape && x.is_contiguous() && y.is_contiguous();
    l = detail::make_layout(shape, {&x, &y});
  };
  detail::run_kernel(
      name, {&x, &y}, {&out},
      [&](auto t) {
        using T = decltype(t);
        plan();
        kernels::cuda::binary<T>(op, out.data<T>(), x.data<T>(), y.data<T>(), l, flat, cuda::stream());
      },
      [&](auto t) {
        using T = decltype(t);
        plan();
        kernels::cpu::binary<T>(op, out.data<T>(), x.data<T>(), y.data<T>(), l, flat);
      });
  return out;
}

// out = f(x) for a contiguous copy of x. `cuda` and `cpu` launch the kernel for the storage type
// T as (T* out, const T* x, int64_t n).
template <typename Cuda, typename Cpu>
Tensor unary_forward(const Tensor& x, const char* name, Cuda&& cuda_kernel, Cpu&& cpu_kernel) {
  detail::check_defined(x, name, "x");
  detail::check_float_or_bf16(x, name);
  Tensor src = contiguous(x.detach());
  Tensor out = empty(x.shape(), x.options());
  detail::run_kernel(
      name, {&src}, {&out},
      [&](auto t) {
        using T = decltype(t);
        cuda_kernel(out.data<T>(), src.data<T>(), x.numel());
      },
      [&](auto t) {
        using T = decltype(t);
        cpu_kernel(out.data<T>(), src.data<T>(), x.numel());
      });
  return out;
}

Tensor unary(UnaryOp op, const Tensor& x, const char* name) {
  return unary_forward(
      x, name, [&](auto* o, const auto* in, int64_t n) { kernels::cuda::unary(op, o, in, n, cuda::stream()); },
      [&](auto* o, const auto* in, int64_t n) { kernels::cpu::unary(op, o, in, n); });
}

// Gradient of a unary op from the upstream gradient and the saved input or output `v`.
Tensor unary_grad(UnaryGradOp op, const Tensor& g, const Tensor& v, kernels::Scalars s) {
  Tensor gx = empty(v.shape(), v.options());
  Tensor gc = g, vc = v;
  detail::run_kernel(
      "backward", {&vc, &gc}, {&gx},
      [&](auto t) {
        using T = decltype(t);
        kernels::cuda::unary_grad<T>(op, gx.data<T>(), gc.data<T>(), vc.data<T>(), s, v.numel(), cuda::stream());
      },
      [&](auto t) {
        using T = decltype(t);
        kernels::cpu::unary_grad<T>(op, gx.data<T>(), gc.data<T>(), vc.data<T>(), s, v.numel());
      });
  return gx;
}

// Records the backward of a unary op whose gradient depends on the saved value `v`.
void record_unary(const char* name, const Tensor& x, const Tensor& out, UnaryGradOp op, const Tensor& v,
                  kernels::Scalars s = {}) {
  Tensor saved = v.detach();
  record(name, {x}, {out},
         [op, saved, s](const std::vector<Tensor>& g) { return std::vector<Tensor>{unary_grad(op, g[0], saved, s)}; });
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::add, a, b);
  const Shape sa = a.shape(), sb = b.shape();
  record("AddBackward", {a, b}, {out}, [sa, sb](const std::vector<Tensor>& g) {
    return std::vector<Tensor>{sum_to(g[0], sa), sum_to(g[0], sb)};
  });
  return out;
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::sub, a, b);
  const Shape sa = a.shape(), sb = b.shape();
  record("SubBackward", {a, b}, {out}, [sa, sb](const std::vector<Tensor>& g) {
    return std::vector<Tensor>{sum_to(g[0], sa), neg(sum_to(g[0], sb))};
  });
  return out;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::mul, a, b);
  const bool ga = a.requires_grad(), gb = b.requires_grad();
  Tensor sa = gb ? a.detach() : Tensor(), sb = ga ? b.detach() : Tensor();
  const Shape sha = a.shape(), shb = b.shape();
  record("MulBackward", {a, b}, {out}, [sa, sb, sha, shb, ga, gb](const std::vector<Tensor>& g) {
    return std::vector<Tensor>{ga ? sum_to(mul(g[0], sb), sha) : Tensor(), gb ? sum_to(mul(g[0], sa), shb) : Tensor()};
  });
  return out;
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::div, a, b);
  const bool gb = b.requires_grad();
  Tensor sb = b.detach(), so = gb ? out.detach() : Tensor();
  const Shape sha = a.shape(), shb = b.shape();
  record("DivBackward", {a, b}, {out}, [sb, so, sha, shb, gb](const std::vector<Tensor>& g) {
    Tensor ga = div(g[0], sb);  // d(a/b)/da = 1/b; d(a/b)/db = -out/b
    return std::vector<Tensor>{sum_to(ga, sha), gb ? neg(sum_to(mul(ga, so), shb)) : Tensor()};
  });
  return out;
}

Tensor affine(const Tensor& x, double a, double b) {
  Tensor out = unary_forward(
      x, "affine", [&](auto* o, const auto* in, int64_t n) { kernels::cuda::affine(o, in, a, b, n, cuda::stream()); },
      [&](auto* o, const auto* in, int64_t n) { kernels::cpu::affine(o, in, a, b, n); });
  record("AffineBackward", {x}, {out},
         [a](const std::vector<Tensor>& g) { return std::vector<Tensor>{a == 1.0 ? g[0] : affine(g[0], a, 0.0)}; });
  return out;
}

Tensor add_scalar(const Tensor& x, double s) { return affine(x, 1.0, s); }
Tensor mul_scalar(const Tensor& x, double s) { return affine(x, s, 0.0); }
Tensor neg(const Tensor& x) { return affine(x, -1.0, 0.0); }

Tensor exp(const Tensor& x) {
  Tensor out = unary(UnaryOp::exp, x, "exp");
  record_unary("ExpBackward", x, out, UnaryGradOp::exp, out);
  return out;
}

Tensor log(const Tensor& x) {
  Tensor out = unary(UnaryOp::log, x, "log");
  record_unary("LogBackward", x, out, UnaryGradOp::log, contiguous(x.detach()));
  return out;
}

Tensor sqrt(const Tensor& x) {
  Tensor out = unary(UnaryOp::sqrt, x, "sqrt");
  record_unary("SqrtBackward", x, out, UnaryGradOp::sqrt, out);
  return out;
}

Tensor square(const Tensor& x) {
  Tensor out = unary(UnaryOp::square, x, "square");
  record_unary("SquareBackward", x, out, UnaryGradOp::pow, contiguous(x.detach()), {2.0, 0.0});
  return out;
}

Tensor abs(const Tensor& x) {
  Tensor out = unary(UnaryOp::abs, x, "abs");
  record_unary("AbsBackward", x, out, UnaryGradOp::abs, contiguous(x.detach()));
  return out;
}

Tensor tanh(const Tensor& x) {
  Tensor out = unary(UnaryOp::tanh, x, "tanh");
  record_unary("TanhBackward", x, out, UnaryGradOp::tanh, out);
  return out;
}

Tensor relu(const Tensor& x) {
  Tensor out = unary(UnaryOp::relu, x, "relu");
  record_unary("ReluBackward", x, out, UnaryGradOp::relu, out);
  return out;
}

Tensor sigmoid(const Tensor& x) {
  Tensor out = unary(UnaryOp::sigmoid, x, "sigmoid");
  record_unary("SigmoidBackward", x, out, UnaryGradOp::sigmoid, out);
  return out;
}

Tensor pow(const Tensor& x, double p) {
  Tensor out = unary_forward(
      x, "pow", [&](auto* o, const auto* in, int64_t n) { kernels::cuda::pow_scalar(o, in, p, n, cuda::stream()); },
      [&](auto* o, const auto* in, int64_t n) { kernels::cpu::pow_scalar(o, in, p, n); });
  record_unary("PowBackward", x, out, UnaryGradOp::pow, contiguous(x.detach()), {p, 0.0});
  return out;
}

Tensor clamp(const Tensor& x, double lo, double hi) {
  MTL_CHECK(lo <= hi, "clamp: lower bound ", lo, " is above upper bound ", hi);
  Tensor out = unary_forward(
      x, "clamp", [&](auto* o, const auto* in, int64_t n) { kernels::cuda::clamp(o, in, lo, hi, n, cuda::stream()); },
      [&](auto* o, const auto* in, int64_t n) { kernels::cpu::clamp(o, in, lo, hi, n); });
  record_unary("ClampBackward", x, out, UnaryGradOp::clamp, contiguous(x.detach()), {lo, hi});
  return out;
}

Tensor broadcast_to(const Tensor& x, const Shape& shape) {
  detail::check_defined(x, "broadcast_to", "x");
  MTL_CHECK(broadcast_shapes(x.shape(), shape) == shape, "broadcast_to: cannot broadcast ", x.describe(), " to ",
            shape_str(shape));
  if (x.shape() == shape) return x;
  Shape strides(shape.size(), 0);
  const int64_t lead = static_cast<int64_t>(shape.size()) - x.dim();
  for (int64_t d = 0; d < x.dim(); ++d) strides[lead + d] = x.shape()[d] == 1 ? 0 : x.strides()[d];
  Tensor out = empty(shape, x.options());
  copy_(out, x.detach().as_strided(shape, strides, x.offset()));
  const Shape in_shape = x.shape();
  record("BroadcastBackward", {x}, {out},
         [in_shape](const std::vector<Tensor>& g) { return std::vector<Tensor>{sum_to(g[0], in_shape)}; });
  return out;
}

}  // namespace mtl::ops
