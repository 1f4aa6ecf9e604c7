// Data sets: pairing by stem, the scan's single report of every problem (missing file, truncated
// PNG, size mismatch, label out of range, ...), on_error: skip, label maps, mixed sources, and the
// depth statistics and class weights against values computed by hand, with their cache.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "core/file_io.h"
#include "tests/support/temp_dir.h"
#include "train/data/class_weights.h"
#include "train/data/dataset.h"
#include "train/data/dataset_stats.h"
#include "train/data/image_io.h"

using namespace mtl;
using namespace mtl::train;
using doctest::Approx;
using doctest::Contains;
namespace fs = std::filesystem;

namespace {

ImageU8 rgb_image(int w, int h, int seed) {
  ImageU8 img(w, h, 3);
  for (size_t i = 0; i < img.data.size(); ++i) img.data[i] = static_cast<uint8_t>((i * 31 + seed * 101) % 256);
  return img;
}

ImageU8 mask_image(int w, int h, std::vector<uint8_t> values) {
  ImageU8 m(w, h, 1);
  if (values.empty()) values.assign(static_cast<size_t>(w) * h, 0);
  REQUIRE(values.size() == m.data.size());
  m.data = values;
  return m;
}

ImageU16 depth_image(int w, int h, std::vector<uint16_t> values) {
  ImageU16 d(w, h, 1);
  if (values.empty()) values.assign(static_cast<size_t>(w) * h, 1500);
  REQUIRE(values.size() == d.data.size());
  d.data = values;
  return d;
}

void write_sample(const std::string& root, const std::string& split, const std::string& stem, const ImageU8& rgb,
                  const ImageU8* mask, const ImageU16* depth) {
  write_png(root + "/" + split + "/images/" + stem + ".png", rgb);
  if (mask) write_png(root + "/" + split + "/masks/" + stem + ".png", *mask);
  if (depth) write_png16(root + "/" + split + "/depth/" + stem + ".png", *depth);
}

void make_folders(const std::string& root, const std::string& split) {
  for (const char* sub : {"images", "masks", "depth"}) fs::create_directories(root + "/" + split + "/" + sub);
}

DataConfig config_for(const std::string& root) {
  DataConfig d;
  d.root = root;
  return d;
}

}  // namespace

TEST_CASE("the scan reports a missing depth map, a truncated PNG, a size mismatch and a bad label at once") {
  test::TempDir t("test_dataset");
  const std::string root = t.path.string();
  make_folders(root, "train");
  const ImageU8 m = mask_image(8, 6, {});
  const ImageU16 d = depth_image(8, 6, {});
  write_sample(root, "train", "a_good", rgb_image(8, 6, 1), &m, &d);
  write_sample(root, "train", "b_nodepth", rgb_image(8, 6, 2), &m, nullptr);
  // A PNG cut in half.
  const std::string png = encode_png(rgb_image(8, 6, 3));
  write_file_atomic(root + "/train/images/c_cut.png", png.substr(0, png.size() / 2));
  write_png(root + "/train/masks/c_cut.png", m);
  write_png16(root + "/train/depth/c_cut.png", d);
  const ImageU16 small = depth_image(8, 5, {});
  write_sample(root, "train", "d_size", rgb_image(8, 6, 4), &m, &small);
  std::vector<uint8_t> bad(48, 2);
  bad[5] = 9, bad[6] = 9, bad[7] = 200;
  const ImageU8 badm = mask_image(8, 6, bad);
  write_sample(root, "train", "e_label", rgb_image(8, 6, 5), &badm, &d);

  DataConfig data = config_for(root);
  std::string msg;
  try {
    scan_split(data, "train", true);
  } catch (const Error& e) {
    msg = e.what();
  }
  INFO(msg);
  CHECK(msg.find("found 4 problems") != std::string::npos);
  CHECK(msg.find(root + "/train/depth/b_nodepth.png: missing (no depth map for " + root + "/train/images/b_nodepth.png)") !=
        std::string::npos);
  CHECK(msg.find("cannot decode '" + root + "/train/images/c_cut.png'") != std::string::npos);
  CHECK(msg.find("size mismatch: " + root + "/train/images/d_size.png is 8x6 but " + root +
                 "/train/depth/d_size.png is 8x5") != std::string::npos);
  CHECK(msg.find(root + "/train/masks/e_label.png: label values 9 (2 px), 200 (1 px) are neither classes 0..6 nor "
                          "data.ignore_index (255)") != std::string::npos);
  CHECK(msg.find("a_good") == std::string::npos);
  CHECK(msg.find("data.on_error: skip") != std::string::npos);

  data.on_error = OnError::skip;
  ScanResult r = scan_split(data, "train", true);
  CHECK(r.problems.size() == 4);
  REQUIRE(r.dataset.size() == 1);
  CHECK(r.dataset.index().samples[0].stem == "a_good");
  CHECK(r.dropped.size() == 4);
  CHECK(r.stats.size() == 1);

  // Mapping the stray values makes that sample usable.
  data.label_map = {{9, 1}, {200, 255}};
  ScanResult r2 = scan_split(data, "train", true);
  CHECK(r2.dataset.size() == 2);
  Sample e = r2.dataset.load(1);
  CHECK(e.stem == "e_label");
  CHECK(e.labels.data[5] == 1);
  CHECK(e.labels.data[7] == 255);
  CHECK(e.labels.data[0] == 2);
}

