#include "train/run/run_folder.h"

#include <ctime>
#include <filesystem>

#include "core/error.h"
#include "train/run/checkpoint.h"
#include "train/run/runtime.h"

namespace mtl::train {

namespace fs = std::filesystem;

std::string default_run_dir(const std::string& name) {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", std::localtime(&t));
  return "runs/" + name + "-" + buf;
}

Config load_run_config(const std::string& run_dir) {
  MTL_CHECK(!run_dir.empty(), "no run folder given");
  MTL_CHECK(fs::is_directory(run_dir), "run folder '", run_dir, "' does not exist (or is not a folder)");
  const std::string path = (fs::path(run_dir) / "config.yaml").string();
  MTL_CHECK(fs::exists(path), "the run folder '", run_dir, "' has no config.yaml ('", path,
            "' is missing); is it a folder made by mtl_train?");
  return load_config(path);
}

std::vector<std::string> resolve_checkpoints(const std::string& run_dir, const std::vector<std::string>& requested,
                                             std::vector<std::string>& notes) {
  const fs::path dir = fs::path(run_dir) / "checkpoints";
  std::vector<std::string> out;
  for (const std::string& r : requested) {
    MTL_CHECK(!r.empty(), "--checkpoint: empty path");
    if (fs::is_regular_file(r)) {
      out.push_back(r);
    } else if (fs::path(r).is_relative() && fs::is_regular_file(dir / r)) {
      out.push_back((dir / r).string());
    } else {
      throw Error("checkpoint '" + r + "' does not exist (looked for it as given and as '" + (dir / r).string() + "')");
    }
  }
  if (!out.empty()) return out;
  const std::string best = (dir / "best.safetensors").string(), last = (dir / "last.safetensors").string();
  if (fs::is_regular_file(best)) return {best};
  MTL_CHECK(fs::is_regular_file(last), "the run folder '", run_dir, "' has no checkpoint: neither '", best, "' nor '",
            last, "' exists");
  notes.push_back("'" + best + "' does not exist (no validation has improved yet?); using the last checkpoint '" +
                  last + "'");
  return {last};
}

DatasetStats load_run_stats(const std::string& run_dir, const Config& cfg, std::vector<std::string>& notes) {
  const std::string own = (fs::path(run_dir) / "mtl_stats.json").string();
  if (fs::exists(own)) return load_stats(own);
  const std::string cache = default_stats_cache(cfg.data);
  MTL_CHECK(fs::exists(cache), "no data set statistics for the run '", run_dir, "': neither '", own,
            "' nor the data's '", cache, "' exists (copy the training data's mtl_stats.json into the run folder)");
  notes.push_back("'" + own + "' does not exist; standardising depth with the data root's statistics '" + cache + "'");
  return load_stats(cache);
}

std::shared_ptr<models::ESANet> load_model(const Config& cfg, const std::string& checkpoint, Device device) {
  const Checkpoint ck = load_checkpoint(checkpoint);
  auto model = std::make_shared<models::ESANet>(cfg.model, model_build_options(cfg));
  model->load_state_dict(ck.model, true, "checkpoint '" + checkpoint + "'");
  model->to(device);
  model->set_compute_dtype(compute_dtype(cfg.runtime.precision));
  model->eval();
  return model;
}

}  // namespace mtl::train
