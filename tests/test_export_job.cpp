// mtl_export (docs/deploy.md): runs of several ESANet configurations exported and checked by the
// onnx checker (full_check) and by ONNX Runtime against mtl's own outputs on the sample batch
// (tests/onnx/check_export.py, run with the Python that scripts/setup.sh installs
// scripts/requirements-test.txt into: without onnx and onnxruntime these cases fail, not skip),
// the metadata_props as ONNX reads them (their normalisation constants turn the raw validation
// frame into the sample's inputs), a dynamic-batch export run at batch 1 and 3, and the bad inputs
// (no checkpoint, a size that is not a multiple of 32, an output folder that does not exist, no
// validation data) as one message, a non-zero exit and no file at all. The runs' networks are
// freshly initialised with their norms' statistics and affine parameters randomised, so that
// folding BatchNorm and the GroupNorm subgraph are really tested.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "core/error.h"
#include "core/generator.h"
#include "core/safetensors.h"
#include "nn/init.h"
#include "support/run_folder.h"
#include "train/data/dataset.h"
#include "train/data/synthetic/datagen.h"
#include "train/export/export_job.h"
#include "train/run/checkpoint.h"

using namespace mtl;
using namespace mtl::train;
namespace fs = std::filesystem;

namespace {

const std::string kPython = MTL_PYTHON;
const std::string kChecker = std::string(MTL_SOURCE_DIR) + "/tests/onnx/check_export.py";

// Three validation frames (and one of each other split) of the synthetic data at the demo's size,
// made once for the whole file.
std::string data_root() {
  static test::TempDir dir("export_data");
  static const std::string root = [] {
    DatagenOptions o;
    o.out = dir / "data";
    o.train = 1, o.val = 3, o.test = 1;
    o.size = {160, 128};
    generate_dataset(o);
    return o.out;
  }();
  return root;
}

// Norm statistics and affine parameters, and the learned upsampling's bias, away from their
// initial values (which would make BatchNorm an identity).
void randomise_norms(nn::Module& model, uint64_t seed) {
  Generator gen(seed);
  autograd::NoGradGuard no_grad;
  auto fill = [&](Tensor& t, double lo, double hi) {
    std::vector<double> v(static_cast<size_t>(t.numel()));
    gen.fill_uniform(v.data(), t.numel(), lo, hi);
    nn::init::assign(t, v);
  };
  model.visit([&](const std::string&, nn::Module& m) {
    if (auto* bn = dynamic_cast<nn::BatchNorm2d*>(&m)) {
      fill(bn->running_mean, -0.3, 0.3);
      fill(bn->running_var, 0.5, 2.0);
      fill(bn->weight, 0.5, 1.5);
      fill(bn->bias, -0.2, 0.2);
    } else if (auto* gn = dynamic_cast<nn::GroupNorm*>(&m)) {
      fill(gn->weight, 0.5, 1.5);
      fill(gn->bias, -0.2, 0.2);
    } else if (auto* up = dynamic_cast<nn::Upsample*>(&m); up && up->conv) {
      fill(up->conv->bias, -0.1, 0.1);
    }
  });
}

// A run folder (config.yaml, mtl_stats.json, checkpoints/best.safetensors) of `cfg`'s network.
struct ExportRun {
  test::TempDir tmp{"export"};
  std::string run;
  Config cfg;
  explicit ExportRun(Config c) : cfg(std::move(c)) {
    run = tmp / "run";
    test::make_run_folder(run, cfg, test::made_up_stats(3.0, 1.5, cfg.model.num_classes), false);
    const auto model = test::fresh_model(cfg);
    randomise_norms(*model, 11);
    save_checkpoint(run + "/checkpoints/best.safetensors", *model, nullptr, nullptr, nullptr);
  }
  std::string model_path() const { return tmp / "model.onnx"; }
  std::string sample_path() const { return tmp / "sample.safetensors"; }
  ExportOptions options(std::optional<int> batch, std::optional<Size2> size = std::nullopt, int opset = 17) const {
    ExportOptions o;
    o.run_dir = run;
    o.out = model_path();
    o.sample_out = sample_path();
    o.batch = batch;
    o.input_size = size;
    o.opset = opset;
    return o;
  }
};

Config demo_config() {
  return load_config(std::string(MTL_SOURCE_DIR) + "/configs/demo.yaml", {"data.root=" + data_root()});
}

Config tiny_config() {
  Config c = test::tiny_run_config(data_root());
  c.model.block = models::Block::nbt1d;
  return c;
}

// check_export.py on the model and its sample (extra: more options); prints its measurements and
// returns them (with the model's metadata_props under "metadata").
nlohmann::json check_with_onnx_runtime(const ExportRun& r, const std::string& what, const std::string& extra = "") {
  test::TempDir scratch("export_check");
  const test::CommandResult imports =
      test::run_command("'" + kPython + "' -c 'import onnx, onnxruntime, safetensors'", scratch);
  REQUIRE_MESSAGE(imports.status == 0, kPython,
                  " cannot import onnx, onnxruntime and safetensors: run scripts/setup.sh (pip install -r "
                  "scripts/requirements-test.txt)\n",
                  imports.err);
  const test::CommandResult c = test::run_command(
      "'" + kPython + "' '" + kChecker + "' '" + r.model_path() + "' '" + r.sample_path() + "' " + extra, scratch);
  REQUIRE_MESSAGE(c.status == 0, what, ": ", c.err);
  const nlohmann::json result = nlohmann::json::parse(c.out);
  nlohmann::json measured = result;
  measured.erase("metadata");
  MESSAGE(what, ": ", measured.dump());
  return result;
}

// The metadata_props' values (as ONNX reads them, all strings) against the run, and their
// normalisation applied to the first raw validation frame against the sample's inputs: what an
// application does to feed the model from the metadata alone. (The data are at the input size, so
// the resize to the network input is an identity.)
void check_metadata(const nlohmann::json& meta, const ExportRun& r) {
  CHECK(meta.at("input_size") == "160x128");
  CHECK(meta.at("modality") == "rgbd");
  CHECK(nlohmann::json::parse(meta.at("tasks").get<std::string>()) == nlohmann::json({"semantic", "depth"}));
  std::vector<std::string> names;
  for (const ClassInfo& c : r.cfg.data.classes) names.push_back(c.name);
  REQUIRE(names.size() == 7);
  CHECK(nlohmann::json::parse(meta.at("class_names").get<std::string>()) == nlohmann::json(names));
  CHECK(meta.at("num_classes") == "7");
  CHECK(meta.at("max_depth") == "10");
  CHECK(meta.at("checkpoint") == "best.safetensors");
  const auto rgb_mean = nlohmann::json::parse(meta.at("rgb_mean").get<std::string>()).get<std::vector<double>>();
  const auto rgb_std = nlohmann::json::parse(meta.at("rgb_std").get<std::string>()).get<std::vector<double>>();
  const double depth_mean = std::stod(meta.at("depth_mean").get<std::string>());
  const double depth_std = std::stod(meta.at("depth_std").get<std::string>());
  CHECK(rgb_mean == std::vector<double>{0.485, 0.456, 0.406});
  CHECK(rgb_std == std::vector<double>{0.229, 0.224, 0.225});
  CHECK(depth_mean == 3.0);  // the run's mtl_stats.json
  CHECK(depth_std == 1.5);

  std::vector<Problem> problems;
  std::vector<std::string> left_out;
  const Sample frame = Dataset(r.cfg.data, list_split(r.cfg.data, "val", false, problems, left_out)).load(0);
  REQUIRE(frame.rgb.width == 160);
  REQUIRE(frame.rgb.height == 128);
  const SafetensorsFile s = load_safetensors(r.sample_path());
  const std::vector<double> rgb = s.tensors.at("input/rgb").to_f64_vector(),
                            depth = s.tensors.at("input/depth").to_f64_vector();
  const size_t plane = frame.rgb.pixels();
  double rgb_err = 0, depth_err = 0;
  int64_t measured = 0;
  for (int y = 0; y < frame.rgb.height; ++y) {
    for (int x = 0; x < frame.rgb.width; ++x) {
      const size_t i = static_cast<size_t>(y) * static_cast<size_t>(frame.rgb.width) + static_cast<size_t>(x);
      for (size_t c = 0; c < 3; ++c) {
        const double want = (frame.rgb.at(x, y, static_cast<int>(c)) / 255.0 - rgb_mean[c]) / rgb_std[c];
        rgb_err = std::max(rgb_err, std::abs(rgb[c * plane + i] - want));
      }
      const double metres = frame.depth.at(x, y);
      measured += metres > 0;
      depth_err = std::max(depth_err, std::abs(depth[i] - (metres > 0 ? (metres - depth_mean) / depth_std : 0.0)));
    }
  }
  CHECK(measured > 0);
  CHECK(rgb_err < 1e-5);
  CHECK(depth_err < 1e-5);
}

size_t files_in(const std::string& dir) {
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(dir)) n += e.is_regular_file();
  return n;
}

}  // namespace

