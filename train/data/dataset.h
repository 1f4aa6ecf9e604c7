#pragma once
// Data sets on disk: ROOT/{train,val,test}/{images,masks,depth}/ with files paired by stem
// (docs/dataset_format.md), one or several sources mixed. The scan decodes every sample before
// training and reports all problems at once; a Dataset then loads samples by index.
#include <cstdint>
#include <string>
#include <vector>

#include "train/config/config.h"
#include "train/data/image_io.h"

namespace mtl::train {

struct SampleRef {
  int source = 0;  // index into DatasetIndex::sources
  std::string stem;
  std::string rgb, mask, depth;  // paths; mask is empty when masks are not used
};

struct DatasetIndex {
  std::string split;
  std::vector<DataSource> sources;
  std::vector<SampleRef> samples;  // sorted by source, then stem
  bool has_masks = true;
};

struct Problem {
  std::string file;
  std::string what;
};

// Per-sample statistics gathered while scanning; merged into DatasetStats (dataset_stats.h).
struct SampleStats {
  int64_t pixels = 0;
  int64_t depth_valid = 0;
  double depth_mean = 0, depth_m2 = 0;  // over valid pixels, metres (Welford / Chan)
  std::vector<int64_t> class_pixels;    // per class
  int64_t labelled_pixels = 0;          // pixels not equal to ignore_index
};

// A decoded sample: the stored data after label mapping and unit conversion.
struct Sample {
  int64_t index = 0;  // position in the DatasetIndex
  int source = 0;
  std::string stem;
  ImageU8 rgb;        // 3 channels
  ImageF depth;       // metres, 0 = no measurement
  ImageI32 labels;    // class ids or ignore_index; empty without masks
};

// Lists and pairs the files of `split` in every source. Pairing problems (a missing depth map or
// mask, an orphan file, two images with one stem, a missing folder) are appended to `problems`,
// and the images of samples with such a problem to `left_out`.
DatasetIndex list_split(const DataConfig& data, const std::string& split, bool need_masks,
                        std::vector<Problem>& problems, std::vector<std::string>& left_out);

class Dataset {
 public:
  Dataset(DataConfig data, DatasetIndex index);
  size_t size() const { return index_.samples.size(); }
  const DatasetIndex& index() const { return index_; }
  const DataConfig& data() const { return data_; }
  int num_classes() const { return static_cast<int>(data_.classes.size()); }
  // Decodes sample i; throws mtl::Error naming the file on anything the scan would report.
  Sample load(size_t i) const;
  // Decodes and checks sample i without throwing: returns its problems (empty when usable) and,
  // when usable, fills `stats`.
  std::vector<Problem> check(size_t i, SampleStats* stats) const;
  // Stored mask value -> label (class id or ignore_index), or kInvalidLabel for neither.
  static constexpr int32_t kInvalidLabel = INT32_MIN;
  int32_t map_label(uint16_t stored) const { return lut_[stored]; }

 private:
  void load_into(size_t i, Sample& s) const;
  DataConfig data_;
  DatasetIndex index_;
  std::vector<int32_t> lut_;  // 65536 entries
};

struct ScanResult {
  Dataset dataset;                   // the usable samples
  std::vector<Problem> problems;     // every problem found
  std::vector<std::string> dropped;  // images of the samples left out (on_error: skip)
  std::vector<SampleStats> stats;    // per usable sample, in dataset order
};

// Lists `split`, decodes every sample (OpenMP across samples) and checks that files exist and
// decode, that RGB, mask and depth sizes agree and that label values are classes or ignored.
// With data.on_error = fail, any problem throws one mtl::Error listing them all; with skip, the
// bad samples are dropped and a warning listing them is printed to stderr. A split without any
// usable sample is always an error.
ScanResult scan_split(const DataConfig& data, const std::string& split, bool need_masks);

// "source/stem" when several sources are mixed, else the stem: how samples are named to users.
std::string sample_name(const DatasetIndex& index, size_t i);

}  // namespace mtl::train
