#include "train/export/export_job.h"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <system_error>

#include "core/autograd.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/safetensors.h"
#include "ops/ops.h"
#include "train/data/dataset.h"
#include "train/data/transforms.h"
#include "train/eval/predictor.h"
#include "train/export/esanet_onnx.h"
#include "train/run/run_folder.h"
#include "train/run/runtime.h"

namespace mtl::train {

namespace fs = std::filesystem;

namespace {

// The shortest text that reads back as the same number (the constants are floats in mtl).
template <class T>
std::string shortest(T v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string float_list(const std::array<float, 3>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out.append(i ? ", " : "").append(shortest(v[i]));
  return out + "]";
}

// An output file's folder must exist (mtl_export does not make folders: a typo in the path should
// be an error, not a new folder).
void check_output_path(const std::string& path, const std::string& option) {
  MTL_CHECK(!path.empty(), option, ": no file given");
  const fs::path parent = fs::path(path).parent_path();
  MTL_CHECK(parent.empty() || fs::is_directory(parent), option, " '", path, "': the folder '", parent.string(),
            "' does not exist");
  MTL_CHECK(!fs::is_directory(path), option, " '", path, "' is a folder; give a file name");
}

bool same_file(const std::string& a, const std::string& b) {
  std::error_code ea, eb;
  const fs::path pa = fs::weakly_canonical(a, ea), pb = fs::weakly_canonical(b, eb);
  return !ea && !eb && pa == pb;
}

struct SampleBatch {
  std::map<std::string, Tensor> tensors;
  std::vector<std::string> names;
};

// The first `n` images of the run's validation split, brought to the network input as evaluation
// does it (Predictor::network_inputs at the export's size), and the model's outputs for them.
SampleBatch sample_batch(const Config& cfg, const DatasetStats& stats, const std::shared_ptr<models::ESANet>& model,
                         Size2 size, std::optional<int> batch) {
  std::vector<Problem> problems;
  std::vector<std::string> left_out;
  const DatasetIndex index = list_split(cfg.data, "val", false, problems, left_out);
  const size_t n = batch ? static_cast<size_t>(*batch)
                         : std::min(index.samples.size(), static_cast<size_t>(std::max(cfg.eval.batch_size, 1)));
  if (index.samples.size() < std::max<size_t>(n, 1)) {
    std::string why;
    for (const Problem& p : problems) why += "\n  " + p.file + ": " + p.what;
    throw Error("--sample-out needs " + std::to_string(std::max<size_t>(n, 1)) +
                " validation image(s) of the run's data (data.root '" + cfg.data.root + "'), found " +
                std::to_string(index.samples.size()) + why);
  }
  const Dataset ds(cfg.data, index);
  std::vector<Sample> samples;
  SampleBatch b;
  for (size_t i = 0; i < n; ++i) {
    samples.push_back(ds.load(i));
    b.names.push_back(sample_name(index, i));
  }
  std::vector<InputImage> views;
  for (const Sample& s : samples) views.push_back({&s.rgb, &s.depth});

  Config at_size = cfg;
  at_size.train.input_size = size;
  const Predictor predictor(at_size, stats, {model}, Device::cpu(), {Tta::none, InferMode::whole, static_cast<int>(n)});
  autograd::NoGradGuard no_grad;
  const auto [rgb, depth] = predictor.network_inputs(views);
  const NetOutput out = predictor.forward(rgb, depth);
  if (cfg.model.modality != models::Modality::depth) b.tensors["input/rgb"] = rgb;
  if (cfg.model.modality != models::Modality::rgb) b.tensors["input/depth"] = depth;
  if (out.semantic.defined()) b.tensors["output/semantic"] = out.semantic;
  if (out.depth.defined()) b.tensors["output/depth_metres"] = ops::mul_scalar(out.depth, cfg.data.max_depth);
  return b;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> export_metadata(const Config& cfg, double depth_mean, double depth_std,
                                                                 Size2 input_size, const std::string& checkpoint) {
  nlohmann::json names = nlohmann::json::array(), colors = nlohmann::json::array(), tasks = nlohmann::json::array();
  for (const ClassInfo& c : cfg.data.classes) {
    names.push_back(c.name);
    colors.push_back(c.color);
  }
  for (Task t : cfg.model.tasks) tasks.push_back(std::string(to_string(t)));
  std::vector<std::pair<std::string, std::string>> m;
  auto add = [&](std::string key, std::string value) { m.emplace_back(std::move(key), std::move(value)); };
  add("input_size", to_string(input_size));
  add("modality", std::string(to_string(cfg.model.modality)));
  add("tasks", tasks.dump());
  add("rgb_normalization", "rgb = (pixel / 255 - rgb_mean) / rgb_std per channel, planar RGB order");
  add("rgb_mean", float_list(kImagenetMean));
  add("rgb_std", float_list(kImagenetStd));
  add("depth_normalization", "depth = (metres - depth_mean) / depth_std where metres > 0; 0 (no measurement) stays 0");
  add("depth_mean", shortest(depth_mean));
  add("depth_std", shortest(depth_std));
  add("depth_scale", shortest(cfg.data.depth_scale));
  add("max_depth", shortest(cfg.data.max_depth));
  add("outputs",
      "semantic: class logits [N, C, H, W] (argmax over C is the label); depth_metres: [N, 1, H, W] = sigmoid * "
      "max_depth");
  add("num_classes", std::to_string(cfg.model.num_classes));
  add("class_names", names.dump());
  add("class_colors", colors.dump());
  add("checkpoint", fs::path(checkpoint).filename().string());
  return m;
}

void check_export_options(const ExportOptions& o) {
  check_output_path(o.out, "--out");
  if (!o.sample_out.empty()) {
    check_output_path(o.sample_out, "--sample-out");
    MTL_CHECK(!same_file(o.out, o.sample_out), "--out and --sample-out name the same file '", o.out, "'");
  }
  const Config cfg = load_run_config(o.run_dir);
  const Size2 size = o.input_size.value_or(cfg.train.input_size);
  MTL_CHECK(size.width > 0 && size.height > 0 && size.width % 32 == 0 && size.height % 32 == 0, "--input-size ",
            to_string(size), ": both sides must be positive multiples of 32 (the encoder downsamples by 32)");
  MTL_CHECK(!o.batch || *o.batch >= 1, "--batch ", o.batch.value_or(0), ": expected a positive number or 'dynamic'");
  onnx::ir_version_for_opset(o.opset);
}

ExportSummary run_export(const ExportOptions& o) {
  check_export_options(o);
  const Config cfg = load_run_config(o.run_dir);
  ExportSummary s;
  s.input_size = o.input_size.value_or(cfg.train.input_size);
  setup_runtime(cfg.runtime, Device::cpu());
  std::vector<std::string> requested;
  if (!o.checkpoint.empty()) requested.push_back(o.checkpoint);
  s.checkpoint = resolve_checkpoints(o.run_dir, requested, s.notes).front();
  const DatasetStats stats = load_run_stats(o.run_dir, cfg, s.notes);
  const std::shared_ptr<models::ESANet> model = load_model(cfg, s.checkpoint, Device::cpu());
  // The graph is float32 whatever the run trained in, and so is the sample that checks it.
  model->set_compute_dtype(DType::f32);

  SampleBatch sample;
  if (!o.sample_out.empty()) sample = sample_batch(cfg, stats, model, s.input_size, o.batch);

  OnnxGraphOptions g;
  g.height = s.input_size.height;
  g.width = s.input_size.width;
  if (o.batch) g.batch = *o.batch;
  g.opset = o.opset;
  g.max_depth = cfg.data.max_depth;
  onnx::Model m = esanet_onnx_graph(*model, g);
  m.doc_string = "ESANet exported by mtl_export from the run '" + o.run_dir + "'";
  m.metadata = export_metadata(cfg, stats.depth_mean, stats.depth_std, s.input_size, s.checkpoint);
  const std::string bytes = onnx::serialize(m);

  std::map<std::string, int> ops_used;
  for (const onnx::Node& n : m.nodes) ++ops_used[n.op_type];
  s.op_counts.assign(ops_used.begin(), ops_used.end());
  s.nodes = static_cast<int64_t>(m.nodes.size());
  s.initializers = static_cast<int64_t>(m.initializers.size());
  s.parameters = model->num_parameters();
  s.bytes = static_cast<int64_t>(bytes.size());

  write_file_atomic(o.out, bytes);
  s.out = o.out;
  if (!o.sample_out.empty()) {
    try {
      save_safetensors(o.sample_out, sample.tensors,
                       {{"checkpoint", s.checkpoint},
                        {"input_size", to_string(s.input_size)},
                        {"samples", nlohmann::json(sample.names).dump()}});
    } catch (...) {
      std::error_code ec;
      fs::remove(o.out, ec);  // neither file, rather than a model without its sample
      throw;
    }
    s.sample_out = o.sample_out;
    s.sample_names = sample.names;
  }
  return s;
}

}  // namespace mtl::train
