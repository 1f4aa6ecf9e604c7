// Core tensor: factories, views, element access, dtype/device copies and error messages.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>

#include "core/cuda_context.h"
#include "core/error.h"
#include "core/generator.h"
#include "core/tensor.h"
#include "ops/ops.h"
#include "tests/support/compare.h"
#include "tests/support/gpu.h"
#include "tests/support/parity.h"
#include "tests/support/random.h"

using namespace mtl;

TEST_CASE("factories fill the values they promise") {
  CHECK(zeros({2, 3}).to_f64_vector() == std::vector<double>(6, 0.0));
  CHECK(ones({4}, DType::i32).to_f64_vector() == std::vector<double>(4, 1.0));
  CHECK(full({2}, -2.5, DType::f64).to_f64_vector() == std::vector<double>{-2.5, -2.5});
  CHECK(arange(5, DType::i64).to_f64_vector() == std::vector<double>{0, 1, 2, 3, 4});
  CHECK(arange(1.0, 2.0, 0.25).to_f64_vector() == std::vector<double>{1, 1.25, 1.5, 1.75});
  CHECK(from_vector({1, 2, 3, 4, 5, 6}, {2, 3}).at({1, 2}) == 6.0);
  const int32_t raw[3] = {7, -8, 9};
  CHECK(from_data(raw, {3}).to_f64_vector() == std::vector<double>{7, -8, 9});
  CHECK(empty({0, 4}).numel() == 0);
}

TEST_CASE("every dtype stores and reads back") {
  for (DType t : {DType::f32, DType::f64, DType::bf16, DType::i32, DType::i64, DType::u8, DType::b8}) {
    Tensor x = from_vector({0, 1, 2}, {3}, t);
    CHECK(x.dtype() == t);
    CHECK(x.nbytes() == 3 * dtype_size(t));
    std::vector<double> expect = {0, 1, t == DType::b8 ? 1.0 : 2.0};
    CHECK(x.to_f64_vector() == expect);
  }
  CHECK(dtype_from_name("BF16") == DType::bf16);
  CHECK_THROWS_WITH_AS(dtype_from_name("F16"), doctest::Contains("unsupported dtype 'F16'"), Error);
}

TEST_CASE("bfloat16 rounds to nearest even") {
  CHECK(static_cast<float>(bf16(1.0f)) == 1.0f);
  // 1 + 2^-8 is halfway between two bf16 values (1 and 1 + 2^-7): ties go to the even one, 1.
  CHECK(static_cast<float>(bf16(1.0f + std::ldexp(1.0f, -8))) == 1.0f);
  CHECK(static_cast<float>(bf16(1.0f + 3 * std::ldexp(1.0f, -8))) == 1.0f + std::ldexp(1.0f, -6));
  CHECK(std::isnan(static_cast<float>(bf16(NAN))));
}

TEST_CASE("views share storage and index correctly") {
  Tensor x = arange(24).view({2, 3, 4});
  CHECK(x.is_contiguous());
  Tensor p = x.permute({2, 0, 1});
  CHECK(p.shape() == Shape{4, 2, 3});
  CHECK_FALSE(p.is_contiguous());
  CHECK(p.at({3, 1, 2}) == x.at({1, 2, 3}));
  Tensor n = x.narrow(2, 1, 2);
  CHECK(n.shape() == Shape{2, 3, 2});
  CHECK(n.at({1, 0, 1}) == x.at({1, 0, 2}));
  n.set({0, 0, 0}, 100);
  CHECK(x.at({0, 0, 1}) == 100);  // same storage
  CHECK(x.view({-1, 4}).shape() == Shape{6, 4});
  CHECK(x.unsqueeze(1).shape() == Shape{2, 1, 3, 4});
  CHECK(x.unsqueeze(1).squeeze(1).shape() == Shape{2, 3, 4});
  CHECK(x.transpose(0, 2).at({3, 2, 1}) == x.at({1, 2, 3}));
  Tensor c = p.clone();
  CHECK(c.is_contiguous());
  CHECK(c.to_f64_vector() == p.to_f64_vector());
}

TEST_CASE("view errors are clear") {
  Tensor x = zeros({2, 3});
  CHECK_THROWS_WITH_AS(x.view({4, 2}), doctest::Contains("cannot view F32[2, 3] on cpu as [4, 2]"), Error);
  CHECK_THROWS_WITH_AS(x.transpose(0, 1).view({6}), doctest::Contains("non-contiguous"), Error);
  CHECK_THROWS_WITH_AS(x.narrow(1, 2, 2), doctest::Contains("out of range"), Error);
  CHECK_THROWS_WITH_AS(x.at({2, 0}), doctest::Contains("index 2 out of range in dimension 0"), Error);
  Tensor g = zeros({2, 3});
  g.set_requires_grad(true);
  CHECK_THROWS_WITH_AS(g.view({6}), doctest::Contains("use ops::reshape"), Error);
  CHECK_THROWS_WITH_AS(zeros({2}, DType::i32).set_requires_grad(true), doctest::Contains("floating-point"), Error);
}

