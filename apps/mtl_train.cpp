// mtl_train: trains the multi-task ESANet from a YAML configuration.
// Exit status: 0 success (also after SIGINT/SIGTERM, once the checkpoint is saved), 2 usage or
// configuration errors, 1 anything else. Errors are one line: "mtl_train: error: <message>", with
// "[rank R] " in front in data-parallel runs (mpirun -np N mtl_train ..., docs/distributed.md),
// where an error on one rank then ends them all.
#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>

#include "apps/app_env.h"
#include "core/error.h"
#include "core/file_io.h"
#include "train/config/config.h"
#include "train/dist/communicator.h"
#include "train/engine/train_job.h"

using namespace mtl;

int main(int argc, char** argv) {
  apps::use_tuned_runtime(argv);
  CLI::App app{"mtl_train: multi-task (semantic segmentation + depth) ESANet training"};
  std::string config_path, create_default, device;
  std::vector<std::string> sets;
  train::TrainOptions opts;
  bool summary = false;
  std::string config_option;
  app.add_option("config", config_path, "configuration file (YAML; JSON is read too)");
  app.add_option("--config", config_option, "the configuration file, as an option instead of the positional");
  app.add_option("--set", sets, "override a key, e.g. --set optim.lr=0.01 (repeatable)");
  app.add_option("--output", opts.output_dir, "run folder (default runs/<config name>-<time>)");
  app.add_option("--resume", opts.resume_dir, "continue the run in this folder");
  app.add_option("--init-from", opts.init_from,
                 "initialise weights from a .pth/.pt/.tar/.ckpt or .safetensors file: torchvision ResNet, "
                 "ESANet encoder or model, mtl weights (docs/pretrained.md)");
  app.add_option("--device", device, "cpu or cuda (overrides runtime.device)");
  app.add_flag("--summary", summary, "print the model's modules and parameter counts, then exit");
  auto* create_opt =
      app.add_option("--create-default-config", create_default,
                     "write the complete default configuration to PATH (default config.yaml), never overwriting")
          ->expected(0, 1);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  train::Config cfg;
  try {
    MTL_CHECK(config_path.empty() || config_option.empty(), "give the configuration once: '", config_path,
              "' and --config '", config_option, "'");
    if (!config_option.empty()) config_path = config_option;
    if (create_opt->count() > 0) {
      if (create_default.empty()) create_default = "config.yaml";
      MTL_CHECK(!std::filesystem::exists(create_default), "'", create_default, "' exists; not overwriting it");
      write_file_atomic(create_default, train::default_config_yaml());
      std::cout << "wrote the default configuration to " << create_default << "\n";
      return 0;
    }
    if (!opts.resume_dir.empty()) {
      // A resumed run continues under the configuration it was started with.
      if (config_path.empty()) config_path = opts.resume_dir + "/config.yaml";
    }
    MTL_CHECK(!config_path.empty(), "a configuration file is required (or --resume RUN_DIR); see --help");
    cfg = train::load_config(config_path, sets);
    if (!device.empty()) opts.device = parse_device(device);
    opts.config_name = std::filesystem::path(config_path).stem().string();
  } catch (const std::exception& e) {
    std::cerr << train::rank_prefix() << "mtl_train: error: " << e.what() << "\n";
    return 2;
  }

  try {
    if (summary) {
      std::cout << train::model_summary(cfg);
      return 0;
    }
    train::run_training(cfg, opts);
    train::finalize_process_group();
    return 0;
  } catch (const std::exception& e) {
    std::cerr << train::rank_prefix() << "mtl_train: error: " << e.what() << "\n";
    train::abort_process_group(1);
    return 1;
  }
}
