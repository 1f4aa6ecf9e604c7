#include "train/config/config_text.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>

#include "core/error.h"

namespace mtl::train::schema {

bool is_json(const std::string& text, const std::string& source) {
  if (source.size() >= 5) {
    std::string e = source.substr(source.size() - 5);
    std::transform(e.begin(), e.end(), e.begin(), [](unsigned char ch) { return std::tolower(ch); });
    if (e == ".json") return true;
  }
  const size_t first = text.find_first_not_of(" \t\r\n");
  return first != std::string::npos && text[first] == '{';
}

namespace {

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

}  // namespace

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

}  // namespace mtl::train::schema
