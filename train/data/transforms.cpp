#include "train/data/transforms.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/generator.h"

namespace mtl::train {

AugmentConfig AugmentConfig::training(const Config& cfg) {
  AugmentConfig a;
  a.input = cfg.train.input_size;
  a.augment = true;
  a.scale_range = cfg.train.scale_range;
  a.hsv_jitter = cfg.train.hsv_jitter;
  a.flip = cfg.train.flip;
  return a;
}

AugmentConfig AugmentConfig::evaluation(const Config& cfg) {
  AugmentConfig a;
  a.input = cfg.train.input_size;
  a.augment = false;
  return a;
}

uint64_t mix_seed(uint64_t seed, int64_t epoch, int64_t index, uint64_t stream) {
  auto mix = [](uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  uint64_t h = mix(seed ^ mix(stream));
  h = mix(h ^ static_cast<uint64_t>(epoch));
  return mix(h ^ static_cast<uint64_t>(index));
}

AugmentParams draw_augment(const AugmentConfig& cfg, uint64_t seed, int64_t epoch, int64_t index) {
  AugmentParams p;
  p.resize_w = cfg.input.width;
  p.resize_h = cfg.input.height;
  if (!cfg.augment) return p;
  // Always the same seven draws in the same order, whichever options are on, so that turning one
  // augmentation off does not change the others.
  Generator gen(mix_seed(seed, epoch, index, 0x61756721ull));
  double u[7];
  gen.fill_uniform(u, 7, 0.0, 1.0);
  const auto [lo, hi] = cfg.scale_range;
  p.scale = lo + (hi - lo) * u[0];
  const int rw = static_cast<int>(std::lround(cfg.input.width * p.scale));
  const int rh = static_cast<int>(std::lround(cfg.input.height * p.scale));
  // Smaller than the input (scale < 1): resized to the input instead of cropped, as ESANet does.
  if (rw >= cfg.input.width && rh >= cfg.input.height) {
    p.resize_w = rw, p.resize_h = rh;
    p.crop_x = std::min(rw - cfg.input.width, static_cast<int>(u[1] * (rw - cfg.input.width + 1)));
    p.crop_y = std::min(rh - cfg.input.height, static_cast<int>(u[2] * (rh - cfg.input.height + 1)));
  }
  p.flip = cfg.flip && u[3] < 0.5;
  const double j = cfg.hsv_jitter;
  p.h = 1.0 + j * (2.0 * u[4] - 1.0);
  p.s = 1.0 + j * (2.0 * u[5] - 1.0);
  p.v = 1.0 + j * (2.0 * u[6] - 1.0);
  return p;
}

Window window_for(const AugmentParams& p, const AugmentConfig& cfg) {
  return Window{p.resize_w, p.resize_h, p.crop_x, p.crop_y, cfg.input.width, cfg.input.height, p.flip};
}

namespace {

void check_window(int sw, int sh, const Window& w) {
  MTL_ASSERT(sw > 0 && sh > 0 && w.out_w > 0 && w.out_h > 0 && w.off_x >= 0 && w.off_y >= 0 &&
                 w.off_x + w.out_w <= w.virt_w && w.off_y + w.out_h <= w.virt_h,
             "bad resampling window");
}

// The virtual-image coordinate of output column x.
int virt_x(const Window& w, int x) { return w.off_x + (w.flip ? w.out_w - 1 - x : x); }

struct Tap {
  int i0, i1;
  float f;
};
// Bilinear taps along one axis: centre-aligned, clamped at the borders like OpenCV.
Tap tap(int v, int virt, int src) {
  double s = (v + 0.5) * static_cast<double>(src) / virt - 0.5;
  if (s < 0) s = 0;
  int i0 = static_cast<int>(s);
  if (i0 >= src - 1) return {src - 1, src - 1, 0.f};
  return {i0, i0 + 1, static_cast<float>(s - i0)};
}

int nearest(int v, int virt, int src) {
  int64_t i = (2 * static_cast<int64_t>(v) + 1) * src / (2 * static_cast<int64_t>(virt));
  return static_cast<int>(std::min<int64_t>(i, src - 1));
}

}  // namespace

template <class T>
ImageF resample_bilinear(const Image<T>& src, const Window& w) {
  check_window(src.width, src.height, w);
  ImageF out(w.out_w, w.out_h, src.channels);
  std::vector<Tap> xs(w.out_w), ys(w.out_h);
  for (int x = 0; x < w.out_w; ++x) xs[x] = tap(virt_x(w, x), w.virt_w, src.width);
  for (int y = 0; y < w.out_h; ++y) ys[y] = tap(w.off_y + y, w.virt_h, src.height);
  const int C = src.channels;
  for (int y = 0; y < w.out_h; ++y) {
    const Tap ty = ys[y];
    for (int x = 0; x < w.out_w; ++x) {
      const Tap tx = xs[x];
      for (int c = 0; c < C; ++c) {
        float a = static_cast<float>(src.at(tx.i0, ty.i0, c)), b = static_cast<float>(src.at(tx.i1, ty.i0, c));
        float d = static_cast<float>(src.at(tx.i0, ty.i1, c)), e = static_cast<float>(src.at(tx.i1, ty.i1, c));
        float top = a + (b - a) * tx.f, bot = d + (e - d) * tx.f;
        out.at(x, y, c) = top + (bot - top) * ty.f;
      }
    }
  }
  return out;
}

template <class T>
Image<T> resample_nearest(const Image<T>& src, const Window& w) {
  check_window(src.width, src.height, w);
  Image<T> out(w.out_w, w.out_h, src.channels);
  std::vector<int> xs(w.out_w), ys(w.out_h);
  for (int x = 0; x < w.out_w; ++x) xs[x] = nearest(virt_x(w, x), w.virt_w, src.width);
  for (int y = 0; y < w.out_h; ++y) ys[y] = nearest(w.off_y + y, w.virt_h, src.height);
  for (int y = 0; y < w.out_h; ++y)
    for (int x = 0; x < w.out_w; ++x)
      for (int c = 0; c < src.channels; ++c) out.at(x, y, c) = src.at(xs[x], ys[y], c);
  return out;
}

template ImageF resample_bilinear<uint8_t>(const ImageU8&, const Window&);
template ImageF resample_bilinear<float>(const ImageF&, const Window&);
template ImageU8 resample_nearest<uint8_t>(const ImageU8&, const Window&);
template ImageU16 resample_nearest<uint16_t>(const ImageU16&, const Window&);
template ImageF resample_nearest<float>(const ImageF&, const Window&);
template ImageI32 resample_nearest<int32_t>(const ImageI32&, const Window&);

ImageF resize_bilinear(const ImageF& src, int w, int h) {
  return resample_bilinear(src, Window{w, h, 0, 0, w, h, false});
}

void hsv_jitter(ImageF& rgb, double hm, double sm, double vm) {
  MTL_CHECK(rgb.channels == 3, "hsv_jitter needs 3 channels, got ", rgb.channels);
  const size_t n = rgb.pixels();
  for (size_t k = 0; k < n; ++k) {
    float* p = &rgb.data[3 * k];
    // RGB -> HSV as matplotlib.colors.rgb_to_hsv (h, s in [0, 1], v on the 0..255 scale).
    const double r = p[0], g = p[1], b = p[2];
    const double mx = std::max({r, g, b}), mn = std::min({r, g, b}), delta = mx - mn;
    double h = 0, s = mx > 0 ? delta / mx : 0, v = mx;
    if (delta > 0) {
      if (mx == r) h = (g - b) / delta;
      else if (mx == g) h = 2.0 + (b - r) / delta;
      else h = 4.0 + (r - g) / delta;
      h = std::fmod(h / 6.0 + 1.0, 1.0);
    }
    h = std::clamp(h * hm, 0.0, 1.0);
    s = std::clamp(s * sm, 0.0, 1.0);
    v = std::clamp(v * vm, 0.0, 255.0);
    // HSV -> RGB (matplotlib.colors.hsv_to_rgb).
    const double h6 = h * 6.0;
    const int i = static_cast<int>(h6) % 6;
    const double f = h6 - std::floor(h6);
    const double P = v * (1 - s), Q = v * (1 - s * f), T = v * (1 - s * (1 - f));
    double o[3];
    switch (i) {
      case 0: o[0] = v, o[1] = T, o[2] = P; break;
      case 1: o[0] = Q, o[1] = v, o[2] = P; break;
      case 2: o[0] = P, o[1] = v, o[2] = T; break;
      case 3: o[0] = P, o[1] = Q, o[2] = v; break;
      case 4: o[0] = T, o[1] = P, o[2] = v; break;
      default: o[0] = v, o[1] = P, o[2] = Q; break;
    }
    for (int c = 0; c < 3; ++c) p[c] = static_cast<float>(o[c]);
  }
}

ImageI32 downsample_labels(const ImageI32& labels, int factor) {
  MTL_CHECK(factor >= 1, "downsample_labels: factor ", factor, " must be >= 1");
  const int w = (labels.width + factor - 1) / factor, h = (labels.height + factor - 1) / factor;
  return resample_nearest(labels, Window{w, h, 0, 0, w, h, false});
}

Prepared prepare(const Sample& s, const AugmentParams& p, const AugmentConfig& cfg) {
  const Window w = window_for(p, cfg);
  Prepared out;
  out.rgb = resample_bilinear(s.rgb, w);
  out.depth = resample_nearest(s.depth, w);
  if (!s.labels.empty()) out.labels = resample_nearest(s.labels, w);
  if (cfg.augment && (p.h != 1.0 || p.s != 1.0 || p.v != 1.0)) hsv_jitter(out.rgb, p.h, p.s, p.v);
  return out;
}

void normalize_rgb(const ImageF& rgb, float* out) {
  MTL_CHECK(rgb.channels == 3, "normalize_rgb needs 3 channels, got ", rgb.channels);
  const size_t n = rgb.pixels();
  for (int c = 0; c < 3; ++c) {
    const float scale = 1.0f / (255.0f * kImagenetStd[c]), shift = kImagenetMean[c] / kImagenetStd[c];
    float* o = out + c * n;
    for (size_t k = 0; k < n; ++k) o[k] = rgb.data[3 * k + c] * scale - shift;
  }
}

void depth_input(const ImageF& depth, double mean, double std, float* out) {
  const float m = static_cast<float>(mean), inv = static_cast<float>(1.0 / std);
  for (size_t k = 0; k < depth.data.size(); ++k) {
    const float d = depth.data[k];
    // Invalid pixels stay 0 rather than becoming -mean/std (ESANet's raw-depth Normalize).
    out[k] = d > 0 ? (d - m) * inv : 0.0f;
  }
}

void depth_target(const ImageF& depth, double max_depth, float* out) {
  const float md = static_cast<float>(max_depth);
  for (size_t k = 0; k < depth.data.size(); ++k) {
    const float d = depth.data[k];
    out[k] = d > 0 ? std::min(d, md) / md : 0.0f;
  }
}

}  // namespace mtl::train
