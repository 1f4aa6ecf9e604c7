// AdamW: single and repeated steps against a hand computation in double (PyTorch's AdamW
// formulas, weight decay, bias correction, per-tensor step counts), parameter groups, state-dict
// round trips that reproduce the next step bitwise, global-norm clipping, argument errors, and
// CUDA-vs-CPU parity of the fused multi-tensor kernel without allocations after the first step.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/cuda_context.h"
#include "ops/ops.h"
#include "tests/support/compare.h"
#include "tests/support/gpu.h"
#include "tests/support/parity.h"
#include "tests/support/random.h"
#include "train/optim/adamw.h"

using namespace mtl;
using mtl::test::randn;
using train::AdamW;
using train::AdamWOptions;
using train::ParamGroup;

namespace {

// torch.optim.AdamW for one tensor, written from the paper's decoupled form:
//   p -= lr*wd*p; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
//   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
struct RefAdamW {
  std::vector<double> p, m, v;
  int t = 0;
  double b1 = 0.9, b2 = 0.999, eps = 1e-8;
  explicit RefAdamW(std::vector<double> init) : p(std::move(init)), m(p.size(), 0.0), v(p.size(), 0.0) {}
  void step(const std::vector<double>& g, double lr, double wd, double grad_scale = 1.0) {
    ++t;
    for (size_t i = 0; i < p.size(); ++i) {
      const double gi = g[i] * grad_scale;
      p[i] -= lr * wd * p[i];
      m[i] = b1 * m[i] + (1 - b1) * gi;
      v[i] = b2 * v[i] + (1 - b2) * gi * gi;
      const double mhat = m[i] / (1 - std::pow(b1, t));
      const double vhat = v[i] / (1 - std::pow(b2, t));
      p[i] -= lr * mhat / (std::sqrt(vhat) + eps);
    }
  }
  Tensor tensor(const Shape& s) const { return from_vector(p, s, DType::f64); }
};

Tensor param(const Shape& s, DType dt = DType::f64, Device d = Device::cpu()) {
  Tensor t = randn(s, Options(dt)).to(d);
  t.set_requires_grad(true);
  return t;
}

void set_grad(Tensor& p, const Tensor& g) { p.set_grad(g.to(p.device())); }

double l2(const std::vector<std::vector<double>>& gs) {
  double s = 0;
  for (const auto& g : gs)
    for (double x : g) s += x * x;
  return std::sqrt(s);
}

// "p17"; spelled with += because GCC 12 warns (-Wrestrict, falsely) on "p" + std::to_string(i).
std::string indexed(const char* prefix, size_t i) {
  std::string s = prefix;
  s += std::to_string(i);
  return s;
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  std::vector<double> va = a.to_f64_vector(), vb = b.to_f64_vector();
  if (va.size() != vb.size()) return false;
  for (size_t i = 0; i < va.size(); ++i)
    if (std::memcmp(&va[i], &vb[i], sizeof(double)) != 0) return false;
  return true;
}

}  // namespace

TEST_CASE("adamw: one step matches the hand computation with and without weight decay") {
  for (double wd : {0.0, 0.05}) {
    INFO("weight_decay " << wd);
    Tensor w = param({3, 5});
    RefAdamW ref(w.to_f64_vector());
    Tensor g = randn({3, 5}, DType::f64);
    set_grad(w, g);
    AdamW opt({ParamGroup{"all", {{"w", w}}, wd, 1.0}});
    CHECK_FALSE(opt.step(0.01).defined());  // no clipping: no norm
    ref.step(g.to_f64_vector(), 0.01, wd);
    CHECK_CLOSE(w, ref.tensor({3, 5}), 1e-14, 1e-12);
    CHECK(opt.step_count("w") == 1);
  }
}

