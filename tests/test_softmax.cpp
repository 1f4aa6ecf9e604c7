// ops::softmax: against a plain-loop reference in double along every dimension, probabilities of
// logits beyond exp's range, NaN spreading to its slice, float64 gradient checks, and CUDA parity.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "ops/ops.h"
#include "tests/support/compare.h"
#include "tests/support/gpu.h"
#include "tests/support/gradcheck.h"
#include "tests/support/parity.h"
#include "tests/support/random.h"
#include "tests/support/references.h"

using namespace mtl;

namespace {

Tensor as_f64(const Tensor& t) { return ops::to(t, DType::f64); }

}  // namespace

TEST_CASE("softmax matches plain loops along every dimension") {
  const Tensor x = ops::mul_scalar(test::randn({2, 5, 3, 7}), 4.0);
  for (int d = 0; d < 4; ++d) {
    INFO("dim ", d);
    CHECK_CLOSE(as_f64(ops::softmax(x, d)), test::softmax_ref(x, d), 1e-6, 1e-5);
  }
  CHECK_CLOSE(ops::softmax(x, -3), ops::softmax(x, 1), 0, 0);
  const Tensor x64 = ops::to(x, DType::f64);
  CHECK_CLOSE(ops::softmax(x64, 1), test::softmax_ref(x, 1), 1e-15, 1e-13);
  // A non-contiguous view.
  const Tensor view = test::randn({3, 9, 4}).narrow(1, 2, 5);
  CHECK_CLOSE(as_f64(ops::softmax(view, 1)), test::softmax_ref(view, 1), 1e-6, 1e-5);
  // Logits far beyond exp's range still give probabilities.
  const Tensor big = from_vector({1000, 999, -1000, 0}, {1, 2, 1, 2});
  CHECK_CLOSE(as_f64(ops::softmax(big, 1)), test::softmax_ref(big, 1), 1e-7, 1e-6);
}

TEST_CASE("a NaN makes its whole slice NaN and leaves the others alone") {
  std::vector<double> v{0.5, 1.0, -2.0, 3.0, 0.25, 7.0};  // [1, 3, 2]: two columns of 3
  v[2] = std::numeric_limits<double>::quiet_NaN();           // class 1 of column 0
  const Tensor x = from_vector(v, {1, 3, 2});
  const std::vector<double> y = ops::softmax(x, 1).to_f64_vector();
  for (int k = 0; k < 3; ++k) {
    CHECK(std::isnan(y[k * 2]));
    CHECK(std::isfinite(y[k * 2 + 1]));
  }
}

TEST_CASE("gradcheck: softmax") {
  CHECK_GRADCHECK([](auto& in) { return ops::softmax(in[0], 1); }, {test::randn_grad({2, 4, 3, 5})});
  CHECK_GRADCHECK([](auto& in) { return ops::softmax(in[0], -1); }, {test::randn_grad({3, 7})});
  CHECK_GRADCHECK([](auto& in) { return ops::softmax(in[0], 0); }, {test::randn_grad({1, 6})});
}

TEST_CASE("softmax errors name the tensor") {
  CHECK_THROWS_WITH_AS(ops::softmax(zeros({2, 3}, DType::i32), 1), doctest::Contains("I32[2, 3]"), Error);
  CHECK_THROWS_WITH_AS(ops::softmax(zeros({2, 3}), 2), doctest::Contains("softmax dim"), Error);
}

TEST_SUITE("cuda") {
  TEST_CASE("cuda parity: softmax forward and backward") {
    MTL_REQUIRE_CUDA();
    // Odd planes, 40 classes over a plane larger than a block, softmax over a last dimension of 1
    // and of 131, and a medium ESANet shape (40 classes at 1/4 of 320x240).
    for (const Shape& s : {Shape{2, 7, 5, 9}, Shape{3, 40, 33, 17}, Shape{5, 1}, Shape{1, 131}, Shape{2, 40, 60, 80}})
      for (int d : {1, static_cast<int>(s.size()) - 1})
        test::check_parity({shape_str(s) + " dim " + std::to_string(d),
                            test::copies_of({test::leaf(ops::mul_scalar(test::randn(s), 3.0))}),
                            [d](const std::vector<Tensor>& in) { return std::vector<Tensor>{ops::softmax(in[0], d)}; },
                            {{1e-6, 1e-5}},
                            // gx = y * (gy - sum(gy * y)) cancels: its float error scales with
                            // the terms, not with gx (seen: 1.3e-6 at |gx| = 2.7e-3).
                            {{1e-6, 1e-4, 1e-5}}});
  }
}
