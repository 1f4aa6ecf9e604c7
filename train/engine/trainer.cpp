#include "train/engine/trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <sstream>

#include "core/cuda_context.h"
#include "core/error.h"
#include "core/file_io.h"
#include "ops/ops.h"
#include "train/data/class_weights.h"
#include "train/data/dataset_stats.h"
#include "train/dist/sync_batch_norm.h"
#include "train/run/pretrained.h"
#include "train/run/run_folder.h"
#include "train/run/runtime.h"

namespace mtl::train {

namespace fs = std::filesystem;

namespace {

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

// The first line where two ranks' resolved configurations differ, for the error.
std::string first_difference(const std::string& a, const std::string& b) {
  std::istringstream sa(a), sb(b);
  std::string la, lb;
  for (int line = 1;; ++line) {
    const bool more_a = static_cast<bool>(std::getline(sa, la)), more_b = static_cast<bool>(std::getline(sb, lb));
    if (!more_a && !more_b) return "";
    if (!more_a || !more_b || la != lb)
      return "line " + std::to_string(line) + " '" + (more_a ? la : "") + "' against '" + (more_b ? lb : "") + "'";
  }
}

}  // namespace

Trainer::Trainer(Config cfg, TrainOptions opts)
    : cfg_(std::move(cfg)), opts_(std::move(opts)), device_(setup_runtime(cfg_.runtime, opts_.device)) {
  validate(cfg_);
  if (!opts_.quiet && is_writer()) records_.add(std::make_unique<ConsoleWriter>());
  Communicator* comm = communicator();
  if (comm) {
    // Every collective below relies on equal models and batch sizes: a rank given another file
    // or another --set would otherwise fail later with a shape error, or wait forever.
    const std::vector<std::string> all = comm->all_gather_bytes(to_yaml(cfg_), "the configurations");
    for (size_t r = 1; r < all.size(); ++r)
      MTL_CHECK(all[r] == all[0], "rank ", r, " was given another configuration than rank 0 (every rank must ",
                "train the same one): the resolved configurations differ at ", first_difference(all[0], all[r]));
  }

  // ---- the run folder's name, and the state to resume ----
  std::optional<Checkpoint> resume;
  if (!opts_.resume_dir.empty()) {
    run_dir_ = opts_.resume_dir;
    const std::string last = run_dir_ + "/checkpoints/last.safetensors";
    MTL_CHECK(fs::exists(last), "--resume ", run_dir_, ": no checkpoint at '", last, "'");
    resume = load_checkpoint(last);
    MTL_CHECK(resume->state.has_value(), "'", last, "' holds no training state (a weights-only file?)");
  } else {
    run_dir_ = opts_.output_dir.empty() ? default_run_dir(opts_.config_name) : opts_.output_dir;
    // The ranks' clocks may disagree on the time in the default name: rank 0's is the run's.
    if (comm && opts_.output_dir.empty()) run_dir_ = comm->broadcast_string(run_dir_, 0, "the run folder's name");
    MTL_CHECK(!fs::exists(run_dir_ + "/checkpoints/last.safetensors"), "the run folder '", run_dir_,
              "' already holds a run; continue it with --resume ", run_dir_, " or choose another --output");
  }

  // ---- data ----
  const bool semantic = cfg_.model.has_task(Task::semantic);
  message("scanning data (train, val) ...");
  ScanResult train_scan = scan_split(cfg_.data, "train", semantic);
  ScanResult val_scan = scan_split(cfg_.data, "val", semantic);
  const DatasetStats stats =
      load_or_compute_stats(train_scan.dataset, default_stats_cache(cfg_.data), &train_scan.stats);
  std::vector<double> weights;
  if (semantic) weights = class_weights(cfg_.loss, stats, cfg_.model.num_classes);
  const int64_t train_samples = static_cast<int64_t>(train_scan.dataset.size());
  const int64_t val_samples = static_cast<int64_t>(val_scan.dataset.size());
  LoaderOptions train_opts = LoaderOptions::training(cfg_, device_),
                val_opts = LoaderOptions::evaluation(cfg_, device_);
  // Each rank its share of every batch; validation sees every sample once over the ranks.
  train_opts.rank = val_opts.rank = rank();
  train_opts.world_size = val_opts.world_size = world_size();
  val_opts.lockstep = false;
  train_loader_ = std::make_unique<Loader>(train_scan.dataset, stats, train_opts);
  val_loader_ = std::make_unique<Loader>(val_scan.dataset, stats, val_opts);
  batches_per_epoch_ = train_loader_->batches_per_epoch();
  MTL_CHECK(batches_per_epoch_ > 0, "the training split has ", train_samples,
            " usable samples, fewer than one batch of train.batch_size ", cfg_.train.batch_size,
            " (drop_last is on)");
  accumulate_ = std::max(1, cfg_.optim.accumulate);
  steps_per_epoch_ = std::max<int64_t>(1, batches_per_epoch_ / accumulate_);

  // ---- model, objective, balancer, optimiser ----
  model_ = std::make_unique<models::ESANet>(cfg_.model, model_build_options(cfg_));
  model_->set_compute_dtype(compute_dtype(cfg_.runtime.precision));
  objective_ = std::make_unique<Objective>(cfg_, weights, device_);
  balancer_ = make_balancer(cfg_.loss, objective_->tasks());
  // A class map seeds the class adapter; a file that holds an adapter of its own overrides it.
  if (!cfg_.data.class_map_from_pretrained.empty()) model_->init_class_adapter(cfg_.data.class_map_from_pretrained);
  if (!opts_.init_from.empty())
    message(load_pretrained(*model_, read_pretrained(opts_.init_from), cfg_.model.init_min_fraction, opts_.init_from)
                .summary);
  freeze_modules(*model_, cfg_.train.freeze);
  model_->to(device_);
  balancer_->to(device_);
  model_->train();
  parameters_ = model_->named_parameters();
  for (auto& [n, t] : balancer_->named_parameters()) parameters_.emplace_back("balancer." + n, t);
  AdamWOptions ao;
  ao.beta1 = cfg_.optim.betas[0];
  ao.beta2 = cfg_.optim.betas[1];
  ao.eps = cfg_.optim.eps;
  ao.max_grad_norm = cfg_.optim.grad_clip;
  optimizer_ = std::make_unique<AdamW>(
      make_param_groups(parameters_, cfg_.optim.weight_decay, cfg_.optim.lr_scale, cfg_.train.freeze), ao);
  lr_ = cfg_.optim.lr;
  if (semantic) {
    ops::ConfusionOptions co;
    co.ignore_index = cfg_.data.ignore_index;
    co.check_labels = false;  // validated by the scan; a check would cost a host sync per batch
    train_confusion_.emplace(cfg_.model.num_classes, device_, co);
  }

  if (resume) {
    model_->load_state_dict(resume->model, true, "the checkpoint of " + run_dir_);
    balancer_->load_state_dict(resume->balancer, true, "the checkpoint's balancer state");
    optimizer_->load_state_dict(resume->optimizer, "the checkpoint's optimizer state");
    st_ = *resume->state;
    adopt_global_batch();
    if (auto it = resume->loop.find("epoch_images"); it != resume->loop.end())
      epoch_images_ = static_cast<int64_t>(it->second.item());
    if (auto it = resume->loop.find("train_confusion"); it != resume->loop.end() && train_confusion_) {
      MTL_CHECK(it->second.shape() == train_confusion_->counts().shape() && it->second.dtype() == DType::i64,
                "the checkpoint of ", run_dir_, " holds training counts ", it->second.describe(), " for ",
                cfg_.model.num_classes, " classes");
      // Saved summed over the ranks: rank 0 carries them on, the others start from zero.
      if (is_writer()) copy_bytes(train_confusion_->counts(), it->second.to(device_));
    }
    message("resuming " + run_dir_ + " at epoch " + std::to_string(st_.epoch + 1) + ", batch " +
            std::to_string(st_.batch) + ", step " + std::to_string(st_.step));
    if (st_.finished) {
      message("the run had already finished");
      already_finished_ = true;
      return;
    }
  } else {
    st_.global_batch = train_loader_->global_batch();
  }

  if (comm) {
    // One replica per rank: every rank starts from rank 0's parameters and buffers (its loaded
    // checkpoint, or its initialisation), and averages its gradients with the others' every step.
    if (cfg_.model.sync_bn) convert_sync_batch_norm(*model_, opts_.comm);
    NamedTensors state = parameters_, buffers = model_->named_buffers();
    for (auto& [n, t] : buffers) state.emplace_back(n, t);
    for (auto& [n, t] : balancer_->named_buffers()) state.emplace_back("balancer." + n, t);
    broadcast_tensors(state, *comm, 0, "the initial parameters and buffers");
    // Per-rank BatchNorm statistics drift apart: rank 0's are everyone's after each step (DDP's
    // broadcast_buffers). Synchronised ones are the same everywhere already.
    grad_sync_ = std::make_unique<GradientSync>(parameters_, cfg_.model.sync_bn ? NamedTensors{} : buffers, opts_.comm);
  }
  if (!is_writer()) return;

  // ---- the run folder, made only now that the data, the model and any checkpoint have been read ----
  fs::create_directories(run_dir_ + "/checkpoints");
  fs::create_directories(run_dir_ + "/visuals");
  if (!resume) write_file_atomic(run_dir_ + "/config.yaml", to_yaml(cfg_, true));
  // mtl_eval and mtl_predict standardise depth with exactly these statistics, wherever the data went.
  save_stats(run_dir_ + "/mtl_stats.json", stats, train_scan.dataset);
  // Before the console, so that a record on the screen is already in the files.
  records_.add_front(std::make_unique<PanelFileWriter>(run_dir_ + "/visuals"));
  records_.add_front(std::make_unique<TensorBoardWriter>(run_dir_));
  records_.add_front(std::make_unique<JsonlWriter>(run_dir_ + "/metrics.jsonl"));
  message("run folder: " + run_dir_ + " | device " + device_.str() +
          (device_.is_cuda() ? " (" + cuda::device_name() + ")" : "") +
          (comm ? " x " + std::to_string(comm->size()) + " processes (" + comm->backend() + ")" : "") + " | " +
          std::to_string(train_samples) + " training and " + std::to_string(val_samples) + " validation samples | " +
          std::to_string(model_->num_parameters()) + " parameters");
}

const std::vector<DataSource>& Trainer::sources() const { return train_loader_->dataset().index().sources; }

void Trainer::stop(bool interrupted) {
  stop_ = true;
  interrupted_ = interrupted_ || interrupted;
}

void Trainer::early_stop() {
  st_.finished = true;
  early_stopped_ = true;
}

void Trainer::save_state(const std::string& path) {
  std::map<std::string, Tensor> loop;
  if (train_confusion_) {
    loop["train_confusion"] = train_confusion_->counts();
    if (communicator()) {
      loop["train_confusion"] = train_confusion_->counts().clone();
      communicator()->all_reduce(loop["train_confusion"], ReduceOp::sum, "the training counts");
    }
  }
  loop["epoch_images"] = full({}, static_cast<double>(epoch_images_), DType::i64);
  if (!is_writer()) return;
  save_checkpoint(path, *model_, optimizer_.get(), balancer_.get(), &st_, {{"config", to_yaml(cfg_)}}, loop);
}

void Trainer::save_weights(const std::string& path, double value, int64_t epoch) {
  if (!is_writer()) return;
  save_checkpoint(path, *model_, nullptr, nullptr, nullptr,
                  {{"epoch", std::to_string(epoch)},
                   {"monitor", std::string(to_string(cfg_.train.monitor))},
                   {"value", std::to_string(value)},
                   {"config", to_yaml(cfg_)}});
}

bool Trainer::run_step() {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  Batch b;
  while (train_loader_->next(b)) {
    const auto t_data = Clock::now();
    models::ESANetOutput out = model_->forward(b.rgb, b.depth);
    TaskLosses tl = objective_->compute(out, b);
    BalancedLoss bl = balancer_->combine(tl.task);
    Tensor total = accumulate_ > 1 ? ops::mul_scalar(bl.total, 1.0 / accumulate_) : bl.total;
    // The non-finite guard needs the values on the host: one read of a few scalars per batch.
    std::map<std::string, double> values;
    for (auto& [k, v] : tl.task) values[k] = v.item();
    values["total"] = bl.total.item();
    if (communicator()) {
      values = global_losses(values, b);
      // Unequal shares (a final partial batch): each rank's mean loss weighs by its samples, so
      // that the averaged gradient is the global batch's.
      const int64_t even = b.size() * world_size();
      if (even != b.global_size)
        total = ops::mul_scalar(total, static_cast<double>(even) / static_cast<double>(b.global_size));
    }
    ++st_.batch;
    ++st_.batches_seen;
    if (!all_finite(values)) {
      non_finite("loss", values);
      continue;
    }
    total.backward();
    for (auto& h : hooks_) h->after_backward(*this);
    for (auto& [k, v] : tl.task) st_.epoch_loss_sum[k] += values[k];
    ++st_.epoch_batches;
    epoch_images_ += b.global_size;
    if (train_confusion_ && b.labels.defined()) train_confusion_->update(out.semantic.detach(), b.labels);
    if (st_.batches_seen % accumulate_ != 0) continue;
    if (grad_sync_) grad_sync_->synchronize();
    // The losses can be finite while a gradient is not (a NaN from a degenerate normalisation,
    // say): the global norm catches every one of them.
    const double norm = optimizer_->grad_norm().item();
    if (!std::isfinite(norm)) {
      values["grad_norm"] = norm;
      non_finite("gradient norm", values);
      continue;
    }
    last_.lr = lr_;
    last_.grad_norm = optimizer_->step(lr_);
    optimizer_->zero_grad();
    ++st_.step;
    last_.losses = std::move(values);
    last_.balanced = std::move(bl);
    last_.task_losses = std::move(tl);
    last_.images = b.global_size * accumulate_;
    last_.batch = std::move(b);
    last_.data_time = std::chrono::duration<double>(t_data - t0).count();
    last_.step_time = std::chrono::duration<double>(Clock::now() - t0).count();
    st_.epoch_seconds += last_.step_time;
    return true;
  }
  st_.epoch_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
  return false;
}

void Trainer::non_finite(const std::string& what, const std::map<std::string, double>& values) {
  const std::string where = "epoch " + std::to_string(st_.epoch + 1) + " step " + std::to_string(st_.step + 1);
  if (cfg_.train.on_nonfinite == OnNonFinite::stop) {
    save_last();
    throw Error("non-finite " + what + " at " + where + ": " + describe_losses(values) + "; saved " + run_dir_ +
                "/checkpoints/last.safetensors (train.on_nonfinite: stop; skip would skip such steps)");
  }
  ++st_.skipped_steps;
  optimizer_->zero_grad();
  message("warning: skipped " + where + " with a non-finite " + what + ": " + describe_losses(values));
}

void Trainer::end_epoch() {
  std::map<std::string, double> means;
  for (auto& [k, s] : st_.epoch_loss_sum)
    means[k] = s / static_cast<double>(std::max<int64_t>(st_.epoch_batches, 1));
  balancer_->end_epoch(means);
  last_epoch_ = {st_.epoch + 1, means, std::nullopt, epoch_images_, st_.epoch_seconds};
  if (train_confusion_) {
    if (communicator()) communicator()->all_reduce(train_confusion_->counts(), ReduceOp::sum, "the training counts");
    last_epoch_.segmentation = train_confusion_->compute();  // one read per epoch
    train_confusion_->reset();
  }
  epoch_images_ = 0;
  st_.epoch_seconds = 0;
  st_.epoch_loss_sum.clear();
  st_.epoch_batches = 0;
  st_.batch = 0;
  st_.epoch_offset = 0;
  ++st_.epoch;
  if (st_.epoch == cfg_.train.epochs) st_.finished = true;
}

std::map<std::string, double> Trainer::global_losses(const std::map<std::string, double>& values, const Batch& b) {
  std::vector<double> mine;
  for (auto& [k, v] : values) mine.push_back(v);
  mine.push_back(static_cast<double>(b.size()));
  const std::vector<std::vector<double>> all = communicator()->all_gather(mine, "the batch losses");
  std::map<std::string, double> out;
  size_t i = 0;
  for (auto& [k, v] : values) {
    double sum = 0;
    for (const std::vector<double>& r : all) sum += r[i] * (r.back() / static_cast<double>(b.global_size));
    out[k] = sum;
    ++i;
  }
  return out;
}

void Trainer::adopt_global_batch() {
  const int64_t global = train_loader_->global_batch();
  // A checkpoint from before data parallelism was written by one process.
  const int64_t saved = st_.global_batch > 0 ? st_.global_batch : cfg_.train.batch_size;
  st_.global_batch = global;
  if (saved == global) return;
  const int64_t sample = st_.epoch_offset + st_.batch * saved;
  st_.epoch_offset = sample % global;
  st_.batch = sample / global;
  // The schedule continues at the same fraction of the run, now counted in steps of `global`.
  const int64_t at =
      std::llround(static_cast<double>(schedule_step()) * static_cast<double>(saved) / static_cast<double>(global));
  st_.schedule_offset = at - st_.step;
  message("the run was saved with a global batch of " + std::to_string(saved) + " samples, now " +
          std::to_string(global) + " (" + std::to_string(world_size()) + " x " + std::to_string(cfg_.train.batch_size) +
          "): epoch " + std::to_string(st_.epoch + 1) + " continues at sample " + std::to_string(sample) +
          ", the schedule at step " + std::to_string(at));
}

TrainSummary Trainer::train() {
  TrainSummary summary;
  summary.run_dir = run_dir_;
  if (!already_finished_) {
    for (auto& h : hooks_) h->before_train(*this);
    while (st_.epoch < cfg_.train.epochs && !st_.finished && !stop_) {
      train_loader_->restore({st_.epoch, st_.batch, st_.epoch_offset});
      bool epoch_done = false;
      while (!st_.finished && !stop_) {
        for (auto& h : hooks_) h->before_step(*this);
        if (!run_step()) {
          epoch_done = true;
          break;
        }
        for (auto& h : hooks_) h->after_step(*this);
      }
      if (!epoch_done) break;  // stopped, or early stopping at a validation between epoch ends
      end_epoch();
      for (auto& h : hooks_) h->after_epoch(*this);
    }
    for (auto& h : hooks_) h->after_train(*this);
  }
  summary.epochs_done = st_.epoch;
  summary.steps = st_.step;
  summary.best = st_.best;
  summary.best_epoch = st_.best_epoch;
  summary.interrupted = interrupted_;
  summary.early_stopped = early_stopped_;
  if (interrupted_ || already_finished_) return summary;
  if (st_.best) summary.best_checkpoint = run_dir_ + "/checkpoints/best.safetensors";
  message("done: " + std::to_string(st_.step) + " steps; results in " + run_dir_);
  return summary;
}

}  // namespace mtl::train
