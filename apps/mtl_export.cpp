// mtl_export: a trained run's network as an ONNX model (docs/deploy.md), and optionally one
// validation batch with mtl's own outputs for it, to check a runtime against mtl.
// Exit status: 0 success, 2 usage errors (bad options, no such run folder or configuration, an
// input size that is not a multiple of 32, an output folder that does not exist), 1 anything else
// (a missing checkpoint, unreadable data). Nothing is written on an error. Errors are one line:
// "mtl_export: error: <message>".
#include <CLI/CLI.hpp>
#include <charconv>
#include <iostream>

#include "apps/app_env.h"
#include "core/error.h"
#include "train/export/export_job.h"
#include "train/export/onnx_model.h"

using namespace mtl;

int main(int argc, char** argv) {
  apps::use_tuned_runtime(argv);
  CLI::App app{"mtl_export: a trained multi-task ESANet run as an ONNX model"};
  train::ExportOptions opts;
  std::string size, batch = "1";
  app.add_option("run_dir", opts.run_dir, "the run folder made by mtl_train")->required();
  app.add_option("--out", opts.out, "the ONNX file to write (its folder must exist)")->required();
  app.add_option("--checkpoint", opts.checkpoint,
                 "checkpoint file (as given, or in RUN_DIR/checkpoints/; default: best, else last)");
  app.add_option("--input-size", size, "network input WxH, multiples of 32 (default: the run's train.input_size)");
  app.add_option("--batch", batch, "batch size N, or 'dynamic' for a symbolic batch dimension (default 1)");
  app.add_option("--opset", opts.opset,
                 "ONNX opset, " + std::to_string(train::onnx::kMinOpset) + " to " +
                     std::to_string(train::onnx::kMaxOpset) + " (default 17)");
  app.add_option("--sample-out", opts.sample_out,
                 "also write one validation batch and mtl's outputs for it (safetensors: input/rgb, input/depth, "
                 "output/semantic, output/depth_metres)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  try {
    if (!size.empty()) {
      opts.input_size = train::parse_size(size);
      MTL_CHECK(opts.input_size.has_value(), "--input-size must be WxH (e.g. 640x480), got '", size, "'");
    }
    if (batch == "dynamic") {
      opts.batch.reset();
    } else {
      int n = 0;
      const auto [end, ec] = std::from_chars(batch.data(), batch.data() + batch.size(), n);
      MTL_CHECK(ec == std::errc() && end == batch.data() + batch.size() && n >= 1,
                "--batch must be a positive number or 'dynamic', got '", batch, "'");
      opts.batch = n;
    }
    train::check_export_options(opts);
  } catch (const std::exception& e) {
    std::cerr << "mtl_export: error: " << e.what() << "\n";
    return 2;
  }

  try {
    const train::ExportSummary s = train::run_export(opts);
    for (const std::string& n : s.notes) std::cerr << "mtl_export: note: " << n << "\n";
    std::cout << "wrote " << s.out << " (" << s.nodes << " nodes, " << s.parameters << " parameters, "
              << (s.bytes + 512 * 1024) / (1024 * 1024) << " MiB) from " << s.checkpoint << " at "
              << train::to_string(s.input_size) << ", batch " << (opts.batch ? std::to_string(*opts.batch) : "dynamic")
              << ", opset " << opts.opset << "\n  ops:";
    for (const auto& [op, n] : s.op_counts) std::cout << " " << op << " " << n;
    std::cout << "\n";
    if (!s.sample_out.empty())
      std::cout << "wrote " << s.sample_out << " (" << s.sample_names.size() << " validation images)\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "mtl_export: error: " << e.what() << "\n";
    return 1;
  }
}
