// GroupNorm: forward and saved statistics against a two-pass double reference written here, the
// model's group-count rule, float64 gradient checks on small odd shapes, float32 stability of the
// forward and the backward under a large offset, argument errors, and CUDA-vs-CPU parity (both
// launch plans, the real ESANet shapes at batch 2, bitwise determinism) with poisoned allocations.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>

#include "ops/ops.h"
#include "tests/support/compare.h"
#include "tests/support/gpu.h"
#include "tests/support/gradcheck.h"
#include "tests/support/parity.h"
#include "tests/support/random.h"

using namespace mtl;
using mtl::test::leaf;
using mtl::test::max_abs;
using mtl::test::randn;
using mtl::test::randn_grad;

namespace {

struct Case {
  int64_t n, c, h, w, groups;
};

std::string case_str(const Case& k) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "x [%lld, %lld, %lld, %lld], %lld groups", static_cast<long long>(k.n),
                static_cast<long long>(k.c), static_cast<long long>(k.h), static_cast<long long>(k.w),
                static_cast<long long>(k.groups));
  return buf;
}

struct Reference {
  Tensor y, mean, rstd;  // float64, CPU
};

// Normalises each (sample, group) explicitly: plain loops over host values, mean and variance in
// two passes in double, then the per-channel affine transform.
Reference reference_group_norm(const Tensor& x, int64_t groups, const Tensor& weight, const Tensor& bias,
                               double eps) {
  const int64_t n = x.size(0), c = x.size(1), hw = x.numel() / std::max<int64_t>(n * c, 1);
  const int64_t d = c / groups, m = d * hw;
  std::vector<double> v = x.to_f64_vector(), out(v.size());
  std::vector<double> w = weight.defined() ? weight.to_f64_vector() : std::vector<double>(c, 1.0);
  std::vector<double> b = bias.defined() ? bias.to_f64_vector() : std::vector<double>(c, 0.0);
  std::vector<double> means, rstds;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t base = (i * c + g * d) * hw;
      double sum = 0;
      for (int64_t k = 0; k < m; ++k) sum += v[base + k];
      const double mean = sum / m;
      double sq = 0;
      for (int64_t k = 0; k < m; ++k) sq += (v[base + k] - mean) * (v[base + k] - mean);
      const double rstd = 1.0 / std::sqrt(sq / m + eps);
      for (int64_t j = 0; j < d; ++j)
        for (int64_t k = 0; k < hw; ++k) {
          const int64_t idx = base + j * hw + k, ch = g * d + j;
          out[idx] = (v[idx] - mean) * rstd * w[ch] + b[ch];
        }
      means.push_back(mean);
      rstds.push_back(rstd);
    }
  return {from_vector(out, x.shape(), DType::f64), from_vector(means, {n, groups}, DType::f64),
          from_vector(rstds, {n, groups}, DType::f64)};
}

struct Grads {
  Tensor y, mean, rstd, dx, dw, db;
};

// Forward with statistics, then backward of <dy, y>; weight/bias may be undefined.
Grads run(const Tensor& x, int64_t groups, const Tensor& weight, const Tensor& bias, const Tensor& dy) {
  Tensor lx = leaf(x);
  Tensor lw = weight.defined() ? leaf(weight) : Tensor(), lb = bias.defined() ? leaf(bias) : Tensor();
  ops::GroupNormOutput o = ops::group_norm_with_stats(lx, groups, lw, lb);
  o.y.backward(dy);
  return {o.y, o.mean, o.rstd, lx.grad(), lw.defined() ? lw.grad() : Tensor(), lb.defined() ? lb.grad() : Tensor()};
}

// float32 rounding in the folded forms y = x*a + b (b = beta - mean*a) and dx = a*dy + c1*x + c2
// is relative to their largest term, not to the result: when a group's variance is tiny (a
// one-element group, two close values) rstd and |mean*a| dwarf |y|. This is the size of those
// terms: a few units for well-spread groups, so the tolerances below stay tight there.
double term_scale(const Grads& ref, const Tensor& w) {
  std::vector<double> m = ref.mean.to_f64_vector(), r = ref.rstd.to_f64_vector();
  double wmax = 1;
  if (w.defined())
    for (double v : w.to_f64_vector()) wmax = std::max(wmax, std::abs(v));
  double s = 1;
  for (size_t i = 0; i < m.size(); ++i) s = std::max(s, r[i] * (1 + std::abs(m[i])) * wmax);
  return s;
}