TEST_CASE("adamw: three steps with changing gradients and learning rates follow bias correction") {
  for (DType dt : {DType::f64, DType::f32}) {
    INFO(dtype_name(dt));
    Tensor w = param({4, 3, 3}, dt), b = param({7}, dt);
    RefAdamW rw(w.to_f64_vector()), rb(b.to_f64_vector());
    AdamW opt({ParamGroup{"decay", {{"w", w}}, 0.1, 1.0}, ParamGroup{"no_decay", {{"b", b}}, 0.0, 0.5}},
              AdamWOptions{0.8, 0.99, 1e-6, 0.0});
    rw.b1 = rb.b1 = 0.8;
    rw.b2 = rb.b2 = 0.99;
    rw.eps = rb.eps = 1e-6;
    const double lrs[] = {0.1, 0.05, 0.02};
    for (double lr : lrs) {
      Tensor gw = randn(w.shape(), dt), gb = randn(b.shape(), dt);
      set_grad(w, gw);
      set_grad(b, gb);
      opt.step(lr);
      rw.step(gw.to_f64_vector(), lr, 0.1);
      rb.step(gb.to_f64_vector(), lr * 0.5, 0.0);  // the group's lr_scale
    }
    const double tol = dt == DType::f64 ? 1e-12 : 2e-6;
    CHECK_CLOSE(w, rw.tensor(w.shape()), tol, tol);
    CHECK_CLOSE(b, rb.tensor(b.shape()), tol, tol);
    // The state is the reference's first and second moments.
    auto sd = opt.state_dict();
    CHECK_CLOSE(sd.at("w.exp_avg"), from_vector(rw.m, w.shape(), DType::f64), tol, tol);
    CHECK_CLOSE(sd.at("b.exp_avg_sq"), from_vector(rb.v, b.shape(), DType::f64), tol, tol);
    CHECK(sd.at("w.step").item() == 3);
  }
}

TEST_CASE("adamw: a parameter without a gradient is skipped and keeps its own step count") {
  Tensor a = param({5}), b = param({2, 3});
  RefAdamW ra(a.to_f64_vector()), rb(b.to_f64_vector());
  const std::vector<double> b0 = b.to_f64_vector();
  AdamW opt({ParamGroup{"g", {{"a", a}, {"b", b}}, 0.01, 1.0}});
  Tensor ga = randn({5}, DType::f64);
  set_grad(a, ga);
  opt.step(0.1);
  ra.step(ga.to_f64_vector(), 0.1, 0.01);
  CHECK(b.to_f64_vector() == b0);  // not even weight decay touches it
  CHECK(opt.step_count("b") == 0);
  // Next step both have gradients: b is at its first step (bias correction with t = 1).
  ga = randn({5}, DType::f64);
  Tensor gb = randn({2, 3}, DType::f64);
  set_grad(a, ga);
  set_grad(b, gb);
  opt.step(0.1);
  ra.step(ga.to_f64_vector(), 0.1, 0.01);
  rb.step(gb.to_f64_vector(), 0.1, 0.01);
  CHECK(opt.step_count("a") == 2);
  CHECK(opt.step_count("b") == 1);
  CHECK_CLOSE(a, ra.tensor({5}), 1e-14, 1e-12);
  CHECK_CLOSE(b, rb.tensor({2, 3}), 1e-14, 1e-12);
  opt.zero_grad();
  CHECK_FALSE(a.grad().defined());
  CHECK_FALSE(b.grad().defined());
}

TEST_CASE("adamw: standard groups exempt norm parameters biases and log-variances from decay") {
  std::vector<std::pair<std::string, Tensor>> named = {
      {"encoder.conv1.weight", param({4, 3, 3, 3})},
      {"encoder.conv1.bias", param({4})},
      {"encoder.layer1.0.bn1.weight", param({4})},
      {"encoder.layer1.0.bn1.bias", param({4})},
      {"decoder.norm.weight", param({4, 1})},    // by name, though 2-D
      {"head.groupnorm2.weight", param({4, 1})},  // by name
      {"head.conv_bn.weight", param({4, 1})},     // by name
      {"balancer.log_var_depth", param({})},
      {"fc.weight", param({5, 4})},
      {"bnx.weight", param({5, 4})},  // "bnx" is not a norm module
  };
  auto groups = train::make_param_groups(named, 0.5);
  REQUIRE(groups.size() == 2);
  CHECK(groups[0].name == "decay");
  CHECK(groups[0].weight_decay == 0.5);
  CHECK(groups[1].name == "no_decay");
  CHECK(groups[1].weight_decay == 0.0);
  std::vector<std::string> decayed;
  for (auto& [n, t] : groups[0].params) decayed.push_back(n);
  CHECK(decayed == std::vector<std::string>{"encoder.conv1.weight", "fc.weight", "bnx.weight"});
  CHECK(groups[1].params.size() == 7);

  // With zero gradients the Adam term vanishes (m = 0), so only decay moves a parameter.
  std::map<std::string, std::vector<double>> before;
  for (auto& [n, t] : named) {
    before[n] = t.to_f64_vector();
    t.set_grad(zeros(t.shape(), t.options()));
  }
  AdamW opt(groups);
  opt.step(0.1);
  for (auto& [n, t] : named) {
    INFO(n);
    const bool decays = n == "encoder.conv1.weight" || n == "fc.weight" || n == "bnx.weight";
    std::vector<double> expect = before[n];
    if (decays)
      for (double& x : expect) x *= 1 - 0.1 * 0.5;
    CHECK_CLOSE(t, from_vector(expect, t.shape(), DType::f64), 1e-15, 1e-14);
  }
}