TEST_CASE("pairing problems: orphans, JPEG masks, duplicate stems, missing folders, empty splits") {
  test::TempDir t("test_dataset");
  const std::string root = t.path.string();
  make_folders(root, "val");
  const ImageU8 m = mask_image(4, 4, {});
  const ImageU16 d = depth_image(4, 4, {});
  write_sample(root, "val", "ok", rgb_image(4, 4, 1), &m, &d);
  write_png(root + "/val/masks/orphan.png", m);
  write_jpeg(root + "/val/images/dup.jpg", rgb_image(4, 4, 2));
  write_sample(root, "val", "dup", rgb_image(4, 4, 3), &m, &d);
  write_sample(root, "val", "jpgmask", rgb_image(4, 4, 4), nullptr, &d);
  write_jpeg(root + "/val/masks/jpgmask.jpg", ImageU8(4, 4, 1));
  write_file_atomic(root + "/val/images/notes.txt", "ignored");
  DataConfig data = config_for(root);
  try {
    scan_split(data, "val", true);
    FAIL("expected an error");
  } catch (const Error& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find("orphan.png: mask without an image") != std::string::npos);
    CHECK(msg.find("several images share the stem 'dup'") != std::string::npos);
    CHECK(msg.find("jpgmask.jpg: masks and depth maps must be PNG") != std::string::npos);
    CHECK(msg.find("masks/jpgmask.png: missing (no mask for") != std::string::npos);
    CHECK(msg.find("notes.txt") == std::string::npos);
  }
  // Without the semantic task, masks are not needed at all.
  fs::remove_all(root + "/val/masks");
  data.on_error = OnError::skip;
  ScanResult r = scan_split(data, "val", false);
  CHECK(r.dataset.size() == 2);  // ok, jpgmask (dup is ambiguous)
  CHECK_FALSE(r.dataset.index().has_masks);
  CHECK(r.dataset.load(0).labels.empty());

  CHECK_THROWS_WITH_AS(scan_split(data, "test", false), Contains("folder missing"), Error);
  make_folders(root, "test");
  CHECK_THROWS_WITH_AS(scan_split(data, "test", true), Contains("no usable samples (the folders are empty)"), Error);
}

