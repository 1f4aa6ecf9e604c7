// matmul against a triple loop, transposed operands, gradients and cuBLAS parity.
#include <doctest/doctest.h>

#include "core/cuda_context.h"
#include "kernels/matmul.h"
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
Tensor reference_matmul(const Tensor& a, const Tensor& b) {
  int64_t m = a.size(0), k = a.size(1), n = b.size(1);
  Tensor c = zeros({m, n}, DType::f64);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t p = 0; p < k; ++p) s += a.at({i, p}) * b.at({p, j});
      c.set({i, j}, s);
    }
  return c;
}
}  // namespace

TEST_CASE("matmul matches a triple loop, for plain and transposed operands") {
  for (DType t : {DType::f32, DType::f64}) {
    Tensor a = randn({5, 7}, t), b = randn({7, 3}, t);
    double tol = t == DType::f32 ? 1e-5 : 1e-12;
    CHECK_CLOSE(ops::matmul(a, b), reference_matmul(a, b), tol, tol);
    Tensor at = randn({7, 5}, t).transpose(0, 1), bt = randn({3, 7}, t).transpose(0, 1);
    CHECK_CLOSE(ops::matmul(at, bt), reference_matmul(at, bt), tol, tol);
    Tensor sliced = randn({5, 9}, t).narrow(1, 1, 7);  // row stride 9, not contiguous
    CHECK_CLOSE(ops::matmul(sliced, b), reference_matmul(sliced, b), tol, tol);
  }
  CHECK_THROWS_WITH_AS(ops::matmul(zeros({2, 3}), zeros({2, 3})), doctest::Contains("do not multiply"), Error);
}

TEST_CASE("gradcheck: matmul") {
  CHECK_GRADCHECK([](auto& in) { return ops::matmul(in[0], in[1]); }, {randn_grad({3, 5}), randn_grad({5, 4})});
}

TEST_CASE("cuBLAS gemm: sizes and strides beyond int are errors before any cuBLAS call") {
  // The range check runs on the host before the handle is used, so it needs no GPU.
  const int64_t big = int64_t{1} << 31;
  auto gemm = [](int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldb, int64_t ldc) {
    kernels::cuda::gemm(nullptr, false, false, m, n, k, 1.f, static_cast<const float*>(nullptr), lda, nullptr, ldb, 0.f,
                        static_cast<float*>(nullptr), ldc);
  };
  CHECK_THROWS_WITH_AS(gemm(big, 3, 4, 4, 3, 3),
                       doctest::Contains("matmul: m = 2147483648 is outside cuBLAS's 32-bit range"), Error);
  CHECK_THROWS_WITH_AS(gemm(2, 3, big, big, 3, 3), doctest::Contains("matmul: k = 2147483648"), Error);
  // Small operands that are views into a huge tensor: the leading dimension alone overflows.
  CHECK_THROWS_WITH_AS(gemm(2, 3, 4, 4, big + 5, 3), doctest::Contains("matmul: ldb = 2147483653"), Error);
  CHECK_THROWS_WITH_AS(gemm(2, 3, 4, 4, 3, big), doctest::Contains("matmul: ldc = 2147483648"), Error);
}

TEST_SUITE("cuda") {
  TEST_CASE("cuda parity: matmul") {
    MTL_REQUIRE_CUDA();  // cuBLAS's gemm is emulated on the CPU execution layer
    bool tf32 = cuda::allow_tf32();
    cuda::set_allow_tf32(false);
    auto matmul = [](const std::vector<Tensor>& in) { return std::vector<Tensor>{ops::matmul(in[0], in[1])}; };
    Tensor a = test::leaf(randn({67, 129})), b = test::leaf(randn({129, 33})), at = randn({129, 67});
    test::check_parity({"67x129 by 129x33", test::copies_of({a, b}), matmul, {{1e-4, 1e-4}}, {{1e-4, 1e-4}}});
    test::check_parity({"a transposed operand",
                        [at, b](Device d) {
                          return std::vector<Tensor>{at.to(d).transpose(0, 1), b.detach().to(d)};
                        },
                        matmul,
                        {{1e-4, 1e-4}}});
    cuda::set_allow_tf32(tf32);
  }
}
