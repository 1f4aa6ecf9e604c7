#include "train/eval_tool.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>

#include "core/cuda_context.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "kernels/threads.h"
#include "ops/ops.h"
#include "train/dataset.h"
#include "train/visuals.h"

namespace mtl::train {

namespace fs = std::filesystem;

// ---- metrics ----

MetricAccumulator::MetricAccumulator(const Config& cfg, Device device) : device_(device) {
  if (cfg.model.has_task(Task::semantic)) {
    ops::ConfusionOptions co;
    co.ignore_index = cfg.data.ignore_index;
    confusion_.emplace(cfg.model.num_classes, device, co);
  }
  if (cfg.model.has_task(Task::depth)) depth_.emplace(device);
}

void MetricAccumulator::add(const ImagePrediction& p, const ImageI32& labels, const ImageF& depth) {
  if (confusion_ && !labels.empty()) {
    MTL_CHECK(p.semantic.defined(), "the prediction has no semantic output to compare with the labels");
    MTL_CHECK(p.semantic.size(3) == labels.width && p.semantic.size(2) == labels.height, "the semantic prediction ",
              p.semantic.describe(), " does not have the labels' size ", labels.width, "x", labels.height);
    confusion_->update(p.semantic, from_data(labels.data.data(), {1, labels.height, labels.width}, device_));
  }
  if (depth_ && !depth.empty()) {
    MTL_CHECK(p.depth.defined(), "the prediction has no depth output to compare with the depth map");
    MTL_CHECK(p.depth.size(3) == depth.width && p.depth.size(2) == depth.height, "the depth prediction ",
              p.depth.describe(), " does not have the depth map's size ", depth.width, "x", depth.height);
    depth_->update(p.depth, from_data(depth.data.data(), {1, 1, depth.height, depth.width}, device_));
  }
}

std::optional<ops::SegmentationMetrics> MetricAccumulator::segmentation() const {
  if (!confusion_) return std::nullopt;
  return confusion_->compute();
}

std::optional<ops::DepthMetrics> MetricAccumulator::depth() const {
  if (!depth_) return std::nullopt;
  return depth_->compute();
}

// ---- speed ----

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

// ---- evaluation ----

std::string visuals_dir(const EvalToolOptions& o) {
  if (!o.json_path.empty()) {
    const fs::path parent = fs::path(o.json_path).parent_path();
    return parent.empty() ? std::string(".") : parent.string();
  }
  return (fs::path(o.run_dir) / ("eval_" + o.split)).string();
}

namespace {

std::string file_safe(std::string s) {
  for (char& c : s)
    if (c == '/' || c == '\\') c = '_';
  return s;
}

}  // namespace

EvalReport run_evaluation(const EvalToolOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  MTL_CHECK(o.split == "val" || o.split == "test", "--split must be val or test, got '", o.split, "'");
  MTL_CHECK(o.visuals >= 0, "--visuals must be 0 or more, got ", o.visuals);
  EvalReport r;
  r.split = o.split;
  r.tta = o.inference.tta;
  r.mode = o.inference.mode;

  Config cfg = load_run_config(o.run_dir);
  if (!o.data_root.empty()) {
    cfg.data.root = o.data_root;
    cfg.data.sources.clear();
  }
  for (const ClassInfo& c : cfg.data.classes) r.class_names.push_back(c.name);
  const Device device = o.device ? *o.device : resolve_device(cfg.runtime.device);
  if (device.is_cuda()) cuda::require();
  kernels::set_cpu_threads(cfg.runtime.threads);
  r.checkpoints = resolve_checkpoints(o.run_dir, o.checkpoints, r.notes);
  const DatasetStats stats = load_run_stats(o.run_dir, cfg, r.notes);
  InferenceOptions io = o.inference;
  if (io.batch <= 0) io.batch = cfg.eval.batch_size;

  // The data are checked before the models are loaded, so that a data problem shows at once.
  const bool semantic = cfg.model.has_task(Task::semantic);
  const ScanResult scan = scan_split(cfg.data, o.split, semantic);
  const Dataset& ds = scan.dataset;
  std::vector<std::shared_ptr<models::ESANet>> nets;
  for (const std::string& c : r.checkpoints) nets.push_back(load_model(cfg, c, device));
  const Predictor predictor(cfg, stats, nets, device, io);

  MetricAccumulator acc(cfg, device);
  PanelStyle style;
  style.palette = palette_from_classes(cfg.data.classes);
  style.ignore_index = cfg.data.ignore_index;
  std::vector<std::pair<std::string, ImageU8>> panels;
  const int64_t n = static_cast<int64_t>(ds.size());
  for (int64_t start = 0; start < n; start += io.batch) {
    const int64_t B = std::min<int64_t>(io.batch, n - start);
    std::vector<Sample> samples(static_cast<size_t>(B));
    std::vector<std::exception_ptr> errors(static_cast<size_t>(B));
#pragma omp parallel for schedule(dynamic)
    for (int64_t k = 0; k < B; ++k) {
      try {
        samples[static_cast<size_t>(k)] = ds.load(static_cast<size_t>(start + k));
      } catch (...) {
        errors[static_cast<size_t>(k)] = std::current_exception();
      }
    }
    for (auto& e : errors)
      if (e) std::rethrow_exception(e);
    std::vector<InputImage> inputs;
    for (const Sample& s : samples) inputs.push_back({&s.rgb, &s.depth});
    const std::vector<ImagePrediction> preds = predictor.predict(inputs);
    for (int64_t k = 0; k < B; ++k) {
      const Sample& s = samples[static_cast<size_t>(k)];
      const ImagePrediction& p = preds[static_cast<size_t>(k)];
      acc.add(p, s.labels, s.depth);
      if (static_cast<int>(panels.size()) < o.visuals) {
        PanelInputs in;
        in.rgb = s.rgb;
        in.gt_seg = s.labels;
        in.gt_depth = s.depth;
        if (p.semantic.defined()) in.pred_seg = labels_from_tensor(p.semantic.squeeze(0));
        if (p.depth.defined()) in.pred_depth = depth_from_tensor(p.depth.squeeze(0));
        panels.emplace_back(sample_name(ds.index(), static_cast<size_t>(start + k)), render_panel(in, style));
      }
      if (o.progress) o.progress(start + k + 1, n);
    }
  }
  r.images = n;
  r.segmentation = acc.segmentation();
  r.depth = acc.depth();

  {
    const Sample first = ds.load(0);
    auto [rgb, depth] = predictor.network_inputs({{&first.rgb, &first.depth}});
    r.speed = measure_speed(predictor, rgb, depth, io.batch, o.speed);
  }

  if (!panels.empty()) {
    const fs::path dir = visuals_dir(o);
    fs::create_directories(dir);
    for (auto& [name, img] : panels) {
      const std::string path = (dir / ("panel_" + file_safe(name) + ".png")).string();
      write_png(path, img);
      r.visuals.push_back(path);
    }
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!o.json_path.empty()) {
    const fs::path parent = fs::path(o.json_path).parent_path();
    if (!parent.empty()) fs::create_directories(parent);
    write_file_atomic(o.json_path, eval_report_json(r).dump(2) + "\n");
  }
  return r;
}

namespace {

nlohmann::ordered_json number(double x) {
  return std::isfinite(x) ? nlohmann::ordered_json(x) : nlohmann::ordered_json(nullptr);
}

}  // namespace

nlohmann::ordered_json eval_report_json(const EvalReport& r) {
  nlohmann::ordered_json j;
  if (r.checkpoints.size() == 1)
    j["checkpoint"] = r.checkpoints.front();
  else
    j["checkpoint"] = r.checkpoints;
  j["split"] = r.split;
  j["images"] = r.images;
  if (r.segmentation) {
    const ops::SegmentationMetrics& s = *r.segmentation;
    MTL_CHECK(r.class_names.size() == s.iou.size(), "the report has ", r.class_names.size(), " class names for ",
              s.iou.size(), " classes");
    nlohmann::ordered_json per = nlohmann::ordered_json::object();
    for (size_t c = 0; c < s.iou.size(); ++c)
      per[r.class_names[c]] = s.iou[c] ? number(*s.iou[c]) : nlohmann::ordered_json(nullptr);
    nlohmann::ordered_json sem;
    sem["miou"] = number(s.miou);
    sem["pixel_accuracy"] = number(s.pixel_accuracy);
    sem["per_class_iou"] = per;
    j["semantic"] = sem;
  }
  if (r.depth) {
    const ops::DepthMetrics& d = *r.depth;
    nlohmann::ordered_json dj;
    dj["abs_rel"] = number(d.abs_rel);
    dj["sq_rel"] = number(d.sq_rel);
    dj["rmse"] = number(d.rmse);
    dj["rmse_log"] = number(d.rmse_log);
    dj["delta1"] = number(d.delta1);
    dj["delta2"] = number(d.delta2);
    dj["delta3"] = number(d.delta3);
    j["depth"] = dj;
  }
  nlohmann::ordered_json sp;
  sp["device"] = r.speed.device;
  sp["batch"] = r.speed.batch;
  sp["latency_ms"] = number(r.speed.latency_ms);
  sp["images_per_s"] = number(r.speed.images_per_s);
  j["speed"] = sp;
  return j;
}

std::string format_eval_report(const EvalReport& r) {
  std::string out;
  char buf[512];
  auto line = [&](const char* fmt, auto... args) {
    std::snprintf(buf, sizeof buf, fmt, args...);
    out += buf;
    out += "\n";
  };
  for (const std::string& c : r.checkpoints) line("checkpoint  %s", c.c_str());
  line("split %s: %lld images | tta %s | mode %s | %.1f s", r.split.c_str(), static_cast<long long>(r.images),
       std::string(to_string(r.tta)).c_str(), std::string(to_string(r.mode)).c_str(), r.seconds);
  size_t wname = std::string("pixel accuracy").size();
  for (const std::string& n : r.class_names) wname = std::max(wname, n.size());
  const std::string tp = "throughput (batch " + std::to_string(r.speed.batch) + ")";
  wname = std::max(wname, tp.size());
  const int w = static_cast<int>(wname);
  auto value = [](double x) {
    char b[32];
    if (std::isfinite(x))
      std::snprintf(b, sizeof b, "%.4f", x);
    else
      std::snprintf(b, sizeof b, "-");
    return std::string(b);
  };
  if (r.segmentation) {
    const ops::SegmentationMetrics& s = *r.segmentation;
    out += "\nsemantic segmentation (at the labels' original resolution, " + std::to_string(s.pixels) + " pixels)\n";
    line("  %-*s  %s", w, "class", "IoU");
    for (size_t c = 0; c < s.iou.size(); ++c) {
      const std::string name = c < r.class_names.size() ? r.class_names[c] : std::to_string(c);
      line("  %-*s  %s", w, name.c_str(), s.iou[c] ? value(*s.iou[c]).c_str() : "absent");
    }
    line("  %-*s  %s", w, "mIoU", value(s.miou).c_str());
    line("  %-*s  %s", w, "pixel accuracy", value(s.pixel_accuracy).c_str());
  }
  if (r.depth) {
    const ops::DepthMetrics& d = *r.depth;
    out += "\ndepth (metres, at the depth maps' original resolution, " + std::to_string(d.pixels) + " valid pixels)\n";
    const std::pair<const char*, double> rows[] = {{"abs_rel", d.abs_rel},   {"sq_rel", d.sq_rel}, {"rmse", d.rmse},
                                                   {"rmse_log", d.rmse_log}, {"delta1", d.delta1}, {"delta2", d.delta2},
                                                   {"delta3", d.delta3}};
    for (auto& [k, v] : rows) line("  %-*s  %s", w, k, value(v).c_str());
  }
  out += "\nspeed on " + r.speed.device + " (forward passes only, no data loading)\n";
  line("  %-*s  %.2f ms/image", w, "latency (batch 1)", r.speed.latency_ms);
  line("  %-*s  %.1f images/s", w, tp.c_str(), r.speed.images_per_s);
  for (const std::string& v : r.visuals) line("panel       %s", v.c_str());
  return out;
}

}  // namespace mtl::train
