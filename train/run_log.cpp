#include "train/run_log.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace mtl::train {

namespace {

std::string printf_string(const char* fmt, auto... args) {
  int n = std::snprintf(nullptr, 0, fmt, args...);
  std::string s(static_cast<size_t>(std::max(n, 0)), '\0');
  std::snprintf(s.data(), s.size() + 1, fmt, args...);
  return s;
}

// JSON has no NaN or infinity; null says "no value" to every reader.
nlohmann::ordered_json number_or_null(double v) {
  return std::isfinite(v) ? nlohmann::ordered_json(v) : nlohmann::ordered_json(nullptr);
}

void flatten(const std::string& prefix, const nlohmann::ordered_json& j, NamedValues& out) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string tag = prefix + "/" + it.key();
    if (it->is_object()) {
      flatten(tag, *it, out);
    } else if (it->is_number()) {
      out.emplace_back(tag, it->get<double>());
    }
  }
}

}  // namespace

// ---- metrics.jsonl ----

MetricsLog::MetricsLog(const std::string& path) : path_(path) {
  namespace fs = std::filesystem;
  fs::path p(path);
  if (p.has_parent_path()) {
    std::error_code ec;
    fs::create_directories(p.parent_path(), ec);
    MTL_CHECK(!ec, "cannot create folder '", p.parent_path().string(), "': ", ec.message());
  }
  file_ = std::fopen(path.c_str(), "ab");
  MTL_CHECK(file_ != nullptr, "cannot open metrics log '", path, "' for appending: ", std::strerror(errno));
}

MetricsLog::~MetricsLog() {
  if (file_ != nullptr) std::fclose(file_);
}

MetricsLog::MetricsLog(MetricsLog&& o) noexcept : path_(std::move(o.path_)), file_(o.file_) { o.file_ = nullptr; }

MetricsLog& MetricsLog::operator=(MetricsLog&& o) noexcept {
  if (this != &o) {
    if (file_ != nullptr) std::fclose(file_);
    path_ = std::move(o.path_);
    file_ = o.file_;
    o.file_ = nullptr;
  }
  return *this;
}

void MetricsLog::write_line(const std::string& line) {
  MTL_CHECK(file_ != nullptr, "metrics log '", path_, "' is closed");
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0)
    throw Error("writing metrics log '" + path_ + "' failed: " + std::strerror(errno));
}

// Invalid UTF-8 (a class name from a hand-edited config) is replaced rather than thrown on: a
// log line is not worth stopping a training run for.
void MetricsLog::log(const nlohmann::json& record) {
  write_line(record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}
void MetricsLog::log(const nlohmann::ordered_json& record) {
  write_line(record.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n");
}

// ---- records ----

nlohmann::ordered_json train_record(const TrainRecord& r) {
  nlohmann::ordered_json j;
  j["type"] = "train";
  j["epoch"] = r.epoch;
  j["step"] = r.step;
  j["lr"] = number_or_null(r.lr);
  j["loss"] = number_or_null(r.loss);
  for (const auto& [task, v] : r.task_losses) j["loss/" + task] = number_or_null(v);
  for (const auto& [task, v] : r.task_weights) j["weight/" + task] = number_or_null(v);
  for (const auto& [key, v] : r.extra) j[key] = number_or_null(v);
  j["data_time"] = number_or_null(r.data_time);
  j["step_time"] = number_or_null(r.step_time);
  j["images_per_s"] = number_or_null(r.images_per_s);
  j["memory_mb"] = r.memory_mb ? number_or_null(*r.memory_mb) : nlohmann::ordered_json(nullptr);
  return j;
}

nlohmann::ordered_json eval_record(const EvalRecord& r) {
  nlohmann::ordered_json j;
  j["type"] = "eval";
  j["epoch"] = r.epoch;
  j["step"] = r.step;
  if (r.loss) j["loss"] = number_or_null(*r.loss);
  for (const auto& [task, v] : r.task_losses) j["loss/" + task] = number_or_null(v);
  if (r.segmentation) {
    const ops::SegmentationMetrics& s = *r.segmentation;
    MTL_CHECK(r.class_names.empty() || r.class_names.size() == s.iou.size(), "eval record: ",
              r.class_names.size(), " class names for ", s.iou.size(), " classes");
    j["miou"] = number_or_null(s.miou);
    j["pixel_accuracy"] = number_or_null(s.pixel_accuracy);
    nlohmann::ordered_json per_class = nlohmann::ordered_json::object();
    for (size_t c = 0; c < s.iou.size(); ++c) {
      const std::string name = r.class_names.empty() ? std::to_string(c) : r.class_names[c];
      per_class[name] = s.iou[c] ? number_or_null(*s.iou[c]) : nlohmann::ordered_json(nullptr);
    }
    j["per_class_iou"] = std::move(per_class);
  }
  if (r.depth) {
    const ops::DepthMetrics& d = *r.depth;
    j["depth_abs_rel"] = number_or_null(d.abs_rel);
    j["depth_sq_rel"] = number_or_null(d.sq_rel);
    j["depth_rmse"] = number_or_null(d.rmse);
    j["depth_rmse_log"] = number_or_null(d.rmse_log);
    j["depth_delta1"] = number_or_null(d.delta1);
    j["depth_delta2"] = number_or_null(d.delta2);
    j["depth_delta3"] = number_or_null(d.delta3);
    j["depth_pixels"] = d.pixels;
  }
  j["time_s"] = number_or_null(r.time_s);
  return j;
}

NamedValues record_scalars(const nlohmann::ordered_json& record) {
  const std::string type = record.contains("type") && record["type"].is_string()
                               ? record["type"].get<std::string>()
                               : std::string("record");
  NamedValues out;
  nlohmann::ordered_json rest = record;
  rest.erase("type");
  rest.erase("epoch");
  rest.erase("step");
  flatten(type, rest, out);
  return out;
}

// ---- console ----

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0 || seconds >= 1e9) return "-:--:--";
  const long long s = std::llround(seconds);
  return printf_string("%lld:%02lld:%02lld", s / 3600, (s / 60) % 60, s % 60);
}

