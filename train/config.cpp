#include "train/config.h"

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <functional>
#include <limits>
#include <set>

#include "core/cuda_context.h"
#include "core/error.h"
#include "train/image_io.h"
#include "train/yaml_schema.h"

namespace mtl::train {

std::optional<Size2> parse_size(std::string_view s) {
  size_t x = s.find_first_of("xX");
  if (x == std::string_view::npos || x == 0 || x + 1 >= s.size()) return std::nullopt;
  Size2 out;
  auto a = std::from_chars(s.data(), s.data() + x, out.width);
  auto b = std::from_chars(s.data() + x + 1, s.data() + s.size(), out.height);
  if (a.ec != std::errc() || a.ptr != s.data() + x || b.ec != std::errc() || b.ptr != s.data() + s.size())
    return std::nullopt;
  if (out.width <= 0 || out.height <= 0) return std::nullopt;
  return out;
}

std::string to_string(Size2 s) { return std::to_string(s.width) + "x" + std::to_string(s.height); }

std::vector<ClassInfo> greenhouse_classes() {
  return {{"background", {0, 0, 0}},     {"chamoe", {250, 200, 30}}, {"heatpipe", {230, 60, 60}},
          {"path", {160, 160, 160}},     {"pillar", {60, 120, 230}}, {"topdownfarm", {40, 170, 60}},
          {"unknown", {200, 80, 200}}};
}

std::vector<DataSource> DataConfig::resolved_sources() const {
  if (!sources.empty()) return sources;
  return {DataSource{"default", root, 1.0}};
}

bool ModelConfig::has_task(Task t) const { return std::find(tasks.begin(), tasks.end(), t) != tasks.end(); }

namespace {

using schema::Reader;
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int kIgnoreMark = std::numeric_limits<int>::min();  // label_map "ignore" before resolution

using ReadFn = std::function<void(const YAML::Node&, Config&, Reader&, const std::string&)>;
using RenderFn = std::function<std::string(const Config&)>;

struct Field {
  std::string path;
  std::string help;  // the comment above the key in the default config
  ReadFn read;
  RenderFn render;   // YAML flow text, or block lines starting with '\n'
  std::function<bool(const Config&)> present;  // written by to_yaml only when this holds
};

#define ACC(expr) [](auto& c) -> auto& { return c.expr; }

template <class Acc>
Field f_num(std::string path, Acc acc, double lo, bool lo_open, double hi, bool hi_open, std::string help) {
  return {std::move(path), std::move(help),
          [=](const YAML::Node& n, Config& c, Reader& r, const std::string& p) {
            if (auto v = r.number(n, p, lo, lo_open, hi, hi_open)) acc(c) = *v;
          },
          [=](const Config& c) { return schema::render_double(acc(c)); }, nullptr};
}

template <class Acc>
Field f_int(std::string path, Acc acc, int64_t lo, int64_t hi, std::string help) {
  return {std::move(path), std::move(help),
          [=](const YAML::Node& n, Config& c, Reader& r, const std::string& p) {
            using T = std::remove_reference_t<decltype(acc(c))>;
            if (auto v = r.integer(n, p, lo, hi)) acc(c) = static_cast<T>(*v);
          },
          [=](const Config& c) { return std::to_string(acc(c)); }, nullptr};
}

template <class Acc>
Field f_bool(std::string path, Acc acc, std::string help) {
  return {std::move(path), std::move(help),
          [=](const YAML::Node& n, Config& c, Reader& r, const std::string& p) {
            if (auto v = r.boolean(n, p)) acc(c) = *v;
          },
          [=](const Config& c) { return std::string(acc(c) ? "true" : "false"); }, nullptr};
}

template <class Acc>
Field f_string(std::string path, Acc acc, std::string help) {
  return {std::move(path), std::move(help),
          [=](const YAML::Node& n, Config& c, Reader& r, const std::string& p) {
            if (auto v = r.string(n, p)) acc(c) = *v;
          },
          [=](const Config& c) { return schema::render_string(acc(c)); }, nullptr};
}

template <class E>
std::vector<std::string> enum_name_list() {
  std::vector<std::string> out;
  for (std::string_view n : EnumNames<E>::names) out.emplace_back(n);
  return out;
}

template <class E, class Acc>
Field f_enum(std::string path, Acc acc, std::string help) {
  return {std::move(path), std::move(help),
          [=](const YAML::Node& n, Config& c, Reader& r, const std::string& p) {
            if (auto v = r.choice(n, p, enum_name_list<E>())) acc(c) = *parse_enum<E>(*v);
          },
          [=](const Config& c) { return std::string(to_string(acc(c))); }, nullptr};
}

// A [lo, hi] or [a, b] pair of numbers, each in the given range; `ordered` requires lo <= hi.
template <class Acc>
Field f_pair(std::string path, Acc acc, double lo, bool lo_open, double hi, bool hi_open, bool ordered,
             std::string help) {
  return {std::move(path), std::move(help),
          [=](const YAML::Node& n, Config& c, Reader& r, const std::string& p) {
            if (!n.IsSequence() || n.size() != 2) {
              r.error(n, p, "expected " + r.list_word() + " of two numbers, got " + r.show(n));
              return;
            }
            auto a = r.number(n[0], p + "[0]", lo, lo_open, hi, hi_open);
            auto b = r.number(n[1], p + "[1]", lo, lo_open, hi, hi_open);
            if (!a || !b) return;
            if (ordered && *a > *b) {
              r.error(n, p, "[" + n[0].Scalar() + ", " + n[1].Scalar() + "] is not a range: the first value must not exceed the second");
              return;
            }
            acc(c) = {*a, *b};
          },
          [=](const Config& c) {
            std::string s = "[";  // built by appending: GCC 12 warns falsely on "[" + std::string
            s += schema::render_double(acc(c)[0]);
            s += ", ";
            s += schema::render_double(acc(c)[1]);
            return s + "]";
          },
          nullptr};
}

void read_size(const YAML::Node& n, Config& c, Reader& r, const std::string& p) {
  const std::string expected = "a string WIDTHxHEIGHT with both sides multiples of 32 in [32, 8192], e.g. \"640x480\"";
  if (!n.IsScalar() || n.IsNull()) {
    r.error(n, p, "expected " + expected + ", got " + r.show(n));
    return;
  }
  std::optional<Size2> s = parse_size(n.Scalar());
  if (!s) {
    r.error(n, p, "'" + n.Scalar() + "' is not a size; expected " + expected);
    return;
  }
  // The encoder halves the resolution five times and the decoder adds skips at /16, /8, /4, so
  // both sides must divide by 32 for the shapes to line up.
  if (s->width % 32 || s->height % 32 || s->width > 8192 || s->height > 8192) {
    r.error(n, p, "'" + n.Scalar() + "' is not allowed; expected " + expected +
                      " (the network downsamples by 32)");
    return;
  }
  c.train.input_size = *s;
}

void read_classes(const YAML::Node& n, Config& c, Reader& r, const std::string& p) {
  if (!r.expect_list(n, p)) return;
  std::vector<ClassInfo> out;
  std::set<std::string> names;
  for (size_t i = 0; i < n.size(); ++i) {
    const std::string ip = p + "[" + std::to_string(i) + "]";
    const YAML::Node item = n[i];
    if (!r.expect_map(item, ip)) continue;
    ClassInfo ci;
    bool has_name = false;
    for (const auto& kv : item) {
      const std::string key = kv.first.Scalar(), kp = ip + "." + key;
      if (key == "name") {
        if (auto s = r.string(kv.second, kp)) ci.name = *s, has_name = true;
      } else if (key == "color") {
        if (!kv.second.IsSequence() || kv.second.size() != 3) {
          r.error(kv.second, kp, "expected [r, g, b] with values in [0, 255], got " + r.show(kv.second));
          continue;
        }
        for (size_t k = 0; k < 3; ++k)
          if (auto v = r.integer(kv.second[k], kp + "[" + std::to_string(k) + "]", 0, 255))
            ci.color[k] = static_cast<int>(*v);
      } else {
        r.unknown_key(kv.first, kp, {ip + ".name", ip + ".color"}, "a class has `name` and `color`");
      }
    }
    if (!has_name) {
      r.error(item, ip, "a class needs a `name`");
      continue;
    }
    if (!names.insert(ci.name).second) r.error(item, ip + ".name", "class name '" + ci.name + "' appears twice");
    out.push_back(ci);
  }
  if (out.empty() && !r.has_errors()) r.error(n, p, "needs at least one class");
  c.data.classes = out;
}

std::string render_classes(const Config& c) {
  std::string s;
  for (const ClassInfo& ci : c.data.classes)
    s += "\n- {name: " + schema::render_string(ci.name) + ", color: [" + std::to_string(ci.color[0]) + ", " +
         std::to_string(ci.color[1]) + ", " + std::to_string(ci.color[2]) + "]}";
  return s.empty() ? "[]" : s;
}

void read_sources(const YAML::Node& n, Config& c, Reader& r, const std::string& p) {
  if (n.IsNull()) {
    c.data.sources.clear();
    return;
  }
  if (!r.expect_list(n, p)) return;
  std::vector<DataSource> out;
  std::set<std::string> names;
  for (size_t i = 0; i < n.size(); ++i) {
    const std::string ip = p + "[" + std::to_string(i) + "]";
    const YAML::Node item = n[i];
    if (!r.expect_map(item, ip)) continue;
    DataSource s;
    s.name = "source" + std::to_string(i);
    bool has_root = false;
    for (const auto& kv : item) {
      const std::string key = kv.first.Scalar(), kp = ip + "." + key;
      if (key == "root") {
        if (auto v = r.string(kv.second, kp)) s.root = *v, has_root = true;
      } else if (key == "name") {
        if (auto v = r.string(kv.second, kp)) s.name = *v;
      } else if (key == "weight") {
        if (auto v = r.number(kv.second, kp, 0, true, 1000, false)) s.weight = *v;
      } else {
        r.unknown_key(kv.first, kp, {ip + ".root", ip + ".name", ip + ".weight"},
                      "a source has `root`, `name` and `weight`");
      }
    }
    if (!has_root) r.error(item, ip, "a source needs a `root` folder");
    if (!names.insert(s.name).second) r.error(item, ip + ".name", "source name '" + s.name + "' appears twice");
    out.push_back(s);
  }
  c.data.sources = out;
}

std::string render_sources(const Config& c) {
  std::string s;
  for (const DataSource& d : c.data.sources)
    s += "\n- {name: " + schema::render_string(d.name) + ", root: " + schema::render_string(d.root) +
         ", weight: " + schema::render_double(d.weight) + "}";
  return s.empty() ? "[]" : s;
}

void read_label_map(const YAML::Node& n, Config& c, Reader& r, const std::string& p) {
  c.data.label_map.clear();
  if (n.IsNull()) return;
  if (!r.expect_map(n, p)) return;
  for (const auto& kv : n) {
    const std::string kp = p + "." + kv.first.Scalar();
    auto from = r.integer(kv.first, kp, 0, 65535);
    if (!from) continue;
    if (kv.second.IsScalar() && kv.second.Scalar() == "ignore") {
      c.data.label_map[static_cast<int>(*from)] = kIgnoreMark;
    } else if (kv.second.IsScalar() && !kv.second.IsNull() && kv.second.Tag() != "!" &&
               std::all_of(kv.second.Scalar().begin(), kv.second.Scalar().end(), ::isdigit)) {
      if (auto to = r.integer(kv.second, kp, 0, 65535)) c.data.label_map[static_cast<int>(*from)] = static_cast<int>(*to);
    } else {
      r.error(kv.second, kp, "expected a class id (an integer) or `ignore`, got " + r.show(kv.second));
    }
  }
}

std::string render_label_map(const Config& c) {
  std::string s = "{";
  bool first = true;
  for (auto [from, to] : c.data.label_map) {
    s += (first ? "" : ", ") + std::to_string(from) + ": " +
         (to == c.data.ignore_index ? std::string("ignore") : std::to_string(to));
    first = false;
  }
  return s + "}";
}

void read_tasks(const YAML::Node& n, Config& c, Reader& r, const std::string& p) {
  if (!n.IsSequence() || n.size() == 0) {
    r.error(n, p, std::string("expected a non-empty ") + (r.json() ? "array" : "list") + " of " +
                      enum_choices<Task>() + ", got " + r.show(n));
    return;
  }
  std::vector<Task> out;
  for (size_t i = 0; i < n.size(); ++i) {
    auto v = r.choice(n[i], p + "[" + std::to_string(i) + "]", enum_name_list<Task>());
    if (!v) continue;
    Task t = *parse_enum<Task>(*v);
    if (std::find(out.begin(), out.end(), t) != out.end()) {
      r.error(n[i], p, "task '" + *v + "' is listed twice");
      continue;
    }
    out.push_back(t);
  }
  c.model.tasks = out;
}

std::string render_tasks(const Config& c) {
  std::string s = "[";
  for (size_t i = 0; i < c.model.tasks.size(); ++i) s += (i ? ", " : "") + std::string(to_string(c.model.tasks[i]));
  return s + "]";
}

void read_class_weighting(const YAML::Node& n, Config& c, Reader& r, const std::string& p) {
  if (n.IsSequence()) {
    std::vector<double> w;
    bool ok = n.size() > 0;
    for (size_t i = 0; i < n.size(); ++i) {
      auto v = r.number(n[i], p + "[" + std::to_string(i) + "]", 0, false, 1e6, false);
      ok &= v.has_value();
      if (v) w.push_back(*v);
    }
    if (n.size() == 0) r.error(n, p, "an explicit list of class weights must not be empty");
    if (ok) c.loss.class_weighting = ClassWeighting::list, c.loss.class_weights = w;
    return;
  }
  if (n.IsScalar() && n.Scalar() == "list") {
    r.error(n, p, "give the weights themselves as a list, one per class, e.g. [1.0, 2.5, ...]");
    return;
  }
  auto v = r.choice(n, p, {"none", "median_frequency"});
  if (!v) return;
  c.loss.class_weighting = *parse_enum<ClassWeighting>(*v);
  c.loss.class_weights.clear();
}

std::string render_class_weighting(const Config& c) {
  if (c.loss.class_weighting != ClassWeighting::list) return std::string(to_string(c.loss.class_weighting));
  std::string s = "[";
  for (size_t i = 0; i < c.loss.class_weights.size(); ++i)
    s += (i ? ", " : "") + schema::render_double(c.loss.class_weights[i]);
  return s + "]";
}

const std::vector<Field>& fields() {
  static const std::vector<Field> table = [] {
    std::vector<Field> f;
    // data
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
    f.push_back(f_enum<OnError>("data.on_error", ACC(data.on_error),
                                "What the scan before training does with bad samples (missing or undecodable\n"
                                "files, sizes that disagree, label values out of range): fail (one error\n"
                                "listing all of them) or skip (drop them with a warning that lists them)."));
    // model
    f.push_back(f_enum<Encoder>("model.encoder", ACC(model.encoder), "Encoder depth for both the RGB and the depth branch: resnet18, resnet34 or resnet50\n"
                                                    "(resnet50 always uses bottleneck blocks; model.block is ignored for it)."));
    f.push_back(f_enum<Block>("model.block", ACC(model.block), "Encoder residual block: basic (ResNet) or nbt1d (ESANet's NonBottleneck1D)."));
    f.push_back(f_enum<Context>("model.context", ACC(model.context), "Context module after the encoder: ppm (bins 1, 5), appm (adaptive bins) or none."));
    f.push_back(f_int("model.num_classes", ACC(model.num_classes), 1, 65535, "Semantic classes; must equal the length of data.classes."));
    f.push_back(f_enum<Upsampling>("model.upsampling", ACC(model.upsampling), "Decoder upsampling: learned (nearest x2 + depthwise 3x3, ESANet), bilinear or nearest."));
    f.push_back(f_enum<Norm>("model.norm", ACC(model.norm), "Normalisation layers: batchnorm, or groupnorm for small batches."));
    f.push_back(f_num("model.width", ACC(model.width), 0, true, 8, false, "Channel multiplier for encoder and decoder (1.0 = ESANet's widths)."));
    f.push_back({"model.tasks", "Tasks to train, a non-empty subset of [semantic, depth].", read_tasks, render_tasks, nullptr});
    f.push_back(f_enum<DepthHead>("model.depth_head", ACC(model.depth_head),
                                  "Depth head: decoder (its own decoder, like the semantic one) or light (a small\n"
                                  "head on the shared decoder's features)."));
    // loss
    f.push_back(f_enum<Balance>("loss.balance", ACC(loss.balance),
                                "How the semantic and depth losses are combined: uncertainty (learned\n"
                                "homoscedastic weights), dwa (dynamic weight averaging) or fixed (fixed_weights)."));
    f.push_back(f_enum<DepthLoss>("loss.depth", ACC(loss.depth), "Depth loss on valid pixels: silog (scale-invariant log) or l1."));
    f.push_back(f_num("loss.silog_lambda", ACC(loss.silog_lambda), 0, false, 1, false, "Variance weight of the silog loss (0 = plain log-L2, 1 = fully scale-invariant)."));
    f.push_back({"loss.class_weighting",
                 "Cross-entropy class weights: none, median_frequency (ESANet: median(f)/f_c from\n"
                 "the training split, cached with the depth statistics; a class absent from it gets\n"
                 "1), or an explicit list with one weight per class.",
                 read_class_weighting, render_class_weighting, nullptr});
    f.push_back(f_num("loss.fixed_weights.semantic", ACC(loss.fixed_weight_semantic), 0, false, 1e6, false, "Weight of the semantic loss with balance: fixed."));
    f.push_back(f_num("loss.fixed_weights.depth", ACC(loss.fixed_weight_depth), 0, false, 1e6, false, "Weight of the depth loss with balance: fixed."));
    f.push_back(f_num("loss.dwa_temperature", ACC(loss.dwa_temperature), 0, true, kInf, false, "Softmax temperature of dynamic weight averaging."));
    f.push_back(f_bool("loss.deep_supervision", ACC(loss.deep_supervision), "Add the side losses at 1/8, 1/16 and 1/32 of the input (ESANet), equally weighted."));
    // optim
    f.push_back(f_num("optim.lr", ACC(optim.lr), 0, true, 10, false, "AdamW peak learning rate."));
    f.push_back(f_num("optim.weight_decay", ACC(optim.weight_decay), 0, false, 10, false, "AdamW decoupled weight decay."));
    f.push_back(f_pair("optim.betas", ACC(optim.betas), 0, false, 1, true, false, "AdamW [beta1, beta2], each in [0, 1)."));
    f.push_back(f_num("optim.eps", ACC(optim.eps), 0, true, 1, false, "AdamW epsilon."));
    f.push_back(f_num("optim.grad_clip", ACC(optim.grad_clip), 0, false, kInf, false, "Clip the global gradient norm to this value; 0 = off."));
    f.push_back(f_int("optim.accumulate", ACC(optim.accumulate), 1, 1024, "Batches whose gradients are summed per optimiser step."));
    // schedule
    f.push_back(f_enum<SchedulePolicy>("schedule.policy", ACC(schedule.policy), "Learning rate after warmup: cosine or linear decay to min_lr, or constant."));
    f.push_back(f_int("schedule.warmup_steps", ACC(schedule.warmup_steps), 0, std::numeric_limits<int64_t>::max(),
                      "Linear warmup from 0 over this many optimiser steps. Set warmup_steps or\n"
                      "warmup_epochs: giving one sets the other to 0."));
    f.push_back(f_num("schedule.warmup_epochs", ACC(schedule.warmup_epochs), 0, false, kInf, false, "Linear warmup over this many epochs (may be fractional)."));
    f.push_back(f_num("schedule.min_lr", ACC(schedule.min_lr), 0, false, 10, false, "Learning rate at the end of the decay; must not exceed optim.lr."));
    // train
    f.push_back(f_int("train.epochs", ACC(train.epochs), 1, 1000000, "Passes over the training split."));
    f.push_back(f_int("train.batch_size", ACC(train.batch_size), 1, 4096, "Samples per batch."));
    f.push_back({"train.input_size", "Network input WIDTHxHEIGHT; both multiples of 32. Samples are resized to it.",
                 read_size, [](const Config& c) { return to_string(c.train.input_size); }, nullptr});
    f.push_back(f_int("train.val_every", ACC(train.val_every), 1, 1000000, "Epochs between validations."));
    f.push_back(f_int("train.val_every_steps", ACC(train.val_every_steps), 0, 100000000,
                      "Also validate every this many optimiser steps; 0 = only at the ends of epochs."));
    f.push_back(f_int("train.early_stopping.patience", ACC(train.patience), 0, 1000000,
                      "Stop after this many validations without improvement of train.monitor; 0 = never."));
    f.push_back(f_num("train.early_stopping.min_delta", ACC(train.min_delta), 0, false, kInf, false, "Smallest change of the monitored value that counts as an improvement."));
    f.push_back(f_enum<Monitor>("train.monitor", ACC(train.monitor),
                                "Validation value that picks the best checkpoint and drives early stopping:\n"
                                "miou (higher is better), loss, depth_rmse or depth_abs_rel (lower is better)."));
    f.push_back(f_bool("train.skip_nonfinite", ACC(train.skip_nonfinite), "Skip an optimiser step whose loss or gradients are NaN/Inf (and count it)."));
    f.push_back(f_pair("train.scale_range", ACC(train.scale_range), 0, true, 4, false, true,
                       "Random rescale factor range [lo, hi] before the random crop (ESANet: [1.0, 1.4])."));
    f.push_back(f_num("train.hsv_jitter", ACC(train.hsv_jitter), 0, false, 1, true,
                      "Hue, saturation and value multiplied by U(1-j, 1+j) each (RGB only); 0 = off."));
    f.push_back(f_bool("train.flip", ACC(train.flip), "Random horizontal flip (p = 0.5) of RGB, depth and labels together."));
    f.push_back(f_bool("train.drop_last", ACC(train.drop_last), "Drop the last, incomplete training batch of each epoch."));
    // eval
    f.push_back(f_int("eval.batch_size", ACC(eval.batch_size), 1, 4096, "Samples per validation/test batch."));
    // log
    f.push_back(f_int("log.every", ACC(log.every), 1, 1000000, "Optimiser steps between training log lines (metrics.jsonl, TensorBoard)."));
    f.push_back(f_int("log.visuals", ACC(log.visuals), 0, 1024, "Validation samples rendered as images per validation; 0 = none."));
    // runtime
    f.push_back(f_enum<DeviceChoice>("runtime.device", ACC(runtime.device), "cpu, cuda, or auto (cuda when a GPU is usable, else cpu)."));
    f.push_back(f_int("runtime.seed", ACC(runtime.seed), 0, std::numeric_limits<int64_t>::max(),
                      "Seeds initialisation, shuffling and augmentation; the same seed gives the same run."));
    f.push_back(f_int("runtime.threads", ACC(runtime.threads), 0, 4096, "CPU compute threads (OpenMP); 0 = all cores."));
    f.push_back(f_bool("runtime.deterministic", ACC(runtime.deterministic), "Deterministic algorithms only (cuDNN), at some speed cost."));
    f.push_back(f_enum<Precision>("runtime.precision", ACC(runtime.precision), "fp32, or bf16 mixed precision (CUDA only)."));
    f.push_back(f_int("runtime.workers", ACC(runtime.workers), 0, 256, "Data-loading threads; 0 = load in the training thread."));
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

void parse_map(const YAML::Node& map, const std::string& prefix, Config& cfg, Reader& r) {
  for (const auto& kv : map) {
    if (!kv.first.IsScalar()) {
      r.error(kv.first, prefix, "keys must be plain names");
      continue;
    }
    const std::string path = prefix.empty() ? kv.first.Scalar() : prefix + "." + kv.first.Scalar();
    if (r.given(path)) {
      r.error(kv.first, path, "appears twice");
      continue;
    }
    if (const Field* f = find_field(path)) {
      r.mark_given(path);
      f->read(kv.second, cfg, r, path);
    } else if (is_section(path)) {
      r.mark_given(path);
      if (kv.second.IsNull()) continue;  // an empty section keeps its defaults
      if (r.expect_map(kv.second, path)) parse_map(kv.second, path, cfg, r);
    } else {
      r.unknown_key(kv.first, path, all_paths_and_sections());
    }
  }
}

// Checks that involve several keys, and the resolution of keys that exclude each other.
void cross_check(Config& c, Reader& r) {
  const int ncls = static_cast<int>(c.data.classes.size());
  if (c.model.num_classes != ncls) {
    std::string names;
    for (size_t i = 0; i < c.data.classes.size(); ++i) names += (i ? ", " : "") + c.data.classes[i].name;
    r.error("model.num_classes", std::to_string(c.model.num_classes) + " does not match data.classes, which lists " +
                                     std::to_string(ncls) + " classes (" + names + ")");
  }
  for (auto& [from, to] : c.data.label_map) {
    if (to == kIgnoreMark) {
      to = c.data.ignore_index;
    } else if (to >= c.model.num_classes && to != c.data.ignore_index) {
      r.error("data.label_map." + std::to_string(from),
              "maps to " + std::to_string(to) + ", which is neither a class id in [0, " +
                  std::to_string(c.model.num_classes - 1) + "] nor data.ignore_index (" +
                  std::to_string(c.data.ignore_index) + ")");
    }
  }
  if (c.loss.class_weighting == ClassWeighting::list &&
      static_cast<int>(c.loss.class_weights.size()) != c.model.num_classes)
    r.error("loss.class_weighting", "lists " + std::to_string(c.loss.class_weights.size()) +
                                        " weights but model.num_classes is " + std::to_string(c.model.num_classes));
  if (c.loss.balance == Balance::fixed && c.loss.fixed_weight_semantic == 0 && c.loss.fixed_weight_depth == 0)
    r.error("loss.fixed_weights", "both weights are 0, so nothing would be trained");
  if (c.schedule.min_lr > c.optim.lr)
    r.error("schedule.min_lr", schema::render_double(c.schedule.min_lr) + " exceeds optim.lr (" +
                                   schema::render_double(c.optim.lr) + ")");
  if (c.schedule.warmup_steps > 0 && c.schedule.warmup_epochs > 0) {
    int ls = r.given_level("schedule.warmup_steps"), le = r.given_level("schedule.warmup_epochs");
    if (ls > le) c.schedule.warmup_epochs = 0;
    else if (le > ls) c.schedule.warmup_steps = 0;
    else
      r.error("schedule.warmup_steps", "warmup_steps (" + std::to_string(c.schedule.warmup_steps) +
                                           ") and warmup_epochs (" + schema::render_double(c.schedule.warmup_epochs) +
                                           ") are both set; set one of them (the other to 0)");
  }
  if (!c.data.sources.empty()) {
    int lr = r.given_level("data.root"), ls = r.given_level("data.sources");
    if (lr > ls) c.data.sources.clear();
    else if (lr == ls)
      r.error("data.root", "data.root and data.sources are both set; use data.root for one data set or "
                           "data.sources for several");
  }
  if (!c.data.sources.empty()) c.data.root = c.data.sources.front().root;
  const bool sem = c.model.has_task(Task::semantic), dep = c.model.has_task(Task::depth);
  if (c.train.monitor == Monitor::miou && !sem)
    r.error("train.monitor", "miou needs the semantic task, which model.tasks does not include "
                             "(monitor depth_rmse, say)");
  if ((c.train.monitor == Monitor::depth_rmse || c.train.monitor == Monitor::depth_abs_rel) && !dep)
    r.error("train.monitor", std::string(to_string(c.train.monitor)) +
                                 " needs the depth task, which model.tasks does not include (monitor miou, say)");
}

bool ends_with_json(const std::string& s) {
  if (s.size() < 5) return false;
  std::string e = s.substr(s.size() - 5);
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char ch) { return std::tolower(ch); });
  return e == ".json";
}

// yaml-cpp reads nearly all JSON; for what it rejects (tabs, say) the tree is built from
// nlohmann's parse instead, without line numbers. Strings are tagged as quoted so that "0.1"
// stays a string, as in the file.
YAML::Node json_to_yaml(const nlohmann::json& j) {
  if (j.is_object()) {
    YAML::Node n(YAML::NodeType::Map);
    for (auto it = j.begin(); it != j.end(); ++it) n[it.key()] = json_to_yaml(it.value());
    return n;
  }
  if (j.is_array()) {
    YAML::Node n(YAML::NodeType::Sequence);
    for (const auto& v : j) n.push_back(json_to_yaml(v));
    return n;
  }
  if (j.is_null()) return YAML::Node(YAML::NodeType::Null);
  if (j.is_string()) {
    YAML::Node n(j.get<std::string>());
    n.SetTag("!");
    return n;
  }
  YAML::Node n(j.dump());
  n.SetTag("?");
  return n;
}

YAML::Node load_tree(const std::string& text, const std::string& source, bool json) {
  if (json) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error& e) {
      throw Error(source + ": JSON syntax error: " + e.what());
    }
    try {
      return YAML::Load(text);
    } catch (const YAML::Exception&) {
      return json_to_yaml(j);
    }
  }
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw Error(source + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1) +
                ": YAML syntax error: " + e.msg);
  }
}

}  // namespace

