// `cmake --install` of this build into a temporary prefix (the libraries, <mtl/predictor.h>, the
// tools, the CMake package), then the consumer project tests/consumer configured and built against
// that prefix alone (find_package(mtl CONFIG REQUIRED), mtl::mtl) and run on a real frame of
// ../shared/data/rgbd/ with a run folder made here: it checks the prediction's size, its class
// ids and its depth range itself.
#include <doctest/doctest.h>

#include <filesystem>

#include "support/run_folder.h"

using namespace mtl;
namespace fs = std::filesystem;

namespace {

std::string quoted(const std::string& s) { return "'" + s + "'"; }

// Runs a command, failing the test with its output when it does not exit 0.
test::CommandResult must_run(const std::string& what, const std::string& command, const test::TempDir& scratch) {
  test::CommandResult r = test::run_command(command, scratch);
  INFO(what, ": ", command, "\n", r.out, r.err);
  REQUIRE(r.status == 0);
  return r;
}

}  // namespace

TEST_CASE("cmake --install gives a package that a consumer project builds against and runs") {
  test::TempDir tmp("install");
  const std::string prefix = tmp / "prefix", build = tmp / "consumer";
  const std::string cmake = quoted(MTL_CMAKE);
  must_run("install", cmake + " --install " + quoted(MTL_BUILD_DIR) + " --prefix " + quoted(prefix), tmp);

  for (const char* f :
       {"include/mtl/predictor.h", "lib/cmake/mtl/mtlConfig.cmake", "lib/cmake/mtl/mtlTargets.cmake",
        "lib/cmake/mtl/mtlDependencies.cmake", "lib/libmtl_core.a", "lib/libmtl_train_export.a", "bin/mtl_train",
        "bin/mtl_eval", "bin/mtl_predict", "bin/mtl_datagen", "bin/mtl_convert", "bin/mtl_export"})
    CHECK_MESSAGE(fs::exists(fs::path(prefix) / f), f);
  // The installed tools find their shared libraries (CUDA's are in no system folder here).
  must_run("installed tool", quoted(prefix + "/bin/mtl_export") + " --help", tmp);

  must_run("configure the consumer",
           cmake + " -S " + quoted(std::string(MTL_SOURCE_DIR) + "/tests/consumer") + " -B " + quoted(build) + " -G " +
               quoted(MTL_CMAKE_GENERATOR) + " -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH=" + quoted(prefix),
           tmp);
  must_run("build the consumer", cmake + " --build " + quoted(build), tmp);

  const std::string run = tmp / "run";
  const train::Config cfg = test::tiny_run_config(tmp / "no_data");
  test::make_run_folder(run, cfg, test::made_up_stats(3.0, 1.5, cfg.model.num_classes));
  const std::string frames = std::string(MTL_SHARED_DIR) + "/data/rgbd/";
  // ESANet's sample frame: 512x424, depth in 0.1 mm.
  const test::CommandResult r =
      must_run("run the consumer",
               quoted(build + "/mtl_consumer") + " " + quoted(run) + " " + quoted(frames + "esanet_rgb.png") + " " +
                   quoted(frames + "esanet_depth.png") + " 0.0001",
               tmp);
  MESSAGE(r.out);
  CHECK(r.out.find("mtl_consumer: 512x424, ") == 0);
  CHECK(r.out.find(": ok\n") != std::string::npos);
}
