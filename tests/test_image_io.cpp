// Image files: PNG/JPEG round trips (8-bit, 16-bit through our own writer), channel conversions,
// errors that name the file, and the real RGB-D frames in shared/data/rgbd decoded with the
// sizes, units and missing-depth fractions their README gives.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/file_io.h"
#include "tests/support/temp_dir.h"
#include "train/data/dataset.h"
#include "train/data/image_io.h"

using namespace mtl;
using namespace mtl::train;
using doctest::Contains;

namespace {

std::string shared(const std::string& f) { return std::string(MTL_SHARED_DIR) + "/data/rgbd/" + f; }

}  // namespace

TEST_CASE("8-bit PNG round trip, and grey/RGBA images read as RGB") {
  test::TempDir t("test_image_io");
  ImageU8 rgb(7, 5, 3);
  for (size_t i = 0; i < rgb.data.size(); ++i) rgb.data[i] = static_cast<uint8_t>(i * 37 + 11);
  write_png(t / "rgb.png", rgb);
  CHECK(read_rgb(t / "rgb.png") == rgb);
  const ImageInfo info = read_image_info(t / "rgb.png");
  CHECK(info.width == 7);
  CHECK(info.height == 5);
  CHECK(info.channels == 3);
  CHECK(info.bits == 8);

  ImageU8 grey(3, 2, 1);
  grey.data = {0, 50, 100, 150, 200, 250};
  write_png(t / "grey.png", grey);
  ImageU8 g3 = read_rgb(t / "grey.png");
  REQUIRE(g3.channels == 3);
  for (int k = 0; k < 6; ++k)
    for (int c = 0; c < 3; ++c) CHECK(g3.data[3 * k + c] == grey.data[k]);

  ImageU8 rgba(2, 2, 4);
  rgba.data = {1, 2, 3, 0, 4, 5, 6, 255, 7, 8, 9, 128, 10, 11, 12, 1};
  write_png(t / "rgba.png", rgba);
  ImageU8 a3 = read_rgb(t / "rgba.png");
  CHECK(a3.data == std::vector<uint8_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
}

TEST_CASE("16-bit PNG writer round-trips every value range through stb") {
  test::TempDir t("test_image_io");
  for (auto [w, h] : {std::pair{1, 1}, std::pair{13, 7}, std::pair{64, 3}}) {
    ImageU16 d(w, h, 1);
    for (size_t i = 0; i < d.data.size(); ++i) d.data[i] = static_cast<uint16_t>((i * 40503u + 7) & 0xffff);
    d.data[0] = 0;
    if (d.data.size() > 1) d.data[1] = 65535;
    write_png16(t / "d.png", d);
    const ImageInfo info = read_image_info(t / "d.png");
    CHECK(info.bits == 16);
    CHECK(info.channels == 1);
    CHECK(read_gray(t / "d.png", "depth map") == d);
  }
  // Smooth depth compresses well with the adaptive filters.
  ImageU16 ramp(200, 100, 1);
  for (int y = 0; y < 100; ++y)
    for (int x = 0; x < 200; ++x) ramp.at(x, y) = static_cast<uint16_t>(1000 + 10 * x + 3 * y);
  CHECK(encode_png16(ramp).size() < ramp.data.size() * 2 / 10);
}

TEST_CASE("8-bit greyscale masks keep their stored values (no 8-to-16-bit scaling)") {
  test::TempDir t("test_image_io");
  ImageU8 m(4, 1, 1);
  m.data = {0, 1, 6, 255};
  write_png(t / "m.png", m);
  CHECK(read_gray(t / "m.png", "mask").data == std::vector<uint16_t>{0, 1, 6, 255});
}

TEST_CASE("JPEG round trip is close") {
  test::TempDir t("test_image_io");
  ImageU8 img(32, 16, 3);
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 32; ++x)
      for (int c = 0; c < 3; ++c) img.at(x, y, c) = static_cast<uint8_t>(60 + 4 * x + 2 * y + 20 * c);
  write_jpeg(t / "a.jpg", img, 95);
  ImageU8 back = read_rgb(t / "a.jpg");
  REQUIRE(back.width == 32);
  int worst = 0;
  for (size_t i = 0; i < img.data.size(); ++i) worst = std::max(worst, std::abs(int(img.data[i]) - int(back.data[i])));
  CHECK(worst <= 8);
}

