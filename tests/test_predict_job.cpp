// mtl_predict: every real RGB-D frame in ../shared/data/rgbd/ with its own depth unit (outputs at
// the input's size, 16-bit millimetres that match the prediction in metres), pairing folders by
// stem, and the error cases (size mismatch, truncated or missing file, missing run folder or
// checkpoint) as one message naming the file, a non-zero exit and no output at all.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "core/error.h"
#include "support/run_folder.h"
#include "train/data/image_io.h"
#include "train/eval/predictor.h"
#include "train/eval/predict_job.h"
#include "train/run/run_folder.h"
#include "train/log/visuals.h"

using namespace mtl;
using namespace mtl::train;
namespace fs = std::filesystem;

namespace {

const std::string kFrames = std::string(MTL_SHARED_DIR) + "/data/rgbd/";

struct RealFrame {
  std::string stem, rgb, depth;
  double scale;  // file units to metres, from the folder's README
  int width, height;
};
// Every frame of ../shared/data/rgbd/README.md; the NYU crop has a filled and a raw depth map.
const std::vector<RealFrame>& real_frames() {
  static const std::vector<RealFrame> f{
      {"esanet", "esanet_rgb.png", "esanet_depth.png", 1e-4, 512, 424},  // 0.1 mm (Kinect v2)
      {"emsanet", "emsanet_rgb.png", "emsanet_depth.png", 1e-3, 1440, 1080},
      {"nyu_bookstore", "nyu_bookstore_rgb.jpg", "nyu_bookstore_depth.png", 1e-3, 160, 120},
      {"nyu_crop_filled", "nyu_crop_rgb.png", "nyu_crop_depth_filled.png", 1e-3, 560, 425},
      {"nyu_crop_raw", "nyu_crop_rgb.png", "nyu_crop_depth_raw.png", 1e-3, 560, 425},
      {"tum", "tum_rgb.png", "tum_depth.png", 1.0 / 5000, 640, 480},  // 1/5000 m
  };
  return f;
}

PredictPair pair_of(const RealFrame& f) { return {f.stem, kFrames + f.rgb, kFrames + f.depth}; }

// A run folder with a freshly initialised narrow network (160x128 input).
struct PredictRun {
  test::TempDir tmp{"predict"};
  std::string run;
  Config cfg;
  PredictRun() {
    run = tmp / "run";
    cfg = test::tiny_run_config(tmp / "no_data");
    test::make_run_folder(run, cfg, test::made_up_stats(3.0, 1.5, cfg.model.num_classes));
  }
  // Predicting the real frame f (at its own depth scale) into tmp/out_dir.
  PredictOptions options(const RealFrame& f, const std::string& out_dir) const {
    PredictOptions o;
    o.run_dir = run;
    o.pairs = {pair_of(f)};
    o.depth_scale = f.scale;
    o.out_dir = tmp / out_dir;
    return o;
  }
};

void write_prefix(const std::string& from, const std::string& to, size_t bytes) {
  const std::string all = test::read_text(from);
  REQUIRE(all.size() > bytes);
  std::ofstream(to, std::ios::binary).write(all.data(), static_cast<std::streamsize>(bytes));
}

size_t files_in(const std::string& dir) {
  if (!fs::exists(dir)) return 0;
  return static_cast<size_t>(std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
}

}  // namespace

TEST_CASE("depth_to_millimetres rounds and clamps") {
  ImageF m(6, 1, 1);
  m.data = {0.0014f, 1.2346f, -1.0f, std::numeric_limits<float>::quiet_NaN(), 70.0f, 0.0f};
  const ImageU16 mm = depth_to_millimetres(m);
  CHECK(mm.data == std::vector<uint16_t>{1, 1235, 0, 0, 65535, 0});
}

TEST_CASE("mtl_predict on every real frame with its depth scale") {
  PredictRun r;
  const Palette palette = palette_from_classes(r.cfg.data.classes);
  for (const RealFrame& f : real_frames()) {
    CAPTURE(f.stem);
    const PredictPair pair = pair_of(f);
    // The README's unit brings the frame's depth to indoor distances in metres.
    const PredictInputs in = read_pair(pair, f.scale);
    REQUIRE(in.rgb.width == f.width);
    REQUIRE(in.rgb.height == f.height);
    std::vector<float> valid;
    for (float d : in.depth.data)
      if (d > 0) valid.push_back(d);
    REQUIRE(valid.size() > in.depth.data.size() / 2);
    std::nth_element(valid.begin(), valid.begin() + static_cast<std::ptrdiff_t>(valid.size() / 2), valid.end());
    const float median = valid[valid.size() / 2];
    CHECK(median > 0.5f);
    CHECK(median < 8.0f);

    PredictOptions o;
    o.run_dir = r.run;
    o.pairs = {pair};
    o.depth_scale = f.scale;
    o.out_dir = r.tmp / "out";
    PredictOutputs got;
    int calls = 0;
    o.on_image = [&](const PredictPair& p, const PredictOutputs& out) {
      CHECK(p.stem == f.stem);
      got = out;
      ++calls;
    };
    const PredictSummary s = run_predict(o);
    CHECK(calls == 1);
    CHECK(s.images == 1);
    const std::string base = o.out_dir + "/" + f.stem;
    CHECK(s.files == std::vector<std::string>{base + "_label.png", base + "_seg.png", base + "_depth.png",
                                              base + "_depth_color.png", base + "_panel.png"});
    for (const char* suffix : {"_label.png", "_seg.png", "_depth.png", "_depth_color.png"}) {
      const ImageInfo info = read_image_info(base + suffix);
      CHECK(info.width == f.width);
      CHECK(info.height == f.height);
    }
    const ImageInfo panel = read_image_info(base + "_panel.png");
    CHECK(panel.width == 4 * f.width + 3 * kPanelSeparator);  // RGB, classes, input depth, prediction
    CHECK(panel.height == f.height);

    // Class ids: 8-bit, one channel, the prediction's; colours from the palette.
    const ImageInfo li = read_image_info(base + "_label.png");
    CHECK(li.bits == 8);
    CHECK(li.channels == 1);
    const ImageU16 ids = read_gray(base + "_label.png", "label");
    REQUIRE(got.labels.data.size() == ids.data.size());
    bool ids_match = true;
    for (size_t i = 0; i < ids.data.size(); ++i)
      ids_match = ids_match && ids.data[i] == got.labels.data[i] && got.labels.data[i] < r.cfg.model.num_classes;
    CHECK(ids_match);
    const ImageU8 seg = read_rgb(base + "_seg.png");
    for (size_t i = 0; i < ids.data.size(); i += 997)
      for (int c = 0; c < 3; ++c) CHECK(seg.data[i * 3 + c] == palette[ids.data[i]][c]);

    // Depth: 16-bit millimetres of the prediction in metres, which lies in (0, max_depth].
    const ImageInfo di = read_image_info(base + "_depth.png");
    CHECK(di.bits == 16);
    CHECK(di.channels == 1);
    const ImageU16 mm = read_gray(base + "_depth.png", "depth");
    REQUIRE(got.depth.width == f.width);
    REQUIRE(got.depth.height == f.height);
    double worst = 0;
    bool in_range = true;
    for (size_t i = 0; i < mm.data.size(); ++i) {
      const double m = got.depth.data[i];
      in_range = in_range && m > 0 && m <= r.cfg.data.max_depth;
      worst = std::max(worst, std::abs(mm.data[i] - m * 1000.0));
    }
    CHECK(in_range);
    CHECK(worst <= 0.5 + 1e-3);
  }
}

TEST_CASE("predictions are the network's at the image size") {
  // The written depth against a prediction made here with the inference library directly.
  PredictRun r;
  const RealFrame& f = real_frames()[0];
  PredictOptions o = r.options(f, "out");
  run_predict(o);
  std::vector<std::string> notes;
  const DatasetStats stats = load_run_stats(r.run, r.cfg, notes);
  const Predictor pred(r.cfg, stats, {load_model(r.cfg, r.run + "/checkpoints/best.safetensors", Device::cpu())},
                       Device::cpu());
  const PredictInputs in = read_pair(pair_of(f), f.scale);
  const ImagePrediction p = pred.predict({{&in.rgb, &in.depth}}).front();
  const std::vector<double> metres = p.depth.to_f64_vector();
  const ImageU16 mm = read_gray(o.out_dir + "/esanet_depth.png", "depth");
  size_t off = 0;
  for (size_t i = 0; i < mm.data.size(); ++i)
    if (std::abs(mm.data[i] - metres[i] * 1000.0) > 0.5 + 1e-3) ++off;
  CHECK(off == 0);
  const ImageU16 ids = read_gray(o.out_dir + "/esanet_label.png", "label");
  CHECK(labels_from_tensor(p.semantic.squeeze(0)).data == std::vector<int32_t>(ids.data.begin(), ids.data.end()));
  // A different depth unit is a different input, and so a different prediction.
  PredictOptions o2 = o;
  o2.depth_scale = f.scale * 10;
  o2.out_dir = r.tmp / "out10";
  run_predict(o2);
  CHECK(read_gray(o2.out_dir + "/esanet_depth.png", "depth").data != mm.data);
}

TEST_CASE("--precision bf16 predicts in bfloat16 from the float32 checkpoint") {
  PredictRun r;
  const RealFrame& f = real_frames()[0];
  PredictOptions o = r.options(f, "fp32");
  run_predict(o);
  o.precision = Precision::bf16;
  o.out_dir = r.tmp / "bf16";
  run_predict(o);
  const ImageU16 a = read_gray(r.tmp / "fp32/esanet_depth.png", "depth");
  const ImageU16 b = read_gray(r.tmp / "bf16/esanet_depth.png", "depth");
  REQUIRE(a.data.size() == b.data.size());
  double diff = 0, ref = 0;
  for (size_t i = 0; i < a.data.size(); ++i) {
    diff += std::pow(double(b.data[i]) - a.data[i], 2);
    ref += std::pow(double(a.data[i]), 2);
  }
  // The same network in bfloat16: close (measured about 1e-3 relative), and not the same bits.
  CHECK(std::sqrt(diff / ref) < 0.01);
  CHECK(diff > 0);
}

TEST_CASE("a depth-only model writes only depth outputs") {
  test::TempDir tmp("predict_depth_only");
  Config cfg = test::tiny_run_config(tmp / "no_data");
  cfg.model.tasks = {Task::depth};
  cfg.train.monitor = Monitor::depth_rmse;
  test::make_run_folder(tmp / "run", cfg, test::made_up_stats(3.0, 1.5, cfg.model.num_classes));
  PredictOptions o;
  o.run_dir = tmp / "run";
  o.pairs = {pair_of(real_frames()[2])};
  o.depth_scale = 1e-3;
  o.out_dir = tmp / "out";
  const PredictSummary s = run_predict(o);
  const std::string base = o.out_dir + "/nyu_bookstore";
  CHECK(s.files == std::vector<std::string>{base + "_depth.png", base + "_depth_color.png", base + "_panel.png"});
  CHECK(read_image_info(base + "_panel.png").width == 3 * 160 + 2 * kPanelSeparator);
}

TEST_CASE("folders are paired by stem and every pairing problem is reported") {
  test::TempDir tmp("predict_pairs");
  const std::string rgb = tmp / "rgb", depth = tmp / "depth";
  fs::create_directories(rgb);
  fs::create_directories(depth);
  fs::copy_file(kFrames + "tum_rgb.png", rgb + "/a.png");
  fs::copy_file(kFrames + "tum_depth.png", depth + "/a.png");
  fs::copy_file(kFrames + "nyu_bookstore_rgb.jpg", rgb + "/b.JPG");
  fs::copy_file(kFrames + "nyu_bookstore_depth.png", depth + "/b.png");
  std::ofstream(rgb + "/notes.txt") << "not an image";
  const std::vector<PredictPair> pairs = pair_folders(rgb, depth);
  REQUIRE(pairs.size() == 2);
  CHECK(pairs[0].stem == "a");
  CHECK(pairs[0].depth == depth + "/a.png");
  CHECK(pairs[1].stem == "b");
  CHECK(pairs[1].rgb == rgb + "/b.JPG");

  fs::copy_file(kFrames + "tum_rgb.png", rgb + "/c.png");
  fs::copy_file(kFrames + "tum_depth.png", depth + "/d.png");
  fs::copy_file(kFrames + "esanet_rgb.png", rgb + "/a.jpg");
  try {
    pair_folders(rgb, depth);
    FAIL("pairing should fail");
  } catch (const Error& e) {
    const std::string m = e.what();
    CHECK(m.find(rgb + "/c.png") != std::string::npos);
    CHECK(m.find(depth + "/d.png") != std::string::npos);
    CHECK(m.find("two RGB files with the stem 'a'") != std::string::npos);
  }
  CHECK_THROWS_WITH_AS(pair_folders(tmp / "nope", depth), doctest::Contains((tmp / "nope").c_str()), Error);
}

TEST_CASE("bad inputs are one error naming the file and nothing is written") {
  PredictRun r;
  const std::string trunc = r.tmp / "truncated_depth.png", trunc_rgb = r.tmp / "truncated_rgb.png";
  write_prefix(kFrames + "tum_depth.png", trunc, 4000);
  write_prefix(kFrames + "tum_rgb.png", trunc_rgb, 4000);
  const PredictPair good = pair_of(real_frames()[5]);
  auto fails = [&](std::vector<PredictPair> pairs, const std::string& names) {
    PredictOptions o;
    o.run_dir = r.run;
    o.pairs = std::move(pairs);
    o.depth_scale = 2e-4;
    o.out_dir = r.tmp / "out";
    CHECK_THROWS_WITH_AS(run_predict(o), doctest::Contains(names.c_str()), Error);
    CHECK_FALSE(fs::exists(o.out_dir));
  };
  fails({good, {"x", kFrames + "esanet_rgb.png", kFrames + "tum_depth.png"}}, "is 640x480 but its RGB image");
  fails({good, {"x", kFrames + "tum_rgb.png", trunc}}, trunc);
  fails({{"x", trunc_rgb, kFrames + "tum_depth.png"}, good}, trunc_rgb);
  fails({good, {"x", kFrames + "tum_rgb.png", r.tmp / "missing.png"}}, r.tmp / "missing.png");
  fails({good, {"x", kFrames + "tum_rgb.png", kFrames + "tum_rgb.png"}}, "tum_rgb.png' has 3 channels");
  // Several bad inputs: one message that lists them all.
  fails({{"x", kFrames + "tum_rgb.png", trunc}, {"y", r.tmp / "missing.png", kFrames + "tum_depth.png"}},
        "2 problems");
}

#ifdef MTL_PREDICT_EXE
TEST_CASE("the mtl_predict executable writes outputs and fails clearly") {
  PredictRun r;
  const std::string exe = MTL_PREDICT_EXE;
  const std::string out = r.tmp / "out";
  {
    const auto res = test::run_command(exe + " " + r.run + " --rgb " + kFrames + "nyu_bookstore_rgb.jpg --depth " +
                                           kFrames + "nyu_bookstore_depth.png --depth-scale 0.001 --out " + out,
                                       r.tmp);
    INFO(res.err);
    CHECK(res.status == 0);
    CHECK(files_in(out) == 5);
    CHECK(read_image_info(out + "/nyu_bookstore_rgb_depth.png").bits == 16);
  }
  {
    const std::string rgb = r.tmp / "rgb", depth = r.tmp / "depth";
    fs::create_directories(rgb);
    fs::create_directories(depth);
    fs::copy_file(kFrames + "esanet_rgb.png", rgb + "/k2.png");
    fs::copy_file(kFrames + "esanet_depth.png", depth + "/k2.png");
    fs::copy_file(kFrames + "nyu_bookstore_rgb.jpg", rgb + "/nyu.jpg");
    fs::copy_file(kFrames + "nyu_bookstore_depth.png", depth + "/nyu.png");
    const std::string out2 = r.tmp / "out_dirs";
    const std::string dirs = " --rgb-dir " + rgb + " --depth-dir " + depth;
    const auto res = test::run_command(exe + " " + r.run + dirs + " --out " + out2, r.tmp);
    INFO(res.err);
    CHECK(res.status == 0);
    CHECK(files_in(out2) == 10);

    // One bad pair among good ones: nothing is written at all.
    write_prefix(kFrames + "tum_depth.png", depth + "/zz.png", 3000);
    fs::copy_file(kFrames + "tum_rgb.png", rgb + "/zz.png");
    const std::string out3 = r.tmp / "out_bad_dirs";
    const auto bad = test::run_command(exe + " " + r.run + dirs + " --out " + out3, r.tmp);
    CHECK(bad.status == 1);
    CHECK(bad.err.find(depth + "/zz.png") != std::string::npos);
    CHECK_FALSE(fs::exists(out3));
  }
  const std::string trunc = r.tmp / "trunc.png";
  write_prefix(kFrames + "esanet_depth.png", trunc, 5000);
  auto fails = [&](const std::string& args, int status, const std::string& names) {
    const std::string bad_out = r.tmp / "bad_out";
    const auto res = test::run_command(exe + " " + args + " --out " + bad_out, r.tmp);
    CHECK(res.status == status);
    CHECK(res.err.find("mtl_predict: error: ") == 0);
    CHECK(res.err.find(names) != std::string::npos);
    CHECK(std::count(res.err.begin(), res.err.end(), '\n') == 1);  // one line
    CHECK_FALSE(fs::exists(bad_out));
  };
  const std::string esanet = " --rgb " + kFrames + "esanet_rgb.png --depth ";
  fails(r.run + esanet + kFrames + "tum_depth.png", 1, kFrames + "tum_depth.png");
  fails(r.run + esanet + trunc, 1, trunc);
  fails(r.run + esanet + (r.tmp / "absent.png"), 1, r.tmp / "absent.png");
  fails(r.run + esanet + kFrames + "esanet_depth.png --depth-scale -1", 2, "--depth-scale");
  fails(r.run + " --rgb " + kFrames + "esanet_rgb.png", 2, "--depth");
  fails(r.run + esanet + kFrames + "esanet_depth.png --precision half", 2, "--precision must be fp32 or bf16");
  fails((r.tmp / "no_run") + esanet + kFrames + "esanet_depth.png", 2, r.tmp / "no_run");
  fs::remove(r.run + "/checkpoints/best.safetensors");
  fails(r.run + esanet + kFrames + "esanet_depth.png", 1, r.run + "/checkpoints/best.safetensors");
}
#endif