// Forward, saved statistics and all three gradients on the device against the float32 CPU
// kernel (which accumulates in double), through the parity harness (which reruns for the bits).
void check_group_norm_parity(const Case& k, bool affine) {
  const Shape s{k.n, k.c, k.h, k.w};
  Tensor x = randn(s), dy = randn(s);
  Tensor w = affine ? ops::add_scalar(randn({k.c}), 1.0) : Tensor(), b = affine ? randn({k.c}) : Tensor();
  const double scale = term_scale(run(x, k.groups, w, b, dy), w);
  // Sums over N*H*W products: allow for float32 rounding of up to ~3e5 terms in dw and db.
  test::check_parity({case_str(k) + (affine ? ", affine" : ", no affine") + ", term scale " + std::to_string(scale),
                      test::copies_of({leaf(x), affine ? leaf(w) : Tensor(), affine ? leaf(b) : Tensor()}),
                      [groups = k.groups](const std::vector<Tensor>& in) {
                        ops::GroupNormOutput o = ops::group_norm_with_stats(in[0], groups, in[1], in[2]);
                        return std::vector<Tensor>{o.y, o.mean, o.rstd};
                      },
                      {{4e-6 * scale, 1e-4}, {5e-6, 1e-5}, {0, 1e-5}},
                      {{4e-6 * scale * std::max(1.0, max_abs(dy)), 1e-4}, {1e-3, 1e-4}},
                      {dy}});
}

// x = 1e4 + N(0, 1) with every group symmetric about 1e4: x[k] + x[M-1-k] = 2e4 exactly, the
// values on float32's grid there (steps of 2^-10). The group means are then exactly 1e4 in float32
// as in float64, so the saved statistics carry no rounding and a float64 run on the same values
// is the exact answer for the float32 backward. (With plain random data the float32 mean alone,
// rounded by up to 2^-11 at 1e4, moves dgamma by 2e-4 to 1e-3 relative to a float64 run,
// consistently with the forward; see docs/group_norm_backward.md.)
Tensor symmetric_offset_input(const Case& k) {
  const int64_t m = k.c / k.groups * k.h * k.w, count = k.n * k.c * k.h * k.w;
  std::vector<double> v = randn({count}, DType::f64).to_f64_vector();
  for (int64_t base = 0; base < count; base += m) {
    for (int64_t i = 0; i < m / 2; ++i) {
      const double z = std::nearbyint(v[base + i] * 1024) / 1024;
      v[base + i] = 1e4 + z;
      v[base + m - 1 - i] = 1e4 - z;
    }
    if (m % 2) v[base + m / 2] = 1e4;
  }
  return from_vector(v, {k.n, k.c, k.h, k.w});  // float32: every value is exact
}

// The backward of a float32 run against a float64 run on the same values, relative to the largest
// reference value of each gradient. Summing raw dy * x in float32 and subtracting mean * sum(dy)
// afterwards is off by 1e-3 or more in dgamma and up to 4e-5 in dx here (measured in a host
// emulation of the CUDA kernels); the centred sums by about 1e-7 in dgamma and a few 1e-6 in dx,
// where fma(c1, x, c2) rounds relative to |c1 * mean| as the forward's fold does.
void check_offset_backward(const Grads& got, const Grads& ref, double dx_tol, double param_tol) {
  CHECK_CLOSE(got.dx, ref.dx, dx_tol * max_abs(ref.dx), 0);
  CHECK_CLOSE(got.dw, ref.dw, param_tol * max_abs(ref.dw), 0);
  CHECK_CLOSE(got.db, ref.db, param_tol * max_abs(ref.db), 0);
}

Grads run_f64(const Tensor& x, int64_t groups, const Tensor& w, const Tensor& b, const Tensor& dy) {
  return run(ops::to(x, DType::f64), groups, ops::to(w, DType::f64), ops::to(b, DType::f64), ops::to(dy, DType::f64));
}