TEST_CASE("unreadable files are errors that name the file") {
  test::TempDir t("test_image_io");
  const std::string dir = t.path.string();
  CHECK_THROWS_WITH_AS(read_rgb(t / "none.png"), Contains(("cannot open '" + dir + "/none.png'").c_str()), Error);
  write_file_atomic(t / "text.png", "this is not a png");
  CHECK_THROWS_WITH_AS(read_rgb(t / "text.png"),
                       Contains(("'" + dir + "/text.png' is not a readable PNG or JPEG image").c_str()), Error);
  ImageU8 rgb(40, 30, 3, 77);
  for (size_t i = 0; i < rgb.data.size(); ++i) rgb.data[i] = static_cast<uint8_t>(i * 7919 % 251);
  const std::string png = encode_png(rgb);
  write_file_atomic(t / "cut.png", png.substr(0, png.size() / 2));
  CHECK_THROWS_WITH_AS(read_rgb(t / "cut.png"), Contains(("cannot decode '" + dir + "/cut.png'").c_str()), Error);
  write_png(t / "colour.png", rgb);
  CHECK_THROWS_WITH_AS(read_gray(t / "colour.png", "mask"),
                       Contains(("mask '" + dir + "/colour.png' has 3 channels; it must be a single-channel").c_str()),
                       Error);
  write_file_atomic(t / "empty.png", "");
  CHECK_THROWS_WITH_AS(read_rgb(t / "empty.png"), Contains("is empty"), Error);
}

namespace {

struct DepthFacts {
  double invalid, median_m, max_m;
};

// Decodes a real depth file with `scale` and returns its invalid fraction, median and maximum
// in metres.
DepthFacts depth_facts(const std::string& file, double scale, int w, int h) {
  ImageU16 d = read_gray(shared(file), "depth map");
  REQUIRE(d.width == w);
  REQUIRE(d.height == h);
  std::vector<double> m;
  for (uint16_t v : d.data)
    if (v) m.push_back(v * scale);
  std::sort(m.begin(), m.end());
  REQUIRE(!m.empty());
  return {1.0 - static_cast<double>(m.size()) / d.data.size(), m[m.size() / 2], m.back()};
}

}  // namespace