TEST_CASE("mixed sources carry their names, weights and ids") {
  test::TempDir a("test_dataset"), b("test_dataset");
  make_folders(a.path.string(), "train");
  make_folders(b.path.string(), "train");
  const ImageU8 m = mask_image(4, 4, {});
  const ImageU16 d = depth_image(4, 4, {});
  write_sample(a.path.string(), "train", "x", rgb_image(4, 4, 1), &m, &d);
  write_sample(b.path.string(), "train", "x", rgb_image(4, 4, 2), &m, &d);
  write_sample(b.path.string(), "train", "y", rgb_image(4, 4, 3), &m, &d);
  DataConfig data;
  data.sources = {{"real", a.path.string(), 1.0}, {"synthetic", b.path.string(), 0.5}};
  ScanResult r = scan_split(data, "train", true);
  REQUIRE(r.dataset.size() == 3);
  CHECK(sample_name(r.dataset.index(), 0) == "real/x");
  CHECK(sample_name(r.dataset.index(), 2) == "synthetic/y");
  Sample s = r.dataset.load(1);
  CHECK(s.source == 1);
  CHECK(s.rgb == rgb_image(4, 4, 2));
  CHECK(r.dataset.index().sources[s.source].weight == 0.5);
}

TEST_CASE("depth statistics and median-frequency weights match a hand computation") {
  test::TempDir t("test_dataset");
  const std::string root = t.path.string();
  make_folders(root, "train");
  DataConfig data = config_for(root);
  data.classes = {{"a", {0, 0, 0}}, {"b", {1, 1, 1}}, {"c", {2, 2, 2}}};
  // Three 4x2 images; depth in millimetres (0 = invalid), labels with 255 = ignore.
  const ImageU8 m0 = mask_image(4, 2, {0, 0, 0, 0, 1, 1, 255, 255});
  const ImageU16 d0 = depth_image(4, 2, {1000, 2000, 0, 0, 3000, 1000, 2000, 0});
  const ImageU8 m1 = mask_image(4, 2, {0, 0, 0, 0, 0, 0, 0, 0});
  const ImageU16 d1 = depth_image(4, 2, {2000, 2000, 2000, 2000, 2000, 2000, 2000, 2000});
  const ImageU8 m2 = mask_image(4, 2, {2, 2, 1, 1, 255, 255, 255, 255});
  const ImageU16 d2 = depth_image(4, 2, {4000, 4000, 0, 0, 0, 0, 0, 0});
  write_sample(root, "train", "i0", rgb_image(4, 2, 0), &m0, &d0);
  write_sample(root, "train", "i1", rgb_image(4, 2, 1), &m1, &d1);
  write_sample(root, "train", "i2", rgb_image(4, 2, 2), &m2, &d2);
  ScanResult r = scan_split(data, "train", true);
  const DatasetStats s = merge_stats(r.stats, 3);
  // Valid depths (m): 1 2 3 1 2 | 2 x8 | 4 4 -> n 15, sum 33, sum of squares 83.
  CHECK(s.depth_valid == 15);
  CHECK(s.pixels == 24);
  CHECK(s.depth_mean == Approx(33.0 / 15));
  CHECK(s.depth_std == Approx(std::sqrt(83.0 / 15 - (33.0 / 15) * (33.0 / 15))));  // 0.8327
  // Pixels: a 4+8, b 2+2, c 2. Labelled pixels per image 6, 8, 4, so the images containing
  // a hold 14, b 10, c 4.
  CHECK(s.class_pixels == std::vector<int64_t>{12, 4, 2});
  CHECK(s.class_image_pixels == std::vector<int64_t>{14, 10, 4});
  // f = 12/14, 4/10, 2/4; median 0.5; w = 0.5/f.
  const std::vector<double> w = median_frequency_weights(s.class_pixels, s.class_image_pixels);
  REQUIRE(w.size() == 3);
  CHECK(w[0] == Approx(0.5 / (12.0 / 14)));
  CHECK(w[1] == Approx(1.25));
  CHECK(w[2] == Approx(1.0));
  // compute_stats decodes again and agrees; the thread count cannot change the result.
  const DatasetStats c = compute_stats(r.dataset);
  CHECK(c.depth_mean == s.depth_mean);
  CHECK(c.depth_std == s.depth_std);
  CHECK(c.class_pixels == s.class_pixels);

  LossConfig loss;
  loss.class_weighting = ClassWeighting::none;
  CHECK(class_weights(loss, s, 3) == std::vector<double>{1, 1, 1});
  loss.class_weighting = ClassWeighting::list;
  loss.class_weights = {0.1, 0.2, 0.3};
  CHECK(class_weights(loss, s, 3) == loss.class_weights);
  loss.class_weighting = ClassWeighting::median_frequency;
  CHECK(class_weights(loss, s, 3) == w);
}

