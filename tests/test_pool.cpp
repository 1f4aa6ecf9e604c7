// Pooling ops: forward against plain loops that encode PyTorch's formulas, hand-computed values,
// backward against scatter references (the kernels gather), float64 gradient checks on odd
// shapes, and CUDA-vs-CPU parity on fresh random inputs with poisoned outputs.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

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
using P2 = std::array<int64_t, 2>;

namespace {

struct Ref {
  Tensor y;
  std::vector<int64_t> argmax;  // flat index into x, per output element (max pool only)
};

// PyTorch: out = floor((in + 2p - k) / s) + 1.
int64_t pool_out(int64_t in, int64_t k, int64_t s, int64_t p) { return (in + 2 * p - k) / s + 1; }

Ref max_pool_ref(const Tensor& x, P2 k, P2 s, P2 p) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t OH = pool_out(H, k[0], s[0], p[0]), OW = pool_out(W, k[1], s[1], p[1]);
  std::vector<double> v = x.to_f64_vector(), y;
  Ref r;
  for (int64_t nc = 0; nc < N * C; ++nc)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        double best = -std::numeric_limits<double>::infinity();
        int64_t arg = -1;
        for (int64_t dh = 0; dh < k[0]; ++dh)
          for (int64_t dw = 0; dw < k[1]; ++dw) {
            const int64_t ih = oh * s[0] - p[0] + dh, iw = ow * s[1] - p[1] + dw;
            if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;  // -inf padding
            const int64_t idx = (nc * H + ih) * W + iw;
            if (arg < 0 || v[idx] > best) best = v[idx], arg = idx;  // strict: first max wins
          }
        y.push_back(best);
        r.argmax.push_back(arg);
      }
  r.y = from_vector(y, {N, C, OH, OW}, DType::f64);
  return r;
}

Tensor avg_pool_ref(const Tensor& x, P2 k, P2 s, P2 p) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t OH = pool_out(H, k[0], s[0], p[0]), OW = pool_out(W, k[1], s[1], p[1]);
  std::vector<double> v = x.to_f64_vector(), y;
  for (int64_t nc = 0; nc < N * C; ++nc)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        double acc = 0;
        for (int64_t dh = 0; dh < k[0]; ++dh)
          for (int64_t dw = 0; dw < k[1]; ++dw) {
            const int64_t ih = oh * s[0] - p[0] + dh, iw = ow * s[1] - p[1] + dw;
            if (ih >= 0 && ih < H && iw >= 0 && iw < W) acc += v[(nc * H + ih) * W + iw];
          }
        // count_include_pad: the window is never cut by the padded border in floor mode.
        y.push_back(acc / static_cast<double>(k[0] * k[1]));
      }
  return from_vector(y, {N, C, OH, OW}, DType::f64);
}

int64_t bin_start(int64_t o, int64_t in, int64_t out) {
  return static_cast<int64_t>(std::floor(static_cast<double>(o * in) / out));
}
int64_t bin_end(int64_t o, int64_t in, int64_t out) {
  return static_cast<int64_t>(std::ceil(static_cast<double>((o + 1) * in) / out));
}

Tensor adaptive_ref(const Tensor& x, int64_t OH, int64_t OW) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  std::vector<double> v = x.to_f64_vector(), y;
  for (int64_t nc = 0; nc < N * C; ++nc)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        double acc = 0;
        int64_t cnt = 0;
        for (int64_t ih = bin_start(oh, H, OH); ih < bin_end(oh, H, OH); ++ih)
          for (int64_t iw = bin_start(ow, W, OW); iw < bin_end(ow, W, OW); ++iw) {
            acc += v[(nc * H + ih) * W + iw];
            ++cnt;
          }
        y.push_back(acc / static_cast<double>(cnt));
      }
  return from_vector(y, {N, C, OH, OW}, DType::f64);
}