TEST_CASE("adamw: a state-dict round trip reproduces the next step bitwise") {
  for (DType dt : {DType::f32, DType::f64}) {
    INFO(dtype_name(dt));
    Tensor w = param({6, 5}, dt), b = param({5}, dt);
    AdamWOptions o;
    o.max_grad_norm = 1.0;
    AdamW a({ParamGroup{"d", {{"w", w}}, 0.01, 1.0}, ParamGroup{"n", {{"b", b}}, 0.0, 1.0}}, o);
    for (int i = 0; i < 2; ++i) {
      set_grad(w, randn(w.shape(), dt));
      if (i == 0) set_grad(b, randn(b.shape(), dt));
      else b.zero_grad();  // b lags one step behind
      a.step(0.01);
    }
    // A second optimiser on copies of the parameters, loaded from a snapshot of the state.
    Tensor w2 = w.detach().clone(), b2 = b.detach().clone();
    w2.set_requires_grad(true);
    b2.set_requires_grad(true);
    std::map<std::string, Tensor> snap;
    for (auto& [k, t] : a.state_dict()) snap[k] = t.clone();
    AdamW c({ParamGroup{"d", {{"w", w2}}, 0.01, 1.0}, ParamGroup{"n", {{"b", b2}}, 0.0, 1.0}}, o);
    c.load_state_dict(snap);
    CHECK(c.step_count("w") == 2);
    CHECK(c.step_count("b") == 1);
    Tensor gw = randn(w.shape(), dt), gb = randn(b.shape(), dt);
    set_grad(w, gw);
    set_grad(b, gb);
    set_grad(w2, gw.clone());
    set_grad(b2, gb.clone());
    Tensor n1 = a.step(0.02).clone(), n2 = c.step(0.02).clone();
    CHECK(bitwise_equal(n1, n2));
    CHECK(bitwise_equal(w, w2));
    CHECK(bitwise_equal(b, b2));
    for (auto& [k, t] : a.state_dict()) {
      INFO(k);
      CHECK(bitwise_equal(t, c.state_dict().at(k)));
    }
  }
}

TEST_CASE("adamw: a state saved in float32 loads into a float64 optimiser") {
  Tensor w = param({2, 3}, DType::f32);
  AdamW a({ParamGroup{"g", {{"w", w}}, 0.0, 1.0}});
  set_grad(w, randn({2, 3}, DType::f32));
  a.step(0.1);
  Tensor w64 = param({2, 3});
  AdamW c({ParamGroup{"g", {{"w", w64}}, 0.0, 1.0}});
  c.load_state_dict(a.state_dict());
  CHECK(c.state_dict().at("w.exp_avg").dtype() == DType::f64);
  CHECK(c.state_dict().at("w.exp_avg").to_f64_vector() == a.state_dict().at("w.exp_avg").to_f64_vector());
  CHECK(c.state_dict().at("w.exp_avg_sq").to_f64_vector() == a.state_dict().at("w.exp_avg_sq").to_f64_vector());
  CHECK(c.step_count("w") == 1);
}

