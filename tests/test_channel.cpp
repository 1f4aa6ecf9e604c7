// Per-channel ops: the SE multiply (forward against plain loops, gradients, errors) and dropout
// (masks against Philox drawn directly in the test, statistics, eval identity, gradients), plus
// CUDA-vs-CPU parity, including identical dropout masks for the same generator state.
#include <doctest/doctest.h>

#include <cmath>
#include <utility>

#include "core/generator.h"
#include "kernels/philox.h"
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

Tensor channel_scale_ref(const Tensor& x, const Tensor& s) {
  const int64_t NC = x.size(0) * x.size(1), HW = x.size(2) * x.size(3);
  std::vector<double> v = x.to_f64_vector(), sv = s.to_f64_vector();
  for (int64_t p = 0; p < NC; ++p)
    for (int64_t j = 0; j < HW; ++j) v[p * HW + j] *= sv[p];
  return from_vector(v, x.shape(), DType::f64);
}

// ds[n, c] = sum over the plane of dy * x.
Tensor channel_scale_grad_s_ref(const Tensor& x, const Tensor& gy, const Shape& s_shape) {
  const int64_t NC = x.size(0) * x.size(1), HW = x.size(2) * x.size(3);
  std::vector<double> v = x.to_f64_vector(), g = gy.to_f64_vector(), gs(static_cast<size_t>(NC), 0.0);
  for (int64_t p = 0; p < NC; ++p)
    for (int64_t j = 0; j < HW; ++j) gs[p] += g[p * HW + j] * v[p * HW + j];
  return from_vector(gs, s_shape, DType::f64);
}

// The documented mask contract, drawn from core's Philox directly: element i keeps when word
// i % 4 of philox(seed, 0, base + i / 4) is below floor((1 - p) * 2^32).
std::vector<bool> philox_keep(uint64_t seed, uint64_t base, int64_t n, double p) {
  const uint64_t threshold = static_cast<uint64_t>(std::floor((1.0 - p) * 4294967296.0));
  std::vector<bool> keep(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) keep[i] = philox4x32(seed, 0, base + i / 4)[i % 4] < threshold;
  return keep;
}

uint64_t fresh_seed() { return test::rng().next_u64(); }

}  // namespace

TEST_CASE("device Philox rounds equal core's philox4x32") {
  const uint64_t seeds[] = {0, 1, 0xDEADBEEFCAFEF00Dull, fresh_seed()};
  const uint64_t counters[] = {0, 1, 3, 0xFFFFFFFFull, 0x100000000ull, 0xFFFFFFFFFFFFFFFFull, fresh_seed()};
  for (uint64_t seed : seeds)
    for (uint64_t hi : {uint64_t{0}, uint64_t{7}, uint64_t{0xFFFFFFFF00000001ull}})
      for (uint64_t lo : counters) {
        const auto a = philox4x32(seed, hi, lo);
        const kernels::Philox4 b = kernels::philox4x32(seed, hi, lo);
        for (int k = 0; k < 4; ++k) CHECK(a[k] == b.v[k]);
      }
}

TEST_CASE("channel_scale matches a naive reference, with s as [N, C] or [N, C, 1, 1]") {
  for (DType dt : {DType::f32, DType::f64}) {
    Tensor x = randn({2, 3, 5, 7}, dt);
    Tensor s2 = randn({2, 3}, dt), s4 = s2.clone().view({2, 3, 1, 1});
    CHECK_CLOSE(ops::channel_scale(x, s2), channel_scale_ref(x, s2), 1e-7, 1e-6);
    CHECK_CLOSE(ops::channel_scale(x, s4), channel_scale_ref(x, s2), 1e-7, 1e-6);
  }
  // Hand-computed: plane (n, c) scaled by s[n, c].
  Tensor x = ones({1, 2, 1, 2}, DType::f64);
  Tensor s = from_vector({3, -0.5}, {1, 2}, DType::f64);
  CHECK(ops::channel_scale(x, s).to_f64_vector() == std::vector<double>{3, 3, -0.5, -0.5});
  // Non-contiguous x.
  Tensor base = randn({2, 3, 7, 5});
  Tensor xt = base.transpose(2, 3);
  Tensor st = randn({2, 3});
  CHECK_CLOSE(ops::channel_scale(xt, st), channel_scale_ref(xt.clone(), st), 1e-7, 1e-6);
}

