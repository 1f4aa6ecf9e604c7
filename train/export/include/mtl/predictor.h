#pragma once
// mtl's inference API for applications (docs/deploy.md), installed as <mtl/predictor.h> with the
// CMake package (find_package(mtl CONFIG REQUIRED), target mtl::mtl). A trained run is loaded once;
// then each RGB-D image in memory gives the class of every pixel and metric depth, at the image's
// own size, exactly as mtl_predict computes them (the image resized to the network input, depth
// standardised with the run's statistics, the outputs resized back). No Python, no files written.
// Standard library types only. Errors are thrown as std::runtime_error (mtl::Error) with a
// message that names the file, option or image at fault.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mtl {

// Borrowed images, row-major, interleaved, without padding between rows.
struct RgbImage {
  const uint8_t* data = nullptr;  // width * height * 3 bytes, R G B
  int width = 0, height = 0;
};
struct DepthImage {
  const uint16_t* data = nullptr;  // width * height values; 0 = no measurement
  int width = 0, height = 0;
  double scale = 0.001;  // value units to metres (0.001: millimetres)
};

// Images read from files (RGB: PNG or JPEG; depth: 16-bit or 8-bit single-channel PNG), for
// programs that start from files as mtl_predict does. Throws naming the file when it is missing
// or unreadable.
struct RgbBuffer {
  std::vector<uint8_t> data;
  int width = 0, height = 0;
  RgbImage view() const { return {data.data(), width, height}; }
};
struct DepthBuffer {
  std::vector<uint16_t> data;
  int width = 0, height = 0;
  DepthImage view(double scale) const { return {data.data(), width, height, scale}; }
};
RgbBuffer read_rgb(const std::string& path);
DepthBuffer read_depth(const std::string& path);

struct Prediction {
  int width = 0, height = 0;
  std::vector<int32_t> labels;  // width * height class ids; empty when the run has no semantic task
  std::vector<float> depth;     // width * height metres in (0, max_depth]; empty without the depth task
};

struct PredictorOptions {
  std::string checkpoint;  // as given or in RUN_DIR/checkpoints/; empty: best, else last
  std::string device;      // "cpu", "cuda" or "auto"; empty: the run's runtime.device
};

class Predictor {
 public:
  // A run folder made by mtl_train (config.yaml, mtl_stats.json, checkpoints/).
  static Predictor from_run(const std::string& run_dir, const PredictorOptions& options = {});
  // The same three files given one by one: the run's configuration (YAML or JSON), a checkpoint
  // and the data statistics (mtl_stats.json) the run was trained with.
  static Predictor from_files(const std::string& config, const std::string& checkpoint, const std::string& stats,
                              const std::string& device = "");

  // One image. rgb and depth must have the same size; a model.modality rgb run reads no depth
  // (depth.data may be null) and a model.modality depth run no RGB (rgb.data may be null).
  Prediction predict(const RgbImage& rgb, const DepthImage& depth) const;

  bool has_semantic() const;
  bool has_depth() const;
  int num_classes() const;
  std::vector<std::string> class_names() const;
  double max_depth() const;  // metres
  int input_width() const;   // the network input every image is resized to
  int input_height() const;

  Predictor(Predictor&&) noexcept;
  Predictor& operator=(Predictor&&) noexcept;
  ~Predictor();

 private:
  struct Impl;
  explicit Predictor(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace mtl