// About 1e3 values per channel (fused plan on the device, float4 and scalar loads) and a group
// larger than one block (split plan).
const Case kOffsetCases[] = {{2, 8, 32, 32, 4}, {2, 6, 33, 31, 3}, {2, 4, 120, 160, 2}};

}  // namespace

TEST_CASE("group_norm forward and statistics match a two-pass reference") {
  const Case cases[] = {
      {2, 6, 5, 7, 3},    // odd spatial size
      {2, 8, 4, 6, 4},    // HW a multiple of 4
      {3, 4, 1, 1, 2},    // 1x1 spatial maps
      {2, 5, 3, 3, 5},    // one channel per group
      {1, 8, 4, 4, 1},    // one group
      {2, 64, 9, 11, 32},
      {1, 7, 2, 3, 7},
  };
  for (const Case& k : cases) {
    for (DType dt : {DType::f32, DType::f64}) {
      INFO(case_str(k), ", ", dtype_name(dt));
      const double tol = dt == DType::f32 ? 1e-5 : 1e-12;
      Tensor x = randn({k.n, k.c, k.h, k.w}, dt);
      Tensor w = randn({k.c}, dt), b = randn({k.c}, dt);
      Reference plain = reference_group_norm(x, k.groups, Tensor(), Tensor(), 1e-5);
      ops::GroupNormOutput o = ops::group_norm_with_stats(x, k.groups, Tensor(), Tensor());
      CHECK(o.y.dtype() == dt);
      CHECK(o.mean.shape() == Shape{k.n, k.groups});
      CHECK_CLOSE(o.y, plain.y, tol, tol);
      CHECK_CLOSE(o.mean, plain.mean, tol, tol);
      CHECK_CLOSE(o.rstd, plain.rstd, tol, tol);
      Reference affine = reference_group_norm(x, k.groups, w, b, 1e-5);
      CHECK_CLOSE(ops::group_norm(x, k.groups, w, b), affine.y, tol, tol);
      // Weight alone and bias alone.
      CHECK_CLOSE(ops::group_norm(x, k.groups, w, Tensor()), reference_group_norm(x, k.groups, w, Tensor(), 1e-5).y,
                  tol, tol);
      CHECK_CLOSE(ops::group_norm(x, k.groups, Tensor(), b), reference_group_norm(x, k.groups, Tensor(), b, 1e-5).y,
                  tol, tol);
    }
  }
}

TEST_CASE("group_norm accepts [N, C, *] inputs, non-contiguous views and another eps") {
  Tensor x2 = randn({5, 6});  // [N, C]: one element per channel
  CHECK_CLOSE(ops::group_norm(x2, 2, Tensor(), Tensor()), reference_group_norm(x2, 2, Tensor(), Tensor(), 1e-5).y,
              1e-5, 1e-5);
  Tensor x3 = randn({2, 4, 9});
  Tensor w = randn({4}), b = randn({4});
  CHECK_CLOSE(ops::group_norm(x3, 2, w, b, 0.1), reference_group_norm(x3, 2, w, b, 0.1).y, 1e-5, 1e-5);
  Tensor base = randn({2, 5, 3, 6});
  Tensor view = base.permute({0, 3, 2, 1});  // [2, 6, 3, 5], not contiguous
  CHECK_FALSE(view.is_contiguous());
  CHECK_CLOSE(ops::group_norm(view, 3, Tensor(), Tensor()), reference_group_norm(view, 3, Tensor(), Tensor(), 1e-5).y,
              1e-5, 1e-5);
}

TEST_CASE("gradcheck: group_norm with and without affine") {
  struct G {
    Shape s;
    int64_t groups;
  };
  for (const G& k : {G{{2, 6, 3, 5}, 3}, G{{2, 8, 1, 1}, 2}, G{{2, 3, 2, 3}, 3}, G{{1, 4, 3, 3}, 1}}) {
    INFO("x ", shape_str(k.s), ", ", k.groups, " groups");
    const int64_t c = k.s[1], groups = k.groups;
    auto x = randn_grad(k.s), w = randn_grad({c}), b = randn_grad({c});
    CHECK_GRADCHECK([groups](auto& in) { return ops::group_norm(in[0], groups, in[1], in[2]); }, {x, w, b});
    CHECK_GRADCHECK([groups](auto& in) { return ops::group_norm(in[0], groups, Tensor(), Tensor()); }, {x});
    CHECK_GRADCHECK([groups](auto& in) { return ops::group_norm(in[0], groups, in[1], Tensor(), 0.01); }, {x, w});
  }
}

