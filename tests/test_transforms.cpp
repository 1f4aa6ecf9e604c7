// Transforms: the random choices (ranges, determinism), bilinear and nearest resampling against
// hand-computed values, alignment of RGB, depth and labels through rescale, crop and flip, HSV
// jitter, label downsampling for deep supervision, and the normalisations.
#include <doctest/doctest.h>

#include <cmath>
#include <set>

#include "core/error.h"
#include "train/data/transforms.h"

using namespace mtl;
using namespace mtl::train;
using doctest::Approx;

namespace {

AugmentConfig train_cfg(int w = 64, int h = 32) {
  AugmentConfig a;
  a.input = {w, h};
  a.augment = true;
  a.scale_range = {1.0, 1.4};
  a.hsv_jitter = 0.1;
  a.flip = true;
  return a;
}

// A sample of 12x12-pixel blocks: the label of a block is a function of its position, RGB encodes
// the label as a colour and depth as a distance, so any misalignment between them shows.
Sample coded_sample(int w, int h) {
  Sample s;
  s.rgb = ImageU8(w, h, 3);
  s.depth = ImageF(w, h, 1);
  s.labels = ImageI32(w, h, 1);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const int l = ((x / 12) * 3 + (y / 12) * 5) % 7;
      s.labels.at(x, y) = l;
      s.rgb.at(x, y, 0) = static_cast<uint8_t>(20 + 30 * l);
      s.rgb.at(x, y, 1) = static_cast<uint8_t>(200 - 25 * l);
      s.rgb.at(x, y, 2) = static_cast<uint8_t>((l * 97) % 256);
      s.depth.at(x, y) = l == 3 ? 0.0f : 0.5f + 0.25f * l;  // label 3 has no depth
    }
  return s;
}

}  // namespace

TEST_CASE("augmentation parameters: ranges, determinism and independence of the options") {
  const AugmentConfig cfg = train_cfg();
  int flips = 0;
  std::set<int> crops_x;
  for (int64_t i = 0; i < 400; ++i) {
    const AugmentParams p = draw_augment(cfg, 7, 3, i);
    CHECK(p == draw_augment(cfg, 7, 3, i));
    CHECK(p.scale >= 1.0);
    CHECK(p.scale < 1.4);
    CHECK(p.resize_w == std::lround(64 * p.scale));
    CHECK(p.resize_h == std::lround(32 * p.scale));
    CHECK(p.crop_x >= 0);
    CHECK(p.crop_x + 64 <= p.resize_w);
    CHECK(p.crop_y + 32 <= p.resize_h);
    for (double f : {p.h, p.s, p.v}) CHECK((f >= 0.9 && f <= 1.1));
    flips += p.flip;
    crops_x.insert(p.crop_x);
  }
  CHECK((flips > 160 && flips < 240));  // p = 0.5
  CHECK(crops_x.size() > 10);
  CHECK_FALSE(draw_augment(cfg, 7, 3, 5) == draw_augment(cfg, 7, 4, 5));  // another epoch
  CHECK_FALSE(draw_augment(cfg, 7, 3, 5) == draw_augment(cfg, 8, 3, 5));  // another seed
  // Turning flip off leaves the other draws unchanged.
  AugmentConfig noflip = cfg;
  noflip.flip = false;
  AugmentParams a = draw_augment(cfg, 1, 0, 9), b = draw_augment(noflip, 1, 0, 9);
  CHECK_FALSE(b.flip);
  CHECK(a.scale == b.scale);
  CHECK(a.crop_x == b.crop_x);
  CHECK(a.h == b.h);
  // Evaluation: resize only.
  AugmentConfig ev = cfg;
  ev.augment = false;
  CHECK(draw_augment(ev, 1, 0, 9) == AugmentParams{1.0, 64, 32, 0, 0, false, 1, 1, 1});
  // A scale below 1 resizes to the input instead of cropping (ESANet).
  AugmentConfig down = cfg;
  down.scale_range = {0.5, 0.9};
  AugmentParams d = draw_augment(down, 1, 0, 2);
  CHECK(d.resize_w == 64);
  CHECK(d.crop_x == 0);
}

