// Elementwise ops: forward against plain loops over host values, float64 gradient checks on odd
// broadcast shapes, and CUDA-vs-CPU parity on fresh random inputs with poisoned outputs.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <limits>

#include "core/cuda_context.h"
#include "kernels/elementwise.h"
#include "ops/ops.h"
#include "tests/support/compare.h"
#include "tests/support/gpu.h"
#include "tests/support/gradcheck.h"
#include "tests/support/parity.h"
#include "tests/support/random.h"

using namespace mtl;
using mtl::test::randn;
using mtl::test::randn_grad;

namespace {

// Independent reference for a broadcast binary op: index arithmetic on host vectors.
Tensor reference_binary(const Tensor& a, const Tensor& b, const std::function<double(double, double)>& f) {
  Shape s = broadcast_shapes(a.shape(), b.shape());
  Tensor out = zeros(s, DType::f64);
  std::vector<double> va = a.to_f64_vector(), vb = b.to_f64_vector();
  auto index_in = [&](const Tensor& t, const std::vector<int64_t>& idx) {
    int64_t off = 0, mult = 1;
    for (int64_t d = t.dim() - 1; d >= 0; --d) {
      int64_t i = idx[idx.size() - (t.dim() - d)];
      off += (t.size(d) == 1 ? 0 : i) * mult;
      mult *= t.size(d);
    }
    return off;
  };
  std::vector<int64_t> idx(s.size(), 0);
  for (int64_t k = 0; k < numel(s); ++k) {
    int64_t r = k;
    for (size_t d = s.size(); d-- > 0;) idx[d] = r % s[d], r /= s[d];
    out.set(idx, f(va[index_in(a, idx)], vb[index_in(b, idx)]));
  }
  return out;
}

Tensor reference_unary(const Tensor& x, const std::function<double(double)>& f) {
  std::vector<double> v = x.to_f64_vector();
  for (double& e : v) e = f(e);
  return from_vector(v, x.shape(), DType::f64);
}

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// maximum and minimum have no op of their own: run the kernel on two flat operands of one shape.
std::vector<double> run_binary(kernels::BinaryOp op, const Tensor& a, const Tensor& b) {
  Tensor out = empty(a.shape(), a.options());
  kernels::Layout l;
  l.ndim = 1;
  l.size[0] = a.numel();
  if (a.is_cuda()) {
    kernels::cuda::binary(op, out.data<float>(), a.data<float>(), b.data<float>(), l, true, cuda::stream());
  } else if (a.dtype() == DType::f64) {
    kernels::cpu::binary<double>(op, out.data<double>(), a.data<double>(), b.data<double>(), l, true);
  } else {
    kernels::cpu::binary<float>(op, out.data<float>(), a.data<float>(), b.data<float>(), l, true);
  }
  return out.to_f64_vector();
}

// NaN in either operand gives NaN, as in torch.maximum / torch.minimum; otherwise the larger
// (smaller) value. Seven elements: the CUDA vector path and its tail.
void check_nan_propagating_max_min(Device d) {
  for (DType dt : d.is_cuda() ? std::vector<DType>{DType::f32} : std::vector<DType>{DType::f32, DType::f64}) {
    CAPTURE(dtype_name(dt));
    Tensor a = from_vector({kNaN, 1.0, kNaN, 2.0, -0.5, 4.0, kNaN}, {7}, dt).to(d);
    Tensor b = from_vector({1.0, kNaN, kNaN, 3.0, -1.0, kNaN, -7.0}, {7}, dt).to(d);
    const std::vector<double> hi = run_binary(kernels::BinaryOp::maximum, a, b);
    const std::vector<double> lo = run_binary(kernels::BinaryOp::minimum, a, b);
    for (int i : {0, 1, 2, 5, 6}) {
      CAPTURE(i);
      CHECK(std::isnan(hi[i]));
      CHECK(std::isnan(lo[i]));
    }
    CHECK(hi[3] == 3.0);
    CHECK(lo[3] == 2.0);
    CHECK(hi[4] == -0.5);
    CHECK(lo[4] == -1.0);
  }
}

// relu(NaN) = NaN, as in torch.relu; negative values still give 0.
void check_relu_keeps_nan(Device d) {
  const std::vector<double> r = ops::relu(from_vector({kNaN, -1.0, 2.0, -0.0, kNaN}, {5}).to(d)).to_f64_vector();
  CHECK(std::isnan(r[0]));
  CHECK(std::isnan(r[4]));
  CHECK(r[1] == 0.0);
  CHECK(r[2] == 2.0);
  CHECK(r[3] == 0.0);
}

}  // namespace

