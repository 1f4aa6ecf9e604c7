// mtl_eval: evaluates a trained run's checkpoint(s) on the val or test split: segmentation metrics
// at each label's original resolution, depth metrics in metres, forward speed (docs/evaluation.md).
// Exit status: 0 success, 2 usage errors (bad options, no such run folder or configuration),
// 1 anything else. Errors are one line: "mtl_eval: error: <message>".
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <iostream>

#include "apps/app_env.h"
#include "core/error.h"
#include "train/eval/eval_job.h"
#include "train/eval/predictor.h"
#include "train/log/console.h"
#include "train/run/run_folder.h"

using namespace mtl;

int main(int argc, char** argv) {
  apps::use_tuned_runtime(argv);
  CLI::App app{"mtl_eval: evaluate a trained multi-task ESANet run"};
  train::EvalToolOptions opts;
  std::string tta = "none", mode = "whole", device;
  int batch = 0, speed_runs = 3;
  app.add_option("run_dir", opts.run_dir, "the run folder made by mtl_train")->required();
  app.add_option("--checkpoint", opts.checkpoints,
                 "checkpoint file (as given, or in RUN_DIR/checkpoints/); repeat for an ensemble "
                 "(default: best, else last)");
  app.add_option("--split", opts.split, "val or test (default val)");
  app.add_option("--data", opts.data_root, "data root replacing the run's data.root");
  std::vector<double> scales;
  app.add_option("--tta", tta,
                 "none, flip (average with the mirrored image), multiscale (the input scaled by --scales) or "
                 "multiscale_flip (default none)");
  app.add_option("--scales", scales, "scales of multiscale TTA, relative to the network input (default 0.75,1,1.25)")
      ->delimiter(',');
  app.add_option("--mode", mode, "whole (resize to the network input) or slide (windows of it)");
  app.add_option("--visuals", opts.visuals, "write panels of the first N images");
  app.add_option("--json", opts.json_path, "write the metrics as JSON to FILE");
  app.add_option("--device", device, "cpu or cuda (default: the run's runtime.device)");
  std::string precision;
  app.add_option("--precision", precision, "fp32 or bf16 (default: the run's runtime.precision)");
  auto* batch_opt =
      app.add_option("--batch", batch, "images per forward pass and the throughput batch (default eval.batch_size)");
  app.add_option("--speed-runs", speed_runs, "timed forward passes per batch size, at least (default 3)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  try {
    auto t = parse_enum<train::Tta>(tta);
    MTL_CHECK(t.has_value(), "--tta must be ", enum_choices<train::Tta>(), ", got '", tta, "'");
    auto m = parse_enum<train::InferMode>(mode);
    MTL_CHECK(m.has_value(), "--mode must be ", enum_choices<train::InferMode>(), ", got '", mode, "'");
    MTL_CHECK(opts.split == "val" || opts.split == "test", "--split must be val or test, got '", opts.split, "'");
    MTL_CHECK(opts.visuals >= 0, "--visuals must be 0 or more, got ", opts.visuals);
    MTL_CHECK(batch_opt->count() == 0 || batch >= 1, "--batch must be at least 1, got ", batch);
    MTL_CHECK(speed_runs >= 1, "--speed-runs must be at least 1, got ", speed_runs);
    for (double x : scales)
      MTL_CHECK(std::isfinite(x) && x >= 0.25 && x <= 4, "--scales: ", x, " is not a scale in [0.25, 4]");
    MTL_CHECK(scales.empty() || *t == train::Tta::multiscale || *t == train::Tta::multiscale_flip,
              "--scales goes with --tta multiscale or multiscale_flip");
    if (!scales.empty()) opts.inference.scales = scales;
    opts.inference.tta = *t;
    opts.inference.mode = *m;
    opts.inference.batch = batch;
    opts.speed.min_runs = speed_runs;
    opts.speed.max_runs = std::max(opts.speed.max_runs, speed_runs);
    if (!device.empty()) opts.device = parse_device(device);
    if (!precision.empty()) {
      auto p = parse_enum<train::Precision>(precision);
      MTL_CHECK(p.has_value(), "--precision must be ", enum_choices<train::Precision>(), ", got '", precision, "'");
      opts.precision = *p;
    }
    train::load_run_config(opts.run_dir);  // a missing run or a bad configuration is a usage error
  } catch (const std::exception& e) {
    std::cerr << "mtl_eval: error: " << e.what() << "\n";
    return 2;
  }

  try {
    const bool tty = train::stdout_is_tty();
    if (tty)
      opts.progress = [](int64_t done, int64_t total) {
        std::cout << "\r" << train::progress_bar(done, total) << " " << done << "/" << total << std::flush;
      };
    train::EvalReport r = train::run_evaluation(opts);
    if (tty) std::cout << "\r\33[2K" << std::flush;
    for (const std::string& n : r.notes) std::cerr << "mtl_eval: note: " << n << "\n";
    std::cout << train::format_eval_report(r);
    if (!opts.json_path.empty()) std::cout << "wrote " << opts.json_path << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "mtl_eval: error: " << e.what() << "\n";
    return 1;
  }
}
