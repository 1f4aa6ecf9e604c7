#pragma once
// Pictures of what the network sees and predicts: class colours for label maps, viridis for
// depth, and one side-by-side panel per sample (RGB | GT seg | pred seg | GT depth | pred depth)
// for visuals/ and TensorBoard. Images are train::Image (image_io.h): ImageU8 RGB is the output,
// write_png (image_io.h) stores one atomically.
#include <array>
#include <cstdint>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "train/config/config.h"
#include "train/data/image_io.h"

namespace mtl::train {

using Rgb = std::array<uint8_t, 3>;
using Palette = std::vector<Rgb>;  // colour of class i at index i

// The configured class colours. Throws mtl::Error naming the class when a component is outside
// 0..255.
Palette palette_from_classes(const std::vector<ClassInfo>& classes);

// Matplotlib's viridis: the published 256-entry table (van der Walt and Smith, CC0), rounded to
// 8 bits.
const std::array<Rgb, 256>& viridis_table();
// t in [0, 1] (clamped; NaN counts as 0) to the nearest of the 256 entries.
Rgb viridis_color(double t);

// Labels (1 channel) to RGB: class c gets palette[c], ignore_index black. Any other value is an
// mtl::Error naming it, as a label out of range is everywhere else.
ImageU8 colorize_labels(const ImageI32& labels, const Palette& palette, int ignore_index);

// Depth (1 channel) to RGB through viridis, `min` dark and `max` bright, values outside clamped.
// Invalid depth (<= 0, NaN or infinite) is black. With max <= min every valid pixel gets the
// lowest colour.
ImageU8 viridis(const ImageF& depth, float min, float max);
// {min, max} over the valid pixels; {0, 0} when there is none.
std::pair<float, float> valid_depth_range(const ImageF& depth);

constexpr int kPanelSeparator = 2;  // pixels of white between tiles

// The present (non-empty) tiles, each 3-channel, left to right in this order with a white
// separator between neighbours; top-aligned, black below a tile shorter than the tallest.
// Throws mtl::Error when no tile is present or a tile is not RGB.
ImageU8 make_panel(const ImageU8& rgb, const ImageU8& gt_seg, const ImageU8& pred_seg,
                   const ImageU8& gt_depth, const ImageU8& pred_depth);

// One sample's raw inputs and outputs; empty members are left out of the panel.
struct PanelInputs {
  ImageU8 rgb;
  ImageI32 gt_seg, pred_seg;
  ImageF gt_depth, pred_depth;
};
struct PanelStyle {
  Palette palette;
  int ignore_index = 255;
  // Both depth tiles share this range so that their colours compare. With max <= min it is the
  // valid range of the ground truth (of the prediction when there is no ground truth).
  float depth_min = 0, depth_max = 0;
};
ImageU8 render_panel(const PanelInputs& in, const PanelStyle& style);

// ---- from network tensors (any device; one sample, no batch dimension) ----

// F32/F64 [3, H, W] normalised with the ImageNet mean and std (transforms.h) back to RGB8.
ImageU8 rgb_from_tensor(const Tensor& chw);
// Integer [H, W] labels as they are, or float logits [C, H, W] as their argmax over C (the first
// maximum on ties, as the metrics count it).
ImageI32 labels_from_tensor(const Tensor& t);
// Float [H, W] or [1, H, W], times `scale` (e.g. max_depth, to turn a normalised target into
// metres).
ImageF depth_from_tensor(const Tensor& t, double scale = 1.0);

}  // namespace mtl::train
