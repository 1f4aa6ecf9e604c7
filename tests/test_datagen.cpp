// The procedural greenhouse data set: same seed -> identical bytes, different seed -> different
// images, all seven classes present, depth valid (and accurate) where a sensor would measure and
// missing where it would not, and the output passes the data set scan.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/file_io.h"
#include "tests/support/temp_dir.h"
#include "train/data/synthetic/datagen.h"
#include "train/data/dataset.h"
#include "train/data/dataset_stats.h"

using namespace mtl;
using namespace mtl::train;
using doctest::Contains;
namespace fs = std::filesystem;

namespace {

std::string bytes_of(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

DatagenOptions small(const std::string& out, uint64_t seed) {
  DatagenOptions o;
  o.out = out;
  o.train = 6, o.val = 2, o.test = 2;
  o.size = {64, 48};
  o.seed = seed;
  return o;
}

}  // namespace

TEST_CASE("the same seed writes identical bytes; another seed writes other images") {
  // Output folders that do not exist yet: generate_dataset makes them.
  test::TempDir t("test_datagen");
  const fs::path a = t.path / "a", b = t.path / "b", c = t.path / "c";
  const DatagenSummary sa = generate_dataset(small(a.string(), 3));
  generate_dataset(small(b.string(), 3));
  generate_dataset(small(c.string(), 4));
  CHECK(sa.frames == 10);
  int files = 0, differing = 0;
  for (const auto& e : fs::recursive_directory_iterator(a)) {
    if (!e.is_regular_file()) continue;
    const fs::path rel = fs::relative(e.path(), a);
    ++files;
    CHECK_MESSAGE(bytes_of(e.path()) == bytes_of(b / rel), rel.string());
    if (rel.string().find("images") != std::string::npos) differing += bytes_of(e.path()) != bytes_of(c / rel);
  }
  CHECK(files == 3 * 10 + 2);  // images, masks, depth per frame; README.md and mtl_datagen.json
  CHECK(differing == 10);
  CHECK(fs::exists(a / "val/depth/000001.png"));
  const nlohmann::json meta = nlohmann::json::parse(bytes_of(a / "mtl_datagen.json"));
  CHECK(meta["generator"] == "mtl_datagen");
  CHECK(meta["depth_scale"] == 0.001);
  CHECK(meta["size"] == "64x48");
  CHECK(meta["classes"].size() == 7);
}

TEST_CASE("all seven classes appear and the output passes the data set scan") {
  test::TempDir t("test_datagen");
  const std::string out = t / "out";  // made by generate_dataset
  DatagenOptions o = small(out, 1);
  o.train = 12;
  o.size = {96, 64};
  const DatagenSummary s = generate_dataset(o);
  for (int c = 0; c < 7; ++c) CHECK_MESSAGE(s.class_pixels[c] > 0.002 * s.pixels, "class " << c);
  DataConfig data;
  data.root = out;
  ScanResult r = scan_split(data, "train", true);
  CHECK(r.problems.empty());
  CHECK(r.dataset.size() == 12);
  const DatasetStats st = merge_stats(r.stats, 7);
  for (int c = 0; c < 7; ++c) CHECK(st.class_pixels[c] > 0);
  // Depth statistics of a greenhouse aisle: a few metres.
  CHECK((st.depth_mean > 1.5 && st.depth_mean < 5.0));
  CHECK((st.depth_std > 0.5 && st.depth_std < 3.0));
  for (int c = 0; c < 7; ++c) {
    // Each class is also present in most frames' masks, not just in one.
    int frames_with = 0;
    for (int i = 0; i < 12; ++i) {
      const ImageU16 m = read_gray(r.dataset.index().samples[i].mask, "mask");
      frames_with += std::count(m.data.begin(), m.data.end(), c) > 0;
    }
    CHECK_MESSAGE(frames_with >= 6, "class " << c << " in " << frames_with << " of 12 frames");
  }
}

TEST_CASE("depth is valid and accurate where a sensor measures, missing where it cannot") {
  int64_t near_floor = 0, near_floor_valid = 0, valid = 0, accurate = 0, far = 0, far_valid = 0, film = 0, film_valid = 0;
  int64_t total = 0, invalid = 0;
  for (int64_t i = 0; i < 8; ++i) {
    const Frame f = render_frame(frame_seed(9, 0, i), 128, 96);
    REQUIRE(f.rgb.width == 128);
    CHECK(f.mask.height == 96);
    for (size_t k = 0; k < f.depth.data.size(); ++k) {
      const double z = f.true_depth.data[k], d = f.depth.data[k] * 0.001;
      const int cls = f.mask.data[k];
      ++total;
      invalid += d == 0;
      if (cls == 3 && z > 0.5 && z < 3.0) {
        ++near_floor;
        near_floor_valid += d > 0;
      }
      if (d > 0 && z < 4.0) {
        ++valid;
        accurate += std::abs(d - z) < 0.05 * z;
      }
      if (z > 9.5) {
        ++far;
        far_valid += d > 0;
      }
      if (cls == 0) {
        ++film;
        film_valid += d > 0;
      }
    }
  }
  CHECK(static_cast<double>(near_floor_valid) / near_floor > 0.85);
  CHECK(static_cast<double>(accurate) / valid > 0.999);
  CHECK(far > 0);
  CHECK(far_valid == 0);  // beyond every sensor's range
  CHECK(static_cast<double>(film_valid) / film < 0.5);
  const double invalid_fraction = static_cast<double>(invalid) / total;
  CHECK((invalid_fraction > 0.15 && invalid_fraction < 0.5));
  // RGB is informative: the frame is neither flat nor saturated.
  const Frame f = render_frame(frame_seed(9, 0, 0), 128, 96);
  double mean = 0;
  for (uint8_t v : f.rgb.data) mean += v;
  mean /= static_cast<double>(f.rgb.data.size());
  CHECK((mean > 50 && mean < 200));
  CHECK(render_frame(frame_seed(9, 0, 0), 128, 96).rgb == f.rgb);
}

TEST_CASE("the output folder must be new, empty, or an earlier output replaced with force") {
  test::TempDir t("test_datagen");  // an existing folder
  write_file_atomic(t / "mine.txt", "user data");
  CHECK_THROWS_WITH_AS(generate_dataset(small(t.path.string(), 1)), Contains("holds no earlier mtl_datagen output"), Error);
  DatagenOptions forced = small(t.path.string(), 1);
  forced.force = true;
  CHECK_THROWS_WITH_AS(generate_dataset(forced), Contains("holds no earlier mtl_datagen output"), Error);
  CHECK(fs::exists(t / "mine.txt"));
  fs::remove(t / "mine.txt");
  DatagenOptions o = small(t.path.string(), 1);
  generate_dataset(o);
  CHECK_THROWS_WITH_AS(generate_dataset(o), Contains("pass --force to replace it"), Error);
  // Replacing with fewer frames leaves no stale files behind.
  forced.train = 2;
  generate_dataset(forced);
  int images = 0;
  for (const auto& e : fs::directory_iterator(t / "train/images")) images += e.is_regular_file();
  CHECK(images == 2);
  DatagenOptions none = small(t / "x", 1);
  none.train = none.val = none.test = 0;
  CHECK_THROWS_WITH_AS(generate_dataset(none), Contains("frame counts"), Error);
}