TEST_CASE("channel_scale gradients: analytic vs reference and gradcheck") {
  Tensor x = randn({2, 3, 5, 7}, DType::f64), s = randn({2, 3, 1, 1}, DType::f64), gy = randn({2, 3, 5, 7}, DType::f64);
  Tensor xg = x.clone(), sg = s.clone();
  xg.set_requires_grad(true), sg.set_requires_grad(true);
  ops::channel_scale(xg, sg).backward(gy);
  CHECK_CLOSE(xg.grad(), channel_scale_ref(gy, s), 1e-12, 1e-12);
  CHECK_CLOSE(sg.grad(), channel_scale_grad_s_ref(x, gy, s.shape()), 1e-12, 1e-12);
  CHECK(sg.grad().shape() == Shape{2, 3, 1, 1});

  auto f = [](auto& in) { return ops::channel_scale(in[0], in[1]); };
  CHECK_GRADCHECK(f, {randn_grad({2, 3, 5, 7}), randn_grad({2, 3})});
  CHECK_GRADCHECK(f, {randn_grad({1, 4, 3, 3}), randn_grad({1, 4, 1, 1})});
  // Only one input needs a gradient.
  Tensor xs = randn({1, 2, 3, 3}, DType::f64), ss = randn_grad({1, 2});
  CHECK_GRADCHECK(f, {xs, ss});
  CHECK_GRADCHECK(f, {randn_grad({1, 2, 3, 3}), randn({1, 2}, DType::f64)});
}

TEST_CASE("channel_scale: argument errors name both tensors") {
  Tensor x = zeros({2, 3, 4, 4});
  CHECK_THROWS_WITH_AS(ops::channel_scale(x, zeros({3, 2})),
                       doctest::Contains("scale s F32[3, 2] on cpu must have shape [2, 3] or [2, 3, 1, 1] to match "
                                         "input x F32[2, 3, 4, 4]"),
                       Error);
  CHECK_THROWS_WITH_AS(ops::channel_scale(x, zeros({2, 3, 4, 1})), doctest::Contains("must have shape [2, 3]"), Error);
  CHECK_THROWS_WITH_AS(ops::channel_scale(x, zeros({2, 3}, DType::f64)), doctest::Contains("different dtypes"), Error);
  CHECK_THROWS_WITH_AS(ops::channel_scale(zeros({2, 3, 4}), zeros({2, 3})),
                       doctest::Contains("expected a 4-D NCHW input x, got F32[2, 3, 4]"), Error);
}

TEST_CASE("dropout: mask from Philox, scaling, generator advance") {
  for (DType dt : {DType::f32, DType::f64}) {
    for (int64_t n : {1, 3, 4, 5, 1027}) {
      CAPTURE(n);
      const double p = 0.4;
      Generator gen(fresh_seed());
      gen.reserve(13);  // a non-zero starting offset
      const uint64_t seed = gen.seed(), base = gen.offset();
      Tensor x = randn({n}, dt);
      Tensor y = ops::dropout(x, p, true, gen);
      CHECK(gen.offset() == base + static_cast<uint64_t>((n + 3) / 4));
      const std::vector<bool> keep = philox_keep(seed, base, n, p);
      std::vector<double> xv = x.to_f64_vector(), yv = y.to_f64_vector();
      const double scale = 1.0 / (1.0 - p);
      int bad = 0;
      for (int64_t i = 0; i < n; ++i) {
        const double expect = keep[i] ? (dt == DType::f32 ? double(float(xv[i]) * float(scale)) : xv[i] * scale) : 0.0;
        if (yv[i] != expect) ++bad;
      }
      CHECK(bad == 0);
    }
  }
}

