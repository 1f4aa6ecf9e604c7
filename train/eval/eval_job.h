#pragma once
// mtl_eval's job (docs/evaluation.md): a trained run's checkpoint(s) on the val or test split,
// with segmentation metrics at each label's original resolution, depth metrics in metres at the
// depth map's original resolution, the forward speed, a console table, panels and a JSON report.
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "train/eval/predictor.h"
#include "train/eval/report.h"
#include "train/eval/speed.h"

namespace mtl::train {

struct EvalToolOptions {
  std::string run_dir;
  std::vector<std::string> checkpoints;  // empty: the run's best (or last)
  std::string split = "val";             // val or test
  std::string data_root;                 // replaces data.root (and data.sources) when set
  InferenceOptions inference{Tta::none, InferMode::whole, 0};  // batch <= 0: eval.batch_size
  int visuals = 0;                       // panels of the first N images
  std::string json_path;                 // the JSON report, when set
  std::string panel_dir;                 // where the panels go; empty: see visuals_dir()
  std::optional<Device> device;          // default runtime.device
  std::optional<Precision> precision;    // default runtime.precision
  SpeedOptions speed;
  // Called after each image with (done, total), for a progress display.
  std::function<void(int64_t, int64_t)> progress;
};

// Checks the options, loads the run, evaluates every sample of the split, measures the speed and
// writes the panels and the JSON report (atomically). Throws mtl::Error naming the file, folder
// or option at fault.
EvalReport run_evaluation(const EvalToolOptions& o);

// Where the panels go: panel_dir when set, else beside the JSON report when there is one, else
// RUN_DIR/eval_<split>/.
std::string visuals_dir(const EvalToolOptions& o);

}  // namespace mtl::train