TEST_CASE("group_norm backward returns only the gradients asked for") {
  Tensor x = randn({2, 6, 3, 5}, DType::f64), w = randn({6}, DType::f64), b = randn({6}, DType::f64);
  Tensor dy = randn({2, 6, 3, 5}, DType::f64);
  Grads all = run(x, 3, w, b, dy);
  Tensor lw = leaf(w);  // only the weight requires grad
  ops::group_norm(x, 3, lw, b).backward(dy);
  CHECK_CLOSE(lw.grad(), all.dw, 1e-12, 1e-12);
  Tensor lx = leaf(x);  // only x
  ops::group_norm(lx, 3, w, b).backward(dy);
  CHECK_CLOSE(lx.grad(), all.dx, 1e-12, 1e-12);
  // dbeta is the plain sum of dy over (N, H, W).
  CHECK_CLOSE(all.db, ops::sum(dy, {0, 2, 3}), 1e-12, 1e-12);
}

TEST_CASE("group_norm float32 statistics survive a large offset") {
  // 1e4 + N(0, 1): E[x^2] - E[x]^2 in float32 would lose every digit; Welford keeps them. The
  // float32 input itself is quantised to ~1e-3 at 1e4, and the reference sees the same values.
  Tensor x = ops::add_scalar(randn({2, 8, 16, 20}), 1e4);
  Tensor w = ops::add_scalar(test::rand({8}, 0.0, 1.0), 0.5), b = randn({8});
  Reference ref = reference_group_norm(x, 4, w, b, 1e-5);
  ops::GroupNormOutput o = ops::group_norm_with_stats(x, 4, w, b);
  CHECK_CLOSE(o.mean, ref.mean, 1e-3, 0);
  CHECK_CLOSE(o.rstd, ref.rstd, 0, 1e-4);
  CHECK_CLOSE(o.y, ref.y, 4e-3, 1e-3);
}

TEST_CASE("group_norm float32 backward survives a large offset") {
  // The CPU twin accumulates in double: its float32 gradients are the float64 ones, rounded.
  for (const Case& k : kOffsetCases) {
    INFO(case_str(k));
    Tensor x = symmetric_offset_input(k), dy = randn({k.n, k.c, k.h, k.w});
    Tensor w = ops::add_scalar(test::rand({k.c}, 0.0, 1.0), 0.5), b = randn({k.c});
    Grads f32 = run(x, k.groups, w, b, dy);
    Grads f64 = run_f64(x, k.groups, w, b, dy);
    CHECK_CLOSE(f32.mean, ops::add_scalar(zeros({k.n, k.groups}), 1e4), 0, 0);  // the premise
    check_offset_backward(f32, f64, 1e-6, 1e-6);
  }
}

