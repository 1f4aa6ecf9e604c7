#pragma once
// The configuration keys whose values are structured (a size, lists of classes and sources, the
// batch mix, the label map, the task list, class weighting as a name or a list, the pretrained
// class map, learning-rate scales by prefix, frozen prefixes): their readers and writers, for the
// schema table. Internal to train/config/.
#include <yaml-cpp/yaml.h>

#include <string>

#include "train/config/config.h"
#include "train/config/reader.h"

namespace mtl::train::schema {

void read_size(const YAML::Node& n, Config& c, Reader& r, const std::string& p);
void read_classes(const YAML::Node& n, Config& c, Reader& r, const std::string& p);
std::string render_classes(const Config& c);
void read_sources(const YAML::Node& n, Config& c, Reader& r, const std::string& p);
std::string render_sources(const Config& c);
void read_batch_mix(const YAML::Node& n, Config& c, Reader& r, const std::string& p);
std::string render_batch_mix(const Config& c);
// `ignore` is stored as kIgnoreMark until the tree walk resolves it to data.ignore_index.
void read_label_map(const YAML::Node& n, Config& c, Reader& r, const std::string& p);
std::string render_label_map(const Config& c);
void read_tasks(const YAML::Node& n, Config& c, Reader& r, const std::string& p);
std::string render_tasks(const Config& c);
// A non-empty list of positive scales, each in [0.25, 4].
void read_scales(const YAML::Node& n, Config& c, Reader& r, const std::string& p);
std::string render_scales(const Config& c);
void read_class_map(const YAML::Node& n, Config& c, Reader& r, const std::string& p);
std::string render_class_map(const Config& c);
void read_lr_scale(const YAML::Node& n, Config& c, Reader& r, const std::string& p);
std::string render_lr_scale(const Config& c);
void read_freeze(const YAML::Node& n, Config& c, Reader& r, const std::string& p);
std::string render_freeze(const Config& c);
void read_class_weighting(const YAML::Node& n, Config& c, Reader& r, const std::string& p);
std::string render_class_weighting(const Config& c);

}  // namespace mtl::train::schema