TEST_CASE("dropout: eval and p = 0 are the identity and draw nothing") {
  Generator gen(fresh_seed());
  Tensor x = randn({3, 4, 5});
  CHECK(ops::dropout(x, 0.5, false, gen).same(x));
  CHECK(ops::dropout(x, 0.0, true, gen).same(x));
  Tensor x4 = randn({2, 3, 4, 5});
  CHECK(ops::dropout2d(x4, 0.3, false, gen).same(x4));
  CHECK(gen.offset() == 0);
}

TEST_CASE("dropout: statistics on a large tensor") {
  Generator gen(fresh_seed());
  const int64_t n = int64_t{1} << 20;
  Tensor x = ones({n});
  for (double p : {0.1, 0.5, 0.8}) {
    CAPTURE(p);
    std::vector<double> y = ops::dropout(x, p, true, gen).to_f64_vector();
    int64_t kept = 0;
    bool values_ok = true;
    for (double v : y) {
      if (v != 0) ++kept;
      values_ok = values_ok && (v == 0 || v == double(float(1.0 / (1.0 - p))));
    }
    CHECK(values_ok);
    const double frac = double(kept) / double(n), sigma = std::sqrt(p * (1 - p) / double(n));
    CHECK(std::abs(frac - (1 - p)) < 6 * sigma);
  }
  // Same state, same mask; the next call draws a different one.
  Generator a(42), b(42);
  Tensor z = randn({4097});
  CHECK_CLOSE(ops::dropout(z, 0.5, true, a), ops::dropout(z, 0.5, true, b), 0, 0);
  std::vector<double> m1 = ops::dropout(ones({4097}), 0.5, true, a).to_f64_vector();
  std::vector<double> m2 = ops::dropout(ones({4097}), 0.5, true, a).to_f64_vector();
  CHECK(m1 != m2);
}

TEST_CASE("dropout backward uses the forward mask") {
  Generator gen(fresh_seed());
  Tensor x = randn({3, 5, 7}, DType::f64);
  x.set_requires_grad(true);
  Tensor y = ops::dropout(x, 0.3, true, gen);
  Tensor gy = randn({3, 5, 7}, DType::f64);
  y.backward(gy);
  std::vector<double> xv = x.detach().to_f64_vector(), yv = y.detach().to_f64_vector(), gyv = gy.to_f64_vector(),
                      gxv = x.grad().to_f64_vector();
  int bad = 0;
  for (size_t i = 0; i < xv.size(); ++i) {
    const double m = yv[i] / xv[i];  // 0 or 1 / (1 - p)
    if (std::abs(gxv[i] - gyv[i] * m) > 1e-12) ++bad;
  }
  CHECK(bad == 0);
  // f recreates the generator so that every evaluation draws the same mask.
  const uint64_t seed = fresh_seed();
  CHECK_GRADCHECK(
      [seed](auto& in) {
        Generator g(seed);
        return ops::dropout(in[0], 0.4, true, g);
      },
      {randn_grad({3, 5, 7})});
  CHECK_GRADCHECK(
      [seed](auto& in) {
        Generator g(seed);
        return ops::dropout2d(in[0], 0.4, true, g);
      },
      {randn_grad({3, 5, 2, 3})});
}