// Scatter-form gradient of the adaptive pool (the kernels gather).
Tensor adaptive_grad_ref(const Shape& xs, const Tensor& gy) {
  const int64_t H = xs[2], W = xs[3], OH = gy.size(2), OW = gy.size(3);
  std::vector<double> g = gy.to_f64_vector(), gx(static_cast<size_t>(numel(xs)), 0.0);
  for (int64_t nc = 0; nc < xs[0] * xs[1]; ++nc)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        const int64_t h0 = bin_start(oh, H, OH), h1 = bin_end(oh, H, OH);
        const int64_t w0 = bin_start(ow, W, OW), w1 = bin_end(ow, W, OW);
        const double share = g[(nc * OH + oh) * OW + ow] / static_cast<double>((h1 - h0) * (w1 - w0));
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) gx[(nc * H + ih) * W + iw] += share;
      }
  return from_vector(gx, xs, DType::f64);
}

Tensor avg_grad_ref(const Shape& xs, const Tensor& gy, P2 k, P2 s, P2 p) {
  const int64_t H = xs[2], W = xs[3], OH = gy.size(2), OW = gy.size(3);
  std::vector<double> g = gy.to_f64_vector(), gx(static_cast<size_t>(numel(xs)), 0.0);
  for (int64_t nc = 0; nc < xs[0] * xs[1]; ++nc)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow)
        for (int64_t dh = 0; dh < k[0]; ++dh)
          for (int64_t dw = 0; dw < k[1]; ++dw) {
            const int64_t ih = oh * s[0] - p[0] + dh, iw = ow * s[1] - p[1] + dw;
            if (ih >= 0 && ih < H && iw >= 0 && iw < W)
              gx[(nc * H + ih) * W + iw] += g[(nc * OH + oh) * OW + ow] / static_cast<double>(k[0] * k[1]);
          }
  return from_vector(gx, xs, DType::f64);
}

Tensor max_grad_ref(const Shape& xs, const Tensor& gy, const std::vector<int64_t>& argmax) {
  std::vector<double> g = gy.to_f64_vector(), gx(static_cast<size_t>(numel(xs)), 0.0);
  for (size_t o = 0; o < g.size(); ++o) gx[static_cast<size_t>(argmax[o])] += g[o];
  return from_vector(gx, xs, DType::f64);
}


struct WindowCase {
  Shape shape;
  P2 k, s, p;
};

const WindowCase kWindowCases[] = {
    {{2, 3, 11, 13}, {3, 3}, {2, 2}, {1, 1}},  // ResNet stem, odd sizes
    {{1, 2, 8, 8}, {2, 2}, {2, 2}, {0, 0}},
    {{2, 1, 9, 7}, {3, 2}, {2, 1}, {1, 0}},    // rectangular kernel, mixed stride
    {{1, 2, 6, 10}, {4, 5}, {3, 2}, {2, 2}},   // padding exactly half the kernel
    {{1, 1, 5, 5}, {5, 5}, {1, 1}, {0, 0}},    // one window
};

}  // namespace

TEST_CASE("max_pool2d matches a naive reference (f32 and f64)") {
  for (const WindowCase& c : kWindowCases) {
    CAPTURE(shape_str(c.shape));
    for (DType dt : {DType::f32, DType::f64}) {
      Tensor x = randn(c.shape, dt);
      Ref r = max_pool_ref(x, c.k, c.s, c.p);
      Tensor y = ops::max_pool2d(x, c.k, c.s, c.p);
      CHECK(y.dtype() == dt);
      CHECK_CLOSE(y, r.y, 0, 0);  // a selection: exact
    }
  }
}

