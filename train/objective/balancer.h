#pragma once
// Task balancers (config key loss.balance): combine the per-task losses into the one total that
// is backpropagated, and report the weights in use for logging.
//
//   uncertainty  learned log-variances s_t (Kendall et al. 2018, as in ESANet's multi-task code):
//                total = sum_t 0.5*exp(-s_t)*L_t + 0.5*s_t, weights 0.5*exp(-s_t)
//   dwa          dynamic weight average (Liu et al. 2019): w_t = K*softmax_t(r_t / T),
//                r_t = L_t(e-1) / L_t(e-2) from the mean task losses of the last two epochs
//   fixed        configured weights
//
// A balancer is an nn::Module, so its learnable parameters (the log-variances, F32 scalars
// named "log_var_<task>") join the optimiser without weight decay and its state is saved with
// state_dict(): the DWA loss history is the buffers "loss_history" (F64 [2, K], rows epoch e-2
// and e-1) and "epochs_seen" (I64). Formulas: docs/optimisation.md.
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "nn/module.h"
#include "train/config/config.h"

namespace mtl::train {

struct BalancedLoss {
  Tensor total;  // 0-d, differentiable
  // Per task in the balancer's order, 0-d and detached: on the losses' device for learned
  // weights (read them at log steps only), on the CPU for host-computed ones.
  std::vector<std::pair<std::string, Tensor>> weights;
};

class Balancer : public nn::Module {
 public:
  // One or more distinct, non-empty task names ("semantic", "depth").
  explicit Balancer(std::vector<std::string> tasks);
  const std::vector<std::string>& tasks() const { return tasks_; }
  virtual std::string_view kind() const = 0;
  // `losses`: exactly one one-element floating tensor per task, keyed by task name.
  virtual BalancedLoss combine(const std::map<std::string, Tensor>& losses) = 0;
  // The mean task losses of the epoch that just ended; only DWA uses them.
  virtual void end_epoch(const std::map<std::string, double>& mean_losses);

 protected:
  // The losses in task order as 0-d tensors, after checking names, sizes and that they share
  // one device and dtype.
  std::vector<Tensor> ordered_losses(const std::map<std::string, Tensor>& losses) const;
  // Host weights -> total and CPU weight tensors.
  BalancedLoss weighted_sum(const std::vector<Tensor>& losses, const std::vector<double>& w) const;

 private:
  std::vector<std::string> tasks_;
};

class UncertaintyBalancer : public Balancer {
 public:
  explicit UncertaintyBalancer(std::vector<std::string> tasks);
  std::string_view kind() const override { return "uncertainty"; }
  BalancedLoss combine(const std::map<std::string, Tensor>& losses) override;
  const Tensor& log_variance(size_t task) const { return log_var_.at(task); }

 private:
  std::vector<Tensor> log_var_;  // registered by address: sized once, never resized
};

class DwaBalancer : public Balancer {
 public:
  explicit DwaBalancer(std::vector<std::string> tasks, double temperature = 2.0);
  std::string_view kind() const override { return "dwa"; }
  BalancedLoss combine(const std::map<std::string, Tensor>& losses) override;
  void end_epoch(const std::map<std::string, double>& mean_losses) override;
  // The weights the next combine() uses, in task order (all 1 until two epochs have ended).
  std::vector<double> weights();
  double temperature() const { return temperature_; }

 private:
  void keep_on_cpu();
  double temperature_;
  Tensor history_;  // F64 [2, K]
  Tensor epochs_;   // I64 []
};

class FixedBalancer : public Balancer {
 public:
  FixedBalancer(std::vector<std::string> tasks, std::vector<double> weights);
  std::string_view kind() const override { return "fixed"; }
  BalancedLoss combine(const std::map<std::string, Tensor>& losses) override;

 private:
  std::vector<double> weights_;
};

// DWA weights from the mean losses of the last (`last`) and the one before (`before`) epoch:
// K * softmax(r / T), r = last / before, evaluated with the maximum subtracted so that large
// ratios do not overflow (an infinite ratio takes all the weight). Losses must be finite and
// >= 0; zeros are raised to the smallest normal double so that ratios stay defined.
std::vector<double> dwa_weights(const std::vector<double>& last, const std::vector<double>& before,
                                double temperature);

// The balancer the config asks for (loss.balance, loss.dwa_temperature, loss.fixed_weights.*).
std::shared_ptr<Balancer> make_balancer(const LossConfig& cfg, const std::vector<std::string>& tasks);
std::shared_ptr<Balancer> make_balancer(const LossConfig& cfg, const std::vector<Task>& tasks);

}  // namespace mtl::train