TEST_CASE("adamw: loading a mismatched state names every offending tensor and changes nothing") {
  Tensor w = param({3, 4}), b = param({4});
  AdamW opt({ParamGroup{"g", {{"w", w}, {"b", b}}, 0.0, 1.0}});
  set_grad(w, randn({3, 4}, DType::f64));
  set_grad(b, randn({4}, DType::f64));
  opt.step(0.1);
  const std::vector<double> m_before = opt.state_dict().at("w.exp_avg").to_f64_vector();

  auto sd = opt.state_dict();
  for (auto& [k, t] : sd) t = t.clone();
  sd.erase("b.exp_avg_sq");
  sd["w.exp_avg"] = zeros({4, 3}, DType::f64);
  sd["w.exp_avg_sq"] = zeros({3, 4}, DType::f64);  // fine on its own, must not be applied
  sd["extra.exp_avg"] = zeros({1}, DType::f64);
  sd["w.step"] = full({}, -1.0, DType::i64);
  try {
    opt.load_state_dict(sd, "'ckpt.safetensors'");
    FAIL("no error");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("'ckpt.safetensors'") != std::string::npos);
    CHECK(msg.find("missing: b.exp_avg_sq") != std::string::npos);
    CHECK(msg.find("w.exp_avg: 'ckpt.safetensors' has F64[4, 3] on cpu") != std::string::npos);
    CHECK(msg.find("unexpected: extra.exp_avg") != std::string::npos);
    CHECK(msg.find("w.step: step count") != std::string::npos);
    CHECK(msg.find("w.exp_avg_sq") == std::string::npos);
  }
  CHECK(opt.state_dict().at("w.exp_avg").to_f64_vector() == m_before);
  CHECK(opt.step_count("w") == 1);
}

TEST_CASE("adamw: global-norm clipping scales every gradient and returns the unclipped norm") {
  for (DType dt : {DType::f64, DType::f32}) {
    INFO(dtype_name(dt));
    Tensor w = param({5, 3}, dt), b = param({3}, dt), frozen = param({2}, dt);
    Tensor gw = ops::mul_scalar(randn({5, 3}, dt), 3.0), gb = randn({3}, dt);
    const double norm = l2({gw.to_f64_vector(), gb.to_f64_vector()});
    for (double max_norm : {0.25 * norm, 4.0 * norm}) {
      INFO("max_norm " << max_norm);
      Tensor wc = w.detach().clone(), bc = b.detach().clone(), fc = frozen.detach().clone();
      for (Tensor* t : {&wc, &bc, &fc}) t->set_requires_grad(true);
      set_grad(wc, gw);
      set_grad(bc, gb);  // fc has no gradient: counts as zero
      RefAdamW rw(wc.to_f64_vector()), rb(bc.to_f64_vector());
      AdamWOptions o;
      o.max_grad_norm = max_norm;
      AdamW opt({ParamGroup{"d", {{"w", wc}}, 0.1, 1.0}, ParamGroup{"n", {{"b", bc}, {"f", fc}}, 0.0, 1.0}}, o);
      Tensor n = opt.step(0.05);
      REQUIRE(n.defined());
      CHECK(n.dim() == 0);
      CHECK(n.dtype() == dt);
      const double tol = dt == DType::f64 ? 1e-12 : 1e-6;
      CHECK(std::abs(n.item() - norm) <= tol * norm);
      CHECK(std::abs(opt.grad_norm().item() - norm) <= tol * norm);
      const double scale = std::min(1.0, max_norm / (norm + 1e-6));
      rw.step(gw.to_f64_vector(), 0.05, 0.1, scale);
      rb.step(gb.to_f64_vector(), 0.05, 0.0, scale);
      CHECK_CLOSE(wc, rw.tensor(wc.shape()), tol, tol * 10);
      CHECK_CLOSE(bc, rb.tensor(bc.shape()), tol, tol * 10);
      // Clipping happens inside the update: the stored gradients are as they were.
      CHECK(bitwise_equal(wc.grad(), gw));
      // The first moment holds the clipped gradient, (1 - beta1) * scale * g.
      if (max_norm < norm) CHECK_CLOSE(opt.state_dict().at("w.exp_avg"), ops::mul_scalar(gw, 0.1 * scale), tol, tol);
    }
  }
}