TEST_CASE("binary ops broadcast and match a host reference") {
  Tensor a = randn({3, 1, 5}), b = randn({4, 1});
  b = ops::add_scalar(ops::abs(b), 0.5);  // keep division well away from zero
  CHECK_CLOSE(ops::add(a, b), reference_binary(a, b, [](double x, double y) { return x + y; }), 1e-6, 1e-6);
  CHECK_CLOSE(ops::sub(a, b), reference_binary(a, b, [](double x, double y) { return x - y; }), 1e-6, 1e-6);
  CHECK_CLOSE(ops::mul(a, b), reference_binary(a, b, [](double x, double y) { return x * y; }), 1e-6, 1e-6);
  CHECK_CLOSE(ops::div(a, b), reference_binary(a, b, [](double x, double y) { return x / y; }), 1e-6, 1e-6);
  CHECK(ops::add(a, b).shape() == Shape{3, 4, 5});
}

TEST_CASE("binary ops read non-contiguous inputs") {
  Tensor a = randn({5, 7}), b = randn({7, 5});
  Tensor bt = b.transpose(0, 1);
  CHECK_FALSE(bt.is_contiguous());
  CHECK_CLOSE(ops::mul(a, bt), reference_binary(a, bt, [](double x, double y) { return x * y; }), 1e-6, 1e-6);
}

TEST_CASE("unary ops match std:: functions") {
  Tensor x = randn({3, 7});
  Tensor pos = ops::add_scalar(ops::abs(x), 0.1);
  CHECK_CLOSE(ops::exp(x), reference_unary(x, [](double v) { return std::exp(v); }), 1e-6, 1e-5);
  CHECK_CLOSE(ops::log(pos), reference_unary(pos, [](double v) { return std::log(v); }), 1e-6, 1e-5);
  CHECK_CLOSE(ops::sqrt(pos), reference_unary(pos, [](double v) { return std::sqrt(v); }), 1e-6, 1e-5);
  CHECK_CLOSE(ops::pow(pos, 2.5), reference_unary(pos, [](double v) { return std::pow(v, 2.5); }), 1e-6, 1e-5);
  CHECK_CLOSE(ops::neg(x), reference_unary(x, [](double v) { return -v; }), 0, 0);
  CHECK_CLOSE(ops::relu(x), reference_unary(x, [](double v) { return v > 0 ? v : 0; }), 0, 0);
  CHECK_CLOSE(ops::sigmoid(x), reference_unary(x, [](double v) { return 1 / (1 + std::exp(-v)); }), 1e-7, 1e-6);
  CHECK_CLOSE(ops::tanh(x), reference_unary(x, [](double v) { return std::tanh(v); }), 1e-6, 1e-5);
  CHECK_CLOSE(ops::clamp(x, -0.5, 0.25), reference_unary(x, [](double v) { return std::clamp(v, -0.5, 0.25); }), 0, 0);
  CHECK_CLOSE(ops::affine(x, 3.0, -1.0), reference_unary(x, [](double v) { return 3 * v - 1; }), 1e-6, 1e-6);
}

TEST_CASE("sigmoid is finite for large inputs") {
  Tensor x = from_vector({-1000, -50, 0, 50, 1000}, {5});
  std::vector<double> y = ops::sigmoid(x).to_f64_vector();
  CHECK(y[0] == 0.0);
  CHECK(y[2] == 0.5);
  CHECK(y[4] == 1.0);
}

TEST_CASE("maximum, minimum and relu let NaN through") {
  check_nan_propagating_max_min(Device::cpu());
  check_relu_keeps_nan(Device::cpu());
}

TEST_CASE("binary ops: errors name both tensors") {
  Tensor a = zeros({2, 3}), b = zeros({4});
  CHECK_THROWS_WITH_AS(ops::add(a, b), doctest::Contains("[2, 3] and [4] cannot be broadcast"), Error);
  Tensor c = zeros({2, 3}, DType::f64);
  CHECK_THROWS_WITH_AS(ops::mul(a, c), doctest::Contains("F32[2, 3] on cpu and F64[2, 3] on cpu"), Error);
}

TEST_CASE("gradcheck: broadcast binary ops") {
  auto a = randn_grad({3, 1, 5}), b = randn_grad({4, 1});
  Tensor bpos = ops::add_scalar(ops::abs(b.detach()), 0.5);
  bpos.set_requires_grad(true);
  CHECK_GRADCHECK([](auto& in) { return ops::add(in[0], in[1]); }, {a, b});
  CHECK_GRADCHECK([](auto& in) { return ops::sub(in[0], in[1]); }, {a, b});
  CHECK_GRADCHECK([](auto& in) { return ops::mul(in[0], in[1]); }, {a, b});
  CHECK_GRADCHECK([](auto& in) { return ops::div(in[0], in[1]); }, {a, bpos});
  CHECK_GRADCHECK([](auto& in) { return ops::broadcast_to(in[0], {2, 4, 5}); }, {randn_grad({4, 1})});
}

