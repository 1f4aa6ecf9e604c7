#pragma once
// A run folder (mtl_train's output, mtl_eval's and mtl_predict's input): config.yaml (the resolved
// configuration), mtl_stats.json (the data statistics the run used), metrics.jsonl, TensorBoard
// event files, checkpoints/{best,last}.safetensors and visuals/.
#include <memory>
#include <string>
#include <vector>

#include "models/esanet.h"
#include "train/config/config.h"
#include "train/data/dataset_stats.h"

namespace mtl::train {

// runs/<name>-<YYYYmmdd-HHMMSS>, local time.
std::string default_run_dir(const std::string& name);

// RUN_DIR/config.yaml. Throws mtl::Error naming the folder when it does not exist and the file
// when it is missing or invalid.
Config load_run_config(const std::string& run_dir);

// The checkpoint files to load. Each requested path is used as given when it exists, else
// looked up in RUN_DIR/checkpoints/ ("last.safetensors"); with none requested, the run's
// best.safetensors, or its last.safetensors with a note appended to `notes`. Throws mtl::Error
// naming the path when a file is missing.
std::vector<std::string> resolve_checkpoints(const std::string& run_dir, const std::vector<std::string>& requested,
                                             std::vector<std::string>& notes);

// The statistics the run was trained with: RUN_DIR/mtl_stats.json (mtl_train copies it there),
// or, for runs made before that, the data root's cache (default_stats_cache) with a note. Throws
// mtl::Error naming both paths when neither exists.
DatasetStats load_run_stats(const std::string& run_dir, const Config& cfg, std::vector<std::string>& notes);

// The network of `cfg` with the checkpoint's weights (strict: every tensor must match), on
// `device`, in evaluation mode. Throws mtl::Error naming the file.
std::shared_ptr<models::ESANet> load_model(const Config& cfg, const std::string& checkpoint, Device device);

}  // namespace mtl::train
