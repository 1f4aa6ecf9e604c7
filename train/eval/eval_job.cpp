#include "train/eval/eval_job.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <filesystem>

#include "core/error.h"
#include "core/file_io.h"
#include "train/data/dataset.h"
#include "train/eval/metrics.h"
#include "train/log/visuals.h"
#include "train/run/run_folder.h"
#include "train/run/runtime.h"

namespace mtl::train {

namespace fs = std::filesystem;

std::string visuals_dir(const EvalToolOptions& o) {
  if (!o.panel_dir.empty()) return o.panel_dir;
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
  r.scales = o.inference.scales;
  r.mode = o.inference.mode;

  Config cfg = load_run_config(o.run_dir);
  if (!o.data_root.empty()) {
    cfg.data.root = o.data_root;
    cfg.data.sources.clear();
  }
  if (o.precision) cfg.runtime.precision = *o.precision;
  for (const ClassInfo& c : cfg.data.classes) r.class_names.push_back(c.name);
  const Device device = setup_runtime(cfg.runtime, o.device);
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

  MetricsAccumulator acc(cfg, device);
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
      acc.update_image(p.semantic, s.labels, p.depth, s.depth);
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
  const EvalMetrics m = acc.compute();
  r.segmentation = m.segmentation;
  r.depth = m.depth;

  {
    const Sample first = ds.load(0);
    auto [rgb, depth] = predictor.network_inputs({{&first.rgb, &first.depth}});
    r.speed = measure_speed(predictor, rgb, depth, io.batch, o.speed);
    r.speed.precision = std::string(to_string(cfg.runtime.precision));
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
  if (!o.json_path.empty()) write_file_atomic(o.json_path, eval_report_json(r).dump(2) + "\n");
  return r;
}

}  // namespace mtl::train
