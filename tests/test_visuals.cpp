// Visuals: viridis against matplotlib's published colours, label colouring with the ignore
// index, panel layout pixel by pixel, PNG files that decode back, and the tensor converters.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include "core/file_io.h"
#include "core/error.h"
#include "tests/support/temp_dir.h"
#include "train/config/config.h"
#include "train/data/image_io.h"
#include "train/data/transforms.h"
#include "train/log/visuals.h"

using namespace mtl;
using namespace mtl::train;
namespace fs = std::filesystem;

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();
const Rgb kBlack{0, 0, 0};
const Rgb kWhite{255, 255, 255};

Rgb pixel(const ImageU8& img, int x, int y) { return {img.at(x, y, 0), img.at(x, y, 1), img.at(x, y, 2)}; }

// Relative luminance of an sRGB colour (linearised, Rec. 709 weights).
double luminance(const Rgb& c) {
  auto lin = [](uint8_t v) {
    const double x = v / 255.0;
    return x <= 0.04045 ? x / 12.92 : std::pow((x + 0.055) / 1.055, 2.4);
  };
  return 0.2126 * lin(c[0]) + 0.7152 * lin(c[1]) + 0.0722 * lin(c[2]);
}

ImageU8 solid(int w, int h, Rgb c) {
  ImageU8 img(w, h, 3);
  for (size_t i = 0; i < img.pixels(); ++i)
    for (int k = 0; k < 3; ++k) img.data[i * 3 + k] = c[k];
  return img;
}

ImageF depth_image(int w, int h, std::vector<float> values) {
  ImageF d(w, h, 1);
  REQUIRE(values.size() == d.data.size());
  d.data = std::move(values);
  return d;
}

}  // namespace

TEST_CASE("viridis matches matplotlib at the ends and the middle") {
  const auto& t = viridis_table();
  CHECK(t[0] == Rgb{68, 1, 84});       // #440154
  CHECK(t[255] == Rgb{253, 231, 37});  // #fde725
  CHECK(t[128] == Rgb{33, 145, 140});  // #21918c, matplotlib's viridis(0.5)
  CHECK(viridis_color(0.0) == t[0]);
  CHECK(viridis_color(1.0) == t[255]);
  CHECK(viridis_color(0.5) == t[128]);
  CHECK(viridis_color(-3.0) == t[0]);
  CHECK(viridis_color(7.0) == t[255]);
  CHECK(viridis_color(std::nan("")) == t[0]);
}

TEST_CASE("viridis luminance rises monotonically") {
  const auto& t = viridis_table();
  // The published floats rise strictly; rounding to 8 bits may flatten a step by one count.
  const double one_count = 0.001;
  for (size_t i = 0; i + 1 < t.size(); ++i) {
    INFO("entry " << i);
    CHECK(luminance(t[i + 1]) > luminance(t[i]) - one_count);
    if (i + 4 < t.size()) CHECK(luminance(t[i + 4]) > luminance(t[i]));
  }
  CHECK(luminance(t[255]) > 10 * luminance(t[0]));
}

TEST_CASE("labels take palette colours and ignored pixels are black") {
  const Palette palette = palette_from_classes(greenhouse_classes());
  REQUIRE(palette.size() == 7);
  CHECK(palette[1] == Rgb{250, 200, 30});
  CHECK(palette[6] == Rgb{200, 80, 200});

  ImageI32 labels(3, 2, 1);
  labels.data = {0, 1, 255, 6, 3, 1};
  const ImageU8 c = colorize_labels(labels, palette, 255);
  REQUIRE(c.width == 3);
  REQUIRE(c.height == 2);
  REQUIRE(c.channels == 3);
  CHECK(pixel(c, 0, 0) == palette[0]);
  CHECK(pixel(c, 1, 0) == palette[1]);
  CHECK(pixel(c, 2, 0) == kBlack);
  CHECK(pixel(c, 0, 1) == palette[6]);
  CHECK(pixel(c, 1, 1) == palette[3]);
  CHECK(pixel(c, 2, 1) == palette[1]);

  labels.data[4] = 7;
  CHECK_THROWS_WITH_AS(colorize_labels(labels, palette, 255), doctest::Contains("label 7 at pixel (1, 1)"), Error);
  labels.data[4] = -1;
  CHECK_THROWS_WITH_AS(colorize_labels(labels, palette, 255), doctest::Contains("label -1"), Error);
  labels.data[2] = 0;
  CHECK(pixel(colorize_labels(labels, palette, -1), 1, 1) == kBlack);  // another ignore index

  ImageI32 two(2, 2, 2);
  CHECK_THROWS_WITH_AS(colorize_labels(two, palette, 255), doctest::Contains("single-channel"), Error);

  std::vector<ClassInfo> bad = greenhouse_classes();
  bad[2].color = {0, 256, 0};
  CHECK_THROWS_WITH_AS(palette_from_classes(bad), doctest::Contains("'heatpipe'"), Error);
}

