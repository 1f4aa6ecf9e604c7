#pragma once
// Configuration text to a YAML tree: YAML, or JSON (which yaml-cpp reads nearly always; for what
// it rejects, tabs say, the tree is built from nlohmann's parse). Internal to train/config/.
#include <yaml-cpp/yaml.h>

#include <string>

namespace mtl::train::schema {

// Whether a configuration is JSON: `source` ends in .json (any case), or the text's first
// non-blank character opens an object (a YAML file written as one flow mapping reads the same).
bool is_json(const std::string& text, const std::string& source);
// Syntax errors are mtl::Error naming `source` (and, for YAML, the line and column).
YAML::Node load_tree(const std::string& text, const std::string& source, bool json);

}  // namespace mtl::train::schema
