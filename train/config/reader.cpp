#include "train/config/reader.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>

#include "core/error.h"

namespace mtl::train::schema {

namespace {

std::string leaf(const std::string& path) {
  size_t p = path.rfind('.');
  return p == std::string::npos ? path : path.substr(p + 1);
}
std::string parent(const std::string& path) {
  size_t p = path.rfind('.');
  return p == std::string::npos ? "" : path.substr(0, p);
}

// `path` equals `ancestor` or lies below it (".child" or "[i]").
bool within(const std::string& path, const std::string& ancestor) {
  if (path.compare(0, ancestor.size(), ancestor) != 0) return false;
  return path.size() == ancestor.size() || path[ancestor.size()] == '.' || path[ancestor.size()] == '[';
}

std::string bound(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

bool plain_scalar(const YAML::Node& n) { return n.IsScalar() && n.Tag() != "!"; }

std::optional<double> to_double(std::string s) {
  if (!s.empty() && s[0] == '+') s.erase(0, 1);
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty() || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::optional<int64_t> to_int(std::string s) {
  if (!s.empty() && s[0] == '+') s.erase(0, 1);
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

}  // namespace

size_t edit_distance(std::string_view a, std::string_view b) {
  // Optimal string alignment distance: insertions, deletions, substitutions, transpositions.
  std::vector<size_t> prev2(b.size() + 1), prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        cur[j] = std::min(cur[j], prev2[j - 2] + 1);  // a swap of neighbours is one typo
    }
    std::swap(prev2, prev);
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::optional<std::string> closest(const std::string& key, const std::vector<std::string>& candidates) {
  const std::string k_leaf = leaf(key), k_parent = parent(key);
  const size_t threshold = std::clamp<size_t>(k_leaf.size() / 3, 1, 4);
  std::optional<std::string> best;
  size_t best_score = threshold + 1;
  for (const std::string& c : candidates) {
    size_t s = edit_distance(key, c);
    // The right name in the wrong section costs one edit more than in the right section.
    size_t leaf_s = edit_distance(k_leaf, leaf(c)) + (parent(c) == k_parent ? 0 : 1);
    s = std::min(s, leaf_s);
    if (s < best_score) best_score = s, best = c;
  }
  return best;
}

std::string render_double(double v) {
  char buf[64];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
  std::string s(buf, p);
  size_t e = s.find('e');
  if (e != std::string::npos) {
    // "1e-08" -> "1.0e-8": YAML 1.1 readers (PyYAML) want a dot and a signed exponent.
    size_t d = e + 1 + (s[e + 1] == '-' || s[e + 1] == '+');
    while (d + 1 < s.size() && s[d] == '0') s.erase(d, 1);
    if (s[e + 1] != '-' && s[e + 1] != '+') s.insert(e + 1, "+");
    if (s.substr(0, e).find('.') == std::string::npos) s.insert(e, ".0");
  } else if (s.find_first_of(".n") == std::string::npos) {
    s += ".0";
  }
  return s;
}

std::string render_string(const std::string& s) {
  static const char* specials[] = {"true", "false", "null", "yes", "no", "on", "off", "~", "y", "n"};
  bool plain = !s.empty() && !to_double(s) && !to_int(s);
  for (char ch : s)
    plain &= std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '.' || ch == '/' || ch == '-';
  if (plain && (s[0] == '-' || s[0] == '.')) plain = false;
  std::string lower = s;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const char* sp : specials) plain &= lower != sp;
  if (plain) return s;
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\', out += ch;
    else if (ch == '\n') out += "\\n";
    else if (ch == '\t') out += "\\t";
    else if (static_cast<unsigned char>(ch) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(ch));
      out += buf;
    } else out += ch;
  }
  return out + "\"";
}

void Reader::add_override(const std::string& path, const std::string& assignment, int level) {
  overrides_[path] = {assignment, level};
}

int Reader::level_of(const std::string& path) const {
  int level = 0;
  for (const auto& [p, v] : overrides_)
    if (within(path, p)) level = std::max(level, v.second);
  return level;
}

int Reader::given_level(const std::string& path) const {
  auto it = given_.find(path);
  return it == given_.end() ? -1 : it->second;
}

std::string Reader::where(const YAML::Node& node, const std::string& path) const {
  const std::pair<std::string, int>* best = nullptr;
  // A value set by --set, or a section that --set turned into a mapping, is the override's doing.
  for (const auto& [p, v] : overrides_)
    if ((within(path, p) || within(p, path)) && (!best || v.second > best->second)) best = &v;
  if (best) return "--set " + best->first + ": ";
  if (node.IsDefined()) {
    YAML::Mark m = node.Mark();
    if (!m.is_null() && m.line >= 0)
      return source_ + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1) + ": ";
  }
  return source_ + ": ";
}