TEST_CASE("max_pool2d: hand-computed values") {
  Tensor x = arange(16, DType::f32).view({1, 1, 4, 4});
  CHECK(ops::max_pool2d(x, {2, 2}, {2, 2}).to_f64_vector() == std::vector<double>{5, 7, 13, 15});
  // Stem geometry on 5x5: windows centred on rows/cols 0, 2, 4 (padding never wins).
  Tensor x5 = ops::neg(arange(25, DType::f64)).view({1, 1, 5, 5});
  CHECK(ops::max_pool2d(x5, {3, 3}, {2, 2}, {1, 1}).to_f64_vector() ==
        std::vector<double>{0, -1, -3, -5, -6, -8, -15, -16, -18});
  CHECK(ops::max_pool2d(x5, {3, 3}, {2, 2}, {1, 1}).shape() == Shape{1, 1, 3, 3});
}

TEST_CASE("max_pool2d backward routes to the argmax, first maximum on ties") {
  for (const WindowCase& c : kWindowCases) {
    CAPTURE(shape_str(c.shape));
    Tensor x = randn(c.shape, DType::f64);
    Ref r = max_pool_ref(x, c.k, c.s, c.p);
    Tensor gy = randn(r.y.shape(), DType::f64);
    CHECK_CLOSE(grad_of(x, gy, [&](const Tensor& t) { return ops::max_pool2d(t, c.k, c.s, c.p); }),
                max_grad_ref(c.shape, gy, r.argmax), 1e-12, 1e-12);
  }
  // All ties: every window sends its gradient to its first in-bounds element.
  Tensor ones5 = ones({1, 1, 5, 5}, DType::f64);
  Tensor g = grad_of(ones5, ones({1, 1, 3, 3}, DType::f64),
                     [](const Tensor& t) { return ops::max_pool2d(t, {3, 3}, {2, 2}, {1, 1}); });
  std::vector<double> expect(25, 0.0);
  for (int64_t oh = 0; oh < 3; ++oh)
    for (int64_t ow = 0; ow < 3; ++ow)
      expect[std::max<int64_t>(2 * oh - 1, 0) * 5 + std::max<int64_t>(2 * ow - 1, 0)] += 1;
  CHECK(g.to_f64_vector() == expect);
  // Quantised values make ties common; the reference encodes the first-max rule.
  Tensor q = ops::clamp(randn({2, 2, 9, 11}, DType::f64), -1, 1);
  Ref rq = max_pool_ref(q, {3, 3}, {2, 2}, {1, 1});
  Tensor gq = randn(rq.y.shape(), DType::f64);
  CHECK_CLOSE(grad_of(q, gq, [](const Tensor& t) { return ops::max_pool2d(t, {3, 3}, {2, 2}, {1, 1}); }),
              max_grad_ref(q.shape(), gq, rq.argmax), 1e-12, 1e-12);
}

TEST_CASE("max_pool2d propagates NaN like PyTorch") {
  Tensor x = zeros({1, 1, 2, 2});
  x.set({0, 0, 1, 0}, NAN);
  CHECK(std::isnan(ops::max_pool2d(x, {2, 2}, {2, 2}).item()));
}

TEST_CASE("avg_pool2d matches a naive reference (count_include_pad)") {
  for (const WindowCase& c : kWindowCases) {
    CAPTURE(shape_str(c.shape));
    for (DType dt : {DType::f32, DType::f64}) {
      Tensor x = randn(c.shape, dt);
      CHECK_CLOSE(ops::avg_pool2d(x, c.k, c.s, c.p), avg_pool_ref(x, c.k, c.s, c.p), 1e-6, 1e-6);
    }
    Tensor x = randn(c.shape, DType::f64);
    Tensor gy = randn(avg_pool_ref(x, c.k, c.s, c.p).shape(), DType::f64);
    CHECK_CLOSE(grad_of(x, gy, [&](const Tensor& t) { return ops::avg_pool2d(t, c.k, c.s, c.p); }),
                avg_grad_ref(c.shape, gy, c.k, c.s, c.p), 1e-12, 1e-12);
  }
  // 4x4 arange, k3 s2 p1: padded zeros count in the divisor 9.
  Tensor x = arange(16, DType::f64).view({1, 1, 4, 4});
  CHECK_CLOSE(ops::avg_pool2d(x, {3, 3}, {2, 2}, {1, 1}),
              from_vector({10.0 / 9, 24.0 / 9, 51.0 / 9, 10.0}, {1, 1, 2, 2}, DType::f64), 1e-12, 1e-12);
}