TEST_CASE("depth maps through viridis with invalid pixels black") {
  const auto& t = viridis_table();
  const ImageF d = depth_image(4, 2, {1.0f, 3.0f, 2.0f, 5.0f, 0.0f, -1.0f, kNaN, kInf});
  const ImageU8 c = viridis(d, 1.0f, 3.0f);
  CHECK(pixel(c, 0, 0) == t[0]);
  CHECK(pixel(c, 1, 0) == t[255]);
  CHECK(pixel(c, 2, 0) == t[128]);
  CHECK(pixel(c, 3, 0) == t[255]);  // beyond max: clamped
  for (int x = 0; x < 4; ++x) CHECK(pixel(c, x, 1) == kBlack);

  const ImageU8 flat = viridis(d, 2.0f, 2.0f);
  CHECK(pixel(flat, 1, 0) == t[0]);
  CHECK(pixel(flat, 0, 1) == kBlack);

  const auto [lo, hi] = valid_depth_range(d);
  CHECK(lo == 1.0f);
  CHECK(hi == 5.0f);
  const auto [lo0, hi0] = valid_depth_range(depth_image(2, 1, {0.0f, kNaN}));
  CHECK(lo0 == 0.0f);
  CHECK(hi0 == 0.0f);
}

TEST_CASE("panel places tiles left to right with separators") {
  const Rgb colours[5] = {{10, 0, 0}, {20, 0, 0}, {30, 0, 0}, {40, 0, 0}, {50, 0, 0}};
  const int w = 4, h = 3, s = kPanelSeparator;
  const ImageU8 p = make_panel(solid(w, h, colours[0]), solid(w, h, colours[1]), solid(w, h, colours[2]),
                               solid(w, h, colours[3]), solid(w, h, colours[4]));
  REQUIRE(p.width == 5 * w + 4 * s);
  REQUIRE(p.height == h);
  REQUIRE(p.channels == 3);
  for (int t = 0; t < 5; ++t) {
    INFO("tile " << t);
    const int x0 = t * (w + s);
    for (int y = 0; y < h; ++y) {
      CHECK(pixel(p, x0, y) == colours[t]);
      CHECK(pixel(p, x0 + w - 1, y) == colours[t]);
      if (t < 4)
        for (int k = 0; k < s; ++k) CHECK(pixel(p, x0 + w + k, y) == kWhite);
    }
  }

  // Semantic only: the depth tiles are absent.
  const ImageU8 sem = make_panel(solid(w, h, colours[0]), solid(w, h, colours[1]), solid(w, h, colours[2]), {}, {});
  CHECK(sem.width == 3 * w + 2 * s);
  CHECK(pixel(sem, sem.width - 1, 0) == colours[2]);

  // A missing first tile and a shorter tile: top-aligned, black below.
  const ImageU8 mixed = make_panel({}, solid(2, 5, colours[1]), {}, solid(3, 2, colours[3]), {});
  REQUIRE(mixed.width == 2 + s + 3);
  REQUIRE(mixed.height == 5);
  CHECK(pixel(mixed, 0, 4) == colours[1]);
  CHECK(pixel(mixed, 2, 4) == kWhite);
  CHECK(pixel(mixed, 2 + s, 0) == colours[3]);
  CHECK(pixel(mixed, 2 + s + 2, 1) == colours[3]);
  CHECK(pixel(mixed, 2 + s, 2) == kBlack);
  CHECK(pixel(mixed, 2 + s + 2, 4) == kBlack);

  CHECK_THROWS_WITH_AS(make_panel({}, {}, {}, {}, {}), doctest::Contains("every tile is empty"), Error);
  ImageU8 grey(4, 3, 1);
  CHECK_THROWS_WITH_AS(make_panel(solid(w, h, colours[0]), grey, {}, {}, {}), doctest::Contains("'gt_seg'"), Error);
}

