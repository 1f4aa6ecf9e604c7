// Task balancers: uncertainty weighting against its formula, float64 gradient checks with respect
// to the log-variances and the losses, its known optimum s_t = log L_t reached by AdamW; DWA
// weights against a hand computation (ratios large enough to overflow a naive softmax), its
// history as checkpointable state; fixed weights; errors; and CUDA agreement.
#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "core/cuda_context.h"
#include "ops/ops.h"
#include "tests/support/compare.h"
#include "tests/support/gpu.h"
#include "tests/support/gradcheck.h"
#include "tests/support/random.h"
#include "train/optim/adamw.h"
#include "train/objective/balancer.h"

using namespace mtl;
using train::DwaBalancer;
using train::FixedBalancer;
using train::UncertaintyBalancer;

namespace {

Tensor scalar(double v, DType dt = DType::f32) { return full({}, v, dt); }

void set_value(const Tensor& t, double v) {
  Tensor(t).set({}, v);
}

// K * softmax(r / T) written out directly, for ratios small enough not to overflow.
std::vector<double> naive_dwa(const std::vector<double>& last, const std::vector<double>& before, double T) {
  std::vector<double> e;
  double sum = 0;
  for (size_t i = 0; i < last.size(); ++i) sum += e.emplace_back(std::exp(last[i] / before[i] / T));
  for (double& x : e) x = static_cast<double>(last.size()) * x / sum;
  return e;
}

}  // namespace

TEST_CASE("uncertainty: total and weights follow 0.5*exp(-s)*L + 0.5*s") {
  UncertaintyBalancer b({"semantic", "depth"});
  auto named = b.named_parameters();
  REQUIRE(named.size() == 2);
  CHECK(named[0].first == "log_var_semantic");
  CHECK(named[1].first == "log_var_depth");
  CHECK(named[0].second.dim() == 0);
  CHECK(named[0].second.requires_grad());
  // Starts at s = 0: weight 0.5 each.
  auto r0 = b.combine({{"semantic", scalar(2.0)}, {"depth", scalar(0.4)}});
  CHECK(r0.total.item() == doctest::Approx(0.5 * 2.0 + 0.5 * 0.4));
  set_value(b.log_variance(0), 0.3);
  set_value(b.log_variance(1), -0.7);
  auto r = b.combine({{"semantic", scalar(1.5)}, {"depth", scalar(0.2)}});
  const double expect = 0.5 * std::exp(-0.3) * 1.5 + 0.15 + 0.5 * std::exp(0.7) * 0.2 - 0.35;
  CHECK(r.total.dim() == 0);
  CHECK(r.total.item() == doctest::Approx(expect).epsilon(1e-6));
  REQUIRE(r.weights.size() == 2);
  CHECK(r.weights[0].first == "semantic");
  CHECK(r.weights[0].second.item() == doctest::Approx(0.5 * std::exp(-0.3)).epsilon(1e-6));
  CHECK(r.weights[1].second.item() == doctest::Approx(0.5 * std::exp(0.7)).epsilon(1e-6));
  CHECK_FALSE(r.weights[0].second.requires_grad());
  // Backward reaches the log-variances: d/ds = -0.5*exp(-s)*L + 0.5.
  r.total.backward();
  CHECK(b.log_variance(0).grad().item() == doctest::Approx(-0.5 * std::exp(-0.3) * 1.5 + 0.5).epsilon(1e-6));
  CHECK(b.log_variance(1).grad().item() == doctest::Approx(-0.5 * std::exp(0.7) * 0.2 + 0.5).epsilon(1e-6));
}