void Reader::error(const YAML::Node& node, const std::string& path, const std::string& msg) {
  errors_.push_back(where(node, path) + path + ": " + msg);
}

void Reader::error(const std::string& path, const std::string& msg) {
  error(YAML::Node(), path, msg);
}

void Reader::unknown_key(const YAML::Node& key_node, const std::string& path,
                         const std::vector<std::string>& candidates, const std::string& allowed_hint) {
  std::string msg = where(key_node, path) + "unknown key `" + path + "`";
  if (auto s = closest(path, candidates)) msg += "; did you mean `" + *s + "`?";
  if (!allowed_hint.empty()) msg += " (" + allowed_hint + ")";
  errors_.push_back(msg);
}

void Reader::throw_if_errors() const {
  if (errors_.empty()) return;
  if (errors_.size() == 1) throw Error(errors_[0]);
  std::string msg = std::to_string(errors_.size()) + " problems in config '" + source_ + "':";
  for (const std::string& e : errors_) msg += "\n  " + e;
  throw Error(msg);
}

std::string Reader::show(const YAML::Node& n) const {
  if (!n.IsDefined() || n.IsNull()) return "nothing (null)";
  if (n.IsScalar()) return n.Tag() == "!" ? "the string \"" + n.Scalar() + "\"" : "'" + n.Scalar() + "'";
  if (n.IsSequence())
    return list_word() + " of " + std::to_string(n.size()) + (n.size() == 1 ? " value" : " values");
  return map_word();
}

std::optional<double> Reader::number(const YAML::Node& n, const std::string& path, double lo, bool lo_open,
                                     double hi, bool hi_open) {
  const double inf = std::numeric_limits<double>::infinity();
  std::string expected = "a number";
  if (lo > -inf && hi < inf)
    expected += " in " + std::string(lo_open ? "(" : "[") + bound(lo) + ", " + bound(hi) + (hi_open ? ")" : "]");
  else if (lo > -inf)
    expected += std::string(lo_open ? " > " : " >= ") + bound(lo);
  else if (hi < inf)
    expected += std::string(hi_open ? " < " : " <= ") + bound(hi);
  std::optional<double> v = plain_scalar(n) ? to_double(n.Scalar()) : std::nullopt;
  if (!v) {
    error(n, path, "expected " + expected + ", got " + show(n));
    return std::nullopt;
  }
  bool ok = (lo_open ? *v > lo : *v >= lo) && (hi_open ? *v < hi : *v <= hi);
  if (!ok) {
    error(n, path, n.Scalar() + " is out of range; expected " + expected);
    return std::nullopt;
  }
  return v;
}

std::optional<int64_t> Reader::integer(const YAML::Node& n, const std::string& path, int64_t lo, int64_t hi) {
  std::string expected = "an integer";
  if (hi == std::numeric_limits<int64_t>::max())
    expected += " >= " + std::to_string(lo);
  else
    expected += " in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  std::optional<int64_t> v = plain_scalar(n) ? to_int(n.Scalar()) : std::nullopt;
  if (!v) {
    error(n, path, "expected " + expected + ", got " + show(n));
    return std::nullopt;
  }
  if (*v < lo || *v > hi) {
    error(n, path, n.Scalar() + " is out of range; expected " + expected);
    return std::nullopt;
  }
  return v;
}

