#include "train/optim/param_groups.h"

#include <algorithm>
#include <cctype>
#include <string_view>

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

}  // namespace mtl::train
