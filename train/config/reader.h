#pragma once
// Helpers for reading a YAML tree against a typed schema: strict scalar conversion, locations
// ("file:line:col" or the --set override that supplied a value), "did you mean" suggestions, and
// error collection so that one mtl::Error reports every problem in a document.
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mtl::train::schema {

size_t edit_distance(std::string_view a, std::string_view b);
// The candidate closest to `key` (a dotted path), by edit distance on the whole path or an equal
// last component (so `train.lr` finds `optim.lr`); nullopt when nothing is close.
std::optional<std::string> closest(const std::string& key, const std::vector<std::string>& candidates);

// Renders values as YAML flow text that parses back to the same value.
std::string render_double(double v);
std::string render_string(const std::string& s);

class Reader {
 public:
  Reader(std::string source, bool json) : source_(std::move(source)), json_(json) {}

  // Values under `path` came from this override ("optim.lr=0.1") rather than the file.
  void add_override(const std::string& path, const std::string& assignment, int level);
  // The override level that supplied `path` or an ancestor of it: 0 for the file, i for the
  // i-th override (1-based), -1 when the key was not given at all (see mark_given).
  int level_of(const std::string& path) const;
  void mark_given(const std::string& path) { given_[path] = level_of(path); }
  bool given(const std::string& path) const { return given_.count(path) != 0; }
  int given_level(const std::string& path) const;

  const std::string& source() const { return source_; }
  bool json() const { return json_; }
  // "cfg.yaml:3:5: " or "--set a.b=1: ", for the node at `path`.
  std::string where(const YAML::Node& node, const std::string& path) const;
  void error(const YAML::Node& node, const std::string& path, const std::string& msg);
  void error(const std::string& path, const std::string& msg);  // no node (cross-field checks)
  void unknown_key(const YAML::Node& key_node, const std::string& path,
                   const std::vector<std::string>& candidates, const std::string& allowed_hint = "");
  bool has_errors() const { return !errors_.empty(); }
  // Throws one mtl::Error listing every problem so far.
  void throw_if_errors() const;

  // Strict conversions: a type or range problem is recorded (naming path, value and `expected`)
  // and nullopt returned. Quoted scalars are strings, never numbers or booleans.
  std::optional<double> number(const YAML::Node& n, const std::string& path, double lo, bool lo_open,
                               double hi, bool hi_open);
  std::optional<int64_t> integer(const YAML::Node& n, const std::string& path, int64_t lo, int64_t hi);
  std::optional<bool> boolean(const YAML::Node& n, const std::string& path);
  std::optional<std::string> string(const YAML::Node& n, const std::string& path, bool allow_empty = false);
  // A scalar naming one of `choices`; `expected` describes them for the message.
  std::optional<std::string> choice(const YAML::Node& n, const std::string& path,
                                    const std::vector<std::string>& choices);
  bool expect_map(const YAML::Node& n, const std::string& path);
  bool expect_list(const YAML::Node& n, const std::string& path);

  // "a mapping"/"an object", "a list"/"an array": the words of the file's language.
  std::string map_word() const { return json_ ? "an object" : "a mapping"; }
  std::string list_word() const { return json_ ? "an array" : "a list"; }
  // How a node looks in a message: its scalar text quoted, or its kind.
  std::string show(const YAML::Node& n) const;

 private:
  std::string source_;
  bool json_;
  std::map<std::string, std::pair<std::string, int>> overrides_;  // path -> (assignment, level)
  std::map<std::string, int> given_;
  std::vector<std::string> errors_;
};

// Parses "a.b=value" into its path parts and value node; throws mtl::Error on a malformed one.
struct Assignment {
  std::string text, path;
  std::vector<std::string> parts;
  YAML::Node value;
};
Assignment parse_assignment(const std::string& text);
// Sets root[a][b]... = value, creating mappings on the way; throws when a step is not a mapping.
void set_path(YAML::Node root, const Assignment& a);

}  // namespace mtl::train::schema
