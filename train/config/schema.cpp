#include "train/config/schema.h"

#include <set>

#include "train/config/custom_fields.h"

namespace mtl::train::schema {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// The Config member a field reads and writes.
#define ACC(expr) [](auto& c) -> auto& { return c.expr; }

void add_data(std::vector<Field>& f) {
  f.push_back(f_string("data.root", ACC(data.root),
                       "Folder holding train/, val/ and test/, each with images/, masks/ and depth/\n"
                       "(see docs/dataset_format.md). Relative paths start at the working directory."));
  f.back().present = [](const Config& c) { return c.data.sources.empty(); };
  f.push_back({"data.sources",
               "Several data sets mixed in one run, instead of data.root: a list of\n"
               "{name: real, root: data/real, weight: 1.0}; the weight scales the loss of that\n"
               "source's samples, and each batch carries every sample's source id.",
               read_sources, render_sources, nullptr});
  f.push_back(f_num("data.depth_scale", ACC(data.depth_scale), 0, true, kInf, false,
                    "Depth file units to metres: 0.001 for millimetres, 0.0001 for 1/10 mm (SUNRGB-D,\n"
                    "Kinect v2 samples), 0.0002 for TUM's 1/5000 m. A stored 0 means no measurement."));
  f.push_back(f_num("data.max_depth", ACC(data.max_depth), 0, true, kInf, false,
                    "Metres. Depth targets are clamped to it and divided by it, giving [0, 1]."));
  f.push_back(f_int("data.ignore_index", ACC(data.ignore_index), -1, 65535,
                    "Label value that contributes to no loss or metric."));
  f.push_back({"data.label_map",
               "Remaps stored mask values before use: {255: ignore, 40: 6} sends 255 to\n"
               "ignore_index and 40 to class 6. Unlisted values are used as stored.",
               read_label_map, render_label_map, nullptr});
  f.push_back({"data.classes",
               "Class list, in label order: a name and a display colour [r, g, b] for visuals.\n"
               "model.num_classes must equal its length.",
               read_classes, render_classes, nullptr});
  f.push_back({"data.batch_mix",
               "Samples of each source in every training batch, e.g. {real: 6, synthetic: 2}: each\n"
               "source is shuffled on its own and an epoch ends when the first one runs out. The\n"
               "counts name every source of data.sources and sum to train.batch_size. {} = off.",
               read_batch_mix, render_batch_mix, nullptr});
  f.push_back(f_enum<OnError>("data.on_error", ACC(data.on_error),
                              "What the scan before training does with bad samples (missing or undecodable\n"
                              "files, sizes that disagree, label values out of range): fail (one error\n"
                              "listing all of them) or skip (drop them with a warning that lists them)."));
  f.push_back({"data.class_map_from_pretrained",
               "With model.pretrained_classes: how the class adapter starts. For each new class id,\n"
               "the pretrained class ids it sums, e.g. {0: [0], 3: [1, 2]} (class 3 starts as the\n"
               "sum of pretrained classes 1 and 2); classes not listed start at random.",
               read_class_map, render_class_map, nullptr});
}

// The ranges are models::ModelConfig's own (kMaxClasses, kMaxWidth), so that the two agree.
void add_model(std::vector<Field>& f) {
  f.push_back(f_enum<models::Encoder>(
      "model.encoder", ACC(model.encoder),
      "Encoder depth for both the RGB and the depth branch: resnet18, resnet34 or resnet50\n"
      "(resnet50 always uses bottleneck blocks; model.block is ignored for it)."));
  f.push_back(f_enum<models::Block>("model.block", ACC(model.block),
                                    "Encoder residual block: basic (ResNet) or nbt1d (ESANet's NonBottleneck1D)."));
  f.push_back(f_enum<models::Context>(
      "model.context", ACC(model.context),
      "Context module after the encoder: ppm (bins 1, 5), appm (adaptive bins) or none."));
  f.push_back(f_int("model.num_classes", ACC(model.num_classes), 1, models::kMaxClasses,
                    "Semantic classes; must equal the length of data.classes."));
  f.push_back(f_enum<nn::UpsampleMode>(
      "model.upsampling", ACC(model.upsampling),
      "Decoder upsampling: learned (nearest x2 + depthwise 3x3, ESANet), bilinear or nearest."));
  f.push_back(f_enum<nn::NormKind>("model.norm", ACC(model.norm),
                                   "Normalisation layers: batchnorm, or groupnorm for small batches."));
  f.push_back(f_num("model.width", ACC(model.width), 0, true, models::kMaxWidth, false,
                    "Channel multiplier for encoder and decoder (1.0 = ESANet's widths)."));
  f.push_back({"model.tasks", "Tasks to train, a non-empty subset of [semantic, depth].", read_tasks, render_tasks,
               nullptr});
  f.push_back(f_enum<models::DepthHead>(
      "model.depth_head", ACC(model.depth_head),
      "Depth head: decoder (its own decoder, like the semantic one) or light (a small\n"
      "head on the shared decoder's features)."));
  f.push_back(f_enum<models::Modality>(
      "model.modality", ACC(model.modality),
      "Inputs: rgbd (both encoders, SE fusion), or rgb or depth alone through one encoder\n"
      "(ESANet's single-modality network; the other input is read but unused)."));
  f.push_back(f_int("model.pretrained_classes", ACC(model.pretrained_classes), 0, models::kMaxClasses,
                    "Keep a pretrained semantic head of this many classes (40 for NYUv2 weights) and\n"
                    "add a learned 1x1 convolution from them to num_classes (class_adapter); 0 = none:\n"
                    "a head whose class count differs is then left at its initialisation."));
  f.push_back(f_num("model.init_min_fraction", ACC(model.init_min_fraction), 0, false, 1, false,
                    "--init-from fails unless the file provides at least this fraction of the\n"
                    "encoders' tensors (a wrong or mismatched file must not train from scratch silently)."));
  f.push_back(f_bool("model.sync_bn", ACC(model.sync_bn),
                     "Data-parallel runs: BatchNorm statistics over the global batch (every process's\n"
                     "share, all-reduced in forward and backward) instead of each process's own; no\n"
                     "effect in one process or with model.norm: groupnorm (docs/distributed.md)."));
}

void add_loss(std::vector<Field>& f) {
  f.push_back(f_enum<Balance>("loss.balance", ACC(loss.balance),
                              "How the semantic and depth losses are combined: uncertainty (learned\n"
                              "homoscedastic weights), dwa (dynamic weight averaging) or fixed (fixed_weights)."));
  f.push_back(f_enum<DepthLoss>("loss.depth", ACC(loss.depth),
                                "Depth loss on valid pixels: silog (scale-invariant log) or l1."));
  f.push_back(f_num("loss.silog_lambda", ACC(loss.silog_lambda), 0, false, 1, false,
                    "Variance weight of the silog loss (0 = plain log-L2, 1 = fully scale-invariant)."));
  f.push_back({"loss.class_weighting",
               "Cross-entropy class weights: none, median_frequency (ESANet: median(f)/f_c from\n"
               "the training split, cached with the depth statistics; a class absent from it gets\n"
               "1), or an explicit list with one weight per class.",
               read_class_weighting, render_class_weighting, nullptr});
  f.push_back(f_num("loss.fixed_weights.semantic", ACC(loss.fixed_weight_semantic), 0, false, 1e6, false,
                    "Weight of the semantic loss with balance: fixed."));
  f.push_back(f_num("loss.fixed_weights.depth", ACC(loss.fixed_weight_depth), 0, false, 1e6, false,
                    "Weight of the depth loss with balance: fixed."));
  f.push_back(f_num("loss.dwa_temperature", ACC(loss.dwa_temperature), 0, true, kInf, false,
                    "Softmax temperature of dynamic weight averaging."));
  f.push_back(f_bool("loss.deep_supervision", ACC(loss.deep_supervision),
                     "Add the side losses at 1/8, 1/16 and 1/32 of the input (ESANet), equally weighted."));
  f.push_back(f_enum<SourceWeighting>(
      "loss.source_weighting", ACC(loss.source_weighting),
      "How data.sources weights w_i enter a batch's loss: normalized (sum_i w_i L_i / sum_i w_i\n"
      "over the batch's pixels, so a batch of one source is not scaled) or mean\n"
      "((1/N) sum_i w_i L_i over the N images, the seed's formula: a down-weighted source counts less\n"
      "in every batch)."));
}

void add_optim_and_schedule(std::vector<Field>& f) {
  f.push_back(f_num("optim.lr", ACC(optim.lr), 0, true, 10, false, "AdamW peak learning rate."));
  f.push_back(f_num("optim.weight_decay", ACC(optim.weight_decay), 0, false, 10, false,
                    "AdamW decoupled weight decay."));
  f.push_back(f_pair("optim.betas", ACC(optim.betas), 0, false, 1, true, false,
                     "AdamW [beta1, beta2], each in [0, 1)."));
  f.push_back(f_num("optim.eps", ACC(optim.eps), 0, true, 1, false, "AdamW epsilon."));
  f.push_back(f_num("optim.grad_clip", ACC(optim.grad_clip), 0, false, kInf, false,
                    "Clip the global gradient norm to this value; 0 = off."));
  f.push_back(f_int("optim.accumulate", ACC(optim.accumulate), 1, 1024,
                    "Batches whose gradients are summed per optimiser step."));
  f.push_back({"optim.lr_scale",
               "Learning-rate multipliers by module prefix, e.g. {encoder_rgb: 0.1, encoder_depth: 0.1}\n"
               "to fine-tune pretrained encoders gently; the longest matching prefix wins, others get 1.",
               read_lr_scale, render_lr_scale, nullptr});
  f.push_back(f_enum<SchedulePolicy>("schedule.policy", ACC(schedule.policy),
                                     "Learning rate after warmup: cosine or linear decay to min_lr, or constant."));
  f.push_back(f_int("schedule.warmup_steps", ACC(schedule.warmup_steps), 0, std::numeric_limits<int64_t>::max(),
                    "Linear warmup from 0 over this many optimiser steps. Set warmup_steps or\n"
                    "warmup_epochs: giving one sets the other to 0."));
  f.push_back(f_num("schedule.warmup_epochs", ACC(schedule.warmup_epochs), 0, false, kInf, false,
                    "Linear warmup over this many epochs (may be fractional)."));
  f.push_back(f_num("schedule.min_lr", ACC(schedule.min_lr), 0, false, 10, false,
                    "Learning rate at the end of the decay; must not exceed optim.lr."));
}

void add_train(std::vector<Field>& f) {
  f.push_back(f_int("train.epochs", ACC(train.epochs), 1, 1000000, "Passes over the training split."));
  f.push_back(f_int("train.batch_size", ACC(train.batch_size), 1, 4096, "Samples per batch."));
  f.push_back({"train.input_size", "Network input WIDTHxHEIGHT; both multiples of 32. Samples are resized to it.",
               read_size, [](const Config& c) { return to_string(c.train.input_size); }, nullptr});
  f.push_back(f_int("train.val_every", ACC(train.val_every), 1, 1000000, "Epochs between validations."));
  f.push_back(f_int("train.val_every_steps", ACC(train.val_every_steps), 0, 100000000,
                    "Also validate every this many optimiser steps; 0 = only at the ends of epochs."));
  f.push_back(f_int("train.early_stopping.patience", ACC(train.patience), 0, 1000000,
                    "Stop after this many validations without improvement of train.monitor; 0 = never."));
  f.push_back(f_num("train.early_stopping.min_delta", ACC(train.min_delta), 0, false, kInf, false,
                    "Smallest change of the monitored value that counts as an improvement."));
  f.push_back(f_enum<Monitor>("train.monitor", ACC(train.monitor),
                              "Validation value that picks the best checkpoint and drives early stopping:\n"
                              "miou (higher is better), loss, depth_rmse or depth_abs_rel (lower is better)."));
  f.push_back(f_enum<OnNonFinite>(
      "train.on_nonfinite", ACC(train.on_nonfinite),
      "A batch whose loss, or a step whose gradient norm, is NaN or Inf: skip it (counted and\n"
      "logged as skipped_steps) or stop (save checkpoints/last, name the step and the values, exit 1)."));
  f.push_back(f_pair("train.scale_range", ACC(train.scale_range), 0, true, 4, false, true,
                     "Random rescale factor range [lo, hi] before the random crop (ESANet: [1.0, 1.4])."));
  f.push_back(f_num("train.hsv_jitter", ACC(train.hsv_jitter), 0, false, 1, true,
                    "Hue, saturation and value multiplied by U(1-j, 1+j) each (RGB only); 0 = off."));
  f.push_back(f_bool("train.flip", ACC(train.flip),
                     "Random horizontal flip (p = 0.5) of RGB, depth and labels together."));
  f.push_back(f_bool("train.drop_last", ACC(train.drop_last),
                     "Drop the last, incomplete training batch of each epoch."));
  f.push_back(f_bool("train.test_on_interrupt", ACC(train.test_on_interrupt),
                     "After SIGINT/SIGTERM, still evaluate the best checkpoint on the test split (as at the\n"
                     "end of training and after early stopping) before exiting."));
  f.push_back({"train.freeze",
               "Module prefixes to freeze, e.g. [encoder_rgb, encoder_depth]: their parameters get no\n"
               "update and their BatchNorm statistics stay fixed (those norms run in eval mode).",
               read_freeze, render_freeze, nullptr});
}

void add_eval_log_runtime(std::vector<Field>& f) {
  f.push_back(f_int("eval.batch_size", ACC(eval.batch_size), 1, 4096, "Samples per validation/test batch."));
  f.push_back(f_enum<Tta>("eval.tta", ACC(eval.tta),
                          "Test-time augmentation for validation: none, flip (with the mirror image),\n"
                          "multiscale (the input scaled by eval.scales) or multiscale_flip; class\n"
                          "probabilities and depth averaged. mtl_eval takes the same as --tta."));
  f.push_back({"eval.scales",
               "Scales of multiscale TTA, relative to train.input_size (each side rounded to a\n"
               "multiple of 32).",
               read_scales, render_scales, nullptr});
  f.push_back(f_int("checkpoint.keep_top_k", ACC(checkpoint.keep_top_k), 0, 1000,
                    "Also keep the weights of the k best validations by train.monitor, as\n"
                    "checkpoints/top/epochNNN_stepNNN.safetensors; 0 = off."));
  f.push_back(f_int("checkpoint.every_epochs", ACC(checkpoint.every_epochs), 0, 1000000,
                    "A full snapshot (weights, optimiser and loop state, as last) every N epochs, as\n"
                    "checkpoints/epochNNN.safetensors; 0 = off."));
  f.push_back(f_int("log.every", ACC(log.every), 1, 1000000,
                    "Optimiser steps between training log lines (metrics.jsonl, TensorBoard)."));
  f.push_back(f_int("log.visuals", ACC(log.visuals), 0, 1024,
                    "Validation samples rendered as images per validation; 0 = none."));
  f.push_back(f_enum<DeviceChoice>("runtime.device", ACC(runtime.device),
                                   "cpu, cuda, or auto (cuda when a GPU is usable, else cpu)."));
  f.push_back(f_int("runtime.seed", ACC(runtime.seed), 0, std::numeric_limits<int64_t>::max(),
                    "Seeds initialisation, shuffling and augmentation; the same seed gives the same run."));
  f.push_back(f_int("runtime.threads", ACC(runtime.threads), 0, 4096, "CPU compute threads (OpenMP); 0 = all cores."));
  f.push_back(f_bool("runtime.deterministic", ACC(runtime.deterministic),
                     "Deterministic algorithms only: cuDNN takes the first deterministic algorithm in its\n"
                     "heuristic order, so two runs (and processes) give the same bits, at some speed cost\n"
                     "on a GPU. The CPU path is deterministic either way."));
  f.push_back(f_enum<Precision>("runtime.precision", ACC(runtime.precision),
                                "fp32, or bf16 mixed precision as autocast's: bfloat16 activations and convolution\n"
                                "inputs; float32 accumulation, weights, optimiser state, losses and normalisation\n"
                                "statistics. On the CPU, bf16 computes in float32 and rounds where the GPU stores\n"
                                "bfloat16 (for tests: slower than fp32 there). Checkpoints stay float32."));
  f.push_back(f_int("runtime.workers", ACC(runtime.workers), 0, 256,
                    "Data-loading threads; 0 = load in the training thread."));
  f.push_back(f_num("runtime.dist_timeout", ACC(runtime.dist_timeout), 0, true, kInf, false,
                    "Seconds a data-parallel collective waits for the other ranks before the run fails\n"
                    "with an error naming it (a rank that died or stalled; docs/distributed.md)."));
}

#undef ACC

}  // namespace

