// Resizing ops: forward against plain loops that encode PyTorch's index formulas, hand-computed
// values, backward against scatter references (the kernels gather), float64 gradient checks up
// and down, and CUDA-vs-CPU parity on fresh random inputs with poisoned outputs.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "ops/ops.h"
#include "tests/support/compare.h"
#include "tests/support/gpu.h"
#include "tests/support/gradcheck.h"
#include "tests/support/parity.h"
#include "tests/support/random.h"

using namespace mtl;
using mtl::test::grad_of;
using mtl::test::randn;
using mtl::test::randn_grad;

namespace {

// PyTorch nearest_idx given an output size: a float scale in / out and floorf(dst * scale).
int64_t nearest_index(int64_t dst, int64_t in, int64_t out) {
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  const float src = std::floor(static_cast<float>(dst) * scale);
  return std::min(static_cast<int64_t>(src), in - 1);
}

// PyTorch area_pixel_compute_source_index, align_corners=false: two taps and their weights.
struct Taps {
  int64_t i0, i1;
  double w0, w1;
};
Taps bilinear_taps(int64_t dst, int64_t in, int64_t out) {
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  const double src = std::max((dst + 0.5) * scale - 0.5, 0.0);
  const int64_t i0 = static_cast<int64_t>(std::floor(src));
  const double frac = src - static_cast<double>(i0);
  return {i0, std::min(i0 + 1, in - 1), 1.0 - frac, frac};
}

Tensor nearest_ref(const Tensor& x, int64_t OH, int64_t OW) {
  const int64_t NC = x.size(0) * x.size(1), H = x.size(2), W = x.size(3);
  std::vector<double> v = x.to_f64_vector(), y;
  for (int64_t nc = 0; nc < NC; ++nc)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow)
        y.push_back(v[(nc * H + nearest_index(oh, H, OH)) * W + nearest_index(ow, W, OW)]);
  return from_vector(y, {x.size(0), x.size(1), OH, OW}, DType::f64);
}

Tensor nearest_grad_ref(const Shape& xs, const Tensor& gy) {
  const int64_t H = xs[2], W = xs[3], OH = gy.size(2), OW = gy.size(3);
  std::vector<double> g = gy.to_f64_vector(), gx(static_cast<size_t>(numel(xs)), 0.0);
  for (int64_t nc = 0; nc < xs[0] * xs[1]; ++nc)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow)
        gx[(nc * H + nearest_index(oh, H, OH)) * W + nearest_index(ow, W, OW)] += g[(nc * OH + oh) * OW + ow];
  return from_vector(gx, xs, DType::f64);
}

Tensor bilinear_ref(const Tensor& x, int64_t OH, int64_t OW) {
  const int64_t NC = x.size(0) * x.size(1), H = x.size(2), W = x.size(3);
  std::vector<double> v = x.to_f64_vector(), y;
  for (int64_t nc = 0; nc < NC; ++nc)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        const Taps h = bilinear_taps(oh, H, OH), w = bilinear_taps(ow, W, OW);
        auto at = [&](int64_t ih, int64_t iw) { return v[(nc * H + ih) * W + iw]; };
        y.push_back(h.w0 * (w.w0 * at(h.i0, w.i0) + w.w1 * at(h.i0, w.i1)) +
                    h.w1 * (w.w0 * at(h.i1, w.i0) + w.w1 * at(h.i1, w.i1)));
      }
  return from_vector(y, {x.size(0), x.size(1), OH, OW}, DType::f64);
}

Tensor bilinear_grad_ref(const Shape& xs, const Tensor& gy) {
  const int64_t H = xs[2], W = xs[3], OH = gy.size(2), OW = gy.size(3);
  std::vector<double> g = gy.to_f64_vector(), gx(static_cast<size_t>(numel(xs)), 0.0);
  for (int64_t nc = 0; nc < xs[0] * xs[1]; ++nc)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        const Taps h = bilinear_taps(oh, H, OH), w = bilinear_taps(ow, W, OW);
        const double gg = g[(nc * OH + oh) * OW + ow];
        gx[(nc * H + h.i0) * W + w.i0] += h.w0 * w.w0 * gg;
        gx[(nc * H + h.i0) * W + w.i1] += h.w0 * w.w1 * gg;
        gx[(nc * H + h.i1) * W + w.i0] += h.w1 * w.w0 * gg;
        gx[(nc * H + h.i1) * W + w.i1] += h.w1 * w.w1 * gg;
      }
  return from_vector(gx, xs, DType::f64);
}


struct Case {
  Shape shape;
  int64_t oh, ow;
};

// x2 up, arbitrary up, down, mixed, identity, from a single pixel, and a float-rounding case.
const Case kCases[] = {
    {{2, 3, 5, 7}, 10, 14}, {{1, 2, 7, 9}, 33, 50}, {{2, 2, 15, 20}, 5, 7}, {{1, 3, 9, 8}, 4, 13},
    {{1, 1, 6, 6}, 6, 6},   {{2, 1, 1, 1}, 3, 4},   {{1, 1, 2, 3}, 82, 5},
};

}  // namespace