TEST_CASE("bilinear resampling matches OpenCV's pixel-centre convention") {
  ImageF src(2, 1, 1);
  src.data = {0.0f, 100.0f};
  // Upsampling x2: centres at -0.25, 0.25, 0.75, 1.25 -> clamp, 25, 75, clamp.
  CHECK(resize_bilinear(src, 4, 1).data == std::vector<float>{0.0f, 25.0f, 75.0f, 100.0f});
  ImageF four(4, 1, 1);
  four.data = {0, 10, 20, 30};
  // Downsampling x2 samples at 0.5 and 2.5.
  CHECK(resize_bilinear(four, 2, 1).data == std::vector<float>{5.0f, 25.0f});
  // Same size is the identity.
  ImageF img(5, 3, 2);
  for (size_t i = 0; i < img.data.size(); ++i) img.data[i] = static_cast<float>(i * 3 % 7);
  CHECK(resize_bilinear(img, 5, 3) == img);
}

TEST_CASE("nearest resampling picks pixel centres; deep-supervision labels have ceil sizes") {
  ImageI32 lab(16, 16, 1);
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 16; ++x) lab.at(x, y) = 100 * y + x;
  ImageI32 d8 = downsample_labels(lab, 8);
  REQUIRE(d8.width == 2);
  CHECK(d8.data == std::vector<int32_t>{404, 412, 1204, 1212});  // centres (4,4), (12,4), ...
  ImageI32 odd(20, 12, 1);
  ImageI32 o8 = downsample_labels(odd, 8);
  CHECK(o8.width == 3);
  CHECK(o8.height == 2);
  ImageI32 up = resize_nearest(ImageI32(2, 1, 1, 5), 4, 1);
  CHECK(up.data == std::vector<int32_t>{5, 5, 5, 5});
}

TEST_CASE("rescale, crop and flip keep RGB, depth and labels aligned") {
  const Sample s = coded_sample(90, 54);
  AugmentConfig cfg = train_cfg(64, 32);
  cfg.hsv_jitter = 0.0;
  int checked = 0, flipped = 0;
  for (int64_t i = 0; i < 40; ++i) {
    const AugmentParams p = draw_augment(cfg, 11, 0, i);
    flipped += p.flip;
    const Prepared out = prepare(s, p, cfg);
    REQUIRE(out.rgb.width == 64);
    REQUIRE(out.labels.height == 32);
    for (int y = 2; y < 30; ++y)
      for (int x = 2; x < 62; ++x) {
        const int l = out.labels.at(x, y);
        bool uniform = true;  // away from block edges bilinear RGB is exactly the block colour
        for (int dy = -2; dy <= 2; ++dy)
          for (int dx = -2; dx <= 2; ++dx) uniform &= out.labels.at(x + dx, y + dy) == l;
        if (!uniform) continue;
        ++checked;
        CHECK(out.rgb.at(x, y, 0) == Approx(20 + 30 * l).epsilon(1e-5));
        CHECK(out.rgb.at(x, y, 1) == Approx(200 - 25 * l).epsilon(1e-5));
        CHECK(out.depth.at(x, y) == (l == 3 ? 0.0f : 0.5f + 0.25f * l));
      }
  }
  CHECK(checked > 10000);
  CHECK(flipped > 5);
  // Flipping mirrors exactly: the flipped output is the unflipped one read backwards.
  AugmentParams p = draw_augment(cfg, 11, 0, 0);
  p.flip = false;
  const Prepared a = prepare(s, p, cfg);
  p.flip = true;
  const Prepared b = prepare(s, p, cfg);
  for (int y = 0; y < 32; ++y)
    for (int x = 0; x < 64; ++x) {
      CHECK(a.labels.at(x, y) == b.labels.at(63 - x, y));
      CHECK(a.depth.at(x, y) == b.depth.at(63 - x, y));
      for (int c = 0; c < 3; ++c) CHECK(a.rgb.at(x, y, c) == b.rgb.at(63 - x, y, c));
    }
  // A crop is a window of the resized image: compare against resize, then crop.
  p.flip = false;
  const ImageF resized = resample_bilinear(s.rgb, Window{p.resize_w, p.resize_h, 0, 0, p.resize_w, p.resize_h, false});
  CHECK(crop(resized, p.crop_x, p.crop_y, 64, 32) == a.rgb);
  const ImageI32 rl = resize_nearest(s.labels, p.resize_w, p.resize_h);
  CHECK(crop(rl, p.crop_x, p.crop_y, 64, 32) == a.labels);
}

