#include "train/objective/balancer.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "core/autograd.h"
#include "core/error.h"
#include "ops/elementwise.h"
#include "ops/shape.h"

namespace mtl::train {

namespace {

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

}  // namespace

Balancer::Balancer(std::vector<std::string> tasks) : tasks_(std::move(tasks)) {
  MTL_CHECK(!tasks_.empty(), "balancer: at least one task is needed");
  std::set<std::string> seen;
  for (const auto& t : tasks_) {
    MTL_CHECK(!t.empty(), "balancer: empty task name");
    MTL_CHECK(seen.insert(t).second, "balancer: task '", t, "' is listed twice");
  }
}

void Balancer::end_epoch(const std::map<std::string, double>&) {}

std::vector<Tensor> Balancer::ordered_losses(const std::map<std::string, Tensor>& losses) const {
  for (const auto& [name, l] : losses)
    MTL_CHECK(std::find(tasks_.begin(), tasks_.end(), name) != tasks_.end(), "balancer: got a loss for '", name,
              "', which is not a task (tasks: ", join(tasks_), ")");
  std::vector<Tensor> out;
  for (const auto& task : tasks_) {
    auto it = losses.find(task);
    MTL_CHECK(it != losses.end(), "balancer: no loss for task '", task, "'");
    const Tensor& l = it->second;
    MTL_CHECK(l.defined(), "balancer: the loss of task '", task, "' is undefined");
    MTL_CHECK(l.numel() == 1 && is_floating(l.dtype()), "balancer: the loss of task '", task,
              "' must be a one-element floating tensor, got ", l.describe());
    if (!out.empty())
      MTL_CHECK(l.device() == out.front().device() && l.dtype() == out.front().dtype(), "balancer: the loss of '",
                task, "' is ", l.describe(), " but that of '", tasks_.front(), "' is ", out.front().describe());
    out.push_back(l.dim() == 0 ? l : ops::reshape(l, {}));
  }
  return out;
}

BalancedLoss Balancer::weighted_sum(const std::vector<Tensor>& losses, const std::vector<double>& w) const {
  BalancedLoss r;
  for (size_t i = 0; i < losses.size(); ++i) {
    Tensor term = ops::mul_scalar(losses[i], w[i]);
    r.total = r.total.defined() ? ops::add(r.total, term) : term;
    r.weights.emplace_back(tasks_[i], full({}, w[i], DType::f64));
  }
  return r;
}

// ---------------------------------------------------------------------------------------------

UncertaintyBalancer::UncertaintyBalancer(std::vector<std::string> tasks) : Balancer(std::move(tasks)) {
  // s_t = 0: every task starts at weight 0.5.
  log_var_.resize(this->tasks().size());
  for (size_t i = 0; i < log_var_.size(); ++i) {
    log_var_[i] = zeros({}, DType::f32);
    register_parameter("log_var_" + this->tasks()[i], &log_var_[i]);
  }
}

BalancedLoss UncertaintyBalancer::combine(const std::map<std::string, Tensor>& losses) {
  std::vector<Tensor> l = ordered_losses(losses);
  const Tensor& s0 = log_var_.front();
  MTL_CHECK(l.front().device() == s0.device() && l.front().dtype() == s0.dtype(),
            "uncertainty balancer: the losses are ", l.front().describe(), " but the log-variances are ",
            s0.describe(), "; move the balancer to the losses' device and dtype (Module::to)");
  BalancedLoss r;
  for (size_t i = 0; i < l.size(); ++i) {
    const Tensor& s = log_var_[i];
    Tensor w = ops::mul_scalar(ops::exp(ops::neg(s)), 0.5);
    Tensor term = ops::add(ops::mul(w, l[i]), ops::mul_scalar(s, 0.5));
    r.total = r.total.defined() ? ops::add(r.total, term) : term;
    r.weights.emplace_back(tasks()[i], w.detach());
  }
  return r;
}

// ---------------------------------------------------------------------------------------------

std::vector<double> dwa_weights(const std::vector<double>& last, const std::vector<double>& before,
                                double temperature) {
  MTL_CHECK(!last.empty() && last.size() == before.size(), "dwa: loss histories of ", last.size(), " and ",
            before.size(), " tasks");
  MTL_CHECK(std::isfinite(temperature) && temperature > 0, "dwa: temperature must be > 0, got ", temperature);
  const size_t k = last.size();
  const double tiny = std::numeric_limits<double>::min();
  std::vector<double> a(k);
  size_t infinite = 0;
  for (size_t i = 0; i < k; ++i) {
    MTL_CHECK(std::isfinite(last[i]) && last[i] >= 0 && std::isfinite(before[i]) && before[i] >= 0,
              "dwa: task losses must be finite and >= 0, got ", last[i], " after ", before[i], " (task ", i, ")");
    a[i] = std::max(last[i], tiny) / std::max(before[i], tiny) / temperature;
    if (std::isinf(a[i])) ++infinite;
  }
  std::vector<double> w(k, 0.0);
  const double kk = static_cast<double>(k);
  if (infinite > 0) {
    // The limit of the softmax as those ratios grow without bound.
    for (size_t i = 0; i < k; ++i) w[i] = std::isinf(a[i]) ? kk / static_cast<double>(infinite) : 0.0;
    return w;
  }
  const double m = *std::max_element(a.begin(), a.end());
  double sum = 0.0;
  for (size_t i = 0; i < k; ++i) sum += (w[i] = std::exp(a[i] - m));
  for (double& x : w) x = kk * x / sum;
  return w;
}

DwaBalancer::DwaBalancer(std::vector<std::string> tasks, double temperature)
    : Balancer(std::move(tasks)), temperature_(temperature) {
  MTL_CHECK(std::isfinite(temperature) && temperature > 0, "dwa balancer: loss.dwa_temperature must be > 0, got ",
            temperature);
  history_ = zeros({2, static_cast<int64_t>(this->tasks().size())}, DType::f64);
  epochs_ = zeros({}, DType::i64);
  register_buffer("loss_history", &history_);
  register_buffer("epochs_seen", &epochs_);
}

// The history is read on the host every step; if Module::to moved it to a GPU, bring it back
// once rather than synchronising on each read.
void DwaBalancer::keep_on_cpu() {
  if (!history_.device().is_cpu()) history_ = history_.cpu();
  if (!epochs_.device().is_cpu()) epochs_ = epochs_.cpu();
}

void DwaBalancer::end_epoch(const std::map<std::string, double>& mean_losses) {
  keep_on_cpu();
  const auto& t = tasks();
  for (const auto& [name, v] : mean_losses)
    MTL_CHECK(std::find(t.begin(), t.end(), name) != t.end(), "dwa balancer: got a mean loss for '", name,
              "', which is not a task (tasks: ", join(t), ")");
  std::vector<double> now;
  for (const auto& task : t) {
    auto it = mean_losses.find(task);
    MTL_CHECK(it != mean_losses.end(), "dwa balancer: no mean loss for task '", task, "'");
    MTL_CHECK(std::isfinite(it->second) && it->second >= 0, "dwa balancer: the mean loss of task '", task,
              "' is ", it->second, "; it must be finite and >= 0");
    now.push_back(it->second);
  }
  for (int64_t i = 0; i < static_cast<int64_t>(t.size()); ++i) {
    history_.set({0, i}, history_.at({1, i}));
    history_.set({1, i}, now[static_cast<size_t>(i)]);
  }
  epochs_.set({}, epochs_.item() + 1);
}

std::vector<double> DwaBalancer::weights() {
  keep_on_cpu();
  const size_t k = tasks().size();
  if (epochs_.item() < 2) return std::vector<double>(k, 1.0);
  std::vector<double> h = history_.to_f64_vector();
  return dwa_weights(std::vector<double>(h.begin() + static_cast<std::ptrdiff_t>(k), h.end()),
                     std::vector<double>(h.begin(), h.begin() + static_cast<std::ptrdiff_t>(k)), temperature_);
}

BalancedLoss DwaBalancer::combine(const std::map<std::string, Tensor>& losses) {
  std::vector<Tensor> l = ordered_losses(losses);
  return weighted_sum(l, weights());
}

// ---------------------------------------------------------------------------------------------

FixedBalancer::FixedBalancer(std::vector<std::string> tasks, std::vector<double> weights)
    : Balancer(std::move(tasks)), weights_(std::move(weights)) {
  MTL_CHECK(weights_.size() == this->tasks().size(), "fixed balancer: ", weights_.size(), " weights for ",
            this->tasks().size(), " tasks");
  for (size_t i = 0; i < weights_.size(); ++i)
    MTL_CHECK(std::isfinite(weights_[i]) && weights_[i] >= 0, "fixed balancer: the weight of task '",
              this->tasks()[i], "' is ", weights_[i], "; it must be finite and >= 0");
}

BalancedLoss FixedBalancer::combine(const std::map<std::string, Tensor>& losses) {
  return weighted_sum(ordered_losses(losses), weights_);
}

// ---------------------------------------------------------------------------------------------

std::shared_ptr<Balancer> make_balancer(const LossConfig& cfg, const std::vector<std::string>& tasks) {
  switch (cfg.balance) {
    case Balance::uncertainty:
      return std::make_shared<UncertaintyBalancer>(tasks);
    case Balance::dwa:
      return std::make_shared<DwaBalancer>(tasks, cfg.dwa_temperature);
    case Balance::fixed: {
      std::vector<double> w;
      for (const auto& t : tasks) {
        if (t == "semantic")
          w.push_back(cfg.fixed_weight_semantic);
        else if (t == "depth")
          w.push_back(cfg.fixed_weight_depth);
        else
          throw Error("fixed balancer: loss.fixed_weights has no key for task '" + t + "'");
      }
      return std::make_shared<FixedBalancer>(tasks, w);
    }
  }
  throw Error("balancer: unknown loss.balance value");
}

std::shared_ptr<Balancer> make_balancer(const LossConfig& cfg, const std::vector<Task>& tasks) {
  std::vector<std::string> names;
  for (Task t : tasks) names.emplace_back(to_string(t));
  return make_balancer(cfg, names);
}

}  // namespace mtl::train
