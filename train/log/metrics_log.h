#pragma once
// metrics.jsonl: one compact JSON object per line, Detectron2 style, so that pandas and jq read it
// while training runs.
#include <string>

#include <nlohmann/json.hpp>

#include "core/file_io.h"

namespace mtl::train {

// Appends and flushes one line per record, so a crash loses at most the record being written. NaN
// and infinities become null (JSON has neither).
class MetricsLog {
 public:
  // Opens `path` for appending (a resumed run continues its file), creating the parent folder.
  // Throws mtl::Error naming the path when it cannot.
  explicit MetricsLog(const std::string& path);

  const std::string& path() const { return file_.path(); }
  void log(const nlohmann::json& record);
  void log(const nlohmann::ordered_json& record);

 private:
  void write_line(const std::string& line);
  AppendFile file_;
};

}  // namespace mtl::train
