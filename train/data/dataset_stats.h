#pragma once
// Statistics of a training split that preprocessing and the loss need: the mean and standard
// deviation of valid depth (to standardise the depth input) and per-class pixel counts (for
// median-frequency class weights). Computed once and cached in a small JSON file whose
// fingerprint (file names, sizes, times and the data settings) tells when it is stale.
#include <cstdint>
#include <string>
#include <vector>

#include "train/data/dataset.h"

namespace mtl::train {

struct DatasetStats {
  int64_t samples = 0;
  int64_t pixels = 0;
  int64_t depth_valid = 0;      // pixels with a depth measurement
  double depth_mean = 0.0;      // metres, over valid pixels
  double depth_std = 1.0;       // population std over valid pixels; 1 when undefined (see below)
  std::vector<int64_t> class_pixels;        // pixels labelled c
  std::vector<int64_t> class_image_pixels;  // labelled (non-ignored) pixels of images containing c
  std::string fingerprint;
  bool operator==(const DatasetStats&) const = default;
};

// Merges per-sample statistics in order (so the result does not depend on thread count). With
// no valid depth, or depth that never varies, depth_std is 1 so that standardising stays finite.
DatasetStats merge_stats(const std::vector<SampleStats>& per_sample, int num_classes);
// Decodes every sample of `ds` (OpenMP) and merges the statistics.
DatasetStats compute_stats(const Dataset& ds);
// Hash of what the statistics depend on: the files (paths, sizes, modification times) and
// depth_scale, ignore_index, label_map and the class count.
std::string dataset_fingerprint(const Dataset& ds);

void save_stats(const std::string& path, const DatasetStats& stats, const Dataset& ds);
// Throws mtl::Error naming the file when it is missing or malformed.
DatasetStats load_stats(const std::string& path);
// The cached statistics when `cache_path` holds ones with the data set's fingerprint; otherwise
// they are computed (from `scanned`, the scan's per-sample statistics, when given) and written
// to `cache_path` (a warning, not an error, when that folder is read-only).
DatasetStats load_or_compute_stats(const Dataset& train, const std::string& cache_path,
                                   const std::vector<SampleStats>* scanned = nullptr);
// Where the cache goes by default: mtl_stats.json in the first source's root.
std::string default_stats_cache(const DataConfig& data);

}  // namespace mtl::train