std::string format_lr(double lr) { return printf_string("%.2e", lr); }

std::string format_train_line(const TrainRecord& r, const Progress& p) {
  std::string s = "epoch " + std::to_string(r.epoch);
  if (p.epochs > 0) s += "/" + std::to_string(p.epochs);
  s += " | step " + std::to_string(r.step);
  if (p.total_steps > 0) s += "/" + std::to_string(p.total_steps);
  s += " | eta " + format_duration(p.eta_s);
  s += " | lr " + format_lr(r.lr);
  s += printf_string(" | loss %.4f", r.loss);
  if (!r.task_losses.empty()) {
    s += " (";
    for (size_t i = 0; i < r.task_losses.size(); ++i)
      s += (i ? ", " : "") + r.task_losses[i].first + printf_string(" %.4f", r.task_losses[i].second);
    s += ")";
  }
  if (!r.task_weights.empty()) {
    s += " | w ";
    for (size_t i = 0; i < r.task_weights.size(); ++i)
      s += (i ? ", " : "") + r.task_weights[i].first + printf_string(" %.3f", r.task_weights[i].second);
  }
  s += printf_string(" | data %.3fs step %.3fs | %.1f img/s", r.data_time, r.step_time, r.images_per_s);
  if (r.memory_mb) s += printf_string(" | mem %.0f MB", *r.memory_mb);
  return s;
}

std::string format_eval_line(const EvalRecord& r) {
  std::string s = "eval epoch " + std::to_string(r.epoch) + " step " + std::to_string(r.step);
  if (r.loss) s += printf_string(" | loss %.4f", *r.loss);
  if (r.segmentation)
    s += printf_string(" | miou %.4f | pixel_acc %.4f", r.segmentation->miou, r.segmentation->pixel_accuracy);
  if (r.depth)
    s += printf_string(" | depth rmse %.4f abs_rel %.4f delta1 %.4f", r.depth->rmse, r.depth->abs_rel,
                       r.depth->delta1);
  s += printf_string(" | %.1fs", r.time_s);
  return s;
}

std::string progress_bar(int64_t done, int64_t total, int width) {
  width = std::max(width, 1);
  const int64_t d = total > 0 ? std::clamp<int64_t>(done, 0, total) : 0;
  const int64_t t = std::max<int64_t>(total, 1);
  const int cells = static_cast<int>(d * width / t);
  std::string bar(1, '[');
  bar.append(static_cast<size_t>(cells), '=');
  if (cells < width) {
    bar.push_back('>');
    bar.append(static_cast<size_t>(width - cells - 1), ' ');
  }
  bar += printf_string("] %3d%%", static_cast<int>(d * 100 / t));
  return bar;
}

bool stdout_is_tty() { return ::isatty(::fileno(stdout)) == 1; }

}  // namespace mtl::train
