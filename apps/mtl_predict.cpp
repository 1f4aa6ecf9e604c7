// mtl_predict: applies a trained run to RGB-D images of any size and depth unit and writes, per
// image, <stem>_label.png (8-bit class ids), <stem>_seg.png (class colours), <stem>_depth.png
// (16-bit millimetres), <stem>_depth_color.png (viridis) and <stem>_panel.png.
// Exit status: 0 success, 2 usage errors (bad options, no such run folder or configuration),
// 1 anything else (an unreadable or mismatched input, a missing checkpoint). Every input is
// checked before anything is written. Errors are one line: "mtl_predict: error: <message>".
#include <CLI/CLI.hpp>

#include <cmath>
#include <filesystem>
#include <iostream>

#include "apps/app_env.h"
#include "core/error.h"
#include "train/eval/predictor.h"
#include "train/eval/predict_job.h"
#include "train/run/run_folder.h"

using namespace mtl;

int main(int argc, char** argv) {
  apps::use_tuned_runtime(argv);
  CLI::App app{"mtl_predict: segmentation and depth for RGB-D images with a trained run"};
  train::PredictOptions opts;
  std::string rgb, depth, rgb_dir, depth_dir, device;
  double depth_scale = 0;
  app.add_option("run_dir", opts.run_dir, "the run folder made by mtl_train")->required();
  app.add_option("--rgb", rgb, "an RGB image (PNG or JPEG)");
  app.add_option("--depth", depth, "its depth map (16-bit or 8-bit single-channel PNG)");
  app.add_option("--rgb-dir", rgb_dir, "a folder of RGB images, paired with --depth-dir by file stem");
  app.add_option("--depth-dir", depth_dir, "a folder of depth maps");
  auto* scale_opt = app.add_option("--depth-scale", depth_scale,
                                   "depth file units to metres, e.g. 0.001 for millimetres "
                                   "(default: the run's data.depth_scale)");
  app.add_option("--out", opts.out_dir, "output folder (default RUN_DIR/predictions)");
  app.add_option("--checkpoint", opts.checkpoints,
                 "checkpoint file (as given, or in RUN_DIR/checkpoints/); repeat for an ensemble");
  app.add_option("--device", device, "cpu or cuda (default: the run's runtime.device)");
  std::string precision;
  app.add_option("--precision", precision, "fp32 or bf16 (default: the run's runtime.precision)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  try {
    const bool single = !rgb.empty() || !depth.empty(), folders = !rgb_dir.empty() || !depth_dir.empty();
    MTL_CHECK(!(single && folders), "give either --rgb/--depth or --rgb-dir/--depth-dir, not both");
    MTL_CHECK(single || folders, "no input: give --rgb FILE --depth FILE, or --rgb-dir DIR --depth-dir DIR");
    if (single) {
      MTL_CHECK(!rgb.empty() && !depth.empty(), "--rgb and --depth go together");
    } else {
      MTL_CHECK(!rgb_dir.empty() && !depth_dir.empty(), "--rgb-dir and --depth-dir go together");
    }
    if (scale_opt->count() > 0) {
      MTL_CHECK(std::isfinite(depth_scale) && depth_scale > 0, "--depth-scale must be a positive number, got ",
                depth_scale);
      opts.depth_scale = depth_scale;
    }
    if (!device.empty()) opts.device = parse_device(device);
    if (!precision.empty()) {
      auto p = parse_enum<train::Precision>(precision);
      MTL_CHECK(p.has_value(), "--precision must be ", enum_choices<train::Precision>(), ", got '", precision, "'");
      opts.precision = *p;
    }
    train::load_run_config(opts.run_dir);  // a missing run or a bad configuration is a usage error
  } catch (const std::exception& e) {
    std::cerr << "mtl_predict: error: " << e.what() << "\n";
    return 2;
  }

  try {
    if (!rgb.empty())
      opts.pairs.push_back({std::filesystem::path(rgb).stem().string(), rgb, depth});
    else
      opts.pairs = train::pair_folders(rgb_dir, depth_dir);
    train::PredictSummary s = train::run_predict(opts);
    for (const std::string& n : s.notes) std::cerr << "mtl_predict: note: " << n << "\n";
    std::cout << "predicted " << s.images << " image" << (s.images == 1 ? "" : "s") << " into " << s.out_dir << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "mtl_predict: error: " << e.what() << "\n";
    return 1;
  }
}