TEST_CASE("HSV jitter: identity, value scaling, hue clipping, RGB only") {
  ImageF rgb(3, 1, 3);
  rgb.data = {200, 100, 50, 10, 20, 30, 128, 128, 128};
  ImageF same = rgb;
  hsv_jitter(same, 1, 1, 1);
  for (size_t i = 0; i < rgb.data.size(); ++i) CHECK(same.data[i] == Approx(rgb.data[i]).epsilon(1e-5));
  ImageF bright = rgb;
  hsv_jitter(bright, 1, 1, 1.1);
  for (size_t i = 0; i < rgb.data.size(); ++i) CHECK(bright.data[i] == Approx(rgb.data[i] * 1.1).epsilon(1e-5));
  ImageF grey = rgb;
  hsv_jitter(grey, 1.1, 0.9, 1);  // grey has no saturation: unchanged
  for (int c = 0; c < 3; ++c) CHECK(grey.data[6 + c] == Approx(128));
  ImageF desat = rgb;
  hsv_jitter(desat, 1, 0.5, 1);
  CHECK(desat.data[0] == Approx(200));  // the max channel (value) stays
  CHECK(desat.data[2] == Approx(200 - (200 - 50) * 0.5));
  // Training with jitter leaves depth and labels as without it.
  const Sample s = coded_sample(64, 32);
  AugmentConfig cfg = train_cfg(64, 32);
  AugmentParams p = draw_augment(cfg, 3, 0, 1);
  const Prepared with = prepare(s, p, cfg);
  p.h = p.s = p.v = 1.0;
  const Prepared without = prepare(s, p, cfg);
  CHECK(with.depth == without.depth);
  CHECK(with.labels == without.labels);
  CHECK_FALSE(with.rgb == without.rgb);
}

TEST_CASE("normalisation of RGB, depth input and depth target") {
  ImageF rgb(2, 1, 3);
  rgb.data = {255, 0, 127.5f, 0, 255, 51};
  std::vector<float> out(6);
  normalize_rgb(rgb, out.data());
  // Planar: R of both pixels, then G, then B.
  CHECK(out[0] == Approx((1.0 - 0.485) / 0.229));
  CHECK(out[1] == Approx((0.0 - 0.485) / 0.229));
  CHECK(out[2] == Approx((0.0 - 0.456) / 0.224));
  CHECK(out[3] == Approx((1.0 - 0.456) / 0.224));
  CHECK(out[4] == Approx((0.5 - 0.406) / 0.225));
  CHECK(out[5] == Approx((0.2 - 0.406) / 0.225));
  ImageF depth(4, 1, 1);
  depth.data = {0.0f, 1.0f, 3.0f, 12.0f};
  std::vector<float> din(4), dt(4);
  depth_input(depth, 2.0, 0.5, din.data());
  CHECK(din == std::vector<float>{0.0f, -2.0f, 2.0f, 20.0f});  // invalid stays 0, not -4
  depth_target(depth, 10.0, dt.data());
  CHECK(dt[0] == 0.0f);
  CHECK(dt[1] == Approx(0.1));
  CHECK(dt[2] == Approx(0.3));
  CHECK(dt[3] == 1.0f);  // clamped
}