TEST_CASE("uncertainty: gradcheck with respect to log-variances and losses") {
  for (std::vector<std::string> tasks : {std::vector<std::string>{"semantic", "depth"}, {"depth"}}) {
    INFO(tasks.size() << " tasks");
    UncertaintyBalancer b(tasks);
    b.to(DType::f64);
    std::vector<Tensor> inputs;
    for (size_t i = 0; i < tasks.size(); ++i) {
      set_value(b.log_variance(i), 0.4 * static_cast<double>(i) - 0.3);
      inputs.push_back(b.log_variance(i));
    }
    for (size_t i = 0; i < tasks.size(); ++i) {
      Tensor l = scalar(0.7 + 1.3 * static_cast<double>(i), DType::f64);
      l.set_requires_grad(true);
      inputs.push_back(l);
    }
    const size_t k = tasks.size();
    CHECK_GRADCHECK(
        [&](const std::vector<Tensor>& in) {
          std::map<std::string, Tensor> losses;
          for (size_t i = 0; i < k; ++i) losses[tasks[i]] = in[k + i];
          return b.combine(losses).total;
        },
        inputs);
  }
}

TEST_CASE("uncertainty: AdamW drives s_t to the optimum log(L_t) for fixed losses") {
  const double l_sem = 2.5, l_depth = 0.08;
  UncertaintyBalancer b({"semantic", "depth"});
  // At the optimum the gradient vanishes.
  set_value(b.log_variance(0), std::log(l_sem));
  set_value(b.log_variance(1), std::log(l_depth));
  b.combine({{"semantic", scalar(l_sem)}, {"depth", scalar(l_depth)}}).total.backward();
  CHECK(std::abs(b.log_variance(0).grad().item()) < 1e-6);
  CHECK(std::abs(b.log_variance(1).grad().item()) < 1e-6);
  b.zero_grad();

  set_value(b.log_variance(0), 0.0);
  set_value(b.log_variance(1), 0.0);
  auto groups = train::make_param_groups(b.named_parameters(), 0.1);
  REQUIRE(groups.size() == 1);
  CHECK(groups[0].name == "no_decay");
  train::AdamW opt(groups);
  for (int i = 0; i < 1500; ++i) {
    b.combine({{"semantic", scalar(l_sem)}, {"depth", scalar(l_depth)}}).total.backward();
    opt.step(i < 1000 ? 0.05 : 0.005);
    opt.zero_grad();
  }
  CHECK(b.log_variance(0).item() == doctest::Approx(std::log(l_sem)).epsilon(1e-3));
  CHECK(b.log_variance(1).item() == doctest::Approx(std::log(l_depth)).epsilon(1e-3));
}

TEST_CASE("uncertainty: log-variances round-trip through the state dict") {
  UncertaintyBalancer a({"semantic", "depth"}), c({"semantic", "depth"});
  set_value(a.log_variance(0), 0.25);
  set_value(a.log_variance(1), -1.5);
  c.load_state_dict(a.state_dict());
  CHECK(c.log_variance(0).item() == 0.25);
  CHECK(c.log_variance(1).item() == -1.5);
}

TEST_CASE("dwa: weights are 1 for two epochs then K*softmax(r/T) of the last two epochs") {
  DwaBalancer b({"semantic", "depth"}, 2.0);
  auto losses = std::map<std::string, Tensor>{{"semantic", scalar(1.2)}, {"depth", scalar(0.5)}};
  CHECK(b.weights() == std::vector<double>{1.0, 1.0});
  b.end_epoch({{"semantic", 2.0}, {"depth", 0.8}});
  CHECK(b.weights() == std::vector<double>{1.0, 1.0});
  b.end_epoch({{"semantic", 1.0}, {"depth", 0.6}});
  std::vector<double> w = b.weights();
  std::vector<double> ref = naive_dwa({1.0, 0.6}, {2.0, 0.8}, 2.0);
  CHECK(w[0] == doctest::Approx(ref[0]).epsilon(1e-12));
  CHECK(w[1] == doctest::Approx(ref[1]).epsilon(1e-12));
  CHECK(w[0] + w[1] == doctest::Approx(2.0));
  CHECK(w[0] < 1.0);  // semantic fell faster, so it gets less weight
  // The next epoch shifts the window: epochs 2 and 3.
  b.end_epoch({{"semantic", 0.9}, {"depth", 0.3}});
  w = b.weights();
  ref = naive_dwa({0.9, 0.3}, {1.0, 0.6}, 2.0);
  CHECK(w[0] == doctest::Approx(ref[0]).epsilon(1e-12));
  CHECK(w[1] == doctest::Approx(ref[1]).epsilon(1e-12));

  // The total is the weighted sum and its gradient with respect to each loss is that weight.
  Tensor ls = scalar(1.2), ld = scalar(0.5);
  ls.set_requires_grad(true);
  ld.set_requires_grad(true);
  auto r = b.combine({{"semantic", ls}, {"depth", ld}});
  CHECK(r.total.item() == doctest::Approx(ref[0] * 1.2 + ref[1] * 0.5).epsilon(1e-6));
  CHECK(r.weights[1].first == "depth");
  CHECK(r.weights[1].second.item() == doctest::Approx(ref[1]).epsilon(1e-12));
  r.total.backward();
  CHECK(ls.grad().item() == doctest::Approx(ref[0]).epsilon(1e-6));
  CHECK(ld.grad().item() == doctest::Approx(ref[1]).epsilon(1e-6));
}