TEST_CASE("adamw: argument errors name the parameter") {
  Tensor a = param({3}), b = param({3}, DType::f32);
  CHECK_THROWS_WITH_AS(AdamW({ParamGroup{"g", {{"a", a}, {"b", b}}, 0.0, 1.0}}),
                       doctest::Contains("parameter 'b' is F32[3] on cpu but 'a' is F64[3] on cpu"), Error);
  CHECK_THROWS_WITH_AS(AdamW({ParamGroup{"g", {{"a", a}}, 0.0, 1.0}, ParamGroup{"h", {{"a", a}}, 0.0, 1.0}}),
                       doctest::Contains("parameter name 'a' appears twice"), Error);
  CHECK_THROWS_WITH_AS(AdamW({ParamGroup{"g", {{"a", a}, {"a2", a}}, 0.0, 1.0}}),
                       doctest::Contains("'a2' shares its memory"), Error);
  CHECK_THROWS_WITH_AS(AdamW({ParamGroup{"g", {{"t", randn({4, 3}).transpose(0, 1)}}, 0.0, 1.0}}),
                       doctest::Contains("'t'"), Error);
  CHECK_THROWS_WITH_AS(AdamW({ParamGroup{"g", {{"a", a}}, -1.0, 1.0}}), doctest::Contains("group 'g'"), Error);
  CHECK_THROWS_WITH_AS(AdamW({}), doctest::Contains("no parameters"), Error);
  AdamW opt({ParamGroup{"g", {{"a", a}}, 0.0, 1.0}});
  CHECK_THROWS_WITH_AS(opt.step(std::nan("")), doctest::Contains("learning rate"), Error);
  CHECK_THROWS_WITH_AS(opt.step_count("zz"), doctest::Contains("'zz'"), Error);
}

