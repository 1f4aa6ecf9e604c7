#include "train/eval/evaluate.h"

#include <chrono>

#include "core/autograd.h"
#include "core/cuda_context.h"
#include "ops/ops.h"
#include "train/eval/tta.h"
#include "train/log/visuals.h"

namespace mtl::train {

EvalOutcome evaluate(models::ESANet& model, Loader& loader, const Config& cfg, const Objective* objective, int visuals,
                     Communicator* comm) {
  const auto t0 = std::chrono::steady_clock::now();
  autograd::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  // The labels were validated by the scan: checking again would cost a host sync per batch.
  MetricsAccumulator acc(cfg, loader.options().device, /*check_labels=*/false);
  PanelStyle style;
  style.palette = palette_from_classes(cfg.data.classes);
  style.ignore_index = cfg.data.ignore_index;

  EvalOutcome r;
  std::map<std::string, Tensor> loss_sums;  // on the device: read once at the end
  int64_t batches = 0;
  loader.start_epoch(0);
  Batch b;
  const TtaOptions tta{cfg.eval.tta, cfg.eval.scales};
  const bool cuda_dev = loader.options().device.is_cuda();
  auto sync = [&] {
    if (cuda_dev) cuda::synchronize();
  };
  while (loader.next(b)) {
    sync();
    const auto f0 = std::chrono::steady_clock::now();
    models::ESANetOutput out;
    const NetOutput net = tta_forward({&model}, b.rgb, b.depth, tta, &out);
    sync();
    if (batches > 0) {
      r.forward_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - f0).count();
      r.timed_images += b.size();
    }
    const Tensor depth_m = net.depth.defined() ? ops::mul_scalar(net.depth, cfg.data.max_depth) : Tensor();
    acc.update(net.semantic, b.labels, depth_m, b.depth_metres);
    if (objective) {
      for (auto& [task, l] : objective->compute(out, b).task)
        loss_sums[task] = loss_sums.count(task) ? ops::add(loss_sums[task], l) : l;
    }
    for (int64_t i = 0; i < b.size() && static_cast<int>(r.panels.size()) < visuals; ++i) {
      PanelInputs in;
      in.rgb = rgb_from_tensor(b.rgb.narrow(0, i, 1).squeeze(0));
      if (b.labels.defined()) in.gt_seg = labels_from_tensor(b.labels.narrow(0, i, 1).squeeze(0));
      if (net.semantic.defined()) in.pred_seg = labels_from_tensor(net.semantic.narrow(0, i, 1).squeeze(0));
      if (b.depth_metres.defined()) in.gt_depth = depth_from_tensor(b.depth_metres.narrow(0, i, 1).squeeze(0));
      if (depth_m.defined()) in.pred_depth = depth_from_tensor(depth_m.narrow(0, i, 1).squeeze(0));
      r.panels.emplace_back(b.names.at(static_cast<size_t>(i)), render_panel(in, style));
    }
    r.images += b.size();
    ++batches;
  }
  if (comm) {
    acc.all_reduce(*comm);
    // Every rank's loss sums (a rank may have had no batch at all), batches and images.
    const std::vector<std::string> tasks = objective ? objective->tasks() : std::vector<std::string>{};
    std::vector<double> mine;
    for (const std::string& task : tasks) mine.push_back(loss_sums.count(task) ? loss_sums[task].item() : 0.0);
    mine.push_back(static_cast<double>(batches));
    mine.push_back(static_cast<double>(r.images));
    std::vector<double> total(mine.size(), 0.0);
    for (const std::vector<double>& rank : comm->all_gather(mine, "the validation losses"))
      for (size_t i = 0; i < total.size(); ++i) total[i] += rank[i];
    const double all_batches = std::max(total[tasks.size()], 1.0);
    for (size_t i = 0; i < tasks.size(); ++i) {
      r.task_losses[tasks[i]] = total[i] / all_batches;
      r.loss += r.task_losses[tasks[i]];
    }
    r.images = static_cast<int64_t>(total.back());
  } else {
    for (auto& [task, s] : loss_sums) {
      r.task_losses[task] = s.item() / static_cast<double>(std::max<int64_t>(batches, 1));
      r.loss += r.task_losses[task];
    }
  }
  r.metrics = acc.compute();
  model.train(was_training);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

std::optional<double> monitor_value(const EvalOutcome& e, Monitor m) {
  const EvalMetrics& x = e.metrics;
  switch (m) {
    case Monitor::miou:
      if (x.segmentation) return x.segmentation->miou;
      return std::nullopt;
    case Monitor::loss:
      return e.loss;
    case Monitor::depth_rmse:
      if (x.depth) return x.depth->rmse;
      return std::nullopt;
    case Monitor::depth_abs_rel:
      if (x.depth) return x.depth->abs_rel;
      return std::nullopt;
  }
  return std::nullopt;
}

bool monitor_higher_is_better(Monitor m) { return m == Monitor::miou; }

}  // namespace mtl::train