const std::vector<Field>& fields() {
  static const std::vector<Field> table = [] {
    std::vector<Field> f;
    add_data(f);
    add_model(f);
    add_loss(f);
    add_optim_and_schedule(f);
    add_train(f);
    add_eval_log_runtime(f);
    for (Field& x : f)
      if (!x.present) x.present = [](const Config&) { return true; };
    return f;
  }();
  return table;
}

const std::map<std::string, std::string>& section_help() {
  static const std::map<std::string, std::string> h = {
      {"data", "Where the samples are and how their files are read."},
      {"model", "ESANet architecture."},
      {"loss", "Task losses and how they are balanced."},
      {"optim", "AdamW optimiser."},
      {"schedule", "Learning-rate schedule, stepped once per optimiser step."},
      {"train", "Training loop and augmentation."},
      {"eval", "Validation and test."},
      {"checkpoint", "Checkpoints besides best and last."},
      {"log", "Logging into the run directory."},
      {"runtime", "Device, threads and reproducibility."}};
  return h;
}

const Field* find_field(const std::string& path) {
  for (const Field& f : fields())
    if (f.path == path) return &f;
  return nullptr;
}

std::vector<std::string> all_paths_and_sections() {
  std::set<std::string> seen;
  std::vector<std::string> out;
  for (const Field& f : fields()) {
    for (size_t p = f.path.find('.'); p != std::string::npos; p = f.path.find('.', p + 1))
      if (seen.insert(f.path.substr(0, p)).second) out.push_back(f.path.substr(0, p));
    out.push_back(f.path);
  }
  return out;
}

bool is_section(const std::string& path) {
  for (const Field& f : fields())
    if (f.path.size() > path.size() && f.path.compare(0, path.size(), path) == 0 && f.path[path.size()] == '.')
      return true;
  return false;
}

}  // namespace mtl::train::schema