TEST_CASE("median-frequency weights stay finite for absent classes and an even count") {
  // Classes 1 and 3 never occur: weight 1. Present f = 0.5, 0.25 -> median 0.375.
  const std::vector<double> w = median_frequency_weights({50, 0, 25, 0}, {100, 0, 100, 0});
  CHECK(w[0] == Approx(0.75));
  CHECK(w[1] == 1.0);
  CHECK(w[2] == Approx(1.5));
  CHECK(w[3] == 1.0);
  for (double x : median_frequency_weights({0, 0}, {0, 0})) CHECK(x == 1.0);
  // Depth with no valid pixel keeps a usable std.
  SampleStats none;
  none.pixels = 4;
  none.class_pixels = {0};
  const DatasetStats s = merge_stats({none}, 1);
  CHECK(s.depth_std == 1.0);
  CHECK(s.depth_mean == 0.0);
}

TEST_CASE("statistics are cached and recomputed when the data change") {
  test::TempDir t("test_dataset");
  const std::string root = t.path.string();
  make_folders(root, "train");
  const ImageU8 m = mask_image(4, 4, {});
  write_sample(root, "train", "a", rgb_image(4, 4, 0), &m, nullptr);
  write_png16(root + "/train/depth/a.png", depth_image(4, 4, std::vector<uint16_t>(16, 2500)));
  DataConfig data = config_for(root);
  ScanResult r = scan_split(data, "train", true);
  const std::string cache = default_stats_cache(data);
  CHECK(cache == root + "/mtl_stats.json");
  DatasetStats s = load_or_compute_stats(r.dataset, cache, &r.stats);
  CHECK(s.depth_mean == Approx(2.5));
  REQUIRE(fs::exists(cache));
  CHECK(load_stats(cache) == s);
  // A planted value with the right fingerprint is what comes back: the cache is used.
  DatasetStats planted = s;
  planted.depth_mean = 123.0;
  save_stats(cache, planted, r.dataset);
  CHECK(load_or_compute_stats(r.dataset, cache).depth_mean == 123.0);
  // New depth data: a different fingerprint, so the statistics are computed again.
  write_png16(root + "/train/depth/a.png", depth_image(4, 4, std::vector<uint16_t>{1000, 3000, 1000, 3000, 1000, 3000, 1000,
                                                                                      3000, 1000, 3000, 1000, 3000, 1000, 3000,
                                                                                      1000, 3000}));
  ScanResult r2 = scan_split(data, "train", true);
  DatasetStats s2 = load_or_compute_stats(r2.dataset, cache);
  CHECK(s2.depth_mean == Approx(2.0));
  CHECK(s2.depth_std == Approx(1.0));
  CHECK(s2.fingerprint != s.fingerprint);
  // A changed depth_scale changes the fingerprint too.
  DataConfig other = data;
  other.depth_scale = 0.0001;
  CHECK(dataset_fingerprint(Dataset(other, r2.dataset.index())) != s2.fingerprint);
  // A corrupt cache is ignored (with a warning), not fatal.
  write_file_atomic(cache, "{not json");
  CHECK(load_or_compute_stats(r2.dataset, cache).depth_mean == Approx(2.0));
  CHECK_THROWS_WITH_AS(load_stats(root + "/nothing.json"), Contains("cannot open data set statistics"), Error);
}