TEST_CASE("adaptive_avg_pool2d: PyTorch bins, including sizes that do not divide") {
  // x[h, w] = 100 h + w: each output is 100 * (row-bin mean) + (column-bin mean).
  std::vector<double> v;
  for (int h = 0; h < 15; ++h)
    for (int w = 0; w < 20; ++w) v.push_back(100.0 * h + w);
  Tensor x = from_vector(v, {1, 1, 15, 20});
  // 20 -> 7: bins [0,3) [2,6) [5,9) [8,12) [11,15) [14,18) [17,20).
  const double cols7[] = {1, 3.5, 6.5, 9.5, 12.5, 15.5, 18};
  std::vector<double> e57, e55;
  for (int i = 0; i < 5; ++i) {
    for (double c : cols7) e57.push_back(100.0 * (3 * i + 1) + c);
    for (int j = 0; j < 5; ++j) e55.push_back(100.0 * (3 * i + 1) + 4 * j + 1.5);
  }
  CHECK_CLOSE(ops::adaptive_avg_pool2d(x, 5, 7), from_vector(e57, {1, 1, 5, 7}), 1e-4, 1e-6);
  CHECK_CLOSE(ops::adaptive_avg_pool2d(x, 5, 5), from_vector(e55, {1, 1, 5, 5}), 1e-4, 1e-6);
  CHECK_CLOSE(ops::adaptive_avg_pool2d(x, 1, 1), from_vector({100.0 * 7 + 9.5}, {1, 1, 1, 1}), 1e-4, 1e-6);

  struct Case {
    Shape shape;
    int64_t oh, ow;
  };
  for (Case c : {Case{{2, 3, 15, 20}, 5, 7}, Case{{2, 3, 15, 20}, 5, 5}, Case{{1, 2, 7, 9}, 3, 4},
                 Case{{3, 2, 5, 6}, 1, 1}, Case{{1, 2, 3, 4}, 5, 7} /* more bins than pixels */,
                 Case{{1, 1, 6, 6}, 6, 6}}) {
    CAPTURE(shape_str(c.shape));
    for (DType dt : {DType::f32, DType::f64}) {
      Tensor xr = randn(c.shape, dt);
      CHECK_CLOSE(ops::adaptive_avg_pool2d(xr, c.oh, c.ow), adaptive_ref(xr, c.oh, c.ow), 1e-6, 1e-6);
    }
    Tensor xr = randn(c.shape, DType::f64);
    Tensor gy = randn({c.shape[0], c.shape[1], c.oh, c.ow}, DType::f64);
    CHECK_CLOSE(grad_of(xr, gy, [&](const Tensor& t) { return ops::adaptive_avg_pool2d(t, c.oh, c.ow); }),
                adaptive_grad_ref(c.shape, gy), 1e-12, 1e-12);
  }
}

TEST_CASE("pooling reads non-contiguous inputs") {
  Tensor base = randn({2, 3, 9, 7});
  Tensor xt = base.transpose(2, 3);  // [2, 3, 7, 9], strided
  CHECK_FALSE(xt.is_contiguous());
  Tensor xc = xt.clone();
  CHECK_CLOSE(ops::max_pool2d(xt, {3, 3}, {2, 2}, {1, 1}), max_pool_ref(xc, {3, 3}, {2, 2}, {1, 1}).y, 0, 0);
  CHECK_CLOSE(ops::avg_pool2d(xt, {2, 2}, {2, 2}), avg_pool_ref(xc, {2, 2}, {2, 2}, {0, 0}), 1e-6, 1e-6);
  CHECK_CLOSE(ops::adaptive_avg_pool2d(xt, 3, 4), adaptive_ref(xc, 3, 4), 1e-6, 1e-6);
}

