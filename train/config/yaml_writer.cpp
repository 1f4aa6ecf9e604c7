// The Config as YAML (the resolved config.yaml of a run, the commented default configuration) and
// as the Markdown key table of docs/config.md.
#include <string>
#include <vector>

#include "train/config/config.h"
#include "train/config/schema.h"

namespace mtl::train {

using schema::Field;
using schema::fields;
using schema::section_help;

std::string to_yaml(const Config& cfg, bool comments) {
  std::string out;
  std::vector<std::string> open;
  for (const Field& f : fields()) {
    if (!f.present(cfg)) continue;
    std::vector<std::string> parts;
    for (size_t s = 0, d;; s = d + 1) {
      d = f.path.find('.', s);
      parts.push_back(f.path.substr(s, d == std::string::npos ? d : d - s));
      if (d == std::string::npos) break;
    }
    const size_t depth = parts.size() - 1;
    size_t common = 0;
    while (common < open.size() && common < depth && open[common] == parts[common]) ++common;
    for (size_t j = common; j < depth; ++j) {
      if (j == 0) {
        if (!out.empty()) out += "\n";
        if (comments) out += "# " + section_help().at(parts[0]) + "\n";
      }
      out += std::string(2 * j, ' ') + parts[j] + ":\n";
    }
    open.assign(parts.begin(), parts.end() - 1);
    const std::string ind(2 * depth, ' ');
    if (comments) {
      for (size_t s = 0, d;; s = d + 1) {
        d = f.help.find('\n', s);
        out += ind + "# " + f.help.substr(s, d == std::string::npos ? d : d - s) + "\n";
        if (d == std::string::npos) break;
      }
    }
    std::string v = f.render(cfg);
    if (!v.empty() && v[0] == '\n') {
      out += ind + parts.back() + ":";
      for (size_t s = 1, d;; s = d + 1) {
        d = v.find('\n', s);
        out += "\n" + ind + "  " + v.substr(s, d == std::string::npos ? d : d - s);
        if (d == std::string::npos) break;
      }
      out += "\n";
    } else {
      out += ind + parts.back() + ": " + v + "\n";
    }
  }
  return out;
}

std::string default_config_yaml() {
  return "# mtl configuration: every key with its default value. Unknown keys are errors; any key\n"
         "# can be overridden on the command line with --set section.key=value.\n"
         "# Reference: docs/config.md.\n\n" +
         to_yaml(Config{}, true);
}

std::string config_reference_table() {
  const Config defaults;
  std::string out = "| key | default | meaning |\n|---|---|---|\n";
  auto cell = [](std::string t) {
    std::string r;
    for (char ch : t) r += ch == '|' ? std::string("\\|") : ch == '\n' ? std::string(" ") : std::string(1, ch);
    return r;
  };
  for (const Field& f : fields()) {
    std::string v = f.render(defaults);
    if (!v.empty() && v[0] == '\n') v = "the greenhouse list (below)";
    else v = "`" + v + "`";
    out += "| `" + f.path + "` | " + cell(v) + " | " + cell(f.help) + " |\n";
  }
  return out;
}

std::vector<std::string> config_keys() {
  std::vector<std::string> out;
  for (const Field& f : fields()) out.push_back(f.path);
  return out;
}

}  // namespace mtl::train