TEST_CASE("real RGB-D frames decode with their sizes, units and missing-depth fractions") {
  // Sizes and formats from shared/data/rgbd/README.md.
  struct Rgb {
    const char* file;
    int w, h;
  };
  for (Rgb r : {Rgb{"esanet_rgb.png", 512, 424}, Rgb{"emsanet_rgb.png", 1440, 1080}, Rgb{"nyu_bookstore_rgb.jpg", 160, 120},
                Rgb{"nyu_crop_rgb.png", 560, 425}, Rgb{"tum_rgb.png", 640, 480}}) {
    ImageU8 img = read_rgb(shared(r.file));
    CHECK_MESSAGE(img.width == r.w, r.file);
    CHECK_MESSAGE(img.height == r.h, r.file);
    CHECK(img.channels == 3);
    double mean = 0;
    for (uint8_t v : img.data) mean += v;
    mean /= static_cast<double>(img.data.size());
    CHECK_MESSAGE((mean > 60 && mean < 200), r.file);  // a real, exposed photo
  }
  for (const char* f : {"esanet_depth.png", "emsanet_depth.png", "nyu_bookstore_depth.png", "nyu_crop_depth_raw.png",
                        "tum_depth.png"}) {
    const ImageInfo info = read_image_info(shared(f));
    CHECK_MESSAGE(info.bits == 16, f);
    CHECK_MESSAGE(info.channels == 1, f);
  }
  // Units per the README; indoor scenes have medians of a few metres. The bands around the
  // measured invalid fractions (README: about 11, 5, 34, 17, 0 and 19 %) are +-1.5 points.
  DepthFacts esanet = depth_facts("esanet_depth.png", 0.0001, 512, 424);  // Kinect v2, 1/10 mm
  CHECK((esanet.invalid > 0.10 && esanet.invalid < 0.13));
  CHECK((esanet.median_m > 2.0 && esanet.median_m < 3.0));
  CHECK(esanet.max_m <= 6.5536);  // 16 bits of 1/10 mm
  DepthFacts emsanet = depth_facts("emsanet_depth.png", 0.001, 1440, 1080);
  CHECK((emsanet.invalid > 0.04 && emsanet.invalid < 0.07));
  CHECK((emsanet.median_m > 2.5 && emsanet.median_m < 3.5));
  DepthFacts book = depth_facts("nyu_bookstore_depth.png", 0.001, 160, 120);
  CHECK((book.invalid > 0.32 && book.invalid < 0.355));
  CHECK((book.median_m > 2.3 && book.median_m < 3.3));
  CHECK(book.max_m == doctest::Approx(10.0));  // capped at 10000 mm
  DepthFacts filled = depth_facts("nyu_crop_depth_filled.png", 0.001, 560, 425);
  CHECK(filled.invalid == 0.0);
  DepthFacts raw = depth_facts("nyu_crop_depth_raw.png", 0.001, 560, 425);
  CHECK((raw.invalid > 0.15 && raw.invalid < 0.18));
  CHECK((raw.median_m > 2.7 && raw.median_m < 3.7));
  CHECK(std::abs(raw.median_m - filled.median_m) < 0.5);  // the same frame
  DepthFacts tum = depth_facts("tum_depth.png", 0.0002, 640, 480);  // 1/5000 m
  CHECK((tum.invalid > 0.175 && tum.invalid < 0.21));
  CHECK((tum.median_m > 2.0 && tum.median_m < 3.0));
  CHECK(tum.max_m < 10.0);
}

TEST_CASE("real frames load through the data set layout with depth_scale applied") {
  test::TempDir t("test_image_io");
  namespace fs = std::filesystem;
  for (const char* sub : {"images", "depth"}) fs::create_directories(t.path.string() + "/train/" + sub);
  fs::copy_file(shared("tum_rgb.png"), t / "train/images/tum.png");
  fs::copy_file(shared("tum_depth.png"), t / "train/depth/tum.png");
  fs::copy_file(shared("nyu_bookstore_rgb.jpg"), t / "train/images/book.jpg");
  fs::copy_file(shared("nyu_bookstore_depth.png"), t / "train/depth/book.png");
  DataConfig data;
  data.root = t.path.string();
  data.depth_scale = 0.0002;
  std::vector<Problem> problems;
  std::vector<std::string> left_out;
  Dataset ds(data, list_split(data, "train", false, problems, left_out));
  CHECK(problems.empty());
  REQUIRE(ds.size() == 2);
  CHECK(ds.index().samples[0].stem == "book");  // sorted by stem
  Sample tum = ds.load(1);
  CHECK(tum.rgb.width == 640);
  CHECK(tum.labels.empty());
  int64_t valid = 0;
  double sum = 0;
  for (float v : tum.depth.data)
    if (v > 0) ++valid, sum += v;
  CHECK(static_cast<double>(valid) / tum.depth.data.size() == doctest::Approx(1 - 0.1919).epsilon(0.01));
  CHECK(sum / valid == doctest::Approx(12385.6 * 0.0002).epsilon(0.001));  // mean of the stored values x scale
}
