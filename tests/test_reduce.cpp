// Reductions: sum and mean over any set of dimensions, against plain loops; gradients; parity.
#include <doctest/doctest.h>

#include "ops/ops.h"
#include "tests/support/compare.h"
#include "tests/support/gpu.h"
#include "tests/support/gradcheck.h"
#include "tests/support/parity.h"
#include "tests/support/random.h"

using namespace mtl;
using test::randn;
using test::randn_grad;

namespace {
// Reference: loops over a [A, B, C] tensor summing the dimensions flagged in `red`.
Tensor reference_sum3(const Tensor& x, std::array<bool, 3> red, bool mean) {
  Shape s = x.shape();
  Shape os = {red[0] ? 1 : s[0], red[1] ? 1 : s[1], red[2] ? 1 : s[2]};
  Tensor out = zeros(os, DType::f64);
  double count = 1;
  for (int d = 0; d < 3; ++d) count *= red[d] ? static_cast<double>(s[d]) : 1.0;
  for (int64_t i = 0; i < s[0]; ++i)
    for (int64_t j = 0; j < s[1]; ++j)
      for (int64_t k = 0; k < s[2]; ++k) {
        std::vector<int64_t> o = {red[0] ? 0 : i, red[1] ? 0 : j, red[2] ? 0 : k};
        out.set(o, out.at(o) + x.at({i, j, k}) / (mean ? count : 1.0));
      }
  return out;
}
}  // namespace

TEST_CASE("sum and mean over every subset of dimensions") {
  Tensor x = randn({3, 4, 5}, DType::f64);
  for (int mask = 1; mask < 8; ++mask) {
    std::array<bool, 3> red = {bool(mask & 1), bool(mask & 2), bool(mask & 4)};
    std::vector<int64_t> dims;
    for (int d = 0; d < 3; ++d)
      if (red[d]) dims.push_back(d);
    INFO("mask " << mask);
    CHECK_CLOSE(ops::sum(x, dims, true), reference_sum3(x, red, false), 1e-12, 1e-12);
    CHECK_CLOSE(ops::mean(x, dims, true), reference_sum3(x, red, true), 1e-12, 1e-12);
  }
  CHECK(ops::sum(x, {0, 2}).shape() == Shape{4});
  CHECK(ops::sum(x).shape() == Shape{});
  CHECK(ops::mean(x, {-1}).shape() == Shape{3, 4});
  CHECK(ops::sum(x).item() == doctest::Approx(reference_sum3(x, {true, true, true}, false).item()));
}

TEST_CASE("sum of an empty dimension is zero") {
  CHECK(ops::sum(zeros({2, 0}), {1}).to_f64_vector() == std::vector<double>{0, 0});
}

TEST_CASE("gradcheck: reductions") {
  CHECK_GRADCHECK([](auto& in) { return ops::sum(in[0], {1}); }, {randn_grad({3, 4, 5})});
  CHECK_GRADCHECK([](auto& in) { return ops::sum(in[0], {0, 2}, true); }, {randn_grad({3, 4, 5})});
  CHECK_GRADCHECK([](auto& in) { return ops::mean(in[0]); }, {randn_grad({3, 5})});
  CHECK_GRADCHECK([](auto& in) { return ops::mean(in[0], {0, 2}); }, {randn_grad({2, 3, 5})});
}

TEST_SUITE("cuda") {
  TEST_CASE("cuda parity: reductions") {
    MTL_REQUIRE_CUDA();
    auto inputs = test::copies_of({test::leaf(randn({7, 33, 1031}))});
    for (std::vector<int64_t> dims : {std::vector<int64_t>{2}, {1}, {0}, {0, 2}, {1, 2}, {}}) {
      test::check_parity({"sum and mean over " + std::to_string(dims.size()) + " dims",
                          inputs,
                          [dims](const std::vector<Tensor>& in) {
                            return std::vector<Tensor>{ops::sum(in[0], dims), ops::mean(in[0], dims)};
                          },
                          {{1e-3, 1e-5}, {1e-5, 1e-5}},
                          {{1e-7, 1e-5}}});
    }
  }

  TEST_CASE("cuda parity: reductions at a medium ESANet shape") {
    MTL_REQUIRE_CUDA();
    test::check_parity({"spatial and channel means of [2, 64, 60, 80]",
                        test::copies_of({test::leaf(randn({2, 64, 60, 80}))}),
                        [](const std::vector<Tensor>& in) {
                          return std::vector<Tensor>{ops::mean(in[0], {2, 3}), ops::mean(in[0], {1})};
                        },
                        {{1e-5, 1e-5}},
                        {{1e-7, 1e-5}}});
  }
}