TEST_CASE("gradcheck: pooling on odd shapes") {
  CHECK_GRADCHECK([](auto& in) { return ops::max_pool2d(in[0], {3, 3}, {2, 2}, {1, 1}); }, {randn_grad({2, 2, 7, 9})});
  CHECK_GRADCHECK([](auto& in) { return ops::max_pool2d(in[0], {2, 3}, {1, 2}, {1, 0}); }, {randn_grad({1, 2, 5, 7})});
  CHECK_GRADCHECK([](auto& in) { return ops::avg_pool2d(in[0], {3, 3}, {2, 2}, {1, 1}); }, {randn_grad({2, 2, 7, 9})});
  CHECK_GRADCHECK([](auto& in) { return ops::avg_pool2d(in[0], {2, 3}, {2, 1}, {0, 1}); }, {randn_grad({1, 2, 5, 7})});
  CHECK_GRADCHECK([](auto& in) { return ops::adaptive_avg_pool2d(in[0], 3, 4); }, {randn_grad({2, 2, 7, 9})});
  CHECK_GRADCHECK([](auto& in) { return ops::adaptive_avg_pool2d(in[0], 5, 7); }, {randn_grad({1, 2, 15, 20})});
  CHECK_GRADCHECK([](auto& in) { return ops::adaptive_avg_pool2d(in[0], 1, 1); }, {randn_grad({2, 3, 5, 7})});
  CHECK_GRADCHECK([](auto& in) { return ops::adaptive_avg_pool2d(in[0], 4, 6); }, {randn_grad({1, 1, 3, 4})});
}

TEST_CASE("pooling: argument errors name the input and the values") {
  Tensor x = zeros({1, 2, 5, 5});
  CHECK_THROWS_WITH_AS(ops::max_pool2d(x, {0, 3}, {1, 1}), doctest::Contains("kernel size [0, 3] must be positive"),
                       Error);
  CHECK_THROWS_WITH_AS(ops::max_pool2d(x, {3, 3}, {2, 0}), doctest::Contains("stride [2, 0] must be positive"), Error);
  CHECK_THROWS_WITH_AS(ops::avg_pool2d(x, {3, 3}, {1, 1}, {2, 1}),
                       doctest::Contains("padding [2, 1] must be at most half the kernel size [3, 3]"), Error);
  CHECK_THROWS_WITH_AS(ops::avg_pool2d(x, {3, 3}, {1, 1}, {-1, 0}), doctest::Contains("must be non-negative"), Error);
  CHECK_THROWS_WITH_AS(ops::max_pool2d(x, {7, 7}, {1, 1}),
                       doctest::Contains("output size [-1, -1] is too small for input x F32[1, 2, 5, 5]"), Error);
  CHECK_THROWS_WITH_AS(ops::max_pool2d(zeros({2, 5, 5}), {2, 2}, {2, 2}),
                       doctest::Contains("expected a 4-D NCHW input x, got F32[2, 5, 5]"), Error);
  CHECK_THROWS_WITH_AS(ops::adaptive_avg_pool2d(x, 0, 3), doctest::Contains("output size [0, 3] must be positive"),
                       Error);
  CHECK_THROWS_WITH_AS(ops::adaptive_avg_pool2d(zeros({1, 2, 0, 3}), 1, 1),
                       doctest::Contains("has an empty spatial dimension"), Error);
  CHECK_THROWS_WITH_AS(ops::max_pool2d(zeros({1, 1, 4, 4}, DType::i32), {2, 2}, {2, 2}),
                       doctest::Contains("supports F32, F64 and BF16"), Error);
}

