// mtl_datagen: writes the procedural greenhouse RGB-D data set that the demo trains on.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "apps/app_env.h"
#include "core/error.h"
#include "kernels/threads.h"
#include "train/config/config.h"
#include "train/data/synthetic/datagen.h"

int main(int argc, char** argv) {
  mtl::apps::use_tuned_runtime(argv);
  using namespace mtl::train;
  CLI::App app{
      "Renders procedural RGB-D greenhouse scenes (classes background, chamoe, heatpipe, path, pillar,\n"
      "topdownfarm, unknown) into OUT/{train,val,test}/{images,masks,depth}/ (docs/dataset_format.md).\n"
      "The same options give the same files, byte for byte.",
      "mtl_datagen"};
  DatagenOptions opt;
  std::string size = to_string(opt.size);
  int threads = 0;
  app.add_option("OUT", opt.out, "Output folder (new or empty, or an earlier output with --force)")->required();
  app.add_option("--train", opt.train, "Training frames")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--val", opt.val, "Validation frames")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--test", opt.test, "Test frames")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--size", size, "Image size WIDTHxHEIGHT")->capture_default_str();
  app.add_option("--seed", opt.seed, "Random seed")->capture_default_str();
  app.add_option("--threads", threads, "Threads (0 = all cores)")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_flag("--force", opt.force, "Replace an earlier mtl_datagen output in OUT");
  CLI11_PARSE(app, argc, argv);
  try {
    auto s = parse_size(size);
    if (!s) throw mtl::Error("--size '" + size + "' is not WIDTHxHEIGHT (e.g. 160x128)");
    opt.size = *s;
    mtl::kernels::set_cpu_threads(threads);
    const DatagenSummary sum = generate_dataset(opt);
    std::printf("mtl_datagen: wrote %lld frames of %s to %s in %.2f s\n", static_cast<long long>(sum.frames),
                size.c_str(), opt.out.c_str(), sum.seconds);
    const auto classes = greenhouse_classes();
    std::printf("  class pixel fractions:");
    for (size_t c = 0; c < classes.size(); ++c)
      std::printf(" %s %.3f", classes[c].name.c_str(),
                  static_cast<double>(sum.class_pixels[c]) / static_cast<double>(sum.pixels));
    std::printf("\n  valid depth: %.3f of pixels\n", static_cast<double>(sum.depth_valid) / static_cast<double>(sum.pixels));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mtl_datagen: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
