#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <csignal>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "core/allocator.h"
#include "core/cuda_context.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "kernels/threads.h"
#include "models/esanet.h"
#include "ops/ops.h"
#include "train/adamw.h"
#include "train/balancer.h"
#include "train/checkpoint.h"
#include "train/class_weights.h"
#include "train/dataset_stats.h"
#include "train/evaluator.h"
#include "train/loader.h"
#include "train/model_factory.h"
#include "train/objective.h"
#include "train/run_log.h"
#include "train/schedule.h"
#include "train/tensorboard.h"

namespace mtl::train {

namespace fs = std::filesystem;

std::atomic<bool>& stop_requested() {
  static std::atomic<bool> flag{false};
  return flag;
}

namespace {

void on_signal(int) { stop_requested().store(true); }

// Installs the handlers for the duration of a run and restores the previous ones after.
struct SignalScope {
  struct sigaction old_int {}, old_term {};
  SignalScope() {
    stop_requested().store(false);
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
  }
  ~SignalScope() {
    sigaction(SIGINT, &old_int, nullptr);
    sigaction(SIGTERM, &old_term, nullptr);
  }
};

std::string default_run_dir(const std::string& name) {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", std::localtime(&t));
  return "runs/" + name + "-" + buf;
}

bool all_finite(const std::map<std::string, double>& v) {
  for (auto& [k, x] : v)
    if (!std::isfinite(x)) return false;
  return true;
}

std::string describe_losses(const std::map<std::string, double>& v) {
  std::ostringstream os;
  for (auto& [k, x] : v) os << (os.tellp() ? ", " : "") << k << " = " << x;
  return os.str();
}

}  // namespace

std::string model_summary(const Config& cfg) {
  models::ESANet m(model_config(cfg));
  std::ostringstream os;
  int64_t total = 0;
  for (auto& [name, n] : m.summary()) {
    os << name << ": " << n << "\n";
    total += n;
  }
  os << "total parameters: " << total << "\n";
  return os.str();
}

TrainSummary run_training(Config cfg, const TrainOptions& opts) {
  SignalScope signals;
  const Device device = opts.device ? *opts.device : resolve_device(cfg.runtime.device);
  if (device.is_cuda()) cuda::require();
  kernels::set_cpu_threads(cfg.runtime.threads);
  cuda::set_deterministic(cfg.runtime.deterministic);
  MTL_CHECK(cfg.runtime.precision == Precision::fp32, "runtime.precision: bf16 is not available yet; use fp32");
  auto say = [&](const std::string& line) {
    if (!opts.quiet) std::cout << line << std::endl;
  };

  // ---- run folder ----
  TrainSummary summary;
  std::optional<Checkpoint> resume;
  if (!opts.resume_dir.empty()) {
    summary.run_dir = opts.resume_dir;
    const std::string last = opts.resume_dir + "/checkpoints/last.safetensors";
    MTL_CHECK(fs::exists(last), "--resume ", opts.resume_dir, ": no checkpoint at '", last, "'");
    resume = load_checkpoint(last);
    MTL_CHECK(resume->state.has_value(), "'", last, "' holds no training state (a weights-only file?)");
  } else {
    summary.run_dir = opts.output_dir.empty() ? default_run_dir(opts.config_name) : opts.output_dir;
    MTL_CHECK(!fs::exists(summary.run_dir + "/checkpoints/last.safetensors"), "the run folder '", summary.run_dir,
              "' already holds a run; continue it with --resume ", summary.run_dir, " or choose another --output");
  }
  const std::string run = summary.run_dir;

  // ---- data ----
  const bool semantic = cfg.model.has_task(Task::semantic);
  say("scanning data (train, val) ...");
  ScanResult train_scan = scan_split(cfg.data, "train", semantic);
  ScanResult val_scan = scan_split(cfg.data, "val", semantic);
  DatasetStats stats = load_or_compute_stats(train_scan.dataset, default_stats_cache(cfg.data), &train_scan.stats);
  std::vector<double> weights;
  if (semantic) weights = class_weights(cfg.loss, stats, cfg.model.num_classes);
  Loader train_loader(train_scan.dataset, stats, LoaderOptions::training(cfg, device));
  Loader val_loader(val_scan.dataset, stats, LoaderOptions::evaluation(cfg, device));
  const int64_t batches_per_epoch = train_loader.batches_per_epoch();
  MTL_CHECK(batches_per_epoch > 0, "the training split has ", train_scan.dataset.size(),
            " usable samples, fewer than one batch of train.batch_size ", cfg.train.batch_size,
            " (drop_last is on)");
  const int accumulate = std::max(1, cfg.optim.accumulate);
  const int64_t steps_per_epoch = std::max<int64_t>(1, batches_per_epoch / accumulate);

  // ---- model, objective, balancer, optimiser ----
  models::ESANet model(model_config(cfg));
  Objective objective(cfg, weights, device);
  std::shared_ptr<Balancer> balancer = make_balancer(cfg.loss, objective.tasks());
  if (!opts.init_from.empty()) {
    Checkpoint init = load_checkpoint(opts.init_from);
    nn::LoadReport rep = model.load_state_dict(init.model, false, "'" + opts.init_from + "'");
    say("initialised from '" + opts.init_from + "': " + std::to_string(rep.loaded) + " tensors loaded" +
        (rep.clean() ? "" : ", not loaded:\n" + rep.str()));
  }
  model.to(device);
  balancer->to(device);
  model.train();
  std::vector<std::pair<std::string, Tensor>> named = model.named_parameters();
  for (auto& [n, t] : balancer->named_parameters()) named.emplace_back("balancer." + n, t);
  AdamWOptions ao;
  ao.beta1 = cfg.optim.betas[0];
  ao.beta2 = cfg.optim.betas[1];
  ao.eps = cfg.optim.eps;
  ao.max_grad_norm = cfg.optim.grad_clip;
  AdamW optimizer(make_param_groups(named, cfg.optim.weight_decay), ao);
  LrSchedule schedule = make_schedule(cfg.schedule, cfg.optim.lr, steps_per_epoch, cfg.train.epochs);

  TrainState st;
  if (resume) {
    model.load_state_dict(resume->model, true, "the checkpoint of " + run);
    balancer->load_state_dict(resume->balancer, true, "the checkpoint's balancer state");
    optimizer.load_state_dict(resume->optimizer, "the checkpoint's optimizer state");
    st = *resume->state;
    say("resuming " + run + " at epoch " + std::to_string(st.epoch + 1) + ", batch " + std::to_string(st.batch) +
        ", step " + std::to_string(st.step));
    if (st.finished) {
      say("the run had already finished");
      summary.epochs_done = st.epoch, summary.steps = st.step, summary.best = st.best, summary.best_epoch = st.best_epoch;
      return summary;
    }
  }

  // The run folder is made only now, once the data, the model and any checkpoint have been read,
  // so that bad input leaves nothing behind.
  fs::create_directories(run + "/checkpoints");
  fs::create_directories(run + "/visuals");
  if (!resume) write_file_atomic(run + "/config.yaml", to_yaml(cfg, true));
  // mtl_eval and mtl_predict standardise depth with exactly these statistics, wherever the data went.
  save_stats(run + "/mtl_stats.json", stats, train_scan.dataset);
  MetricsLog metrics(run + "/metrics.jsonl");
  EventWriter events(run);
  const std::vector<std::string> tasks = objective.tasks();
  const std::vector<std::string> class_names = [&] {
    std::vector<std::string> n;
    for (auto& c : cfg.data.classes) n.push_back(c.name);
    return n;
  }();
  const auto& sources = train_scan.dataset.index().sources;
  say("run folder: " + run + " | device " + device.str() + (device.is_cuda() ? " (" + cuda::device_name() + ")" : "") +
      " | " + std::to_string(train_scan.dataset.size()) + " training and " + std::to_string(val_scan.dataset.size()) +
      " validation samples | " + std::to_string(model.num_parameters()) + " parameters");

  auto save_last = [&] {
    save_checkpoint(run + "/checkpoints/last.safetensors", model, &optimizer, balancer.get(), &st,
                    {{"config", to_yaml(cfg)}});
  };
  const int64_t total_steps = steps_per_epoch * cfg.train.epochs;
  auto run_start = std::chrono::steady_clock::now();
  const int64_t first_step = st.step;
  bool tty = !opts.quiet && stdout_is_tty();

  // Validation, the best checkpoint and early stopping; at epoch ends and every
  // train.val_every_steps steps.
  auto validate = [&](bool epoch_end) {
    EvalOutcome e = evaluate(model, val_loader, cfg, &objective, cfg.log.visuals);
    EvalRecord er;
    er.epoch = static_cast<int>(st.epoch + 1);
    er.step = st.step;
    er.loss = e.loss;
    for (auto& [t, l] : e.task_losses) er.task_losses.emplace_back(t, l);
    er.segmentation = e.segmentation;
    er.class_names = class_names;
    er.depth = e.depth;
    er.time_s = e.seconds;
    auto rec = eval_record(er);
    metrics.log(rec);
    events.add_scalars(record_scalars(rec), st.step);
    for (size_t i = 0; i < e.panels.size(); ++i) {
      events.add_image("val/" + e.panel_names[i], e.panels[i], st.step);
      char name[64];
      if (epoch_end)
        std::snprintf(name, sizeof name, "/visuals/epoch%03lld_%zu.png", static_cast<long long>(st.epoch + 1), i);
      else
        std::snprintf(name, sizeof name, "/visuals/step%07lld_%zu.png", static_cast<long long>(st.step), i);
      write_png(run + name, e.panels[i]);
    }
    events.flush();
    say(format_eval_line(er));
    std::optional<double> v = monitor_value(e, cfg.train.monitor);
    MTL_CHECK(v.has_value(), "train.monitor: ", to_string(cfg.train.monitor), " is not computed for model.tasks");
    const bool higher = monitor_higher_is_better(cfg.train.monitor);
    const bool improved = !st.best || (higher ? *v > *st.best + cfg.train.min_delta : *v < *st.best - cfg.train.min_delta);
    if (improved) {
      st.best = *v;
      st.best_epoch = st.epoch + 1;
      st.bad_evals = 0;
      save_checkpoint(run + "/checkpoints/best.safetensors", model, nullptr, nullptr, nullptr,
                      {{"epoch", std::to_string(st.epoch + 1)},
                       {"monitor", std::string(to_string(cfg.train.monitor))},
                       {"value", std::to_string(*v)},
                       {"config", to_yaml(cfg)}});
      say("new best " + std::string(to_string(cfg.train.monitor)) + " " + std::to_string(*v) + " (epoch " +
          std::to_string(st.epoch + 1) + "): saved " + run + "/checkpoints/best.safetensors");
    } else if (cfg.train.patience > 0 && ++st.bad_evals >= cfg.train.patience) {
      say("early stopping: " + std::string(to_string(cfg.train.monitor)) + " has not improved for " +
          std::to_string(st.bad_evals) + " validations");
      summary.early_stopped = true;
      st.finished = true;
    }
  };

  while (st.epoch < cfg.train.epochs && !st.finished) {
    train_loader.restore({st.epoch, st.batch});
    Batch b;
    auto t_wait = std::chrono::steady_clock::now();
    while (true) {
      if (!train_loader.next(b)) break;
      auto t_data = std::chrono::steady_clock::now();
      models::ESANetOutput out = model.forward(b.rgb, b.depth);
      TaskLosses tl = objective.compute(out, b);
      BalancedLoss bl = balancer->combine(tl.task);
      Tensor total = accumulate > 1 ? ops::mul_scalar(bl.total, 1.0 / accumulate) : bl.total;
      // The NaN guard needs the values on the host: one read of a few scalars per step.
      std::map<std::string, double> values;
      for (auto& [k, v] : tl.task) values[k] = v.item();
      values["total"] = bl.total.item();
      ++st.batch;
      ++st.batches_seen;
      if (!all_finite(values)) {
        MTL_CHECK(cfg.train.skip_nonfinite, "non-finite loss at epoch ", st.epoch + 1, " step ", st.step + 1, ": ",
                  describe_losses(values), " (set train.skip_nonfinite: true to skip such steps)");
        ++st.skipped_steps;
        optimizer.zero_grad();
        say("warning: skipped step " + std::to_string(st.step + 1) + " with a non-finite loss: " + describe_losses(values));
        continue;
      }
      total.backward();
      for (auto& [k, v] : tl.task) st.epoch_loss_sum[k] += values[k];
      ++st.epoch_batches;
      if (st.batches_seen % accumulate != 0) continue;
      const double lr = schedule.lr(st.step);
      Tensor grad_norm = optimizer.step(lr);
      optimizer.zero_grad();
      ++st.step;
      auto t_end = std::chrono::steady_clock::now();

      if (st.step % cfg.log.every == 0 || st.step == total_steps) {
        TrainRecord r;
        r.epoch = static_cast<int>(st.epoch + 1);
        r.step = st.step;
        r.lr = lr;
        r.loss = values["total"];
        for (auto& t : tasks) r.task_losses.emplace_back(t, values[t]);
        for (auto& [t, w] : bl.weights) r.task_weights.emplace_back(t, w.item());
        if (grad_norm.defined()) r.extra.emplace_back("grad_norm", grad_norm.item());
        if (sources.size() > 1) {
          // Each source's own mean loss within this batch.
          std::vector<double> src = b.source.to_f64_vector();
          for (auto& [t, ps] : tl.per_sample) {
            std::vector<double> v = ps.to_f64_vector();
            for (size_t s = 0; s < sources.size(); ++s) {
              double sum = 0;
              int n = 0;
              for (size_t i = 0; i < v.size(); ++i)
                if (static_cast<size_t>(src[i]) == s) sum += v[i], ++n;
              if (n) r.extra.emplace_back("loss/" + t + "/" + sources[s].name, sum / n);
            }
          }
        }
        if (st.skipped_steps) r.extra.emplace_back("skipped_steps", static_cast<double>(st.skipped_steps));
        r.data_time = std::chrono::duration<double>(t_data - t_wait).count();
        r.step_time = std::chrono::duration<double>(t_end - t_wait).count();
        r.images_per_s = static_cast<double>(b.size() * accumulate) / std::max(r.step_time, 1e-9);
        if (device.is_cuda()) r.memory_mb = static_cast<double>(cuda::allocator_stats().allocated) / (1 << 20);
        auto rec = train_record(r);
        metrics.log(rec);
        events.add_scalars(record_scalars(rec), st.step);
        events.flush();
        Progress p;
        p.epochs = static_cast<int>(cfg.train.epochs);
        p.total_steps = total_steps;
        double elapsed = std::chrono::duration<double>(t_end - run_start).count();
        int64_t done = st.step - first_step;
        p.eta_s = done > 0 ? elapsed / static_cast<double>(done) * static_cast<double>(total_steps - st.step) : -1;
        if (!opts.quiet) {
          if (tty) std::cout << "\r\33[2K";
          std::cout << format_train_line(r, p) << std::endl;
          if (tty) std::cout << progress_bar(st.step, total_steps) << std::flush;
        }
      }
      if (cfg.train.val_every_steps > 0 && st.step % cfg.train.val_every_steps == 0 && st.batch < batches_per_epoch) {
        if (tty) std::cout << "\r\33[2K";
        validate(false);
        if (st.finished) {
          save_last();
          break;
        }
      }
      bool stop = stop_requested().load() || (opts.stop_after_steps && st.step >= *opts.stop_after_steps);
      if (stop) {
        save_last();
        if (tty) std::cout << "\n";
        say("interrupted at step " + std::to_string(st.step) + ": saved " + run +
            "/checkpoints/last.safetensors; continue with --resume " + run);
        summary.interrupted = true;
        summary.epochs_done = st.epoch;
        summary.steps = st.step;
        summary.best = st.best;
        summary.best_epoch = st.best_epoch;
        return summary;
      }
      t_wait = std::chrono::steady_clock::now();
    }
    if (tty) std::cout << "\r\33[2K" << std::flush;
    if (st.finished) break;  // early stopping at a step-based validation

    // ---- end of epoch ----
    std::map<std::string, double> means;
    for (auto& [k, s] : st.epoch_loss_sum) means[k] = s / static_cast<double>(std::max<int64_t>(st.epoch_batches, 1));
    balancer->end_epoch(means);
    st.epoch_loss_sum.clear();
    st.epoch_batches = 0;
    st.batch = 0;
    const bool last_epoch = st.epoch + 1 == cfg.train.epochs;
    if ((st.epoch + 1) % cfg.train.val_every == 0 || last_epoch) validate(true);
    // The epoch is done: the saved state points at the next one.
    ++st.epoch;
    if (last_epoch) st.finished = true;
    save_last();
  }
  summary.epochs_done = st.epoch;
  summary.steps = st.step;
  summary.best = st.best;
  summary.best_epoch = st.best_epoch;
  if (st.best) summary.best_checkpoint = run + "/checkpoints/best.safetensors";
  say("done: " + std::to_string(st.step) + " steps; results in " + run);
  return summary;
}

}  // namespace mtl::train
