#include "train/eval/predict_job.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <system_error>
#include <tuple>

#include "core/error.h"
#include "train/log/visuals.h"
#include "train/run/run_folder.h"
#include "train/run/runtime.h"

namespace mtl::train {

namespace fs = std::filesystem;

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// One message for a list of problems: the problem itself when there is one.
std::string join_problems(const std::string& head, const std::vector<std::string>& problems) {
  if (problems.size() == 1) return problems.front();
  std::string m = head + " (" + std::to_string(problems.size()) + " problems):";
  for (const std::string& p : problems) m += "\n  " + p;
  return m;
}

}  // namespace

std::vector<PredictPair> pair_folders(const std::string& rgb_dir, const std::string& depth_dir) {
  std::vector<std::string> problems;
  auto list = [&](const std::string& dir, const std::set<std::string>& exts, const std::string& what) {
    std::map<std::string, std::string> by_stem;
    if (!fs::is_directory(dir)) {
      problems.push_back(what + " folder '" + dir + "' does not exist (or is not a folder)");
      return by_stem;
    }
    std::error_code ec;
    std::vector<fs::path> files;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
      if (it->is_regular_file() && exts.count(lower(it->path().extension().string()))) files.push_back(it->path());
    if (ec) {
      problems.push_back("cannot list the " + what + " folder '" + dir + "': " + ec.message());
      return by_stem;
    }
    std::sort(files.begin(), files.end());
    for (const fs::path& f : files) {
      auto [it, fresh] = by_stem.emplace(f.stem().string(), f.string());
      if (!fresh)
        problems.push_back("two " + what + " files with the stem '" + it->first + "': '" + it->second + "' and '" +
                           f.string() + "'");
    }
    return by_stem;
  };
  const auto rgb = list(rgb_dir, {".png", ".jpg", ".jpeg"}, "RGB");
  const auto depth = list(depth_dir, {".png"}, "depth");
  std::vector<PredictPair> pairs;
  for (const auto& [stem, path] : rgb) {
    auto d = depth.find(stem);
    if (d == depth.end())
      problems.push_back("RGB image '" + path + "' has no depth map ('" +
                         (fs::path(depth_dir) / (stem + ".png")).string() + "' is missing)");
    else
      pairs.push_back({stem, path, d->second});
  }
  for (const auto& [stem, path] : depth)
    if (!rgb.count(stem))
      problems.push_back("depth map '" + path + "' has no RGB image named '" + stem + ".*' in '" + rgb_dir + "'");
  if (problems.empty() && pairs.empty())
    problems.push_back("no images in '" + rgb_dir + "' (.png, .jpg or .jpeg) with depth maps in '" + depth_dir + "'");
  MTL_CHECK(problems.empty(), join_problems("cannot pair the RGB and depth folders", problems));
  return pairs;
}

PredictInputs read_pair(const PredictPair& p, double depth_scale) {
  MTL_CHECK(fs::is_regular_file(p.rgb), "RGB image '", p.rgb, "' does not exist");
  MTL_CHECK(fs::is_regular_file(p.depth), "depth map '", p.depth, "' does not exist");
  PredictInputs in;
  in.rgb = read_rgb(p.rgb);
  const ImageU16 d = read_gray(p.depth, "depth");
  MTL_CHECK(d.width == in.rgb.width && d.height == in.rgb.height, "depth map '", p.depth, "' is ", d.width, "x",
            d.height, " but its RGB image '", p.rgb, "' is ", in.rgb.width, "x", in.rgb.height);
  in.depth = ImageF(d.width, d.height, 1);
  for (size_t i = 0; i < d.data.size(); ++i) in.depth.data[i] = static_cast<float>(d.data[i] * depth_scale);
  return in;
}

void check_pairs(const std::vector<PredictPair>& pairs, double depth_scale) {
  std::vector<std::string> errors(pairs.size());
#pragma omp parallel for schedule(dynamic)
  for (int64_t i = 0; i < static_cast<int64_t>(pairs.size()); ++i) {
    try {
      read_pair(pairs[static_cast<size_t>(i)], depth_scale);
    } catch (const std::exception& e) {
      errors[static_cast<size_t>(i)] = e.what();
    }
  }
  std::vector<std::string> problems;
  for (std::string& e : errors)
    if (!e.empty()) problems.push_back(std::move(e));
  MTL_CHECK(problems.empty(), join_problems("unusable inputs", problems));
}

ImageU16 depth_to_millimetres(const ImageF& metres) {
  ImageU16 out(metres.width, metres.height, 1);
  for (size_t i = 0; i < metres.data.size(); ++i) {
    const double mm = static_cast<double>(metres.data[i]) * 1000.0;
    out.data[i] = std::isfinite(mm) && mm > 0 ? static_cast<uint16_t>(std::min(std::lround(mm), 65535L)) : 0;
  }
  return out;
}