TEST_CASE("interpolate_nearest: hand-computed values") {
  Tensor x = from_vector({1, 2, 3, 4}, {1, 1, 2, 2});
  CHECK(ops::interpolate_nearest(x, 4, 4).to_f64_vector() ==
        std::vector<double>{1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4});
  Tensor r3 = arange(3, DType::f64).view({1, 1, 1, 3});
  CHECK(ops::interpolate_nearest(r3, 1, 5).to_f64_vector() == std::vector<double>{0, 0, 1, 1, 2});
  Tensor r5 = arange(5, DType::f64).view({1, 1, 5, 1});
  CHECK(ops::interpolate_nearest(r5, 3, 1).to_f64_vector() == std::vector<double>{0, 1, 3});
  // PyTorch's float scale 2/82 makes 41 * scale = 0.99999994: output 41 still reads pixel 0.
  Tensor r2 = arange(2, DType::f64).view({1, 1, 1, 2});
  std::vector<double> y82 = ops::interpolate_nearest(r2, 1, 82).to_f64_vector();
  CHECK(y82[40] == 0);
  CHECK(y82[41] == 0);
  CHECK(y82[42] == 1);
}

TEST_CASE("interpolate_nearest matches a naive reference, forward and backward") {
  for (const Case& c : kCases) {
    CAPTURE(shape_str(c.shape));
    CAPTURE(c.oh);
    CAPTURE(c.ow);
    for (DType dt : {DType::f32, DType::f64}) {
      Tensor x = randn(c.shape, dt);
      Tensor y = ops::interpolate_nearest(x, c.oh, c.ow);
      CHECK(y.dtype() == dt);
      CHECK_CLOSE(y, nearest_ref(x, c.oh, c.ow), 0, 0);
    }
    Tensor x = randn(c.shape, DType::f64);
    Tensor gy = randn({c.shape[0], c.shape[1], c.oh, c.ow}, DType::f64);
    CHECK_CLOSE(grad_of(x, gy, [&](const Tensor& t) { return ops::interpolate_nearest(t, c.oh, c.ow); }),
                nearest_grad_ref(c.shape, gy), 1e-12, 1e-12);
  }
}

TEST_CASE("interpolate_bilinear: hand-computed values (align_corners=false)") {
  Tensor x = from_vector({1, 2, 3, 4}, {1, 1, 2, 2}, DType::f64);
  CHECK_CLOSE(ops::interpolate_bilinear(x, 4, 4),
              from_vector({1.0, 1.25, 1.75, 2.0, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3.0, 3.25, 3.75, 4.0},
                          {1, 1, 4, 4}, DType::f64),
              1e-12, 0);
  // Exact halving samples the centre of each 2x2 block.
  Tensor a = arange(16, DType::f64).view({1, 1, 4, 4});
  CHECK_CLOSE(ops::interpolate_bilinear(a, 2, 2), from_vector({2.5, 4.5, 10.5, 12.5}, {1, 1, 2, 2}, DType::f64),
              1e-12, 0);
  CHECK_CLOSE(ops::interpolate_bilinear(a, 4, 4), a, 0, 0);
  CHECK_CLOSE(ops::interpolate_bilinear(full({1, 1, 1, 1}, 3.5), 3, 2), full({1, 1, 3, 2}, 3.5), 0, 0);
  // 3 -> 2: src = 0.25 and 1.75.
  Tensor r = from_vector({0, 10, 30}, {1, 1, 1, 3}, DType::f64);
  CHECK_CLOSE(ops::interpolate_bilinear(r, 1, 2), from_vector({2.5, 25}, {1, 1, 1, 2}, DType::f64), 1e-12, 0);
}

TEST_CASE("interpolate_bilinear matches a naive reference, forward and backward") {
  for (const Case& c : kCases) {
    CAPTURE(shape_str(c.shape));
    CAPTURE(c.oh);
    CAPTURE(c.ow);
    Tensor x32 = randn(c.shape);
    // The op rounds its index arithmetic in float, as PyTorch does, the reference in double.
    CHECK_CLOSE(ops::interpolate_bilinear(x32, c.oh, c.ow), bilinear_ref(x32, c.oh, c.ow), 1e-5, 1e-5);
    Tensor x = randn(c.shape, DType::f64);
    CHECK_CLOSE(ops::interpolate_bilinear(x, c.oh, c.ow), bilinear_ref(x, c.oh, c.ow), 1e-12, 1e-12);
    Tensor gy = randn({c.shape[0], c.shape[1], c.oh, c.ow}, DType::f64);
    CHECK_CLOSE(grad_of(x, gy, [&](const Tensor& t) { return ops::interpolate_bilinear(t, c.oh, c.ow); }),
                bilinear_grad_ref(c.shape, gy), 1e-12, 1e-12);
  }
}

