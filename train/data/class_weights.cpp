#include "train/data/class_weights.h"

#include <algorithm>

#include "core/error.h"

namespace mtl::train {

std::vector<double> median_frequency_weights(const std::vector<int64_t>& class_pixels,
                                             const std::vector<int64_t>& class_image_pixels) {
  MTL_CHECK(class_pixels.size() == class_image_pixels.size(), "median_frequency_weights: ",
            class_pixels.size(), " pixel counts but ", class_image_pixels.size(), " image-pixel counts");
  const size_t n = class_pixels.size();
  std::vector<double> f(n, 0.0), present;
  for (size_t c = 0; c < n; ++c) {
    if (class_pixels[c] <= 0 || class_image_pixels[c] <= 0) continue;
    f[c] = static_cast<double>(class_pixels[c]) / static_cast<double>(class_image_pixels[c]);
    present.push_back(f[c]);
  }
  std::vector<double> w(n, 1.0);
  if (present.empty()) return w;
  std::sort(present.begin(), present.end());
  const size_t m = present.size();
  const double median = m % 2 ? present[m / 2] : 0.5 * (present[m / 2 - 1] + present[m / 2]);
  for (size_t c = 0; c < n; ++c)
    if (f[c] > 0) w[c] = median / f[c];
  return w;
}

std::vector<double> class_weights(const LossConfig& loss, const DatasetStats& stats, int num_classes) {
  switch (loss.class_weighting) {
    case ClassWeighting::none:
      return std::vector<double>(num_classes, 1.0);
    case ClassWeighting::list:
      MTL_CHECK(static_cast<int>(loss.class_weights.size()) == num_classes, "loss.class_weighting lists ",
                loss.class_weights.size(), " weights for ", num_classes, " classes");
      return loss.class_weights;
    case ClassWeighting::median_frequency:
      MTL_CHECK(static_cast<int>(stats.class_pixels.size()) == num_classes,
                "class statistics hold ", stats.class_pixels.size(), " classes but the model has ", num_classes,
                " (stale statistics cache?)");
      return median_frequency_weights(stats.class_pixels, stats.class_image_pixels);
  }
  return {};
}

}  // namespace mtl::train
