#include "train/log/metrics_log.h"

namespace mtl::train {

MetricsLog::MetricsLog(const std::string& path) : file_(path, "metrics log") {}

void MetricsLog::write_line(const std::string& line) {
  file_.write(line);
  file_.flush();
}

// Invalid UTF-8 (a class name from a hand-edited config) is replaced rather than thrown on: a
// log line is not worth stopping a training run for.
void MetricsLog::log(const nlohmann::json& record) {
  write_line(record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}
void MetricsLog::log(const nlohmann::ordered_json& record) {
  write_line(record.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n");
}

}  // namespace mtl::train