TEST_CASE("mtl_export: the demo network passes the onnx checker and equals mtl in ONNX Runtime") {
  const ExportRun r(demo_config());
  test::TempDir scratch("export_cli");
  const test::CommandResult c =
      test::run_command(std::string("'") + MTL_EXPORT_EXE + "' '" + r.run + "' --out '" + r.model_path() +
                            "' --batch 2 --sample-out '" + r.sample_path() + "'",
                        scratch);
  INFO(c.err);
  REQUIRE(c.status == 0);
  CHECK(c.out.find("wrote " + r.model_path()) != std::string::npos);
  CHECK(c.out.find("(2 validation images)") != std::string::npos);
  MESSAGE(c.out);
  const SafetensorsFile s = load_safetensors(r.sample_path());
  CHECK(s.tensors.at("input/rgb").shape() == Shape{2, 3, 128, 160});
  CHECK(s.tensors.at("input/depth").shape() == Shape{2, 1, 128, 160});
  CHECK(s.tensors.at("output/semantic").shape() == Shape{2, 7, 128, 160});
  CHECK(s.tensors.at("output/depth_metres").shape() == Shape{2, 1, 128, 160});
  const nlohmann::json result =
      check_with_onnx_runtime(r, "demo (ResNet-18 NBt1D x0.25, ppm, light depth head, 160x128, batch 2)");
  check_metadata(result.at("metadata"), r);
}