TEST_CASE("rendered panels share one depth range") {
  const auto& t = viridis_table();
  PanelInputs in;
  in.rgb = solid(2, 1, {1, 2, 3});
  in.gt_seg = ImageI32(2, 1, 1);
  in.gt_seg.data = {1, 255};
  in.pred_seg = ImageI32(2, 1, 1);
  in.pred_seg.data = {1, 2};
  in.gt_depth = depth_image(2, 1, {1.0f, 3.0f});
  in.pred_depth = depth_image(2, 1, {2.0f, 9.0f});
  PanelStyle style;
  style.palette = {{0, 0, 0}, {250, 200, 30}, {230, 60, 60}};
  const ImageU8 p = render_panel(in, style);
  const int step = 2 + kPanelSeparator;
  REQUIRE(p.width == 5 * 2 + 4 * kPanelSeparator);
  CHECK(pixel(p, 0, 0) == Rgb{1, 2, 3});
  CHECK(pixel(p, step, 0) == style.palette[1]);
  CHECK(pixel(p, step + 1, 0) == kBlack);
  CHECK(pixel(p, 2 * step + 1, 0) == style.palette[2]);
  // The range comes from the ground truth [1, 3]: prediction 2 is the middle, 9 the top.
  CHECK(pixel(p, 3 * step, 0) == t[0]);
  CHECK(pixel(p, 3 * step + 1, 0) == t[255]);
  CHECK(pixel(p, 4 * step, 0) == t[128]);
  CHECK(pixel(p, 4 * step + 1, 0) == t[255]);

  style.depth_min = 0;
  style.depth_max = 4;
  const ImageU8 fixed = render_panel(in, style);
  CHECK(pixel(fixed, 4 * step, 0) == t[128]);
  CHECK(pixel(fixed, 3 * step, 0) == viridis_color(0.25));
}

TEST_CASE("panel PNG is written atomically and decodes back") {
  test::TempDir dir("test_visuals");
  const ImageU8 p = make_panel(solid(5, 4, {200, 10, 30}), solid(5, 4, {0, 90, 250}), {}, {}, {});
  const std::string path = (dir.path / "visuals" / "epoch_001_sample_0.png").string();
  write_png(path, p);
  const std::string bytes = read_file(path);
  CHECK(bytes.substr(0, 8) == std::string("\x89PNG\r\n\x1a\n", 8));
  CHECK(read_rgb(path) == p);
  int files = 0;
  for (auto& e : fs::directory_iterator(dir.path / "visuals")) files += e.is_regular_file();
  CHECK(files == 1);  // no temporary left behind
}

TEST_CASE("tensors convert to panel images") {
  // Two pixels normalised the way transforms.h does, and back.
  const float rgb[2][3] = {{0, 128, 255}, {17, 250, 3}};
  ImageF src(2, 1, 3);
  for (int x = 0; x < 2; ++x)
    for (int c = 0; c < 3; ++c) src.at(x, 0, c) = rgb[x][c];
  std::vector<float> planar(6);
  normalize_rgb(src, planar.data());
  const Tensor chw = from_vector(std::vector<double>(planar.begin(), planar.end()), {3, 1, 2});
  const ImageU8 back = rgb_from_tensor(chw);
  REQUIRE(back.width == 2);
  REQUIRE(back.height == 1);
  for (int x = 0; x < 2; ++x)
    for (int c = 0; c < 3; ++c) CHECK(back.at(x, 0, c) == rgb[x][c]);
  CHECK_THROWS_WITH_AS(rgb_from_tensor(from_vector({1, 2}, {1, 1, 2})), doctest::Contains("[3, H, W]"), Error);

  // Logits [C=3, H=1, W=4]: a clear winner, a tie (first wins), a NaN (never wins).
  const Tensor logits = from_vector({0, 5, 1, kNaN,    //
                                     2, 5, 0, 1,       //
                                     1, 1, 3, 0.5},    //
                                    {3, 1, 4});
  const ImageI32 arg = labels_from_tensor(logits);
  CHECK(arg.data == std::vector<int32_t>{1, 0, 2, 1});
  const ImageI32 lab = labels_from_tensor(from_vector({3, 255, 0, 1}, {2, 2}, DType::i32));
  CHECK(lab.width == 2);
  CHECK(lab.data == std::vector<int32_t>{3, 255, 0, 1});
  CHECK_THROWS_WITH_AS(labels_from_tensor(from_vector({1, 2}, {2})), doctest::Contains("labels_from_tensor"), Error);

  const ImageF d = depth_from_tensor(from_vector({0.1, 0.5, 0, 1}, {1, 2, 2}), 10.0);
  CHECK(d.width == 2);
  CHECK(d.height == 2);
  CHECK(d.data[1] == doctest::Approx(5.0));
  CHECK(d.data[2] == 0.0f);
  CHECK(d.data[3] == doctest::Approx(10.0));
  CHECK_THROWS_WITH_AS(depth_from_tensor(from_vector({1, 2, 3, 4}, {2, 1, 2})), doctest::Contains("[1, H, W]"), Error);
}