Config parse_config(const std::string& text, const std::string& source, const std::vector<std::string>& overrides) {
  const bool json = ends_with_json(source);
  YAML::Node root = load_tree(text, source, json);
  if (!root.IsDefined() || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  MTL_CHECK(root.IsMap(), source, ": the top level must be ", json ? "an object" : "a mapping",
            " of sections (data, model, loss, optim, schedule, train, eval, log, runtime)");
  Reader r(source, json);
  for (size_t i = 0; i < overrides.size(); ++i) {
    schema::Assignment a = schema::parse_assignment(overrides[i]);
    schema::set_path(root, a);
    r.add_override(a.path, a.text, static_cast<int>(i) + 1);
  }
  Config cfg;
  parse_map(root, "", cfg, r);
  if (!r.has_errors()) cross_check(cfg, r);
  r.throw_if_errors();
  return cfg;
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::string text;
  try {
    text = read_file_bytes(path);
  } catch (const Error&) {
    throw Error("cannot read config '" + path + "' (missing or unreadable)");
  }
  return parse_config(text, path, overrides);
}

void apply_override(Config& cfg, const std::string& assignment) {
  cfg = parse_config(to_yaml(cfg), "<config>", {assignment});
}

std::string to_yaml(const Config& cfg, bool comments) {
  std::string out;
  std::vector<std::string> open;
  for (const Field& f : fields()) {
    if (!f.present(cfg)) continue;
    std::vector<std::string> parts;
    for (size_t s = 0, d;; s = d + 1) {
      d = f.path.find('.', s);
      parts.push_back(f.path.substr(s, d == std::string::npos ? d : d - s));
      if (d == std::string::npos) break;
    }
    const size_t depth = parts.size() - 1;
    size_t common = 0;
    while (common < open.size() && common < depth && open[common] == parts[common]) ++common;
    for (size_t j = common; j < depth; ++j) {
      if (j == 0) {
        if (!out.empty()) out += "\n";
        if (comments) out += "# " + section_help().at(parts[0]) + "\n";
      }
      out += std::string(2 * j, ' ') + parts[j] + ":\n";
    }
    open.assign(parts.begin(), parts.end() - 1);
    const std::string ind(2 * depth, ' ');
    if (comments) {
      for (size_t s = 0, d;; s = d + 1) {
        d = f.help.find('\n', s);
        out += ind + "# " + f.help.substr(s, d == std::string::npos ? d : d - s) + "\n";
        if (d == std::string::npos) break;
      }
    }
    std::string v = f.render(cfg);
    if (!v.empty() && v[0] == '\n') {
      out += ind + parts.back() + ":";
      for (size_t s = 1, d;; s = d + 1) {
        d = v.find('\n', s);
        out += "\n" + ind + "  " + v.substr(s, d == std::string::npos ? d : d - s);
        if (d == std::string::npos) break;
      }
      out += "\n";
    } else {
      out += ind + parts.back() + ": " + v + "\n";
    }
  }
  return out;
}

std::string default_config_yaml() {
  return "# mtl configuration: every key with its default value. Unknown keys are errors; any key\n"
         "# can be overridden on the command line with --set section.key=value.\n"
         "# Reference: docs/config.md.\n\n" +
         to_yaml(Config{}, true);
}

Device resolve_device(DeviceChoice choice) {
  switch (choice) {
    case DeviceChoice::cpu:
      return Device::cpu();
    case DeviceChoice::cuda:
      cuda::require();
      return Device::cuda();
    case DeviceChoice::auto_:
      return cuda::available() ? Device::cuda() : Device::cpu();
  }
  return Device::cpu();
}

std::string config_reference_table() {
  const Config defaults;
  std::string out = "| key | default | meaning |\n|---|---|---|\n";
  auto cell = [](std::string t) {
    std::string r;
    for (char ch : t) r += ch == '|' ? std::string("\\|") : ch == '\n' ? std::string(" ") : std::string(1, ch);
    return r;
  };
  for (const Field& f : fields()) {
    std::string v = f.render(defaults);
    if (!v.empty() && v[0] == '\n') v = "the greenhouse list (below)";
    else v = "`" + v + "`";
    out += "| `" + f.path + "` | " + cell(v) + " | " + cell(f.help) + " |\n";
  }
  return out;
}

std::vector<std::string> config_keys() {
  std::vector<std::string> out;
  for (const Field& f : fields()) out.push_back(f.path);
  return out;
}

}  // namespace mtl::train