TEST_CASE("mtl_export: a dynamic-batch export runs at batch 1 and 3") {
  const ExportRun r(demo_config());
  const ExportSummary s = run_export(r.options(std::nullopt));
  CHECK(s.sample_names.size() == 3);  // min(eval.batch_size, the 3 validation frames)
  check_with_onnx_runtime(r, "demo, --batch dynamic", "--batches 1,3");
}

TEST_CASE("mtl_export: a run trained in bf16 exports float32, and its sample is float32's") {
  // The ONNX graph computes in float32; a sample made in bfloat16 would miss it by 1e-2.
  Config cfg = demo_config();
  cfg.runtime.precision = Precision::bf16;
  const ExportRun r(cfg);
  run_export(r.options(2));
  check_with_onnx_runtime(r, "demo trained with runtime.precision bf16, batch 2");
}

TEST_CASE("mtl_export: depth decoder, GroupNorm and appm at twice the training size") {
  // Half of ESANet's width: narrower GroupNorm networks (one channel per group on maps of a few
  // pixels) are so ill-conditioned in float32 that mtl and ONNX Runtime each differ from a
  // float64 forward pass by up to 1e-4 of the logits' range.
  Config cfg = tiny_config();
  cfg.model.block = models::Block::basic;
  cfg.model.width = 0.5;
  cfg.model.norm = nn::NormKind::groupnorm;
  cfg.model.context = models::Context::appm;
  cfg.model.depth_head = models::DepthHead::decoder;
  const ExportRun r(cfg);
  const ExportSummary s = run_export(r.options(2, Size2{320, 256}));
  CHECK(s.input_size == Size2{320, 256});
  check_with_onnx_runtime(r, "ResNet-18 basic x0.5, GroupNorm, appm, depth decoder, 320x256 (trained 160x128)");
}

TEST_CASE(
    "mtl_export: bottleneck blocks, no context module, nearest upsampling, RGB and semantic only, class "
    "adapter, opset 21") {
  Config cfg = tiny_config();
  cfg.model.encoder = models::Encoder::resnet50;
  cfg.model.context = models::Context::none;
  cfg.model.upsampling = nn::UpsampleMode::nearest;
  cfg.model.modality = models::Modality::rgb;
  cfg.model.tasks = {Task::semantic};
  cfg.model.pretrained_classes = 9;
  const ExportRun r(cfg);
  run_export(r.options(2, Size2{192, 96}, 21));
  const SafetensorsFile s = load_safetensors(r.sample_path());
  CHECK(s.tensors.count("input/depth") == 0);  // the graph has no depth input
  CHECK(s.tensors.count("output/depth_metres") == 0);
  check_with_onnx_runtime(r, "ResNet-50 x0.125, no context, nearest, rgb only, semantic only, adapter 9->7, 192x96");
}

TEST_CASE("mtl_export: bilinear upsampling, ppm, depth input and task only, dynamic batch") {
  Config cfg = tiny_config();
  cfg.model.upsampling = nn::UpsampleMode::bilinear;
  cfg.model.modality = models::Modality::depth;
  cfg.model.tasks = {Task::depth};
  cfg.model.depth_head = models::DepthHead::decoder;
  cfg.train.monitor = Monitor::depth_rmse;
  const ExportRun r(cfg);
  run_export(r.options(std::nullopt));
  check_with_onnx_runtime(r, "ResNet-18 NBt1D x0.125, ppm, bilinear, depth only, --batch dynamic", "--batches 1,3");
}