std::optional<bool> Reader::boolean(const YAML::Node& n, const std::string& path) {
  if (plain_scalar(n)) {
    const std::string& s = n.Scalar();
    if (s == "true" || s == "True" || s == "TRUE") return true;
    if (s == "false" || s == "False" || s == "FALSE") return false;
  }
  error(n, path, "expected true or false, got " + show(n));
  return std::nullopt;
}

std::optional<std::string> Reader::string(const YAML::Node& n, const std::string& path, bool allow_empty) {
  if (!n.IsScalar() || (n.Tag() != "!" && n.IsNull())) {
    error(n, path, "expected a string, got " + show(n));
    return std::nullopt;
  }
  if (!allow_empty && n.Scalar().empty()) {
    error(n, path, "must not be empty");
    return std::nullopt;
  }
  return n.Scalar();
}

std::optional<std::string> Reader::choice(const YAML::Node& n, const std::string& path,
                                          const std::vector<std::string>& choices) {
  std::string expected;
  for (size_t i = 0; i < choices.size(); ++i)
    expected += (i ? (i + 1 == choices.size() ? " or " : ", ") : "") + choices[i];
  if (n.IsScalar() && !n.IsNull()) {
    for (const std::string& c : choices)
      if (n.Scalar() == c) return c;
    std::string msg = "'" + n.Scalar() + "' is not allowed; expected " + expected;
    std::vector<std::string> cands(choices.begin(), choices.end());
    std::string best;
    size_t bd = 3;
    for (const std::string& c : cands)
      if (size_t d = edit_distance(n.Scalar(), c); d < bd) bd = d, best = c;
    if (!best.empty()) msg += "; did you mean `" + best + "`?";
    error(n, path, msg);
    return std::nullopt;
  }
  error(n, path, "expected one of " + expected + ", got " + show(n));
  return std::nullopt;
}

bool Reader::expect_map(const YAML::Node& n, const std::string& path) {
  if (n.IsMap()) return true;
  error(n, path, "expected " + map_word() + " of keys, got " + show(n));
  return false;
}

bool Reader::expect_list(const YAML::Node& n, const std::string& path) {
  if (n.IsSequence()) return true;
  error(n, path, "expected " + list_word() + ", got " + show(n));
  return false;
}

Assignment parse_assignment(const std::string& text) {
  size_t eq = text.find('=');
  MTL_CHECK(eq != std::string::npos && eq > 0, "--set ", text,
            ": expected KEY=VALUE with a dotted key, e.g. optim.lr=0.001");
  Assignment a;
  a.text = text;
  a.path = text.substr(0, eq);
  size_t start = 0;
  while (true) {
    size_t dot = a.path.find('.', start);
    std::string part = a.path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    MTL_CHECK(!part.empty(), "--set ", text, ": the key '", a.path, "' has an empty part");
    for (char ch : part)
      MTL_CHECK(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_', "--set ", text,
                ": the key '", a.path, "' may hold letters, digits, '_' and '.' only");
    a.parts.push_back(part);
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  try {
    a.value = YAML::Load(text.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    throw Error("--set " + text + ": cannot read the value as YAML: " + e.msg);
  }
  return a;
}

void set_path(YAML::Node root, const Assignment& a) {
  // yaml-cpp Nodes are handles: `child` below refers into the parent, so assigning to it edits
  // the tree in place.
  YAML::Node cur = root;
  for (size_t i = 0; i + 1 < a.parts.size(); ++i) {
    YAML::Node child = cur[a.parts[i]];
    if (!child.IsDefined() || child.IsNull()) {
      child = YAML::Node(YAML::NodeType::Map);
    } else if (!child.IsMap()) {
      std::string where;
      for (size_t j = 0; j <= i; ++j) where += (j ? "." : "") + a.parts[j];
      throw Error("--set " + a.text + ": `" + where + "` is not a section, so it has no key `" +
                  a.parts[i + 1] + "`");
    }
    cur.reset(child);
  }
  cur[a.parts.back()] = a.value;
}

}  // namespace mtl::train::schema
