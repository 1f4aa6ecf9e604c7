#include "train/config/custom_fields.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "train/config/schema.h"

namespace mtl::train::schema {

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
    s += "\n- {name: " + render_string(ci.name) + ", color: [" + std::to_string(ci.color[0]) + ", " +
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
    s += "\n- {name: " + render_string(d.name) + ", root: " + render_string(d.root) +
         ", weight: " + render_double(d.weight) + "}";
  return s.empty() ? "[]" : s;
}

void read_batch_mix(const YAML::Node& n, Config& c, Reader& r, const std::string& p) {
  c.data.batch_mix.clear();
  if (n.IsNull()) return;
  if (!r.expect_map(n, p)) return;
  for (const auto& kv : n) {
    const std::string kp = p + "." + kv.first.Scalar();
    if (auto k = r.integer(kv.second, kp, 1, 4096)) c.data.batch_mix.emplace_back(kv.first.Scalar(), static_cast<int>(*k));
  }
}

std::string render_batch_mix(const Config& c) {
  std::string s = "{";
  for (size_t i = 0; i < c.data.batch_mix.size(); ++i)
    s += (i ? ", " : "") + render_string(c.data.batch_mix[i].first) + ": " + std::to_string(c.data.batch_mix[i].second);
  return s + "}";
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
      if (auto to = r.integer(kv.second, kp, 0, 65535))
        c.data.label_map[static_cast<int>(*from)] = static_cast<int>(*to);
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

void read_scales(const YAML::Node& n, Config& c, Reader& r, const std::string& p) {
  if (!n.IsSequence() || n.size() == 0) {
    r.error(n, p, "expected a non-empty " + r.list_word() + " of scales, e.g. [0.75, 1.0, 1.25], got " + r.show(n));
    return;
  }
  std::vector<double> out;
  for (size_t i = 0; i < n.size(); ++i)
    if (auto v = r.number(n[i], p + "[" + std::to_string(i) + "]", 0.25, false, 4, false)) out.push_back(*v);
  if (out.size() == n.size()) c.eval.scales = out;
}

std::string render_scales(const Config& c) {
  std::string s = "[";
  for (size_t i = 0; i < c.eval.scales.size(); ++i) s += (i ? ", " : "") + render_double(c.eval.scales[i]);
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
    s += (i ? ", " : "") + render_double(c.loss.class_weights[i]);
  return s + "]";
}

namespace {

// A module prefix as the model names them: dotted segments, none empty.
bool valid_prefix(const std::string& s) {
  if (s.empty() || s.front() == '.' || s.back() == '.' || s.find("..") != std::string::npos) return false;
  return std::all_of(s.begin(), s.end(), [](unsigned char ch) { return std::isalnum(ch) || ch == '_' || ch == '.'; });
}

}  // namespace

void read_class_map(const YAML::Node& n, Config& c, Reader& r, const std::string& p) {
  c.data.class_map_from_pretrained.clear();
  if (n.IsNull()) return;
  if (!r.expect_map(n, p)) return;
  for (const auto& kv : n) {
    const std::string kp = p + "." + kv.first.Scalar();
    auto to = r.integer(kv.first, kp, 0, models::kMaxClasses - 1);
    if (!to) continue;
    if (!kv.second.IsSequence() || kv.second.size() == 0) {
      r.error(kv.second, kp, "expected a non-empty " + r.list_word() + " of pretrained class ids, got " +
                                 r.show(kv.second));
      continue;
    }
    std::vector<int> from;
    for (size_t i = 0; i < kv.second.size(); ++i) {
      auto v = r.integer(kv.second[i], kp + "[" + std::to_string(i) + "]", 0, models::kMaxClasses - 1);
      if (!v) continue;
      if (std::find(from.begin(), from.end(), *v) != from.end())
        r.error(kv.second[i], kp, "pretrained class " + std::to_string(*v) + " is listed twice");
      from.push_back(static_cast<int>(*v));
    }
    c.data.class_map_from_pretrained[static_cast<int>(*to)] = from;
  }
}

std::string render_class_map(const Config& c) {
  std::string s = "{";
  for (const auto& [to, from] : c.data.class_map_from_pretrained) {
    s += (s.size() > 1 ? ", " : "") + std::to_string(to) + ": [";
    for (size_t i = 0; i < from.size(); ++i) s += (i ? ", " : "") + std::to_string(from[i]);
    s += "]";
  }
  return s + "}";
}

void read_lr_scale(const YAML::Node& n, Config& c, Reader& r, const std::string& p) {
  c.optim.lr_scale.clear();
  if (n.IsNull()) return;
  if (!r.expect_map(n, p)) return;
  for (const auto& kv : n) {
    const std::string prefix = kv.first.Scalar(), kp = p + "." + prefix;
    if (!valid_prefix(prefix)) {
      r.error(kv.first, kp, "'" + prefix + "' is not a module prefix (dotted names, e.g. encoder_rgb or encoder_rgb.layer1)");
      continue;
    }
    if (auto v = r.number(kv.second, kp, 0, false, 1000, false)) c.optim.lr_scale[prefix] = *v;
  }
}

std::string render_lr_scale(const Config& c) {
  std::string s = "{";
  for (const auto& [prefix, v] : c.optim.lr_scale) s += (s.size() > 1 ? ", " : "") + render_string(prefix) + ": " + render_double(v);
  return s + "}";
}

void read_freeze(const YAML::Node& n, Config& c, Reader& r, const std::string& p) {
  c.train.freeze.clear();
  if (n.IsNull()) return;
  if (!r.expect_list(n, p)) return;
  for (size_t i = 0; i < n.size(); ++i) {
    const std::string ip = p + "[" + std::to_string(i) + "]";
    auto v = r.string(n[i], ip);
    if (!v) continue;
    if (!valid_prefix(*v)) {
      r.error(n[i], ip, "'" + *v + "' is not a module prefix (dotted names, e.g. encoder_rgb or encoder_rgb.layer1)");
      continue;
    }
    if (std::find(c.train.freeze.begin(), c.train.freeze.end(), *v) != c.train.freeze.end()) {
      r.error(n[i], ip, "'" + *v + "' is listed twice");
      continue;
    }
    c.train.freeze.push_back(*v);
  }
}

std::string render_freeze(const Config& c) {
  std::string s = "[";
  for (size_t i = 0; i < c.train.freeze.size(); ++i) s += (i ? ", " : "") + render_string(c.train.freeze[i]);
  return s + "]";
}

}  // namespace mtl::train::schema
