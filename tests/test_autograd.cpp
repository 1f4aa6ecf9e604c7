// The autograd engine: graph shapes, accumulation, no-grad, detach and freeing saved tensors.
#include <doctest/doctest.h>

#include "core/autograd.h"
#include "ops/ops.h"
#include "tests/support/compare.h"
#include "tests/support/gpu.h"
#include "tests/support/random.h"

using namespace mtl;

namespace {
Tensor leaf(std::vector<double> v, Shape s) {
  Tensor t = from_vector(v, s, DType::f64);
  t.set_requires_grad(true);
  return t;
}
}  // namespace

TEST_CASE("a tensor used twice gets both gradients summed") {
  Tensor x = leaf({1, 2, 3}, {3});
  Tensor y = ops::sum(ops::mul(x, x));  // d/dx = 2x
  y.backward();
  CHECK(x.grad().to_f64_vector() == std::vector<double>{2, 4, 6});
}

TEST_CASE("diamond graph") {
  // x -> a = 3x, b = x^2 -> y = sum(a * b) = sum(3x^3): dy/dx = 9x^2
  Tensor x = leaf({1, -2}, {2});
  Tensor a = ops::mul_scalar(x, 3.0), b = ops::square(x);
  ops::sum(ops::mul(a, b)).backward();
  CHECK(x.grad().to_f64_vector() == std::vector<double>{9, 36});
}

TEST_CASE("gradients accumulate across backward calls") {
  Tensor x = leaf({1, 2}, {2});
  ops::sum(ops::mul_scalar(x, 2.0)).backward();
  ops::sum(ops::mul_scalar(x, 5.0)).backward();
  CHECK(x.grad().to_f64_vector() == std::vector<double>{7, 7});
  x.zero_grad();
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("one gradient reaching two leaves gives each its own tensor") {
  Tensor a = leaf({1}, {1}), b = leaf({2}, {1});
  ops::add(a, b).backward();
  CHECK_FALSE(a.grad().storage() == b.grad().storage());
  a.grad().set({0}, 10);
  CHECK(b.grad().item() == 1.0);
}

TEST_CASE("no-grad and detach cut the graph") {
  Tensor x = leaf({1, 2}, {2});
  {
    autograd::NoGradGuard ng;
    Tensor y = ops::mul(x, x);
    CHECK_FALSE(y.requires_grad());
  }
  Tensor d = x.detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(d.storage() == x.storage());
  Tensor y = ops::add(ops::mul(x, d), x);  // d/dx = d + 1 (d is a constant)
  ops::sum(y).backward();
  CHECK(x.grad().to_f64_vector() == std::vector<double>{2, 3});
  CHECK_FALSE(ops::mul(d, d).requires_grad());
}

TEST_CASE("saved tensors are freed after backward") {
  Tensor x = leaf({1, 2, 3}, {3});
  Tensor e = ops::exp(x);  // saves its output
  std::weak_ptr<Storage> saved = e.storage();
  Tensor y = ops::sum(ops::mul_scalar(e, 2.0));
  e = Tensor();  // only the graph holds the exp output now
  CHECK_FALSE(saved.expired());
  y.backward();
  CHECK(saved.expired());
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("a second time"), Error);
}

TEST_CASE("backward errors") {
  Tensor x = from_vector({1, 2}, {2});
  CHECK_THROWS_WITH_AS(x.backward(), doctest::Contains("does not require grad"), Error);
  Tensor g = leaf({1, 2}, {2});
  CHECK_THROWS_WITH_AS(ops::mul(g, g).backward(), doctest::Contains("one-element tensor"), Error);
}

TEST_CASE("the engine runs a long chain in topological order") {
  Tensor x = leaf({0.5}, {1});
  Tensor y = x;
  for (int i = 0; i < 200; ++i) y = ops::add(y, ops::mul_scalar(x, 0.01));  // y = x * (1 + 200*0.01)
  y.backward();
  CHECK(x.grad().item() == doctest::Approx(3.0));
}

TEST_SUITE("cuda") {
  TEST_CASE("cuda: accumulation on the device matches the cpu") {
    MTL_REQUIRE_CUDA();
    Tensor xc = test::randn({257});
    Tensor xg = xc.cuda();
    xc.set_requires_grad(true), xg.set_requires_grad(true);
    for (int i = 0; i < 2; ++i) {
      ops::sum(ops::mul(xc, xc)).backward();
      ops::sum(ops::mul(xg, xg)).backward();
    }
    CHECK_CLOSE(xg.grad(), xc.grad(), 1e-5, 1e-5);
  }
}
