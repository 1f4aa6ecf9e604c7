#include "train/eval/speed.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <vector>

#include "core/cuda_context.h"
#include "core/error.h"
#include "ops/ops.h"

namespace mtl::train {

namespace {

std::string cpu_model_name() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    size_t b = line.find_first_not_of(" \t", colon + 1);
    if (b == std::string::npos) continue;
    size_t e = line.find_last_not_of(" \t\r");
    return line.substr(b, e - b + 1);
  }
  return "unknown CPU";
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

std::string device_display_name(Device device) {
  return device.is_cuda() ? cuda::device_name() : cpu_model_name();
}

SpeedResult measure_speed(const Predictor& predictor, const Tensor& rgb, const Tensor& depth, int batch,
                          const SpeedOptions& o) {
  MTL_CHECK(batch >= 1, "the speed batch size must be at least 1, got ", batch);
  MTL_CHECK(o.min_runs >= 1 && o.max_runs >= o.min_runs, "speed: need 1 <= min_runs <= max_runs, got ", o.min_runs,
            " and ", o.max_runs);
  MTL_CHECK(rgb.dim() == 4 && rgb.size(0) == 1 && depth.dim() == 4 && depth.size(0) == 1,
            "measure_speed expects one sample, got ", rgb.describe(), " and ", depth.describe());
  const Device dev = predictor.device();
  const bool cuda_dev = dev.is_cuda();
  auto sync = [&] {
    if (cuda_dev) cuda::synchronize();
  };
  const int warmup = o.warmup >= 0 ? o.warmup : (cuda_dev ? 3 : 1);
  auto replicate = [&](const Tensor& t, int b) {
    const Tensor one = t.to(dev);
    if (b == 1) return one;
    return ops::cat(std::vector<Tensor>(static_cast<size_t>(b), one), 0);
  };
  auto time_runs = [&](int b) {
    const Tensor r = replicate(rgb, b), d = replicate(depth, b);
    for (int i = 0; i < warmup; ++i) predictor.forward(r, d);
    sync();
    std::vector<double> times;
    double total = 0;
    while (static_cast<int>(times.size()) < o.max_runs &&
           (static_cast<int>(times.size()) < o.min_runs || total < o.min_seconds)) {
      sync();
      const auto t0 = std::chrono::steady_clock::now();
      const NetOutput out = predictor.forward(r, d);
      sync();
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      times.push_back(s);
      total += s;
    }
    return times;
  };
  SpeedResult res;
  res.device = device_display_name(dev);
  res.batch = batch;
  const std::vector<double> one = time_runs(1);
  res.latency_ms = 1000.0 * median(one);
  const std::vector<double> many = batch == 1 ? one : time_runs(batch);
  double total = 0;
  for (double t : many) total += t;
  res.images_per_s = static_cast<double>(batch) * static_cast<double>(many.size()) / std::max(total, 1e-12);
  return res;
}

}  // namespace mtl::train
