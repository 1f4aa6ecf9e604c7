#include "train/config/config.h"

#include <charconv>

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

models::BuildOptions model_build_options(const Config& cfg) {
  models::BuildOptions b;
  b.input_height = cfg.train.input_size.height;
  b.input_width = cfg.train.input_size.width;
  b.seed = cfg.runtime.seed;
  return b;
}

}  // namespace mtl::train
