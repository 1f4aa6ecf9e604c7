#include "train/optim/param_groups.h"

#include <algorithm>
#include <cctype>
#include <set>
#include <string_view>

#include "core/error.h"

namespace mtl::train {

namespace {

bool all_digits(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
}

// A module path segment that names a normalisation layer.
bool is_norm_segment(std::string_view seg) {
  auto strip_digits = [](std::string_view s) {
    while (!s.empty() && std::isdigit(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
  };
  if (seg.starts_with("bn") && all_digits(seg.substr(2))) return true;
  std::string_view base = strip_digits(seg);
  return base.ends_with("norm") || base.ends_with("_bn");
}

}  // namespace

bool exempt_from_weight_decay(const std::string& name, const Tensor& t) {
  if (t.dim() <= 1) return true;
  if (name.find("log_var") != std::string::npos) return true;
  std::string_view rest(name);
  // Every segment but the last (the parameter's own name) is a module.
  for (size_t dot = rest.find('.'); dot != std::string_view::npos; dot = rest.find('.')) {
    if (is_norm_segment(rest.substr(0, dot))) return true;
    rest.remove_prefix(dot + 1);
  }
  return false;
}

std::vector<ParamGroup> make_param_groups(const std::vector<std::pair<std::string, Tensor>>& named,
                                          double weight_decay) {
  ParamGroup decay{"decay", {}, weight_decay, 1.0}, no_decay{"no_decay", {}, 0.0, 1.0};
  for (const auto& [name, t] : named)
    (exempt_from_weight_decay(name, t) ? no_decay : decay).params.emplace_back(name, t);
  std::vector<ParamGroup> out;
  if (!decay.params.empty()) out.push_back(std::move(decay));
  if (!no_decay.params.empty()) out.push_back(std::move(no_decay));
  return out;
}

bool under_prefix(const std::string& name, const std::string& prefix) {
  return name.size() > prefix.size() && name.compare(0, prefix.size(), prefix) == 0 && name[prefix.size()] == '.';
}

namespace {

void check_covers(const std::vector<std::pair<std::string, Tensor>>& named, const std::string& prefix,
                  const std::string& key) {
  for (const auto& [name, t] : named)
    if (under_prefix(name, prefix)) return;
  std::set<std::string> top;
  for (const auto& [name, t] : named) top.insert(name.substr(0, name.find('.')));
  std::string list;
  for (const std::string& m : top) list += (list.empty() ? "" : ", ") + m;
  throw Error(key + ": '" + prefix + "' matches no parameter of the model (its modules: " + list + ")");
}

}  // namespace

std::vector<ParamGroup> make_param_groups(const std::vector<std::pair<std::string, Tensor>>& named,
                                          double weight_decay, const std::map<std::string, double>& lr_scale,
                                          const std::vector<std::string>& frozen) {
  for (const std::string& f : frozen) check_covers(named, f, "train.freeze");
  for (const auto& [prefix, scale] : lr_scale) check_covers(named, prefix, "optim.lr_scale." + prefix);
  std::vector<std::pair<std::string, Tensor>> trained;
  for (const auto& p : named)
    if (std::none_of(frozen.begin(), frozen.end(), [&](const std::string& f) { return under_prefix(p.first, f); }))
      trained.push_back(p);
  std::vector<ParamGroup> out;
  for (ParamGroup& g : make_param_groups(trained, weight_decay)) {
    // Groups by the longest prefix that covers each parameter; "" for none (scale 1).
    std::map<std::string, ParamGroup> by_prefix;
    for (auto& [name, t] : g.params) {
      std::string best;
      for (const auto& [prefix, scale] : lr_scale)
        if (under_prefix(name, prefix) && prefix.size() > best.size()) best = prefix;
      ParamGroup& sub = by_prefix[best];
      if (sub.name.empty())
        sub = {best.empty() ? g.name : g.name + "/" + best, {}, g.weight_decay, best.empty() ? 1.0 : lr_scale.at(best)};
      sub.params.emplace_back(name, t);
    }
    for (auto& [prefix, sub] : by_prefix) out.push_back(std::move(sub));
  }
  return out;
}

}  // namespace mtl::train
