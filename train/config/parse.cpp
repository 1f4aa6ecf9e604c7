// The tree walk over a configuration document (every key against the schema, every problem
// collected), the rules that involve several keys, and the public entry points that read a file
// or text into a Config.
#include <algorithm>
#include <cstdio>
#include <string>

#include "core/error.h"
#include "core/file_io.h"
#include "train/config/config.h"
#include "train/config/config_text.h"
#include "train/config/schema.h"

namespace mtl::train {

namespace {

using schema::Field;
using schema::Reader;
using schema::render_double;

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
    if (const Field* f = schema::find_field(path)) {
      r.mark_given(path);
      f->read(kv.second, cfg, r, path);
    } else if (schema::is_section(path)) {
      r.mark_given(path);
      if (kv.second.IsNull()) continue;  // an empty section keeps its defaults
      if (r.expect_map(kv.second, path)) parse_map(kv.second, path, cfg, r);
    } else {
      r.unknown_key(kv.first, path, schema::all_paths_and_sections());
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
    if (to == schema::kIgnoreMark) {
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
  if (c.model.sync_bn && c.runtime.precision == Precision::bf16)
    r.error("model.sync_bn", "synchronised BatchNorm computes in float32 only; with runtime.precision bf16 set "
                             "model.sync_bn to false (per-rank statistics)");
  if (c.schedule.min_lr > c.optim.lr)
    r.error("schedule.min_lr", render_double(c.schedule.min_lr) + " exceeds optim.lr (" +
                                   render_double(c.optim.lr) + ")");
  if (c.schedule.warmup_steps > 0 && c.schedule.warmup_epochs > 0) {
    int ls = r.given_level("schedule.warmup_steps"), le = r.given_level("schedule.warmup_epochs");
    if (ls > le) c.schedule.warmup_epochs = 0;
    else if (le > ls) c.schedule.warmup_steps = 0;
    else
      r.error("schedule.warmup_steps", "warmup_steps (" + std::to_string(c.schedule.warmup_steps) +
                                           ") and warmup_epochs (" + render_double(c.schedule.warmup_epochs) +
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
  if (!c.data.batch_mix.empty()) {
    const std::vector<DataSource> sources = c.data.resolved_sources();
    std::vector<std::pair<std::string, int>> ordered;
    int total = 0;
    for (const DataSource& src : sources) {
      auto it = std::find_if(c.data.batch_mix.begin(), c.data.batch_mix.end(),
                             [&](const auto& m) { return m.first == src.name; });
      if (it == c.data.batch_mix.end()) {
        r.error("data.batch_mix", "gives source '" + src.name + "' no share; name every source of data.sources");
        continue;
      }
      ordered.push_back(*it);
      total += it->second;
    }
    for (const auto& [name, k] : c.data.batch_mix)
      if (std::none_of(sources.begin(), sources.end(), [&](const DataSource& d) { return d.name == name; }))
        r.error("data.batch_mix." + name, "names no source of data.sources");
    if (ordered.size() == c.data.batch_mix.size() && total != c.train.batch_size)
      r.error("data.batch_mix", "sums to " + std::to_string(total) + " samples, but train.batch_size is " +
                                    std::to_string(c.train.batch_size));
    c.data.batch_mix = ordered;  // in data.sources order, as the loader reads it
  }
  // The network's own rules (models::ModelConfig), reported like the schema's.
  for (const models::ModelConfig::Problem& p : c.model.problems()) r.error(p.key, p.message);
  if (!c.data.class_map_from_pretrained.empty()) {
    if (c.model.pretrained_classes == 0)
      r.error("data.class_map_from_pretrained", "needs model.pretrained_classes (the class count of the pretrained head)");
    for (const auto& [to, from] : c.data.class_map_from_pretrained) {
      const std::string kp = "data.class_map_from_pretrained." + std::to_string(to);
      if (to >= c.model.num_classes)
        r.error(kp, "class " + std::to_string(to) + " is not in [0, " + std::to_string(c.model.num_classes - 1) +
                        "] (model.num_classes " + std::to_string(c.model.num_classes) + ")");
      for (int p : from)
        if (c.model.pretrained_classes > 0 && p >= c.model.pretrained_classes)
          r.error(kp, "pretrained class " + std::to_string(p) + " is not in [0, " +
                          std::to_string(c.model.pretrained_classes - 1) + "] (model.pretrained_classes " +
                          std::to_string(c.model.pretrained_classes) + ")");
    }
  }
  // A scale on a frozen prefix would never apply: say so rather than ignore it.
  for (const auto& [prefix, scale] : c.optim.lr_scale)
    for (const std::string& f : c.train.freeze)
      if (prefix == f || prefix.compare(0, f.size() + 1, f + ".") == 0)
        r.error("optim.lr_scale." + prefix, "'" + prefix + "' is frozen by train.freeze ('" + f +
                                                "'), so it gets no updates to scale");
  const bool sem = c.model.has_task(Task::semantic), dep = c.model.has_task(Task::depth);
  if (c.train.monitor == Monitor::miou && !sem)
    r.error("train.monitor", "miou needs the semantic task, which model.tasks does not include "
                             "(monitor depth_rmse, say)");
  if ((c.train.monitor == Monitor::depth_rmse || c.train.monitor == Monitor::depth_abs_rel) && !dep)
    r.error("train.monitor", std::string(to_string(c.train.monitor)) +
                                 " needs the depth task, which model.tasks does not include (monitor miou, say)");
}

}  // namespace

Config parse_config(const std::string& text, const std::string& source, const std::vector<std::string>& overrides) {
  const bool json = schema::is_json(text, source);
  YAML::Node root = schema::load_tree(text, source, json);
  if (!root.IsDefined() || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  MTL_CHECK(root.IsMap(), source, ": the top level must be ", json ? "an object" : "a mapping",
            " of sections (data, model, loss, optim, schedule, train, eval, checkpoint, log, runtime)");
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
    text = read_file(path);
  } catch (const Error&) {
    throw Error("cannot read config '" + path + "' (missing or unreadable)");
  }
  MTL_CHECK(!text.empty(), "config '", path, "' is empty");
  if (schema::is_json(text, path))
    std::fprintf(stderr, "warning: reading '%s' as JSON; YAML is mtl's configuration format (JSON is read as YAML's "
                 "subset, and mtl_train writes config.yaml)\n", path.c_str());
  return parse_config(text, path, overrides);
}

void validate(const Config& cfg) { parse_config(to_yaml(cfg), "the configuration"); }

void apply_override(Config& cfg, const std::string& assignment) {
  cfg = parse_config(to_yaml(cfg), "<config>", {assignment});
}

}  // namespace mtl::train