PredictOutputs render_outputs(const ImagePrediction& p, const PredictInputs& in, const Config& cfg) {
  PredictOutputs o;
  PanelStyle style;
  style.palette = palette_from_classes(cfg.data.classes);
  style.ignore_index = cfg.data.ignore_index;
  PanelInputs pin;
  pin.rgb = in.rgb;
  pin.gt_depth = in.depth;
  if (p.semantic.defined()) {
    static_assert(models::kMaxClasses <= 256, "class ids must fit the 8-bit label PNG");
    o.labels = labels_from_tensor(p.semantic.squeeze(0));
    o.label_png = ImageU8(o.labels.width, o.labels.height, 1);
    for (size_t i = 0; i < o.labels.data.size(); ++i) o.label_png.data[i] = static_cast<uint8_t>(o.labels.data[i]);
    o.seg = colorize_labels(o.labels, style.palette, cfg.data.ignore_index);
    pin.pred_seg = o.labels;
  }
  if (p.depth.defined()) {
    o.depth = depth_from_tensor(p.depth.squeeze(0));
    o.depth_mm = depth_to_millimetres(o.depth);
    auto [lo, hi] = valid_depth_range(in.depth);
    if (hi <= lo) std::tie(lo, hi) = valid_depth_range(o.depth);
    style.depth_min = lo;
    style.depth_max = hi;
    o.depth_color = viridis(o.depth, lo, hi);
    pin.pred_depth = o.depth;
  }
  o.panel = render_panel(pin, style);
  return o;
}

std::vector<std::string> write_outputs(const std::string& dir, const std::string& stem, const PredictOutputs& o) {
  fs::create_directories(dir);
  std::vector<std::string> files;
  auto path = [&](const char* suffix) { return (fs::path(dir) / (stem + suffix)).string(); };
  if (!o.label_png.empty()) write_png(files.emplace_back(path("_label.png")), o.label_png);
  if (!o.seg.empty()) write_png(files.emplace_back(path("_seg.png")), o.seg);
  if (!o.depth_mm.empty()) write_png16(files.emplace_back(path("_depth.png")), o.depth_mm);
  if (!o.depth_color.empty()) write_png(files.emplace_back(path("_depth_color.png")), o.depth_color);
  if (!o.panel.empty()) write_png(files.emplace_back(path("_panel.png")), o.panel);
  return files;
}

PredictSummary run_predict(const PredictOptions& o) {
  MTL_CHECK(!o.pairs.empty(), "no input images: give --rgb and --depth, or --rgb-dir and --depth-dir");
  Config cfg = load_run_config(o.run_dir);
  const double scale = o.depth_scale.value_or(cfg.data.depth_scale);
  MTL_CHECK(std::isfinite(scale) && scale > 0, "--depth-scale must be a positive number, got ", scale);
  PredictSummary s;
  s.out_dir = o.out_dir.empty() ? (fs::path(o.run_dir) / "predictions").string() : o.out_dir;
  MTL_CHECK(!fs::exists(s.out_dir) || fs::is_directory(s.out_dir), "the output folder '", s.out_dir,
            "' exists and is not a folder");
  std::set<std::string> stems;
  for (const PredictPair& p : o.pairs)
    MTL_CHECK(stems.insert(p.stem).second, "two inputs named '", p.stem, "' would write the same outputs");
  if (o.precision) cfg.runtime.precision = *o.precision;
  const Device device = setup_runtime(cfg.runtime, o.device);
  const std::vector<std::string> checkpoints = resolve_checkpoints(o.run_dir, o.checkpoints, s.notes);
  const DatasetStats stats = load_run_stats(o.run_dir, cfg, s.notes);
  check_pairs(o.pairs, scale);

  std::vector<std::shared_ptr<models::ESANet>> nets;
  for (const std::string& c : checkpoints) nets.push_back(load_model(cfg, c, device));
  InferenceOptions io = o.inference;
  if (io.batch <= 0) io.batch = cfg.eval.batch_size;
  const Predictor predictor(cfg, stats, nets, device, io);
  for (const PredictPair& p : o.pairs) {
    const PredictInputs in = read_pair(p, scale);
    const std::vector<ImagePrediction> pred = predictor.predict({{&in.rgb, &in.depth}});
    const PredictOutputs out = render_outputs(pred.front(), in, cfg);
    for (std::string& f : write_outputs(s.out_dir, p.stem, out)) s.files.push_back(std::move(f));
    ++s.images;
    if (o.on_image) o.on_image(p, out);
  }
  return s;
}

}  // namespace mtl::train