TEST_CASE("dropout2d drops whole channels with the Philox mask") {
  Generator gen(fresh_seed());
  gen.reserve(5);
  const uint64_t seed = gen.seed(), base = gen.offset();
  const int64_t N = 7, C = 9, H = 3, W = 5;
  const double p = 0.35;
  Tensor x = ops::add_scalar(ops::abs(randn({N, C, H, W}, DType::f64)), 0.1);  // never zero
  Tensor y = ops::dropout2d(x, p, true, gen);
  CHECK(gen.offset() == base + static_cast<uint64_t>((N * C + 3) / 4));
  const std::vector<bool> keep = philox_keep(seed, base, N * C, p);
  std::vector<double> xv = x.to_f64_vector(), yv = y.to_f64_vector();
  int bad = 0;
  for (int64_t pl = 0; pl < N * C; ++pl)
    for (int64_t j = 0; j < H * W; ++j) {
      const double expect = keep[pl] ? xv[pl * H * W + j] * (1.0 / (1.0 - p)) : 0.0;
      if (yv[pl * H * W + j] != expect) ++bad;
    }
  CHECK(bad == 0);
  // Fraction of channels kept on many channels.
  Tensor big = ones({64, 1024, 1, 2});
  std::vector<double> yb = ops::dropout2d(big, 0.25, true, gen).to_f64_vector();
  int64_t kept = 0, split = 0;
  for (size_t i = 0; i < yb.size(); i += 2) {
    split += yb[i] != yb[i + 1];
    kept += yb[i] != 0;
  }
  CHECK(split == 0);
  const double n = 64 * 1024, frac = double(kept) / n;
  CHECK(std::abs(frac - 0.75) < 6 * std::sqrt(0.25 * 0.75 / n));
}

TEST_CASE("dropout: argument errors") {
  Generator gen(1);
  Tensor x = zeros({2, 3, 4, 4});
  CHECK_THROWS_WITH_AS(ops::dropout(x, 1.0, true, gen),
                       doctest::Contains("dropout: probability p = 1 must be in [0, 1) (input x F32[2, 3, 4, 4]"),
                       Error);
  CHECK_THROWS_WITH_AS(ops::dropout(x, -0.1, false, gen), doctest::Contains("p = -0.1 must be in [0, 1)"), Error);
  CHECK_THROWS_WITH_AS(ops::dropout(x, NAN, true, gen), doctest::Contains("must be in [0, 1)"), Error);
  CHECK_THROWS_WITH_AS(ops::dropout2d(x, 1.5, true, gen), doctest::Contains("dropout2d: probability p = 1.5"), Error);
  CHECK_THROWS_WITH_AS(ops::dropout2d(zeros({3, 4}), 0.5, true, gen),
                       doctest::Contains("dropout2d: expected a 4-D NCHW input x, got F32[3, 4]"), Error);
  CHECK(gen.offset() == 0);
}

