// <mtl/predictor.h> on top of train::Predictor (train/eval/predictor.h) and the run folder
// (train/run/run_folder.h): the same loading and the same prediction as mtl_predict.
#include <cmath>

#include "core/error.h"
#include "mtl/predictor.h"
#include "train/data/dataset_stats.h"
#include "train/data/image_io.h"
#include "train/eval/predictor.h"
#include "train/log/visuals.h"
#include "train/run/run_folder.h"
#include "train/run/runtime.h"

namespace mtl {

struct Predictor::Impl {
  train::Config cfg;
  std::unique_ptr<train::Predictor> predictor;
};

namespace {

// `device` ("cpu", "cuda", "auto"; empty: the run's runtime.device) set up as the tools do it.
Device setup_device(train::Config& cfg, const std::string& device) {
  if (!device.empty()) {
    const auto d = parse_enum<train::DeviceChoice>(device);
    MTL_CHECK(d.has_value(), "mtl::Predictor: device must be ", enum_choices<train::DeviceChoice>(), ", got '", device,
              "'");
    cfg.runtime.device = *d;
  }
  return train::setup_runtime(cfg.runtime);
}

std::unique_ptr<train::Predictor> make_predictor(const train::Config& cfg, const train::DatasetStats& stats,
                                                 const std::string& checkpoint, Device device) {
  std::vector<std::shared_ptr<models::ESANet>> nets{train::load_model(cfg, checkpoint, device)};
  return std::make_unique<train::Predictor>(cfg, stats, std::move(nets), device,
                                            train::InferenceOptions{train::Tta::none, train::InferMode::whole, 1});
}

}  // namespace

RgbBuffer read_rgb(const std::string& path) {
  train::ImageU8 im = train::read_rgb(path);
  return {std::move(im.data), im.width, im.height};
}

DepthBuffer read_depth(const std::string& path) {
  train::ImageU16 im = train::read_gray(path, "depth");
  return {std::move(im.data), im.width, im.height};
}

Predictor::Predictor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Predictor::Predictor(Predictor&&) noexcept = default;
Predictor& Predictor::operator=(Predictor&&) noexcept = default;
Predictor::~Predictor() = default;

Predictor Predictor::from_run(const std::string& run_dir, const PredictorOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->cfg = train::load_run_config(run_dir);
  const Device device = setup_device(impl->cfg, options.device);
  std::vector<std::string> notes;  // a fallback to the last checkpoint is no error for a library
  std::vector<std::string> requested;
  if (!options.checkpoint.empty()) requested.push_back(options.checkpoint);
  const std::string checkpoint = train::resolve_checkpoints(run_dir, requested, notes).front();
  const train::DatasetStats stats = train::load_run_stats(run_dir, impl->cfg, notes);
  impl->predictor = make_predictor(impl->cfg, stats, checkpoint, device);
  return Predictor(std::move(impl));
}

Predictor Predictor::from_files(const std::string& config, const std::string& checkpoint, const std::string& stats,
                                const std::string& device) {
  auto impl = std::make_unique<Impl>();
  impl->cfg = train::load_config(config);
  const Device d = setup_device(impl->cfg, device);
  impl->predictor = make_predictor(impl->cfg, train::load_stats(stats), checkpoint, d);
  return Predictor(std::move(impl));
}

Prediction Predictor::predict(const RgbImage& rgb, const DepthImage& depth) const {
  const models::Modality modality = impl_->cfg.model.modality;
  const bool need_rgb = modality != models::Modality::depth, need_depth = modality != models::Modality::rgb;
  MTL_CHECK(rgb.data || !need_rgb, "mtl::Predictor::predict: no RGB image (rgb.data is null)");
  MTL_CHECK(depth.data || !need_depth, "mtl::Predictor::predict: no depth image (depth.data is null)");
  // The size of the image: that of whichever inputs are given, which must agree.
  const int w = rgb.data ? rgb.width : depth.width, h = rgb.data ? rgb.height : depth.height;
  MTL_CHECK(w > 0 && h > 0, "mtl::Predictor::predict: the image is ", w, "x", h, "; both sides must be positive");
  MTL_CHECK(!rgb.data || !depth.data || (depth.width == w && depth.height == h),
            "mtl::Predictor::predict: the RGB image is ", w, "x", h, " but the depth image is ", depth.width, "x",
            depth.height);
  MTL_CHECK(!depth.data || (std::isfinite(depth.scale) && depth.scale > 0),
            "mtl::Predictor::predict: depth.scale must be a positive number (value units to metres), got ",
            depth.scale);

  // An input the model does not read stays blank (network_inputs makes both).
  train::ImageU8 rgb8(w, h, 3);
  if (rgb.data) rgb8.data.assign(rgb.data, rgb.data + rgb8.data.size());
  train::ImageF metres(w, h, 1);
  if (depth.data)
    for (size_t i = 0; i < metres.data.size(); ++i) metres.data[i] = static_cast<float>(depth.data[i] * depth.scale);

  const train::ImagePrediction p = impl_->predictor->predict({{&rgb8, &metres}}).front();
  Prediction out;
  out.width = w;
  out.height = h;
  if (p.semantic.defined()) out.labels = train::labels_from_tensor(p.semantic.squeeze(0)).data;
  if (p.depth.defined()) out.depth = train::depth_from_tensor(p.depth.squeeze(0)).data;
  return out;
}

bool Predictor::has_semantic() const { return impl_->predictor->semantic(); }
bool Predictor::has_depth() const { return impl_->predictor->depth(); }
int Predictor::num_classes() const { return impl_->cfg.model.num_classes; }
std::vector<std::string> Predictor::class_names() const {
  std::vector<std::string> names;
  for (const train::ClassInfo& c : impl_->cfg.data.classes) names.push_back(c.name);
  return names;
}
double Predictor::max_depth() const { return impl_->cfg.data.max_depth; }
int Predictor::input_width() const { return impl_->cfg.train.input_size.width; }
int Predictor::input_height() const { return impl_->cfg.train.input_size.height; }

}  // namespace mtl
