#include "train/log/console.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace mtl::train {

namespace {

std::string printf_string(const char* fmt, auto... args) {
  int n = std::snprintf(nullptr, 0, fmt, args...);
  std::string s(static_cast<size_t>(std::max(n, 0)), '\0');
  std::snprintf(s.data(), s.size() + 1, fmt, args...);
  return s;
}

}  // namespace

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0 || seconds >= 1e9) return "-:--:--";
  const long long s = std::llround(seconds);
  return printf_string("%lld:%02lld:%02lld", s / 3600, (s / 60) % 60, s % 60);
}

std::string format_lr(double lr) { return printf_string("%.2e", lr); }

std::string format_train_line(const TrainRecord& r, const Progress& p) {
  // Appended piece by piece: GCC 12 warns falsely (-Wrestrict) on `"literal" + std::string` here.
  std::string s = printf_string("epoch %d", r.epoch);
  if (p.epochs > 0) s += printf_string("/%d", p.epochs);
  s += printf_string(" | step %lld", static_cast<long long>(r.step));
  if (p.total_steps > 0) s += printf_string("/%lld", static_cast<long long>(p.total_steps));
  s += " | eta ";
  s += format_duration(p.eta_s);
  s += " | lr ";
  s += format_lr(r.lr);
  s += printf_string(" | loss %.4f", r.loss);
  auto named = [&s](const NamedValues& values, const char* fmt) {
    for (size_t i = 0; i < values.size(); ++i) {
      if (i) s += ", ";
      s += values[i].first;
      s += printf_string(fmt, values[i].second);
    }
  };
  if (!r.task_losses.empty()) {
    s += " (";
    named(r.task_losses, " %.4f");
    s += ")";
  }
  if (!r.task_weights.empty()) {
    s += " | w ";
    named(r.task_weights, " %.3f");
  }
  s += printf_string(" | data %.3fs step %.3fs | %.1f img/s", r.data_time, r.step_time, r.images_per_s);
  if (r.memory_mb) s += printf_string(" | mem %.0f MB", *r.memory_mb);
  return s;
}

std::string format_epoch_line(const EpochRecord& r) {
  std::string s = printf_string("epoch %d done", r.epoch);
  if (!r.task_losses.empty()) {
    s += " | loss ";
    for (size_t i = 0; i < r.task_losses.size(); ++i) {
      if (i) s += ", ";
      s += r.task_losses[i].first;
      s += printf_string(" %.4f", r.task_losses[i].second);
    }
  }
  if (r.segmentation)
    s += printf_string(" | miou %.4f pixel_acc %.4f", r.segmentation->miou, r.segmentation->pixel_accuracy);
  s += printf_string(" | %lld images in %.1fs", static_cast<long long>(r.images), r.time_s);
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
