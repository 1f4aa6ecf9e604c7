#pragma once
// The typed configuration of a run. One YAML (or JSON) file with the sections below is parsed
// into these structs; every key has a default, unknown keys and bad values are mtl::Error naming
// the file, the key path, the value and what is allowed. docs/config.md is the reference.
#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/device.h"
#include "core/enum_names.h"
#include "models/model_config.h"

namespace mtl::train {

// The training side's choices; the network's (encoder, block, context, upsampling, norm, depth
// head, tasks) are models::ModelConfig's.
enum class Balance { uncertainty, dwa, fixed };
enum class DepthLoss { silog, l1 };
enum class ClassWeighting { none, median_frequency, list };
enum class SourceWeighting { normalized, mean };
enum class SchedulePolicy { cosine, linear, constant };
enum class Monitor { miou, loss, depth_rmse, depth_abs_rel };
enum class DeviceChoice { cpu, cuda, auto_ };
enum class Precision { fp32, bf16 };
enum class OnError { fail, skip };
enum class OnNonFinite { skip, stop };
// Test-time augmentation: each pass's class probabilities and depth, brought back to the
// unaugmented view, averaged (multiscale: the network input scaled by each of the scales).
enum class Tta { none, flip, multiscale, multiscale_flip };
enum class InferMode { whole, slide };
MTL_ENUM_NAMES(Balance, "uncertainty", "dwa", "fixed")
MTL_ENUM_NAMES(DepthLoss, "silog", "l1")
MTL_ENUM_NAMES(ClassWeighting, "none", "median_frequency", "list")
MTL_ENUM_NAMES(SourceWeighting, "normalized", "mean")
MTL_ENUM_NAMES(SchedulePolicy, "cosine", "linear", "constant")
MTL_ENUM_NAMES(Monitor, "miou", "loss", "depth_rmse", "depth_abs_rel")
MTL_ENUM_NAMES(DeviceChoice, "cpu", "cuda", "auto")
MTL_ENUM_NAMES(Precision, "fp32", "bf16")
MTL_ENUM_NAMES(OnError, "fail", "skip")
MTL_ENUM_NAMES(OnNonFinite, "skip", "stop")
MTL_ENUM_NAMES(Tta, "none", "flip", "multiscale", "multiscale_flip")
MTL_ENUM_NAMES(InferMode, "whole", "slide")

using models::Task;
// The generic enum functions, beside the overloads below that would otherwise hide them.
using mtl::to_string;

struct Size2 {
  int width = 0, height = 0;
  bool operator==(const Size2&) const = default;
};
// "640x480" -> {640, 480}; nullopt for anything else.
std::optional<Size2> parse_size(std::string_view s);
std::string to_string(Size2 s);

struct ClassInfo {
  std::string name;
  std::array<int, 3> color{0, 0, 0};  // display colour for visuals, 0..255
  bool operator==(const ClassInfo&) const = default;
};
// 0 background, 1 chamoe, 2 heatpipe, 3 path, 4 pillar, 5 topdownfarm, 6 unknown.
std::vector<ClassInfo> greenhouse_classes();

struct DataSource {
  std::string name;
  std::string root;
  double weight = 1.0;  // per-sample loss weight of this source's samples
  bool operator==(const DataSource&) const = default;
};

struct DataConfig {
  std::string root = "data/greenhouse";  // holds train/, val/, test/; relative to the working dir
  std::vector<DataSource> sources;       // when set, replaces root (several mixed data sets)
  double depth_scale = 0.001;            // file units -> metres
  double max_depth = 10.0;               // metres; depth targets are clamped to it and divided by it
  int ignore_index = 255;
  std::map<int, int> label_map;          // stored value -> class id (or ignore_index)
  std::vector<ClassInfo> classes = greenhouse_classes();
  OnError on_error = OnError::fail;
  // Samples of each source in every training batch (source name, count), in data.sources order;
  // empty: batches drawn from all samples alike.
  std::vector<std::pair<std::string, int>> batch_mix;
  // With model.pretrained_classes: for each new class id, the pretrained class ids whose logits
  // it starts as the sum of (the class adapter's initialisation); unlisted classes start random.
  std::map<int, std::vector<int>> class_map_from_pretrained;
  // The sources to read: `sources`, or one named "default" at `root`.
  std::vector<DataSource> resolved_sources() const;
  bool operator==(const DataConfig&) const = default;
};

struct LossConfig {
  Balance balance = Balance::uncertainty;
  DepthLoss depth = DepthLoss::silog;
  double silog_lambda = 0.85;
  ClassWeighting class_weighting = ClassWeighting::median_frequency;
  std::vector<double> class_weights;  // with class_weighting: list (one per class)
  double fixed_weight_semantic = 1.0;  // loss.fixed_weights.semantic, with balance: fixed
  double fixed_weight_depth = 1.0;     // loss.fixed_weights.depth
  double dwa_temperature = 2.0;
  bool deep_supervision = true;        // side losses at /8, /16, /32 (ESANet)
  SourceWeighting source_weighting = SourceWeighting::normalized;  // how data.sources weights combine
  bool operator==(const LossConfig&) const = default;
};

struct OptimConfig {  // AdamW
  double lr = 0.001;
  double weight_decay = 0.01;
  std::array<double, 2> betas{0.9, 0.999};
  double eps = 1e-8;
  double grad_clip = 0.0;  // max global gradient norm; 0 = off
  int accumulate = 1;      // batches per optimiser step
  // Learning-rate multipliers by module prefix ("encoder_rgb" covers encoder_rgb.*); the longest
  // matching prefix wins, other parameters keep 1.
  std::map<std::string, double> lr_scale;
  bool operator==(const OptimConfig&) const = default;
};

struct ScheduleConfig {
  SchedulePolicy policy = SchedulePolicy::cosine;
  int64_t warmup_steps = 0;   // at most one of warmup_steps / warmup_epochs is non-zero
  double warmup_epochs = 1.0;
  double min_lr = 1e-6;
  bool operator==(const ScheduleConfig&) const = default;
};

struct TrainConfig {
  int64_t epochs = 500;
  int batch_size = 8;
  Size2 input_size{640, 480};
  int val_every = 1;           // epochs between validations
  int val_every_steps = 0;     // also every this many optimiser steps; 0 = epoch ends only
  int patience = 0;            // train.early_stopping.patience: validations without improvement; 0 = off
  double min_delta = 0.0;      // train.early_stopping.min_delta
  Monitor monitor = Monitor::miou;
  OnNonFinite on_nonfinite = OnNonFinite::skip;  // a NaN/Inf loss or gradient norm: skip the step, or stop
  std::array<double, 2> scale_range{1.0, 1.4};
  double hsv_jitter = 0.1;     // H, S and V multiplied by U(1-j, 1+j); 0 = off
  bool flip = true;            // horizontal flip with probability 0.5
  bool drop_last = true;
  bool test_on_interrupt = false;  // evaluate on the test split also after SIGINT/SIGTERM
  // Module prefixes whose parameters get no update and whose norms stay in evaluation mode.
  std::vector<std::string> freeze;
  bool operator==(const TrainConfig&) const = default;
};

struct EvalConfig {
  int batch_size = 8;
  Tta tta = Tta::none;                        // for validation during training
  std::vector<double> scales{0.75, 1.0, 1.25};  // multiscale TTA, relative to train.input_size
  bool operator==(const EvalConfig&) const = default;
};

struct CheckpointConfig {
  int keep_top_k = 0;    // also keep the weights of the k best validations; 0 = off
  int every_epochs = 0;  // a full snapshot (as last) every this many epochs; 0 = off
  bool operator==(const CheckpointConfig&) const = default;
};

struct LogConfig {
  int every = 20;    // steps between training log lines
  int visuals = 4;   // validation samples rendered per validation; 0 = none
  bool operator==(const LogConfig&) const = default;
};

struct RuntimeConfig {
  DeviceChoice device = DeviceChoice::auto_;
  uint64_t seed = 42;
  int threads = 0;   // compute threads (OpenMP); 0 = all cores
  bool deterministic = true;  // as the seed: the same run gives the same bits (cuDNN's choice costs some speed)
  Precision precision = Precision::fp32;
  int workers = 2;   // data-loading threads; 0 = load in the training thread
  double dist_timeout = 600;  // seconds a data-parallel collective may wait for the other ranks
  bool operator==(const RuntimeConfig&) const = default;
};

struct Config {
  DataConfig data;
  models::ModelConfig model;
  LossConfig loss;
  OptimConfig optim;
  ScheduleConfig schedule;
  TrainConfig train;
  EvalConfig eval;
  CheckpointConfig checkpoint;
  LogConfig log;
  RuntimeConfig runtime;
  bool operator==(const Config&) const = default;
};

// What building the network needs besides the `model` section: train.input_size (the adaptive
// context module's bins) and runtime.seed (the initialisation).
models::BuildOptions model_build_options(const Config& cfg);

// Reads and validates a YAML or JSON (by extension .json) file, then applies the overrides
// ("a.b=value", values read as YAML scalars or flow lists) in order.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});
// The same from text; `source` names it in messages (a file name, or e.g. "<string>").
Config parse_config(const std::string& text, const std::string& source = "<string>",
                    const std::vector<std::string>& overrides = {});
// Applies one "a.b=value" override to a config (re-validating the whole config).
void apply_override(Config& cfg, const std::string& assignment);
// Checks a Config built in code against the same rules as a file (ranges, keys that go together),
// so that its config.yaml reads back; one mtl::Error lists every problem.
void validate(const Config& cfg);

// The resolved config as YAML that parse_config reads back to an equal Config.
std::string to_yaml(const Config& cfg, bool comments = false);
// The complete default config, every key with a comment: what --create-default-config writes.
std::string default_config_yaml();

// A Markdown table of every key, its default and its meaning (docs/config.md embeds it).
std::string config_reference_table();

// Every key path the schema knows ("optim.lr", ...), in document order.
std::vector<std::string> config_keys();

}  // namespace mtl::train
