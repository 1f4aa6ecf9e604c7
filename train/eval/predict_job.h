#pragma once
// mtl_predict's job: a trained run applied to RGB-D images of any size and any depth unit. Each
// image is brought to the network's input (resized, depth converted to metres with the given
// scale and standardised with the run's statistics), and the results are brought back to the
// image's own size: class ids, class colours, depth in millimetres, coloured depth and a panel.
// Every input is read and checked before the first output is written, and every output is
// written atomically.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/device.h"
#include "train/config/config.h"
#include "train/data/image_io.h"
#include "train/eval/predictor.h"

namespace mtl::train {

struct PredictPair {
  std::string stem;  // names the outputs: <stem>_label.png, ...
  std::string rgb, depth;
};

// Pairs the images of two folders by file stem (RGB: .png, .jpg, .jpeg; depth: .png). A missing or
// unreadable folder, an image without its partner or two files with one stem is an mtl::Error
// listing every such problem; an empty folder is one too.
std::vector<PredictPair> pair_folders(const std::string& rgb_dir, const std::string& depth_dir);

struct PredictInputs {
  ImageU8 rgb;
  ImageF depth;  // metres, 0 = no measurement
};

// Reads a pair, depth converted with `depth_scale` (file units to metres). Throws mtl::Error
// naming the file when it is missing, unreadable or truncated, or when the depth map's size
// differs from the RGB image's.
PredictInputs read_pair(const PredictPair& p, double depth_scale);
// Reads every pair (OpenMP across pairs) and throws one mtl::Error listing every problem.
void check_pairs(const std::vector<PredictPair>& pairs, double depth_scale);

// What is written for one image; members are empty when the model lacks their task.
struct PredictOutputs {
  ImageI32 labels;      // class ids at the image's size
  ImageF depth;         // metres at the image's size
  ImageU8 label_png;    // 8-bit class ids
  ImageU8 seg;          // class colours
  ImageU16 depth_mm;    // 16-bit millimetres
  ImageU8 depth_color;  // viridis
  ImageU8 panel;        // RGB | predicted classes | input depth | predicted depth
};

// Metres to 16-bit millimetres: rounded to the nearest, non-finite or negative to 0, capped at
// 65535 (65.535 m).
ImageU16 depth_to_millimetres(const ImageF& metres);

// The outputs of one prediction (Predictor::predict at the image's size). The coloured depth and
// the panel's depth tiles share one range: the input depth's valid range, else the prediction's.
PredictOutputs render_outputs(const ImagePrediction& p, const PredictInputs& in, const Config& cfg);

// Writes <stem>_label.png, <stem>_seg.png, <stem>_depth.png, <stem>_depth_color.png and
// <stem>_panel.png (those present) into `dir`, each atomically; returns the paths.
std::vector<std::string> write_outputs(const std::string& dir, const std::string& stem, const PredictOutputs& o);

struct PredictOptions {
  std::string run_dir;
  std::vector<std::string> checkpoints;  // empty: the run's best (or last)
  std::vector<PredictPair> pairs;
  std::optional<double> depth_scale;     // default: the run's data.depth_scale
  std::string out_dir;                   // default: RUN_DIR/predictions
  std::optional<Device> device;          // default: runtime.device
  std::optional<Precision> precision;    // default: runtime.precision
  InferenceOptions inference{Tta::none, InferMode::whole, 0};  // batch <= 0: eval.batch_size
  // Called with each image's outputs after they are written (tests, progress).
  std::function<void(const PredictPair&, const PredictOutputs&)> on_image;
};

struct PredictSummary {
  std::string out_dir;
  int64_t images = 0;
  std::vector<std::string> files;
  std::vector<std::string> notes;
};

// Loads the run (config, checkpoints, statistics), checks every input, then predicts and writes
// image by image. Throws mtl::Error naming the file, folder or option at fault; nothing is
// written when an input is bad.
PredictSummary run_predict(const PredictOptions& o);

}  // namespace mtl::train