TEST_CASE("group_norm: errors name the tensor and what was expected") {
  Tensor x = zeros({2, 6, 4, 4});
  CHECK_THROWS_WITH_AS(ops::group_norm(x, 4, Tensor(), Tensor()),
                       doctest::Contains("6 channels cannot be split into 4 equal groups"), Error);
  CHECK_THROWS_WITH_AS(ops::group_norm(x, 0, Tensor(), Tensor()), doctest::Contains("groups must be at least 1, got 0"),
                       Error);
  CHECK_THROWS_WITH_AS(ops::group_norm(x, 3, zeros({4}), Tensor()),
                       doctest::Contains("weight must have shape [6] (one value per channel of x F32[2, 6, 4, 4] on "
                                         "cpu), got F32[4] on cpu"),
                       Error);
  CHECK_THROWS_WITH_AS(ops::group_norm(x, 3, Tensor(), zeros({6, 1})), doctest::Contains("bias must have shape [6]"),
                       Error);
  CHECK_THROWS_WITH_AS(ops::group_norm(x, 3, zeros({6}, DType::f64), Tensor()),
                       doctest::Contains("group_norm: weight F64[6] on cpu must be F32 on cpu"), Error);
  CHECK_THROWS_WITH_AS(ops::group_norm(zeros({6}), 3, Tensor(), Tensor()),
                       doctest::Contains("expected x of shape [N, C, *], got F32[6] on cpu"), Error);
  CHECK_THROWS_WITH_AS(ops::group_norm(x, 3, Tensor(), Tensor(), -1.0), doctest::Contains("eps must be finite and >= 0"),
                       Error);
  CHECK_THROWS_WITH_AS(ops::group_norm(Tensor(), 3, Tensor(), Tensor()),
                       doctest::Contains("argument 'x' is an undefined tensor"), Error);
  CHECK_THROWS_WITH_AS(ops::group_norm(zeros({2, 6, 4, 4}, DType::i32), 3, Tensor(), Tensor()),
                       doctest::Contains("group_norm supports F32, F64 and BF16 tensors, got I32[2, 6, 4, 4] on cpu"),
                       Error);
}

