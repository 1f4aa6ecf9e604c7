#pragma once
// Run folders made by tests for mtl_eval and mtl_predict: what mtl_train leaves behind
// (config.yaml, mtl_stats.json, checkpoints/) with a small, freshly initialised network, so that
// the tools are tested without a training run. Header-only: only the test executables that link
// the training library include it.
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "core/file_io.h"
#include "models/esanet.h"
#include "tests/support/temp_dir.h"
#include "train/config/config.h"
#include "train/data/dataset.h"
#include "train/data/dataset_stats.h"
#include "train/eval/predictor.h"
#include "train/run/checkpoint.h"

namespace mtl::test {

// The narrow network the tool tests use: ResNet-18 with basic blocks at 1/8 of ESANet's width.
inline train::Config tiny_run_config(const std::string& data_root, int width = 160, int height = 128) {
  train::Config cfg;
  cfg.data.root = data_root;
  cfg.data.depth_scale = 0.001;
  cfg.data.max_depth = 10.0;
  cfg.model.encoder = models::Encoder::resnet18;
  cfg.model.block = models::Block::basic;
  cfg.model.width = 0.125;
  cfg.train.input_size = {width, height};
  cfg.eval.batch_size = 2;
  cfg.runtime.device = train::DeviceChoice::cpu;
  cfg.runtime.threads = 0;
  cfg.runtime.seed = 7;
  return cfg;
}

// Statistics as mtl_train would store them, without a data set behind them.
inline train::DatasetStats made_up_stats(double depth_mean, double depth_std, int num_classes) {
  train::DatasetStats s;
  s.samples = 1;
  s.pixels = 1;
  s.depth_valid = 1;
  s.depth_mean = depth_mean;
  s.depth_std = depth_std;
  s.class_pixels.assign(static_cast<size_t>(num_classes), 1);
  s.class_image_pixels.assign(static_cast<size_t>(num_classes), 1);
  s.fingerprint = "made up by a test";
  return s;
}

// The network of `cfg`, freshly initialised (runtime.seed + seed_offset), in evaluation mode.
inline std::shared_ptr<models::ESANet> fresh_model(const train::Config& cfg, uint64_t seed_offset = 0) {
  models::BuildOptions b = train::model_build_options(cfg);
  b.seed += seed_offset;
  auto m = std::make_shared<models::ESANet>(cfg.model, b);
  m->eval();
  return m;
}

// A random image: RGB noise and depth between 0.5 and 6 m with a few holes.
struct TestImage {
  train::ImageU8 rgb;
  train::ImageF depth;
  train::InputImage view() const { return {&rgb, &depth}; }
};
inline TestImage random_image(int w, int h, uint64_t seed) {
  Generator gen(seed);
  std::vector<double> u(static_cast<size_t>(w) * h * 4);
  gen.fill_uniform(u.data(), static_cast<int64_t>(u.size()), 0.0, 1.0);
  TestImage t{train::ImageU8(w, h, 3), train::ImageF(w, h, 1)};
  for (size_t i = 0; i < t.rgb.data.size(); ++i) t.rgb.data[i] = static_cast<uint8_t>(u[i] * 255.0);
  for (size_t i = 0; i < t.depth.data.size(); ++i) {
    const double r = u[t.rgb.data.size() + i];
    t.depth.data[i] = r < 0.05 ? 0.0f : static_cast<float>(0.5 + 5.5 * r);
  }
  return t;
}

// Writes RUN/config.yaml, RUN/mtl_stats.json and the checkpoint(s) of a network initialised from
// cfg.runtime.seed + seed_offset. Returns the network's state as saved.
inline std::map<std::string, Tensor> make_run_folder(const std::string& run, const train::Config& cfg,
                                                     const train::DatasetStats& stats, bool best = true,
                                                     bool last = false, uint64_t seed_offset = 0) {
  namespace fs = std::filesystem;
  fs::create_directories(fs::path(run) / "checkpoints");
  write_file_atomic(run + "/config.yaml", train::to_yaml(cfg));
  train::DatasetIndex index;
  index.split = "train";
  train::save_stats(run + "/mtl_stats.json", stats, train::Dataset(cfg.data, index));
  const auto model = fresh_model(cfg, seed_offset);
  if (best) train::save_checkpoint(run + "/checkpoints/best.safetensors", *model, nullptr, nullptr, nullptr);
  if (last) train::save_checkpoint(run + "/checkpoints/last.safetensors", *model, nullptr, nullptr, nullptr);
  return model->state_dict();
}

inline std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Runs a command line through the shell with stdout and stderr captured into files; returns the
// exit status (or -1 when the command did not exit normally).
struct CommandResult {
  int status = -1;
  std::string out, err;
};
inline CommandResult run_command(const std::string& command, const TempDir& scratch) {
  static std::atomic<int> counter{0};
  const int k = counter++;
  const std::string out = scratch / ("cmd" + std::to_string(k) + ".out");
  const std::string err = scratch / ("cmd" + std::to_string(k) + ".err");
  const int raw = std::system((command + " > '" + out + "' 2> '" + err + "'").c_str());
  CommandResult r;
  r.status = raw != -1 && WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  r.out = read_text(out);
  r.err = read_text(err);
  return r;
}

}  // namespace mtl::test