TEST_CASE("mtl_export --checkpoint exports that checkpoint, as given or in RUN_DIR/checkpoints/") {
  const ExportRun r(tiny_config());
  const auto other = test::fresh_model(r.cfg);
  randomise_norms(*other, 12);
  save_checkpoint(r.run + "/checkpoints/last.safetensors", *other, nullptr, nullptr, nullptr);
  test::TempDir scratch("export_checkpoint");
  auto export_with = [&](const std::string& args) {
    const test::CommandResult c =
        test::run_command(std::string("'") + MTL_EXPORT_EXE + "' '" + r.run + "' --out '" + r.model_path() +
                              "' --sample-out '" + r.sample_path() + "'" + args,
                          scratch);
    INFO(c.err);
    REQUIRE(c.status == 0);
    return std::pair{c.out, load_safetensors(r.sample_path()).tensors.at("output/semantic").to_f64_vector()};
  };
  const auto [best_out, best] = export_with("");
  CHECK(best_out.find("from " + r.run + "/checkpoints/best.safetensors") != std::string::npos);
  const auto [last_out, last] = export_with(" --checkpoint last.safetensors");
  CHECK(last_out.find("from " + r.run + "/checkpoints/last.safetensors") != std::string::npos);
  CHECK(last != best);  // the other checkpoint's weights, not best's
  const auto [given_out, given] = export_with(" --checkpoint '" + r.run + "/checkpoints/last.safetensors'");
  CHECK(given_out.find("from " + r.run + "/checkpoints/last.safetensors") != std::string::npos);
  CHECK(given == last);

  const test::CommandResult missing =
      test::run_command(std::string("'") + MTL_EXPORT_EXE + "' '" + r.run + "' --out '" + (scratch / "m.onnx") +
                            "' --checkpoint nope.safetensors",
                        scratch);
  CHECK(missing.status == 1);
  CHECK(missing.err.find("mtl_export: error: checkpoint 'nope.safetensors' does not exist") == 0);
  CHECK_FALSE(fs::exists(scratch / "m.onnx"));
}

TEST_CASE("mtl_export: bad inputs are one clear error and leave no file") {
  const ExportRun r(tiny_config());
  test::TempDir scratch("export_errors");
  auto run = [&](const std::string& args) {
    return test::run_command(std::string("'") + MTL_EXPORT_EXE + "' " + args, scratch);
  };
  const std::string out = scratch / "model.onnx";
  test::CommandResult c;
  SUBCASE("a run folder without a checkpoint") {
    fs::remove(r.run + "/checkpoints/best.safetensors");
    c = run("'" + r.run + "' --out '" + out + "'");
    CHECK(c.status == 1);
    CHECK(c.err.find("has no checkpoint") != std::string::npos);
  }
  SUBCASE("an input size that is not a multiple of 32") {
    c = run("'" + r.run + "' --out '" + out + "' --input-size 160x120");
    CHECK(c.status == 2);
    CHECK(c.err.find("--input-size 160x120: both sides must be positive multiples of 32") != std::string::npos);
  }
  SUBCASE("an output path in a folder that does not exist") {
    const std::string missing = scratch / "no/such/folder/model.onnx";
    c = run("'" + r.run + "' --out '" + missing + "'");
    CHECK(c.status == 2);
    CHECK(c.err.find("does not exist") != std::string::npos);
    CHECK_FALSE(fs::exists(scratch / "no"));
  }
  SUBCASE("a sample without validation data") {
    Config moved = r.cfg;
    moved.data.root = scratch / "no_data";
    write_file_atomic(r.run + "/config.yaml", to_yaml(moved));
    c = run("'" + r.run + "' --out '" + out + "' --sample-out '" + (scratch / "sample.safetensors") + "'");
    CHECK(c.status == 1);
    CHECK(c.err.find("--sample-out needs 1 validation image(s)") != std::string::npos);
  }
  SUBCASE("a batch that is neither a number nor 'dynamic'") {
    c = run("'" + r.run + "' --out '" + out + "' --batch many");
    CHECK(c.status == 2);
    CHECK(c.err.find("--batch must be a positive number or 'dynamic', got 'many'") != std::string::npos);
  }
  SUBCASE("an opset outside the supported range") {
    c = run("'" + r.run + "' --out '" + out + "' --opset 11");
    CHECK(c.status == 2);
    CHECK(c.err.find("--opset 11 is not supported (expected 17 to 21)") != std::string::npos);
  }
  // One error, and nothing written (not the model, not a temporary file): the folder holds only
  // the command's captured stdout and stderr.
  const std::string head = "mtl_export: error: ";
  CHECK(c.err.find(head) == 0);
  CHECK(c.err.find("error:", head.size()) == std::string::npos);
  CHECK(files_in(scratch.path.string()) == 2);
}