TEST_CASE("cast between dtypes through ops::to") {
  Tensor x = from_vector({-1.5, 0.25, 3.75, 300}, {4});
  CHECK(ops::to(x, DType::i32).to_f64_vector() == std::vector<double>{-1, 0, 3, 300});
  CHECK(ops::to(x, DType::f64).to_f64_vector() == x.to_f64_vector());
  CHECK(ops::to(ops::to(x, DType::bf16), DType::f32).to_f64_vector() == std::vector<double>{-1.5, 0.25, 3.75, 300});
  Tensor t = arange(6, DType::f64).view({2, 3}).transpose(0, 1);  // non-contiguous source
  CHECK(ops::to(t, DType::f32).to_f64_vector() == std::vector<double>{0, 3, 1, 4, 2, 5});
}

TEST_CASE("without a GPU, CUDA requests fail with one clear error") {
  if (cuda::available()) return;
  CHECK(cuda::device_count() == 0);
  CHECK_THROWS_WITH_AS(zeros({2}, Device::cuda()), doctest::Contains("CUDA was requested but is not available"), Error);
  CHECK_THROWS_WITH_AS(ones({2}).cuda(), doctest::Contains("use the cpu device"), Error);
}

TEST_CASE("parse_device") {
  CHECK(parse_device("cpu") == Device::cpu());
  CHECK(parse_device("cuda:1") == Device::cuda(1));
  CHECK_THROWS_WITH_AS(parse_device("gpu"), doctest::Contains("unknown device 'gpu'"), Error);
}

TEST_CASE("generator is reproducible and well distributed") {
  Generator a(42), b(42), c(43);
  Tensor ua = uniform({1000}, -1, 1, a), ub = uniform({1000}, -1, 1, b), uc = uniform({1000}, -1, 1, c);
  CHECK(ua.to_f64_vector() == ub.to_f64_vector());
  CHECK(ua.to_f64_vector() != uc.to_f64_vector());
  Generator g(7);
  std::vector<double> v = normal({100000}, 2.0, 3.0, g, DType::f64).to_f64_vector();
  double m = 0, s = 0;
  for (double e : v) m += e;
  m /= v.size();
  for (double e : v) s += (e - m) * (e - m);
  s = std::sqrt(s / v.size());
  CHECK(m == doctest::Approx(2.0).epsilon(0.03));
  CHECK(s == doctest::Approx(3.0).epsilon(0.02));
  // The state is (seed, offset): restoring it replays the stream.
  Generator h(9);
  h.next_u64();
  uint64_t off = h.offset();
  uint64_t x1 = h.next_u64();
  h.set_state(9, off);
  CHECK(h.next_u64() == x1);
}

TEST_SUITE("cuda") {
  TEST_CASE("cuda parity: host-device round trips and casts") {
    MTL_REQUIRE_CUDA();
    test::PoisonGuard poison;
    Tensor x = test::randn({3, 5, 7});
    Tensor g = x.cuda();
    CHECK(g.is_cuda());
    CHECK(g.cpu().to_f64_vector() == x.to_f64_vector());
    CHECK(zeros({1025}, Device::cuda()).to_f64_vector() == std::vector<double>(1025, 0.0));
    CHECK(full({33}, 3.5, Options(DType::f32, Device::cuda())).to_f64_vector() == std::vector<double>(33, 3.5));
    // Values of up to a few hundred, and non-negative ones for uint8: a negative float has no
    // uint8 value (C++ leaves the conversion undefined; a GPU saturates).
    test::check_parity({"casts and a strided copy",
                        test::copies_of({ops::mul_scalar(x, 50.0)}),
                        [](const std::vector<Tensor>& in) {
                          std::vector<Tensor> out;
                          for (DType t : {DType::f64, DType::bf16, DType::i32, DType::i64})
                            out.push_back(ops::to(ops::to(in[0], t), DType::f32));
                          out.push_back(ops::to(ops::to(ops::abs(in[0]), DType::u8), DType::f32));
                          out.push_back(ops::contiguous(in[0].permute({2, 0, 1})));
                          return out;
                        },
                        {{0, 0}}});
  }
}