TEST_CASE("resizing reads non-contiguous inputs") {
  Tensor base = randn({2, 3, 9, 7});
  Tensor xt = base.transpose(2, 3);
  CHECK_FALSE(xt.is_contiguous());
  Tensor xc = xt.clone();
  CHECK_CLOSE(ops::interpolate_nearest(xt, 11, 5), nearest_ref(xc, 11, 5), 0, 0);
  CHECK_CLOSE(ops::interpolate_bilinear(xt, 11, 5), bilinear_ref(xc, 11, 5), 1e-5, 1e-5);
}

TEST_CASE("gradcheck: resizing up, down and by odd factors") {
  CHECK_GRADCHECK([](auto& in) { return ops::interpolate_nearest(in[0], 6, 10); }, {randn_grad({1, 2, 3, 5})});
  CHECK_GRADCHECK([](auto& in) { return ops::interpolate_nearest(in[0], 7, 4); }, {randn_grad({2, 1, 5, 7})});
  CHECK_GRADCHECK([](auto& in) { return ops::interpolate_bilinear(in[0], 6, 10); }, {randn_grad({1, 2, 3, 5})});
  CHECK_GRADCHECK([](auto& in) { return ops::interpolate_bilinear(in[0], 11, 7); }, {randn_grad({1, 2, 3, 5})});
  CHECK_GRADCHECK([](auto& in) { return ops::interpolate_bilinear(in[0], 3, 2); }, {randn_grad({2, 1, 7, 9})});
  CHECK_GRADCHECK([](auto& in) { return ops::interpolate_bilinear(in[0], 4, 13); }, {randn_grad({1, 1, 9, 5})});
}

TEST_CASE("resizing: argument errors name the input and the values") {
  Tensor x = zeros({1, 2, 5, 5});
  CHECK_THROWS_WITH_AS(ops::interpolate_nearest(x, 0, 4),
                       doctest::Contains("interpolate_nearest: output size [0, 4] must be positive (input x "
                                         "F32[1, 2, 5, 5]"),
                       Error);
  CHECK_THROWS_WITH_AS(ops::interpolate_bilinear(x, 3, -2), doctest::Contains("output size [3, -2] must be positive"),
                       Error);
  CHECK_THROWS_WITH_AS(ops::interpolate_bilinear(zeros({5, 5}), 3, 3),
                       doctest::Contains("expected a 4-D NCHW input x, got F32[5, 5]"), Error);
  CHECK_THROWS_WITH_AS(ops::interpolate_nearest(zeros({1, 1, 0, 4}), 3, 3),
                       doctest::Contains("has an empty spatial dimension"), Error);
  CHECK_THROWS_WITH_AS(ops::interpolate_nearest(Tensor(), 3, 3), doctest::Contains("undefined tensor"), Error);
}

TEST_SUITE("cuda") {
  TEST_CASE("cuda parity: interpolate_nearest and interpolate_bilinear") {
    MTL_REQUIRE_CUDA();
    std::vector<Case> cases(std::begin(kCases), std::end(kCases));
    cases.push_back({{2, 3, 15, 20}, 480, 640});  // decoder to full resolution
    cases.push_back({{2, 5, 37, 41}, 10, 13});
    for (const Case& c : cases) {
      const std::string size = shape_str(c.shape) + " to " + std::to_string(c.oh) + "x" + std::to_string(c.ow);
      auto inputs = test::copies_of({test::leaf(randn(c.shape))});
      // The device sums up to (out/in)^2 float terms per input pixel, the CPU in double.
      const double terms = std::ceil(double(c.oh) / c.shape[2]) * std::ceil(double(c.ow) / c.shape[3]);
      const double atol = 1e-5 * (terms + 1);
      test::check_parity({"interpolate_nearest " + size,
                          inputs,
                          [c](const std::vector<Tensor>& in) {
                            return std::vector<Tensor>{ops::interpolate_nearest(in[0], c.oh, c.ow)};
                          },
                          {{0, 0}},  // same indices: an exact copy
                          {{atol, 1e-5}}});
      test::check_parity({"interpolate_bilinear " + size,
                          inputs,
                          [c](const std::vector<Tensor>& in) {
                            return std::vector<Tensor>{ops::interpolate_bilinear(in[0], c.oh, c.ow)};
                          },
                          {{1e-6, 1e-5}},
                          {{atol, 1e-5}}});
    }
  }

  TEST_CASE("cuda parity: resizing at a medium ESANet shape") {
    MTL_REQUIRE_CUDA();
    auto inputs = test::copies_of({test::leaf(randn({2, 64, 30, 40}))});
    test::check_parity(
        {"decoder x2 nearest of [2, 64, 30, 40]",
         inputs,
         [](const std::vector<Tensor>& in) { return std::vector<Tensor>{ops::interpolate_nearest(in[0], 60, 80)}; },
         {{0, 0}},
         {{5e-5, 1e-5}}});
    test::check_parity(
        {"decoder x2 bilinear of [2, 64, 30, 40]",
         inputs,
         [](const std::vector<Tensor>& in) { return std::vector<Tensor>{ops::interpolate_bilinear(in[0], 60, 80)}; },
         {{1e-6, 1e-5}},
         {{5e-5, 1e-5}}});
  }
}