TEST_SUITE("cuda") {
  TEST_CASE("cuda parity: group_norm on odd shapes, both launch plans") {
    MTL_REQUIRE_CUDA();
    const Case cases[] = {
        {3, 6, 5, 7, 3},       // one block per group, scalar loads
        {2, 8, 4, 6, 4},       // one block per group, float4 loads
        {2, 5, 1, 1, 5},       // 1x1 maps, one channel per group
        {1, 3, 1, 1, 1},       //
        {2, 12, 33, 37, 3},    // uneven per-thread counts
        {2, 48, 3, 3, 1},      // many channels in one small group (team reduction)
        {2, 8, 101, 103, 2},   // group of 41612 > one block's limit: split plan, scalar loads
        {2, 4, 96, 100, 1},    // split plan, float4 loads, partial last tile
        {1, 512, 15, 20, 1},   // split plan, 512 channels in one group
        {1, 2, 241, 319, 1},   // split plan, a row longer than several tiles
    };
    for (const Case& k : cases) {
      check_group_norm_parity(k, true);
      check_group_norm_parity(k, false);
    }
    // A fresh random shape every run.
    auto draw = [](int64_t lo, int64_t hi) {
      return lo + static_cast<int64_t>(test::rng().next_u64() % static_cast<uint64_t>(hi - lo + 1));
    };
    const int64_t groups = draw(1, 8);
    Case r{draw(1, 3), groups * draw(1, 5), draw(1, 97), draw(1, 131), groups};
    check_group_norm_parity(r, true);

    // Data starting 4 bytes into its buffer, HW a multiple of 4: the scalar paths of both plans.
    for (const Case& k : {Case{2, 6, 4, 4, 3}, Case{1, 4, 100, 96, 1}}) {
      const int64_t count = k.n * k.c * k.h * k.w;
      const Shape s{k.n, k.c, k.h, k.w};
      Tensor flat = randn({count + 1}), dflat = randn({count + 1});
      Tensor w = randn({k.c}), b = randn({k.c});
      Tensor dy = dflat.narrow(0, 1, count).view(s);
      const double scale = term_scale(run(flat.narrow(0, 1, count).view(s), k.groups, w, b, dy), w);
      test::check_parity({"misaligned " + case_str(k),
                          [flat, w, b, count, s](Device d) {
                            Tensor x = flat.to(d).narrow(0, 1, count).view(s);
                            x.set_requires_grad(true);
                            return std::vector<Tensor>{x, leaf(w.to(d)), leaf(b.to(d))};
                          },
                          [groups = k.groups](const std::vector<Tensor>& in) {
                            ops::GroupNormOutput o = ops::group_norm_with_stats(in[0], groups, in[1], in[2]);
                            return std::vector<Tensor>{o.y, o.rstd};
                          },
                          {{4e-6 * scale, 1e-4}, {0, 1e-5}},
                          {{4e-6 * scale * std::max(1.0, max_abs(dy)), 1e-4}, {1e-3, 1e-4}},
                          {dy}});
    }
  }

  TEST_CASE("cuda parity: group_norm at a medium ESANet shape") {
    MTL_REQUIRE_CUDA();
    check_group_norm_parity({2, 64, 60, 80, 32}, true);
  }

  TEST_CASE("cuda parity: group_norm at ESANet's shapes (batch 2)") {
    MTL_REQUIRE_GPU();  // 9.8M elements: minutes on the CPU execution layer
    const Case cases[] = {
        {2, 64, 240, 320, 32}, {2, 64, 120, 160, 32}, {2, 128, 60, 80, 32}, {2, 256, 30, 40, 32}, {2, 512, 15, 20, 32},
    };
    for (const Case& k : cases) check_group_norm_parity(k, true);
  }

  TEST_CASE("cuda real shapes: group_norm at 8x64x240x320") {
    MTL_REQUIRE_GPU();
    check_group_norm_parity({8, 64, 240, 320, 32}, true);
  }

  TEST_CASE("cuda: group_norm float32 statistics survive a large offset") {
    MTL_REQUIRE_CUDA();
    test::PoisonGuard poison;
    for (const Case& k : {Case{2, 8, 16, 20, 4}, Case{2, 4, 120, 160, 2}}) {  // one block per group; split
      INFO(case_str(k));
      Tensor x = ops::add_scalar(randn({k.n, k.c, k.h, k.w}), 1e4);
      Tensor w = ops::add_scalar(test::rand({k.c}, 0.0, 1.0), 0.5), b = randn({k.c});
      Reference ref = reference_group_norm(x, k.groups, w, b, 1e-5);
      ops::GroupNormOutput o = ops::group_norm_with_stats(x.cuda(), k.groups, w.cuda(), b.cuda());
      CHECK_CLOSE(o.mean, ref.mean, 1e-3, 0);  // the float32 mean itself is rounded to ~5e-4 at 1e4
      CHECK_CLOSE(o.rstd, ref.rstd, 0, 1e-4);
      CHECK_CLOSE(o.y, ref.y, 4e-3, 1e-3);
    }
  }

  TEST_CASE("cuda: group_norm float32 backward survives a large offset") {
    MTL_REQUIRE_CUDA();
    test::PoisonGuard poison;
    for (const Case& k : kOffsetCases) {
      INFO(case_str(k));
      Tensor x = symmetric_offset_input(k), dy = randn({k.n, k.c, k.h, k.w});
      Tensor w = ops::add_scalar(test::rand({k.c}, 0.0, 1.0), 0.5), b = randn({k.c});
      Grads f64 = run_f64(x, k.groups, w, b, dy);
      Grads cpu = run(x, k.groups, w, b, dy);
      Grads gpu = run(x.cuda(), k.groups, w.cuda(), b.cuda(), dy.cuda());
      CHECK(gpu.dx.is_cuda());
      CHECK_CLOSE(gpu.mean, ops::add_scalar(zeros({k.n, k.groups}), 1e4), 0, 0);  // the premise
      check_offset_backward(gpu, f64, 2e-5, 1e-5);
      check_offset_backward(gpu, cpu, 2e-5, 1e-5);  // parity with the CPU twin
      Grads again = run(x.cuda(), k.groups, w.cuda(), b.cuda(), dy.cuda());
      CHECK_BITWISE(again.dx, gpu.dx);
      CHECK_BITWISE(again.dw, gpu.dw);
      CHECK_BITWISE(again.db, gpu.db);
    }
  }

  TEST_CASE("cuda: group_norm errors") {
    MTL_REQUIRE_CUDA();
    Tensor x = zeros({2, 6, 4, 4}, Options(DType::f32, Device::cuda()));
    CHECK_THROWS_WITH_AS(ops::group_norm(x, 3, zeros({6}), Tensor()),
                         doctest::Contains("group_norm: weight F32[6] on cpu must be F32 on cuda:0"), Error);
    CHECK_THROWS_WITH_AS(
        ops::group_norm(zeros({2, 6, 4, 4}, Options(DType::f64, Device::cuda())), 3, Tensor(), Tensor()),
        doctest::Contains("group_norm on CUDA supports F32 and BF16 tensors"), Error);
  }
}
