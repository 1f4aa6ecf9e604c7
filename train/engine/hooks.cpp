#include "train/engine/hooks.h"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <filesystem>

#include "core/allocator.h"
#include "core/error.h"
#include "train/eval/eval_job.h"
#include "train/eval/evaluate.h"

namespace mtl::train {

// ---- schedule ----

void LrScheduleHook::before_step(Trainer& t) { t.set_lr(schedule_.lr(t.schedule_step())); }

// ---- logging ----

void LoggingHook::before_train(Trainer& t) {
  start_ = std::chrono::steady_clock::now();
  first_step_ = t.state().step;
}

void LoggingHook::after_step(Trainer& t) {
  const TrainState& st = t.state();
  const int64_t every = t.config().log.every;
  if (st.step % every != 0 && t.schedule_step() != t.total_steps()) return;
  const StepInfo& s = t.last_step();
  TrainRecord r;
  r.epoch = static_cast<int>(st.epoch + 1);
  r.step = st.step;
  r.lr = s.lr;
  r.loss = s.losses.at("total");
  for (const std::string& task : t.objective().tasks()) {
    r.task_losses.emplace_back(task, s.losses.at(task));
    r.loss_unweighted += s.losses.at(task);
  }
  for (auto& [part, v] : s.task_losses.parts) r.loss_parts.emplace_back(part, v.item());
  for (auto& [task, w] : s.balanced.weights) r.task_weights.emplace_back(task, w.item());
  if (s.grad_norm.defined()) r.extra.emplace_back("grad_norm", s.grad_norm.item());
  const std::vector<DataSource>& sources = t.sources();
  if (sources.size() > 1) {
    // Each source's own mean loss within the step's last batch.
    const std::vector<double> src = s.batch.source.to_f64_vector();
    for (auto& [task, ps] : s.task_losses.per_sample) {
      const std::vector<double> v = ps.to_f64_vector();
      for (size_t k = 0; k < sources.size(); ++k) {
        double sum = 0;
        int n = 0;
        for (size_t i = 0; i < v.size(); ++i)
          if (static_cast<size_t>(src[i]) == k) sum += v[i], ++n;
        if (n) r.extra.emplace_back("loss/" + task + "/" + sources[k].name, sum / n);
      }
    }
  }
  if (st.skipped_steps) r.extra.emplace_back("skipped_steps", static_cast<double>(st.skipped_steps));
  r.data_time = s.data_time;
  r.step_time = s.step_time;
  r.images_per_s = static_cast<double>(s.images) / std::max(s.step_time, 1e-9);
  if (t.device().is_cuda()) r.memory_mb = static_cast<double>(cuda::allocator_stats().allocated) / (1 << 20);
  Progress p;
  p.epochs = static_cast<int>(t.config().train.epochs);
  p.total_steps = t.total_steps();
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const int64_t done = st.step - first_step_;
  p.eta_s =
      done > 0 ? elapsed / static_cast<double>(done) * static_cast<double>(t.total_steps() - t.schedule_step()) : -1;
  t.records().put(r, p);
}

void LoggingHook::after_epoch(Trainer& t) {
  const EpochInfo& e = t.last_epoch();
  EpochRecord r;
  r.epoch = static_cast<int>(e.epoch);
  r.step = t.state().step;
  for (const std::string& task : t.objective().tasks())
    if (auto it = e.mean_losses.find(task); it != e.mean_losses.end()) r.task_losses.emplace_back(task, it->second);
  r.segmentation = e.segmentation;
  r.images = e.images;
  r.time_s = e.seconds;
  t.records().put(r);
}

// ---- validation ----

void ValidationHook::after_step(Trainer& t) {
  const int every = t.config().train.val_every_steps;
  const TrainState& st = t.state();
  // A step that ends the epoch is validated by after_epoch, if at all.
  if (every > 0 && st.step % every == 0 && st.batch < t.batches_in_epoch()) validate(t, st.epoch + 1, false);
}

void ValidationHook::after_epoch(Trainer& t) {
  const TrainState& st = t.state();
  if (st.epoch % t.config().train.val_every == 0 || st.epoch == t.config().train.epochs) validate(t, st.epoch, true);
}

void ValidationHook::validate(Trainer& t, int64_t epoch, bool epoch_end) {
  const Config& cfg = t.config();
  TrainState& st = t.state();
  EvalOutcome e = evaluate(t.model(), t.val_loader(), cfg, &t.objective(), cfg.log.visuals, t.communicator());
  EvalRecord er;
  er.epoch = static_cast<int>(epoch);
  er.step = st.step;
  er.loss = e.loss;
  for (auto& [task, l] : e.task_losses) er.task_losses.emplace_back(task, l);
  er.segmentation = e.metrics.segmentation;
  for (const ClassInfo& c : cfg.data.classes) er.class_names.push_back(c.name);
  er.depth = e.metrics.depth;
  er.time_s = e.seconds;
  if (e.timed_images > 0 && e.forward_seconds > 0) {
    er.ms_per_image = 1000.0 * e.forward_seconds / static_cast<double>(e.timed_images);
    er.images_per_s = static_cast<double>(e.timed_images) / e.forward_seconds;
  }
  er.panels = std::move(e.panels);
  er.epoch_end = epoch_end;
  t.records().put(er);

  const std::optional<double> v = monitor_value(e, cfg.train.monitor);
  MTL_CHECK(v.has_value(), "train.monitor: ", to_string(cfg.train.monitor), " is not computed for model.tasks");
  const double d = cfg.train.min_delta;
  const bool improved =
      !st.best || (monitor_higher_is_better(cfg.train.monitor) ? *v > *st.best + d : *v < *st.best - d);
  keep_top_k(t, *v, epoch);
  if (improved) {
    st.best = *v;
    st.best_epoch = epoch;
    st.bad_evals = 0;
    best_ = er;
    best_->panels.clear();
    t.save_best(*v);
    t.message("new best " + std::string(to_string(cfg.train.monitor)) + " " + std::to_string(*v) + " (epoch " +
              std::to_string(epoch) + "): saved " + t.run_dir() + "/checkpoints/best.safetensors");
  } else if (cfg.train.patience > 0 && ++st.bad_evals >= cfg.train.patience) {
    t.message("early stopping: " + std::string(to_string(cfg.train.monitor)) + " has not improved for " +
              std::to_string(st.bad_evals) + " validations");
    t.early_stop();
  }
}

void ValidationHook::keep_top_k(Trainer& t, double value, int64_t epoch) {
  const int k = t.config().checkpoint.keep_top_k;
  if (k <= 0) return;
  TrainState& st = t.state();
  const bool higher = monitor_higher_is_better(t.config().train.monitor);
  auto better = [&](double a, double b) { return higher ? a > b : a < b; };
  if (static_cast<int>(st.top_k.size()) >= k && !better(value, st.top_k.back().first)) return;
  char name[64];
  std::snprintf(name, sizeof name, "epoch%03lld_step%07lld.safetensors", static_cast<long long>(epoch),
                static_cast<long long>(st.step));
  const std::string path = t.run_dir() + "/checkpoints/top/" + name;
  t.save_weights(path, value, epoch);
  auto at = std::find_if(st.top_k.begin(), st.top_k.end(), [&](const auto& e) { return better(value, e.first); });
  st.top_k.insert(at, {value, path});
  while (static_cast<int>(st.top_k.size()) > k) {
    std::error_code ec;
    if (t.is_writer()) std::filesystem::remove(st.top_k.back().second, ec);  // a file already gone is no matter
    st.top_k.pop_back();
  }
}

void ValidationHook::after_train(Trainer& t) {
  const TrainState& st = t.state();
  if (!st.best) return;
  std::string line = "best " + std::string(to_string(t.config().train.monitor)) + " " + std::to_string(*st.best) +
                     " at epoch " + std::to_string(st.best_epoch);
  if (best_) line += " (" + format_eval_line(*best_) + ")";
  t.message(line + ": " + t.run_dir() + "/checkpoints/best.safetensors");
}

// ---- checkpoints ----

void CheckpointHook::after_step(Trainer& t) {
  if (t.state().finished) t.save_last();  // early stopping at a validation between epoch ends
}

void CheckpointHook::after_epoch(Trainer& t) {
  t.save_last();
  const int every = t.config().checkpoint.every_epochs;
  const int64_t epoch = t.state().epoch;
  if (every > 0 && epoch % every == 0) {
    char name[32];
    std::snprintf(name, sizeof name, "epoch%03lld.safetensors", static_cast<long long>(epoch));
    t.save_state(t.run_dir() + "/checkpoints/" + name);
  }
}

// ---- test ----

void TestHook::after_train(Trainer& t) {
  // Rank 0 alone, as mtl_eval does it: the other ranks are done once training is.
  if (!t.is_writer()) return;
  if (t.interrupted() && !t.config().train.test_on_interrupt) return;
  for (const DataSource& s : t.config().data.resolved_sources())
    if (!std::filesystem::is_directory(std::filesystem::path(s.root) / "test")) {
      t.message("no test split ('" + s.root + "/test' does not exist): nothing evaluated after training");
      return;
    }
  EvalToolOptions o;
  o.run_dir = t.run_dir();
  o.split = "test";
  o.json_path = t.run_dir() + "/test_metrics.json";
  o.panel_dir = t.run_dir() + "/eval_test";
  o.visuals = t.config().log.visuals;
  o.device = t.device();
  o.speed.min_seconds = 0.5;  // a speed figure, not a benchmark: no reason to hold up the run
  t.message("testing the best checkpoint on the test split ...");
  EvalReport r;
  try {
    r = run_evaluation(o);
  } catch (const Error& e) {
    throw Error("training finished (checkpoints in " + t.run_dir() +
                "/checkpoints/), but the test afterwards failed: " + e.what());
  }
  for (const std::string& n : r.notes) t.message("note: " + n);
  std::string line = "test (" + std::to_string(r.images) + " images, original resolution):";
  char buf[160];
  if (r.segmentation) {
    std::snprintf(buf, sizeof buf, " miou %.4f pixel_acc %.4f mean_f1 %.4f", r.segmentation->miou,
                  r.segmentation->pixel_accuracy, r.segmentation->mean_f1);
    line += buf;
  }
  if (r.depth) {
    std::snprintf(buf, sizeof buf, " | depth rmse %.4f abs_rel %.4f delta1 %.4f", r.depth->rmse, r.depth->abs_rel,
                  r.depth->delta1);
    line += buf;
  }
  t.message(line + " | " + o.json_path);
}

// ---- interruption ----

std::atomic<bool>& stop_requested() {
  static std::atomic<bool> flag{false};
  return flag;
}

namespace {
void on_signal(int) { stop_requested().store(true); }
}  // namespace

// The handlers in place while training runs, and the previous ones restored after.
struct InterruptHook::Signals {
  struct sigaction old_int {}, old_term {};
  Signals() {
    stop_requested().store(false);
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
  }
  ~Signals() {
    sigaction(SIGINT, &old_int, nullptr);
    sigaction(SIGTERM, &old_term, nullptr);
  }
};

InterruptHook::InterruptHook() = default;
InterruptHook::~InterruptHook() = default;

void InterruptHook::before_train(Trainer&) { signals_ = std::make_unique<Signals>(); }

void InterruptHook::after_train(Trainer&) { signals_.reset(); }

void InterruptHook::after_step(Trainer& t) {
  const TrainState& st = t.state();
  if (st.finished) return;  // early stopping has saved and ends the run anyway
  const auto& limit = t.options().stop_after_steps;
  const bool mine = stop_requested().load() || (limit && st.step >= *limit);
  // A signal to any rank stops them all at the same step.
  std::string where;
  if (Communicator* c = t.communicator()) {
    const std::vector<std::vector<double>> all = c->all_gather({mine ? 1.0 : 0.0}, "the stop requests");
    for (size_t r = 0; r < all.size(); ++r)
      if (all[r][0] != 0) where += (where.empty() ? " (requested on rank " : ", ") + std::to_string(r);
    if (where.empty()) return;
    where += ")";
  } else if (!mine) {
    return;
  }
  t.save_last();
  t.message("interrupted at step " + std::to_string(st.step) + where + ": saved " + t.run_dir() +
            "/checkpoints/last.safetensors; continue with --resume " + t.run_dir());
  t.stop(true);
}

// ---- the default set ----

std::vector<std::unique_ptr<HookBase>> default_hooks(const Trainer& t) {
  const Config& cfg = t.config();
  std::vector<std::unique_ptr<HookBase>> hooks;
  hooks.push_back(std::make_unique<LrScheduleHook>(
      make_schedule(cfg.schedule, cfg.optim.lr, t.steps_per_epoch(), cfg.train.epochs)));
  hooks.push_back(std::make_unique<LoggingHook>());
  hooks.push_back(std::make_unique<ValidationHook>());
  hooks.push_back(std::make_unique<CheckpointHook>());
  hooks.push_back(std::make_unique<InterruptHook>());
  hooks.push_back(std::make_unique<TestHook>());
  return hooks;
}

}  // namespace mtl::train
