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

#include "core/safetensors.h"
#include "models/esanet.h"
#include "tests/support/temp_dir.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/dataset.h"
#include "train/dataset_stats.h"
#include "train/model_factory.h"

namespace mtl::test {

// The narrow network the tool tests use: ResNet-18 with basic blocks at 1/8 of ESANet's width.
inline train::Config tiny_run_config(const std::string& data_root, int width = 160, int height = 128) {
  train::Config cfg;
  cfg.data.root = data_root;
  cfg.data.depth_scale = 0.001;
  cfg.data.max_depth = 10.0;
  cfg.model.encoder = train::Encoder::resnet18;
  cfg.model.block = train::Block::basic;
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
  models::ModelConfig mc = train::model_config(cfg);
  mc.seed += seed_offset;
  models::ESANet model(mc);
  model.eval();
  if (best) train::save_checkpoint(run + "/checkpoints/best.safetensors", model, nullptr, nullptr, nullptr);
  if (last) train::save_checkpoint(run + "/checkpoints/last.safetensors", model, nullptr, nullptr, nullptr);
  return model.state_dict();
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