TEST_CASE("dwa: large loss ratios do not overflow") {
  // r/T = 5e5 would overflow exp() in a naive softmax.
  std::vector<double> w = train::dwa_weights({1e6, 1.0}, {1.0, 1.0}, 2.0);
  CHECK(std::isfinite(w[0]));
  CHECK(w[0] == doctest::Approx(2.0));
  CHECK(w[1] >= 0.0);
  CHECK(w[1] < 1e-100);
  // A ratio that is itself infinite in double, and a zero previous loss.
  w = train::dwa_weights({1e300, 1.0, 300.0}, {1e-300, 1.0, 0.0}, 2.0);
  CHECK(w == std::vector<double>{1.5, 0.0, 1.5});
  // Equal ratios: equal weights at any magnitude.
  w = train::dwa_weights({4e3, 8e3}, {1.0, 2.0}, 0.5);
  CHECK(w[0] == doctest::Approx(1.0));
  CHECK(w[1] == doctest::Approx(1.0));
  CHECK_THROWS_WITH_AS(train::dwa_weights({1.0, NAN}, {1.0, 1.0}, 2.0), doctest::Contains("finite"), Error);
}

TEST_CASE("dwa: the loss history is saved and restored by the state dict") {
  DwaBalancer a({"semantic", "depth"}, 3.0), c({"semantic", "depth"}, 3.0);
  a.end_epoch({{"semantic", 2.0}, {"depth", 1.0}});
  a.end_epoch({{"semantic", 1.5}, {"depth", 0.2}});
  auto sd = a.state_dict();
  CHECK(sd.count("loss_history") == 1);
  CHECK(sd.count("epochs_seen") == 1);
  CHECK(a.named_parameters().empty());
  c.load_state_dict(sd);
  CHECK(c.weights() == a.weights());
  CHECK(c.weights() != std::vector<double>{1.0, 1.0});
  CHECK_THROWS_WITH_AS(a.end_epoch({{"semantic", 1.0}}), doctest::Contains("no mean loss for task 'depth'"), Error);
  CHECK_THROWS_WITH_AS(a.end_epoch({{"semantic", 1.0}, {"depth", INFINITY}}), doctest::Contains("'depth'"), Error);
}

