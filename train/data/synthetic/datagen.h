#pragma once
// The embedded default data set: procedural RGB-D greenhouse scenes with the seven default
// classes (background, chamoe, heatpipe, path, pillar, topdownfarm, unknown), ray cast through a
// pinhole camera, so labels and depth are exact before a sensor model adds depth noise and holes.
// A frame is a pure function of (seed, split, index, size): the same seed gives the same bytes.
#include <cstdint>
#include <string>
#include <vector>

#include "train/config/config.h"
#include "train/data/image_io.h"

namespace mtl::train {

struct DatagenOptions {
  std::string out;
  int train = 200, val = 40, test = 40;
  Size2 size{160, 128};
  uint64_t seed = 1;
  bool force = false;  // replace an earlier mtl_datagen output in `out`
};

struct Frame {
  ImageU8 rgb;       // 3 channels
  ImageU8 mask;      // class ids 0..6
  ImageU16 depth;    // millimetres, 0 = no measurement
  ImageF true_depth; // metres along the optical axis before the sensor model (no holes)
};

// Renders one scene from `seed` at width x height.
Frame render_frame(uint64_t seed, int width, int height);
// The seed of frame `index` of `split` (0 train, 1 val, 2 test).
uint64_t frame_seed(uint64_t seed, int split, int64_t index);

struct DatagenSummary {
  int64_t frames = 0;
  std::vector<int64_t> class_pixels;  // over all frames, per class
  int64_t pixels = 0, depth_valid = 0;
  double seconds = 0;
};

// Writes out/{train,val,test}/{images,masks,depth}/NNNNNN.png, out/README.md and
// out/mtl_datagen.json (OpenMP across frames). An `out` that is not empty is an error unless it
// holds an earlier mtl_datagen output and `force` is set, in which case that output is replaced.
DatagenSummary generate_dataset(const DatagenOptions& opt);

}  // namespace mtl::train
