#pragma once
// Small training runs for the trainer's tests: a generated greenhouse data set, a tiny network's
// configuration, and readers of what a run writes. Header-only: only test executables that link
// the training library include it.
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/temp_dir.h"
#include "train/config/config.h"
#include "train/data/synthetic/datagen.h"
#include "train/engine/trainer.h"

namespace mtl::test {

// A generated data set of 64x64 frames, made once per process for each set of counts and seed
// (and removed at exit).
inline std::string tiny_greenhouse(int train = 24, int val = 8, int test = 4, uint64_t seed = 5) {
  static std::map<std::tuple<int, int, int, uint64_t>, std::pair<std::unique_ptr<TempDir>, std::string>> made;
  auto& slot = made[{train, val, test, seed}];
  if (!slot.first) {
    slot.first = std::make_unique<TempDir>("greenhouse");
    train::DatagenOptions o;
    o.out = (slot.first->path / "greenhouse").string();
    o.train = train, o.val = val, o.test = test;
    o.size = {64, 64};
    o.seed = seed;
    train::generate_dataset(o);
    slot.second = o.out;
  }
  return slot.second;
}

// ResNet-18 with basic blocks at 1/16 of ESANet's width and the light depth head, 64x64 input,
// batch 4, three epochs, on one CPU thread.
inline train::Config tiny_train_config(const std::string& data_root = tiny_greenhouse()) {
  train::Config c;
  c.data.root = data_root;
  c.model.encoder = models::Encoder::resnet18;
  c.model.block = models::Block::basic;
  c.model.width = 0.0625;
  c.model.depth_head = models::DepthHead::light;
  c.train.epochs = 3;
  c.train.batch_size = 4;
  c.train.input_size = {64, 64};
  c.eval.batch_size = 8;
  c.optim.lr = 3e-3;
  c.schedule.warmup_epochs = 0;
  c.log.every = 1;
  c.log.visuals = 2;
  c.runtime.device = train::DeviceChoice::cpu;
  c.runtime.threads = 1;
  c.runtime.workers = 1;
  c.runtime.seed = 3;
  return c;
}

inline train::TrainOptions quiet_options(const std::filesystem::path& out) {
  train::TrainOptions o;
  o.output_dir = out.string();
  o.quiet = true;
  return o;
}

inline std::vector<nlohmann::json> read_jsonl(const std::filesystem::path& p) {
  std::vector<nlohmann::json> out;
  std::ifstream in(p);
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

// The records of one type ("train", "train_epoch", "eval") of a run's metrics.jsonl.
inline std::vector<nlohmann::json> records_of(const std::filesystem::path& run, const std::string& type) {
  std::vector<nlohmann::json> out;
  for (auto& r : read_jsonl(run / "metrics.jsonl"))
    if (r["type"] == type) out.push_back(r);
  return out;
}

inline std::vector<double> train_losses(const std::filesystem::path& run) {
  std::vector<double> l;
  for (auto& r : records_of(run, "train")) l.push_back(r["loss"].get<double>());
  return l;
}

}  // namespace mtl::test
