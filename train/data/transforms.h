#pragma once
// CPU preprocessing of one sample (ESANET.md 5.4-5.5): resize to the network input, random
// rescale + crop, horizontal flip and HSV jitter for training, then normalisation. Every
// geometric step is applied identically to RGB (bilinear), depth and labels (nearest), and the
// random choices depend only on (seed, epoch, sample index).
#include <array>
#include <cstdint>
#include <utility>

#include "train/config/config.h"
#include "train/data/dataset.h"
#include "train/data/image_io.h"

namespace mtl::train {

constexpr std::array<float, 3> kImagenetMean{0.485f, 0.456f, 0.406f};
constexpr std::array<float, 3> kImagenetStd{0.229f, 0.224f, 0.225f};

struct AugmentConfig {
  Size2 input{640, 480};
  bool augment = false;  // off: resize to the input only (validation, test)
  std::array<double, 2> scale_range{1.0, 1.4};
  double hsv_jitter = 0.1;
  bool flip = true;
  static AugmentConfig training(const Config& cfg);
  static AugmentConfig evaluation(const Config& cfg);
};

// One sample's random choices. The image is resized to resize_w x resize_h (the input size times
// `scale`), a input-sized window at (crop_x, crop_y) is cut out, mirrored when `flip`, and hue,
// saturation and value are multiplied by h, s, v.
struct AugmentParams {
  double scale = 1.0;
  int resize_w = 0, resize_h = 0;
  int crop_x = 0, crop_y = 0;
  bool flip = false;
  double h = 1.0, s = 1.0, v = 1.0;
  bool operator==(const AugmentParams&) const = default;
};

// A 64-bit seed from (seed, epoch, index, stream) by SplitMix64 mixing; `stream` separates uses
// (augmentation, shuffling) of the same triple.
uint64_t mix_seed(uint64_t seed, int64_t epoch, int64_t index, uint64_t stream);
AugmentParams draw_augment(const AugmentConfig& cfg, uint64_t seed, int64_t epoch, int64_t index);

// Resampling into an out_w x out_h window at (off_x, off_y) of the image resized to
// virt_w x virt_h, optionally mirrored: resize, crop and flip in one pass, so that RGB, depth and
// labels go through exactly the same coordinates. Bilinear uses pixel centres (OpenCV's
// INTER_LINEAR, align_corners=False); nearest uses pixel centres too (src = floor((x+0.5)*s)),
// which keeps labels aligned with the bilinear RGB to within half a pixel.
struct Window {
  int virt_w = 0, virt_h = 0, off_x = 0, off_y = 0, out_w = 0, out_h = 0;
  bool flip = false;
};
template <class T>
ImageF resample_bilinear(const Image<T>& src, const Window& w);
template <class T>
Image<T> resample_nearest(const Image<T>& src, const Window& w);

ImageF resize_bilinear(const ImageF& src, int w, int h);
template <class T>
Image<T> resize_nearest(const Image<T>& src, int w, int h) {
  return resample_nearest(src, Window{w, h, 0, 0, w, h, false});
}
template <class T>
Image<T> crop(const Image<T>& src, int x, int y, int w, int h) {
  Image<T> out(w, h, src.channels);
  for (int j = 0; j < h; ++j)
    for (int i = 0; i < w; ++i)
      for (int c = 0; c < src.channels; ++c) out.at(i, j, c) = src.at(x + i, y + j, c);
  return out;
}

// RGB in [0, 255]: hue and saturation multiplied and clipped to [0, 1], value multiplied and
// clipped to [0, 255] (ESANet's RandomHSV with the multiplicative value of its 2025 fix).
void hsv_jitter(ImageF& rgb, double h, double s, double v);

// Labels for deep supervision: nearest (pixel centres) to ceil(H/f) x ceil(W/f), the size of the
// decoder's output at stride f.
ImageI32 downsample_labels(const ImageI32& labels, int factor);

// The sample after geometry and colour: RGB in [0, 255], depth in metres (0 = invalid), labels.
struct Prepared {
  ImageF rgb;
  ImageF depth;
  ImageI32 labels;  // empty when the sample has none
};
// The resampling window that `p` describes for the configured input size.
Window window_for(const AugmentParams& p, const AugmentConfig& cfg);
Prepared prepare(const Sample& s, const AugmentParams& p, const AugmentConfig& cfg);

// Normalisation into planar (CHW) float buffers of H*W (depth) or 3*H*W (RGB) values.
void normalize_rgb(const ImageF& rgb, float* out);                                    // /255, ImageNet
void depth_input(const ImageF& depth, double mean, double std, float* out);            // 0 stays 0
void depth_target(const ImageF& depth, double max_depth, float* out);                  // [0, 1], 0 invalid

}  // namespace mtl::train