TEST_SUITE("cuda") {
  TEST_CASE("cuda parity: channel_scale forward and gradients") {
    MTL_REQUIRE_CUDA();
    auto scale = [](const std::vector<Tensor>& in) { return std::vector<Tensor>{ops::channel_scale(in[0], in[1])}; };
    // Odd planes, a float4 path (hw % 4 == 0), a large plane, and 1x1 planes.
    for (Shape s : {Shape{2, 3, 5, 7}, Shape{3, 5, 16, 20}, Shape{1, 7, 111, 97}, Shape{4, 33, 1, 1}}) {
      Tensor x = randn(s), sc = randn({s[0], s[1]});
      // A float block sum of hw products against a double sum: error grows like sqrt(hw).
      const double gs_tol = 1e-5 * std::sqrt(static_cast<double>(s[2] * s[3]));
      test::check_parity({"channel_scale " + shape_str(s),
                          test::copies_of({test::leaf(x), test::leaf(sc)}),
                          scale,
                          {{1e-7, 1e-6}},
                          {{1e-7, 1e-6}, {gs_tol, 1e-5}}});
      // Only s needs a gradient (the SE branch of a frozen input).
      test::check_parity({"channel_scale, gradient of s only " + shape_str(s),
                          test::copies_of({x, test::leaf(sc)}),
                          scale,
                          {{1e-7, 1e-6}},
                          {{gs_tol, 1e-5}}});
      // The same kernel whether or not gx is produced.
      Tensor gy = randn(s).cuda();
      Tensor a = test::leaf(x.cuda()), b = test::leaf(sc.cuda()), b_only = test::leaf(sc.cuda());
      ops::channel_scale(a, b).backward(gy);
      ops::channel_scale(x.cuda(), b_only).backward(gy);
      CHECK_BITWISE(b_only.grad(), b.grad());
    }
    // Misaligned planes take the scalar path.
    Tensor flat = randn({1 + 2 * 3 * 4 * 4});
    test::check_parity({"channel_scale of misaligned planes",
                        [flat, sc = randn({2, 3})](Device d) {
                          return std::vector<Tensor>{flat.to(d).narrow(0, 1, 96).view({2, 3, 4, 4}), sc.to(d)};
                        },
                        scale,
                        {{1e-7, 1e-6}}});
  }

  TEST_CASE("cuda parity: dropout masks equal the CPU masks for the same generator state") {
    MTL_REQUIRE_CUDA();
    // The generator is made anew in every run, so every run draws the same mask.
    auto dropout = [](uint64_t seed, bool channels) {
      return [seed, channels](const std::vector<Tensor>& in) {
        Generator g(seed);
        g.reserve(3);
        return std::vector<Tensor>{channels ? ops::dropout2d(in[0], 0.4, true, g) : ops::dropout(in[0], 0.3, true, g)};
      };
    };
    for (int64_t n : {1, 3, 5, 1027, 300001}) {
      const uint64_t seed = fresh_seed();
      test::check_parity({"dropout of " + std::to_string(n),
                          test::copies_of({test::leaf(randn({n}))}),
                          dropout(seed, false),
                          {{0, 0}},
                          {{0, 0}}});  // same mask, same float product
      Generator gh(seed), gd(seed);
      ops::dropout(randn({n}), 0.3, true, gh);
      ops::dropout(randn({n}).cuda(), 0.3, true, gd);
      CHECK(gh.offset() == gd.offset());
    }
    // A misaligned input takes the scalar path and still draws the same mask.
    Tensor flat = randn({1 + 1027});
    test::check_parity({"dropout of a misaligned view",
                        [flat](Device d) { return std::vector<Tensor>{flat.to(d).narrow(0, 1, 1027)}; },
                        dropout(fresh_seed(), false),
                        {{0, 0}}});
    // dropout2d: per-channel masks.
    for (Shape s : {Shape{3, 7, 5, 9}, Shape{2, 1000, 2, 2}}) {
      const uint64_t seed = fresh_seed();
      test::check_parity({"dropout2d " + shape_str(s),
                          test::copies_of({test::leaf(randn(s))}),
                          dropout(seed, true),
                          {{0, 0}},
                          {{0, 0}}});
      Generator ah(seed), ad(seed);
      ops::dropout2d(randn(s), 0.4, true, ah);
      ops::dropout2d(randn(s).cuda(), 0.4, true, ad);
      CHECK(ah.offset() == ad.offset());
    }
  }

  TEST_CASE("cuda parity: SE scaling and dropout at a medium ESANet shape") {
    MTL_REQUIRE_CUDA();
    const Shape s{2, 64, 60, 80};
    test::check_parity(
        {"SE channel_scale " + shape_str(s),
         test::copies_of({test::leaf(randn(s)), test::leaf(randn({2, 64}))}),
         [](const std::vector<Tensor>& in) { return std::vector<Tensor>{ops::channel_scale(in[0], in[1])}; },
         {{1e-7, 1e-6}},
         {{1e-7, 1e-6}, {1e-5 * std::sqrt(60.0 * 80.0), 1e-5}}});
    const uint64_t seed = fresh_seed();
    test::check_parity({"dropout2d " + shape_str(s),
                        test::copies_of({test::leaf(randn(s))}),
                        [seed](const std::vector<Tensor>& in) {
                          Generator g(seed);
                          return std::vector<Tensor>{ops::dropout2d(in[0], 0.1, true, g)};
                        },
                        {{0, 0}},
                        {{0, 0}}});
  }
}
