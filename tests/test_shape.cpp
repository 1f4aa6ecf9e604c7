// Differentiable layout ops: contiguous, reshape, permute, slice, cat, flip, casts, device copies.
#include <doctest/doctest.h>

#include "ops/ops.h"
#include "tests/support/compare.h"
#include "tests/support/gpu.h"
#include "tests/support/gradcheck.h"
#include "tests/support/parity.h"
#include "tests/support/random.h"
#include "tests/support/references.h"

using namespace mtl;
using test::randn;
using test::randn_grad;

TEST_CASE("permute, slice and cat move the right elements") {
  Tensor x = arange(24, DType::f64).view({2, 3, 4});
  Tensor p = ops::permute(x, {1, 2, 0});
  CHECK(p.is_contiguous());
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 4; ++j)
      for (int64_t k = 0; k < 2; ++k) CHECK(p.at({i, j, k}) == x.at({k, i, j}));
  Tensor s = ops::slice(x, -1, 1, 2);
  CHECK(s.shape() == Shape{2, 3, 2});
  CHECK(s.at({1, 2, 1}) == x.at({1, 2, 2}));
  Tensor y = arange(6, DType::f64).view({2, 1, 3});
  Tensor c = ops::cat({x.narrow(2, 0, 3), y}, 1);
  CHECK(c.shape() == Shape{2, 4, 3});
  CHECK(c.at({1, 3, 2}) == y.at({1, 0, 2}));
  CHECK(c.at({0, 2, 1}) == x.at({0, 2, 1}));
  CHECK(ops::reshape(ops::permute(x, {2, 1, 0}), {4, -1}).shape() == Shape{4, 6});
  CHECK(ops::flatten(x, 1).shape() == Shape{2, 12});
}

TEST_CASE("flip mirrors the given dimensions") {
  const Tensor x = randn({2, 5, 3, 7});
  CHECK_CLOSE(ops::flip(x, {-1}), test::flip_ref(x, 3), 0.0, 0.0);
  CHECK_CLOSE(ops::flip(x, {1}), test::flip_ref(x, 1), 0.0, 0.0);
  CHECK_CLOSE(ops::flip(x, {1, 3}), test::flip_ref(test::flip_ref(x, 1), 3), 0.0, 0.0);
  CHECK_CLOSE(ops::flip(x, {}), x, 0.0, 0.0);
  const Tensor odd = randn({1, 1, 2, 5}).narrow(3, 1, 3);  // a non-contiguous view
  CHECK_CLOSE(ops::flip(odd, {-1}), test::flip_ref(odd, 3), 0.0, 0.0);
  CHECK_THROWS_WITH_AS(ops::flip(x, {1, -3}), doctest::Contains("dimension 1 is listed twice"), Error);
}

TEST_CASE("cat and reshape errors name the tensors") {
  Tensor a = zeros({2, 3}), b = zeros({3, 3});
  CHECK_THROWS_WITH_AS(ops::cat({a, b}, 1), doctest::Contains("differ in dimension 0"), Error);
  CHECK_THROWS_WITH_AS(ops::reshape(a, {4, 2}), doctest::Contains("cannot view F32[2, 3]"), Error);
  CHECK_THROWS_WITH_AS(ops::cat({}, 0), doctest::Contains("no tensors"), Error);
}

TEST_CASE("gradcheck: layout ops") {
  CHECK_GRADCHECK([](auto& in) { return ops::permute(in[0], {2, 0, 1}); }, {randn_grad({2, 3, 5})});
  CHECK_GRADCHECK([](auto& in) { return ops::reshape(ops::permute(in[0], {1, 0}), {-1}); }, {randn_grad({3, 5})});
  CHECK_GRADCHECK([](auto& in) { return ops::slice(in[0], 1, 1, 3); }, {randn_grad({2, 5, 3})});
  CHECK_GRADCHECK([](auto& in) { return ops::cat({in[0], in[1], in[0]}, 1); }, {randn_grad({2, 3, 2}), randn_grad({2, 1, 2})});
  CHECK_GRADCHECK([](auto& in) { return ops::flip(in[0], {0, 2}); }, {randn_grad({2, 3, 5})});
  CHECK_GRADCHECK([](auto& in) { return ops::to(ops::to(in[0], DType::f32), DType::f64); }, {randn_grad({4})},
                  test::GradcheckOptions{1e-3, 1e-4, 1e-3});
}

TEST_CASE("contiguous of a transposed leaf routes the gradient back") {
  Tensor x = randn_grad({3, 4});
  // A differentiable transpose: permute, then reshape through contiguous.
  Tensor y = ops::reshape(ops::permute(x, {1, 0}), {12});
  ops::sum(ops::mul(y, y)).backward();
  CHECK_CLOSE(x.grad(), ops::mul_scalar(x.detach(), 2.0), 1e-12, 0);
}

TEST_SUITE("cuda") {
  TEST_CASE("cuda parity: layout ops") {
    MTL_REQUIRE_CUDA();
    test::check_parity({"permute, slice, cat, flip",
                        test::copies_of({test::leaf(randn({3, 5, 7})), test::leaf(randn({3, 2, 7}))}),
                        [](const std::vector<Tensor>& in) {
                          return std::vector<Tensor>{ops::permute(in[0], {2, 0, 1}), ops::slice(in[0], 1, 2, 3),
                                                     ops::cat({in[0], in[1]}, 1), ops::flip(in[0], {0, 2}),
                                                     ops::flip(ops::slice(in[0], 2, 1, 5), {-1})};
                        },
                        {{0, 0}},
                        {{1e-5, 1e-5}}});
    test::check_parity({"a product of a slice of a permute and a detached narrow",
                        test::copies_of({test::leaf(randn({3, 5, 7}))}),
                        [](const std::vector<Tensor>& in) {
                          const Tensor& t = in[0];
                          return std::vector<Tensor>{
                              ops::sum(ops::mul(ops::slice(ops::permute(t, {1, 2, 0}), 0, 1, 3),
                                                ops::permute(t, {1, 2, 0}).detach().narrow(0, 0, 3)))};
                        },
                        {{1e-5, 1e-5}},
                        {{1e-5, 1e-5}}});
  }

  TEST_CASE("cuda parity: layout ops at a medium ESANet shape") {
    MTL_REQUIRE_CUDA();
    test::check_parity({"decoder cat and NHWC permute",
                        test::copies_of({test::leaf(randn({2, 64, 60, 80})), test::leaf(randn({2, 32, 60, 80}))}),
                        [](const std::vector<Tensor>& in) {
                          return std::vector<Tensor>{ops::cat({in[0], in[1]}, 1), ops::permute(in[0], {0, 2, 3, 1})};
                        },
                        {{0, 0}},
                        {{1e-6, 1e-6}}});
  }
}
