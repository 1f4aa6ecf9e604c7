#include "train/run/checkpoint.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/safetensors.h"
#include "train/optim/adamw.h"

namespace mtl::train {

namespace {
const std::string kOptim = "__optimizer__/", kBalancer = "__balancer__/", kLoop = "__loop__/";
}

std::string state_to_json(const TrainState& s) {
  nlohmann::json j = {{"epoch", s.epoch},
                      {"batch", s.batch},
                      {"step", s.step},
                      {"batches_seen", s.batches_seen},
                      {"skipped_steps", s.skipped_steps},
                      {"best_epoch", s.best_epoch},
                      {"bad_evals", s.bad_evals},
                      {"epoch_batches", s.epoch_batches},
                      {"finished", s.finished}};
  // nlohmann::json writes the shortest decimal that reads back to the same double, so a resumed
  // run sees the exact values.
  j["best"] = s.best ? nlohmann::json(*s.best) : nlohmann::json(nullptr);
  j["epoch_loss_sum"] = s.epoch_loss_sum;
  j["epoch_seconds"] = s.epoch_seconds;
  j["top_k"] = s.top_k;
  j["global_batch"] = s.global_batch;
  j["epoch_offset"] = s.epoch_offset;
  j["schedule_offset"] = s.schedule_offset;
  return j.dump();
}

TrainState state_from_json(const std::string& text, const std::string& source) {
  try {
    nlohmann::json j = nlohmann::json::parse(text);
    TrainState s;
    s.epoch = j.at("epoch");
    s.batch = j.at("batch");
    s.step = j.at("step");
    s.batches_seen = j.at("batches_seen");
    s.skipped_steps = j.at("skipped_steps");
    s.best_epoch = j.at("best_epoch");
    s.bad_evals = j.at("bad_evals");
    s.epoch_batches = j.at("epoch_batches");
    s.finished = j.at("finished");
    if (!j.at("best").is_null()) s.best = j.at("best").get<double>();
    s.epoch_loss_sum = j.at("epoch_loss_sum").get<std::map<std::string, double>>();
    // Absent from checkpoints written before these existed.
    s.epoch_seconds = j.value("epoch_seconds", 0.0);
    if (j.contains("top_k")) s.top_k = j.at("top_k").get<std::vector<std::pair<double, std::string>>>();
    s.global_batch = j.value("global_batch", int64_t{0});
    s.epoch_offset = j.value("epoch_offset", int64_t{0});
    s.schedule_offset = j.value("schedule_offset", int64_t{0});
    return s;
  } catch (const std::exception& e) {
    throw Error(source + ": the training state in the checkpoint is malformed: " + e.what());
  }
}

void save_checkpoint(const std::string& path, const nn::Module& model, const AdamW* optimizer,
                     const nn::Module* balancer, const TrainState* state, std::map<std::string, std::string> metadata,
                     const std::map<std::string, Tensor>& loop) {
  std::map<std::string, Tensor> all = model.state_dict();
  for (auto& [k, v] : all)
    MTL_ASSERT(k.rfind("__", 0) != 0, "model tensor names may not start with __: ", k);
  if (optimizer)
    for (auto& [k, v] : optimizer->state_dict()) all[kOptim + k] = v;
  if (balancer)
    for (auto& [k, v] : balancer->state_dict()) all[kBalancer + k] = v;
  for (auto& [k, v] : loop) all[kLoop + k] = v;
  if (state) metadata["mtl_state"] = state_to_json(*state);
  metadata["format"] = "pt";  // safetensors' marker for PyTorch-style tensors
  save_safetensors(path, all, metadata);
}

Checkpoint load_checkpoint(const std::string& path) {
  SafetensorsFile f = load_safetensors(path);
  Checkpoint c;
  c.metadata = f.metadata;
  for (auto& [k, v] : f.tensors) {
    if (k.rfind(kOptim, 0) == 0)
      c.optimizer[k.substr(kOptim.size())] = v;
    else if (k.rfind(kBalancer, 0) == 0)
      c.balancer[k.substr(kBalancer.size())] = v;
    else if (k.rfind(kLoop, 0) == 0)
      c.loop[k.substr(kLoop.size())] = v;
    else
      c.model[k] = v;
  }
  MTL_CHECK(!c.model.empty(), "'", path, "' holds no model weights");
  auto it = f.metadata.find("mtl_state");
  if (it != f.metadata.end()) c.state = state_from_json(it->second, "'" + path + "'");
  return c;
}

}  // namespace mtl::train