TEST_SUITE("cuda") {
  TEST_CASE("cuda parity: max_pool2d and avg_pool2d forward and backward") {
    MTL_REQUIRE_CUDA();
    for (const WindowCase& c : kWindowCases) {
      auto inputs = test::copies_of({test::leaf(randn(c.shape))});
      test::check_parity(
          {"max_pool2d " + shape_str(c.shape),
           inputs,
           [&c](const std::vector<Tensor>& in) { return std::vector<Tensor>{ops::max_pool2d(in[0], c.k, c.s, c.p)}; },
           {{0, 0}},
           {{1e-6, 1e-5}}});
      test::check_parity(
          {"avg_pool2d " + shape_str(c.shape),
           inputs,
           [&c](const std::vector<Tensor>& in) { return std::vector<Tensor>{ops::avg_pool2d(in[0], c.k, c.s, c.p)}; },
           {{1e-6, 1e-5}},
           {{1e-6, 1e-5}}});
    }
    // Larger batch of odd planes (not a multiple of the block) and frequent ties.
    test::check_parity({"stem max_pool2d with ties",
                        test::copies_of({test::leaf(ops::clamp(randn({3, 5, 37, 41}), -0.5, 0.5))}),
                        [](const std::vector<Tensor>& in) {
                          return std::vector<Tensor>{ops::max_pool2d(in[0], {3, 3}, {2, 2}, {1, 1})};
                        },
                        {{0, 0}},
                        {{1e-6, 1e-5}}});
  }

  TEST_CASE("cuda parity: adaptive_avg_pool2d, global and binned") {
    MTL_REQUIRE_CUDA();
    struct Case {
      Shape shape;
      int64_t oh, ow;
    };
    for (Case c : {Case{{2, 3, 15, 20}, 5, 7}, Case{{2, 3, 15, 20}, 5, 5}, Case{{3, 5, 7, 9}, 1, 1},
                   Case{{2, 3, 16, 20}, 1, 1} /* float4 path */, Case{{1, 3, 120, 161}, 1, 1},
                   Case{{1, 2, 3, 4}, 5, 7}, Case{{2, 7, 1, 1}, 1, 1}}) {
      test::check_parity(
          {"adaptive_avg_pool2d " + shape_str(c.shape) + " to " + std::to_string(c.oh) + "x" + std::to_string(c.ow),
           test::copies_of({test::leaf(randn(c.shape))}),
           [c](const std::vector<Tensor>& in) {
             return std::vector<Tensor>{ops::adaptive_avg_pool2d(in[0], c.oh, c.ow)};
           },
           {{1e-6, 1e-5}},
           {{1e-6, 1e-5}}});
    }
    // A plane start that is not 16-byte aligned must take the scalar path.
    Tensor flat = randn({1 + 2 * 3 * 4 * 4});
    test::check_parity(
        {"global average of misaligned planes",
         [flat](Device d) {
           return std::vector<Tensor>{flat.to(d).narrow(0, 1, 96).view({2, 3, 4, 4})};
         },
         [](const std::vector<Tensor>& in) { return std::vector<Tensor>{ops::adaptive_avg_pool2d(in[0], 1, 1)}; },
         {{1e-6, 1e-5}}});
  }

  TEST_CASE("cuda parity: pooling at a medium ESANet shape") {
    MTL_REQUIRE_CUDA();
    auto inputs = test::copies_of({test::leaf(randn({2, 64, 120, 160}))});
    test::check_parity({"stem max_pool2d of [2, 64, 120, 160]",
                        inputs,
                        [](const std::vector<Tensor>& in) {
                          return std::vector<Tensor>{ops::max_pool2d(in[0], {3, 3}, {2, 2}, {1, 1})};
                        },
                        {{0, 0}},
                        {{1e-6, 1e-5}}});
    test::check_parity(
        {"context-module pooling of [2, 64, 120, 160]",
         inputs,
         [](const std::vector<Tensor>& in) {
           return std::vector<Tensor>{ops::adaptive_avg_pool2d(in[0], 1, 1), ops::adaptive_avg_pool2d(in[0], 5, 5)};
         },
         {{1e-6, 1e-5}},
         {{1e-6, 1e-5}}});
  }
}