TEST_CASE("gradcheck: unary ops") {
  auto x = randn_grad({3, 5});
  Tensor pos = ops::add_scalar(ops::abs(x.detach()), 0.2);
  pos.set_requires_grad(true);
  CHECK_GRADCHECK([](auto& in) { return ops::exp(in[0]); }, {x});
  CHECK_GRADCHECK([](auto& in) { return ops::log(in[0]); }, {pos});
  CHECK_GRADCHECK([](auto& in) { return ops::sqrt(in[0]); }, {pos});
  CHECK_GRADCHECK([](auto& in) { return ops::pow(in[0], 3.0); }, {x});
  CHECK_GRADCHECK([](auto& in) { return ops::pow(in[0], -1.5); }, {pos});
  CHECK_GRADCHECK([](auto& in) { return ops::square(in[0]); }, {x});
  CHECK_GRADCHECK([](auto& in) { return ops::tanh(in[0]); }, {x});
  CHECK_GRADCHECK([](auto& in) { return ops::sigmoid(in[0]); }, {x});
  CHECK_GRADCHECK([](auto& in) { return ops::affine(in[0], -2.0, 0.5); }, {x});
  // Kinks (relu at 0, clamp at its bounds, abs at 0) are measure-zero for random inputs.
  CHECK_GRADCHECK([](auto& in) { return ops::relu(in[0]); }, {x});
  CHECK_GRADCHECK([](auto& in) { return ops::clamp(in[0], -0.3, 0.4); }, {x});
  CHECK_GRADCHECK([](auto& in) { return ops::abs(in[0]); }, {x});
}

TEST_SUITE("cuda") {
  TEST_CASE("cuda parity: binary and unary ops") {
    MTL_REQUIRE_CUDA();
    // Odd sizes: not a multiple of 4 (vector path tail) nor of a block.
    for (Shape s : {Shape{1}, Shape{1027}, Shape{3, 333, 7}}) {
      Tensor a = test::leaf(randn(s)), b = test::leaf(ops::add_scalar(ops::abs(randn(s)), 0.5));
      test::check_parity({"elementwise ops on " + shape_str(s),
                          test::copies_of({a, b}),
                          [](const std::vector<Tensor>& in) {
                            const Tensor &x = in[0], &y = in[1];
                            return std::vector<Tensor>{
                                ops::add(x, y), ops::mul(x, y), ops::div(x, y),          ops::exp(x),
                                ops::log(y),    ops::sqrt(y),   ops::pow(y, 1.7),        ops::sigmoid(x),
                                ops::tanh(x),   ops::relu(x),   ops::clamp(x, -0.2, 0.3)};
                          },
                          {{1e-6, 1e-6},
                           {1e-6, 1e-6},
                           {1e-6, 1e-5},
                           {1e-6, 1e-5},
                           {1e-6, 1e-5},
                           {1e-6, 1e-5},
                           {1e-6, 1e-5},
                           {1e-6, 1e-5},
                           {1e-6, 1e-5},
                           {0, 0},
                           {0, 0}},
                          {{1e-5, 1e-5}}});
    }
    // Broadcasting, a misaligned (offset) view, and gradients through a composition.
    test::check_parity({"broadcast sub",
                        test::copies_of({test::leaf(randn({5, 1, 9})), test::leaf(randn({7, 1}))}),
                        [](const std::vector<Tensor>& in) { return std::vector<Tensor>{ops::sub(in[0], in[1])}; },
                        {{1e-6, 1e-6}},
                        {{1e-6, 1e-6}}});
    Tensor big = randn({101});
    test::check_parity({"relu of an offset view",
                        [big](Device d) { return std::vector<Tensor>{big.to(d).narrow(0, 1, 100)}; },
                        [](const std::vector<Tensor>& in) { return std::vector<Tensor>{ops::relu(in[0])}; },
                        {{0, 0}}});
    test::check_parity({"sum(sigmoid(x) * y)",
                        test::copies_of({test::leaf(randn({6, 5})), test::leaf(randn({5}))}),
                        [](const std::vector<Tensor>& in) {
                          return std::vector<Tensor>{ops::sum(ops::mul(ops::sigmoid(in[0]), in[1]))};
                        },
                        {{1e-5, 1e-5}},
                        {{1e-5, 1e-5}}});
  }

  TEST_CASE("cuda parity: elementwise ops at a medium ESANet shape") {
    MTL_REQUIRE_CUDA();
    const Shape s{2, 64, 60, 80};
    test::check_parity({"residual add and relu " + shape_str(s),
                        test::copies_of({test::leaf(randn(s)), test::leaf(randn(s))}),
                        [](const std::vector<Tensor>& in) {
                          return std::vector<Tensor>{ops::relu(ops::add(in[0], in[1])), ops::sigmoid(in[0])};
                        },
                        {{0, 0}, {1e-6, 1e-5}},
                        {{1e-6, 1e-5}}});
  }

  TEST_CASE("cuda: maximum, minimum and relu let NaN through") {
    MTL_REQUIRE_CUDA();
    check_nan_propagating_max_min(Device::cuda());
    check_relu_keeps_nan(Device::cuda());
  }
}