TEST_SUITE("cuda") {
  TEST_CASE("cuda parity: fused adamw over odd-sized tensors with clipping and skipped gradients") {
    MTL_REQUIRE_CUDA();
    // Sizes below, at and across chunk boundaries (kAdamWChunk = 32768) and not multiples of 4.
    const std::vector<Shape> shapes{{7, 3, 3, 3}, {32768}, {3, 32771}, {1, 5}, {1}, {13}, {65537}, {}};
    const size_t decay = 4, steps = 4;
    // Inputs: the parameters, then every step's gradients.
    std::vector<Tensor> inputs;
    for (const Shape& s : shapes) inputs.push_back(test::leaf(randn(s)));
    for (size_t step = 0; step < steps; ++step)
      for (const Shape& s : shapes) inputs.push_back(randn(s));
    test::check_parity(
        {"four steps of two groups",
         test::copies_of(inputs),
         [&](const std::vector<Tensor>& in) {
           std::vector<std::pair<std::string, Tensor>> d, n;
           for (size_t k = 0; k < shapes.size(); ++k)
             (k < decay ? d : n).emplace_back(indexed(k < decay ? "d" : "n", k < decay ? k : k - decay), in[k]);
           AdamWOptions o;
           o.max_grad_norm = 5.0;
           AdamW opt({ParamGroup{"decay", d, 0.05, 1.0}, ParamGroup{"no_decay", n, 0.0, 2.0}}, o);
           std::vector<Tensor> out;
           for (size_t step = 0; step < steps; ++step) {
             for (size_t k = 0; k < shapes.size(); ++k) {
               Tensor p = in[k];
               // One tensor skips step 1 so that its step count lags (a second launch per group).
               if (step == 1 && k == 1)
                 p.zero_grad();
               else
                 p.set_grad(in[shapes.size() * (step + 1) + k]);
             }
             out.push_back(opt.step(1e-2 * (step + 1)));
             CHECK(out.back().device() == in[0].device());
             CHECK(out.back().item() > 5.0);  // clipping is active in every step
           }
           for (size_t k = 0; k < shapes.size(); ++k) out.push_back(in[k].detach().clone());
           for (auto& [name, t] : opt.state_dict()) {
             INFO(name);
             CHECK(t.device() == (name.ends_with(".step") ? Device::cpu() : in[0].device()));
             out.push_back(t.to(in[0].device()));
           }
           CHECK(opt.step_count("d1") == 3);
           CHECK(opt.step_count("d0") == 4);
           out.push_back(opt.grad_norm());
           return out;
         },
         {{1e-4, 1e-5}, {1e-4, 1e-5}, {1e-4, 1e-5}, {1e-4, 1e-5}, {1e-6, 1e-5}}});
  }

  TEST_CASE("cuda: a group larger than one launch and steps without allocations") {
    MTL_REQUIRE_CUDA();
    test::PoisonGuard poison;
    // 1030 tensors > kAdamWMaxTensors (1024): the group is split into two launches.
    std::vector<std::pair<std::string, Tensor>> cp, gp;
    for (int i = 0; i < 1030; ++i) {
      Tensor c = randn({1 + i % 7});
      Tensor g = c.clone().to(Device::cuda());
      c.set_requires_grad(true);
      g.set_requires_grad(true);
      cp.emplace_back(indexed("p", i), c);
      gp.emplace_back(indexed("p", i), g);
    }
    AdamWOptions o;
    o.max_grad_norm = 1.0;
    AdamW cpu({ParamGroup{"g", cp, 0.01, 1.0}}, o), gpu({ParamGroup{"g", gp, 0.01, 1.0}}, o);
    // Gradients for every step made up front, so that only step() runs while counting.
    std::vector<std::vector<Tensor>> grads(3);
    for (auto& step_grads : grads)
      for (auto& [n, t] : cp) step_grads.push_back(randn(t.shape()));
    std::vector<std::vector<Tensor>> dev_grads(3);
    for (size_t s = 0; s < 3; ++s)
      for (auto& g : grads[s]) dev_grads[s].push_back(g.to(Device::cuda()));
    cuda::AllocatorStats after_first{};
    for (size_t s = 0; s < 3; ++s) {
      for (size_t i = 0; i < cp.size(); ++i) {
        cp[i].second.set_grad(grads[s][i]);
        gp[i].second.set_grad(dev_grads[s][i]);
      }
      cpu.step(0.05);
      gpu.step(0.05);
      if (s == 0) {
        after_first = cuda::allocator_stats();
      } else {
        cuda::AllocatorStats now = cuda::allocator_stats();
        CHECK(now.device_mallocs == after_first.device_mallocs);
        CHECK(now.cache_hits == after_first.cache_hits);
      }
    }
    cuda::synchronize();
    for (size_t i = 0; i < cp.size(); i += 97) {
      INFO(cp[i].first);
      CHECK_CLOSE(gp[i].second, cp[i].second, 1e-6, 1e-5);
    }
    CHECK_CLOSE(gp.back().second, cp.back().second, 1e-6, 1e-5);
  }

  TEST_CASE("cuda parity: adamw at a medium ESANet shape") {
    MTL_REQUIRE_CUDA();
    // A stage-4 3x3 convolution's weight and its bias, two clipped steps.
    test::check_parity(
        {"a [256, 256, 3, 3] weight",
         test::copies_of({test::leaf(randn({256, 256, 3, 3})), test::leaf(randn({256})), randn({256, 256, 3, 3}),
                          randn({256}), randn({256, 256, 3, 3}), randn({256})}),
         [](const std::vector<Tensor>& in) {
           AdamWOptions o;
           o.max_grad_norm = 100.0;
           AdamW opt({ParamGroup{"decay", {{"w", in[0]}}, 0.05, 1.0}, ParamGroup{"no_decay", {{"b", in[1]}}, 0.0, 1.0}},
                     o);
           std::vector<Tensor> out;
           Tensor w = in[0], b = in[1];
           for (size_t step = 0; step < 2; ++step) {
             w.set_grad(in[2 + 2 * step]);
             b.set_grad(in[3 + 2 * step]);
             out.push_back(opt.step(1e-3));
           }
           out.push_back(in[0].detach().clone());
           out.push_back(in[1].detach().clone());
           return out;
         },
         {{1e-2, 1e-5}, {1e-2, 1e-5}, {1e-6, 1e-5}}});
  }
}
