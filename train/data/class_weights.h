#pragma once
// Cross-entropy class weights (loss.class_weighting).
#include <cstdint>
#include <vector>

#include "train/config/config.h"
#include "train/data/dataset_stats.h"

namespace mtl::train {

// ESANet's median-frequency balancing: f_c = pixels of c / labelled pixels of the images that
// contain c, w_c = median(f) / f_c, the median taken over the classes that occur (numpy's median:
// the mean of the two middle values for an even count). A class that never occurs gets weight 1:
// it has no pixels to weigh in training, and 1 keeps every weight finite.
std::vector<double> median_frequency_weights(const std::vector<int64_t>& class_pixels,
                                             const std::vector<int64_t>& class_image_pixels);
// The weights the loss uses: all 1 for none, median frequency from `stats`, or the config's list.
std::vector<double> class_weights(const LossConfig& loss, const DatasetStats& stats, int num_classes);

}  // namespace mtl::train