TEST_CASE("fixed: configured weights and the config factory") {
  FixedBalancer f({"semantic", "depth"}, {1.0, 0.25});
  auto r = f.combine({{"semantic", scalar(2.0)}, {"depth", scalar(4.0)}});
  CHECK(r.total.item() == doctest::Approx(3.0));
  CHECK(r.weights[1].second.item() == 0.25);

  train::LossConfig cfg;
  CHECK(train::make_balancer(cfg, std::vector<train::Task>{train::Task::semantic, train::Task::depth})->kind() ==
        "uncertainty");
  cfg.balance = train::Balance::fixed;
  cfg.fixed_weight_semantic = 0.5;
  cfg.fixed_weight_depth = 2.0;
  auto b = train::make_balancer(cfg, std::vector<train::Task>{train::Task::depth});
  CHECK(b->kind() == "fixed");
  CHECK(b->tasks() == std::vector<std::string>{"depth"});
  CHECK(b->combine({{"depth", scalar(3.0)}}).total.item() == doctest::Approx(6.0));
  cfg.balance = train::Balance::dwa;
  cfg.dwa_temperature = 4.0;
  auto d = train::make_balancer(cfg, std::vector<std::string>{"semantic", "depth"});
  CHECK(d->kind() == "dwa");
  CHECK(dynamic_cast<DwaBalancer&>(*d).temperature() == 4.0);
}

TEST_CASE("balancer: errors name the task") {
  UncertaintyBalancer b({"semantic", "depth"});
  CHECK_THROWS_WITH_AS(b.combine({{"semantic", scalar(1.0)}}), doctest::Contains("no loss for task 'depth'"), Error);
  CHECK_THROWS_WITH_AS(b.combine({{"semantic", scalar(1.0)}, {"depth", scalar(1.0)}, {"normals", scalar(1.0)}}),
                       doctest::Contains("'normals', which is not a task"), Error);
  CHECK_THROWS_WITH_AS(b.combine({{"semantic", scalar(1.0)}, {"depth", zeros({2})}}),
                       doctest::Contains("'depth' must be a one-element"), Error);
  CHECK_THROWS_WITH_AS(b.combine({{"semantic", scalar(1.0, DType::f64)}, {"depth", scalar(1.0, DType::f64)}}),
                       doctest::Contains("log-variances are F32[] on cpu"), Error);
  CHECK_THROWS_WITH_AS(UncertaintyBalancer({"depth", "depth"}), doctest::Contains("'depth' is listed twice"), Error);
  CHECK_THROWS_WITH_AS(FixedBalancer({"depth"}, {-1.0}), doctest::Contains("'depth'"), Error);
}

TEST_SUITE("cuda") {
  TEST_CASE("cuda: uncertainty and dwa balancers on device losses agree with the cpu") {
    MTL_REQUIRE_CUDA();
    UncertaintyBalancer bc({"semantic", "depth"}), bg({"semantic", "depth"});
    set_value(bc.log_variance(0), 0.6);
    set_value(bc.log_variance(1), -0.2);
    bg.load_state_dict(bc.state_dict());
    bg.to(Device::cuda());
    Tensor l0 = scalar(1.7), l1 = scalar(0.3);
    auto rc = bc.combine({{"semantic", l0}, {"depth", l1}});
    auto rg = bg.combine({{"semantic", l0.cuda()}, {"depth", l1.cuda()}});
    CHECK(rg.total.is_cuda());
    CHECK(rg.weights[0].second.is_cuda());
    CHECK_CLOSE(rg.total, rc.total, 1e-6, 1e-6);
    rc.total.backward();
    rg.total.backward();
    CHECK(bg.log_variance(0).grad().is_cuda());
    CHECK_CLOSE(bg.log_variance(0).grad(), bc.log_variance(0).grad(), 1e-6, 1e-6);
    CHECK_CLOSE(bg.log_variance(1).grad(), bc.log_variance(1).grad(), 1e-6, 1e-6);

    // DWA moved to the device keeps reading its history on the host.
    DwaBalancer d({"semantic", "depth"});
    d.end_epoch({{"semantic", 2.0}, {"depth", 1.0}});
    d.to(Device::cuda());
    d.end_epoch({{"semantic", 1.0}, {"depth", 0.9}});
    auto r = d.combine({{"semantic", l0.cuda()}, {"depth", l1.cuda()}});
    std::vector<double> ref = naive_dwa({1.0, 0.9}, {2.0, 1.0}, 2.0);
    CHECK(r.total.is_cuda());
    CHECK(r.total.item() == doctest::Approx(ref[0] * 1.7 + ref[1] * 0.3).epsilon(1e-6));
  }
}
