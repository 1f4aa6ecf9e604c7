#include "train/eval/predictor.h"

#include <algorithm>

#include "core/autograd.h"
#include "core/error.h"
#include "ops/ops.h"
#include "train/data/transforms.h"

namespace mtl::train {

std::vector<int> slide_positions(int length, int window) {
  MTL_CHECK(window > 0 && length >= window, "slide_positions: a window of ", window, " pixels does not fit in ",
            length);
  const int stride = std::max(1, window / 3);
  std::vector<int> pos;
  for (int p = 0;; p += stride) {
    if (p + window >= length) {
      pos.push_back(length - window);
      break;
    }
    pos.push_back(p);
  }
  return pos;
}

Predictor::Predictor(Config cfg, const DatasetStats& stats, std::vector<std::shared_ptr<models::ESANet>> models,
                     Device device, InferenceOptions options)
    : cfg_(std::move(cfg)),
      depth_mean_(stats.depth_mean),
      depth_std_(stats.depth_std),
      models_(std::move(models)),
      device_(device),
      opt_(options) {
  MTL_CHECK(!models_.empty(), "a predictor needs at least one model");
  MTL_CHECK(opt_.batch >= 1, "the batch size must be at least 1, got ", opt_.batch);
  MTL_CHECK(depth_std_ > 0, "the data set statistics have a depth standard deviation of ", depth_std_);
  for (auto& m : models_) {
    MTL_CHECK(m != nullptr, "a predictor was given a null model");
    m->eval();
  }
}

int Predictor::passes() const {
  const int64_t H = cfg_.train.input_size.height, W = cfg_.train.input_size.width;
  return static_cast<int>(models_.size() * tta_views({opt_.tta, opt_.scales}, H, W).size());
}

std::pair<Tensor, Tensor> Predictor::network_inputs(const std::vector<InputImage>& images) const {
  const int64_t B = static_cast<int64_t>(images.size());
  const int W = cfg_.train.input_size.width, H = cfg_.train.input_size.height;
  const int64_t HW = static_cast<int64_t>(W) * H;
  Tensor rgb = empty({B, 3, H, W}), depth = empty({B, 1, H, W});
  const AugmentConfig ac = AugmentConfig::evaluation(cfg_);
  AugmentParams p;
  p.resize_w = W;
  p.resize_h = H;
  const Window win = window_for(p, ac);
  for (int64_t k = 0; k < B; ++k) {
    const InputImage& im = images[static_cast<size_t>(k)];
    MTL_CHECK(im.rgb && im.depth && im.rgb->width == im.depth->width && im.rgb->height == im.depth->height,
              "network_inputs: image ", k, " has no depth of its RGB size");
    normalize_rgb(resample_bilinear(*im.rgb, win), rgb.data<float>() + k * 3 * HW);
    depth_input(resample_nearest(*im.depth, win), depth_mean_, depth_std_, depth.data<float>() + k * HW);
  }
  return {rgb.to(device_), depth.to(device_)};
}

NetOutput Predictor::forward(const Tensor& rgb, const Tensor& depth) const {
  std::vector<models::ESANet*> models;
  for (const auto& m : models_) models.push_back(m.get());
  return tta_forward(models, rgb, depth, {opt_.tta, opt_.scales});
}

ImagePrediction resize_prediction(const Tensor& semantic, bool probabilities, const Tensor& depth, double max_depth,
                                  int width, int height) {
  autograd::NoGradGuard no_grad;
  ImagePrediction p;
  p.width = width;
  p.height = height;
  p.probabilities = probabilities;
  auto resize = [&](const Tensor& t) {
    MTL_CHECK(t.dim() == 4 && t.size(0) == 1, "resize_prediction: expected one image [1, C, H, W], got ", t.describe());
    const Tensor c = ops::contiguous(t);
    if (c.size(2) == height && c.size(3) == width) return c;
    return ops::interpolate_bilinear(c, height, width);
  };
  if (semantic.defined()) p.semantic = resize(semantic);
  if (depth.defined()) p.depth = ops::mul_scalar(resize(depth), max_depth);
  return p;
}

std::vector<ImagePrediction> Predictor::predict_whole(const std::vector<InputImage>& images) const {
  std::vector<ImagePrediction> out;
  out.reserve(images.size());
  for (size_t start = 0; start < images.size(); start += static_cast<size_t>(opt_.batch)) {
    const size_t n = std::min(images.size() - start, static_cast<size_t>(opt_.batch));
    const std::vector<InputImage> chunk(images.begin() + static_cast<std::ptrdiff_t>(start),
                                        images.begin() + static_cast<std::ptrdiff_t>(start + n));
    auto [rgb, depth] = network_inputs(chunk);
    const NetOutput o = forward(rgb, depth);
    for (size_t k = 0; k < n; ++k) {
      const int64_t i = static_cast<int64_t>(k);
      Tensor s = o.semantic.defined() ? o.semantic.narrow(0, i, 1) : Tensor();
      Tensor d = o.depth.defined() ? o.depth.narrow(0, i, 1) : Tensor();
      out.push_back(
          resize_prediction(s, o.probabilities, d, cfg_.data.max_depth, chunk[k].rgb->width, chunk[k].rgb->height));
    }
  }
  return out;
}

std::vector<ImagePrediction> Predictor::predict(const std::vector<InputImage>& images) const {
  if (opt_.mode == InferMode::whole) return predict_whole(images);
  const int W = cfg_.train.input_size.width, H = cfg_.train.input_size.height;
  std::vector<ImagePrediction> out(images.size());
  std::vector<InputImage> small;
  std::vector<size_t> small_at;
  for (size_t i = 0; i < images.size(); ++i) {
    if (images[i].rgb->width > W || images[i].rgb->height > H) {
      out[i] = predict_slide(images[i]);
    } else {
      small.push_back(images[i]);
      small_at.push_back(i);
    }
  }
  std::vector<ImagePrediction> s = predict_whole(small);
  for (size_t k = 0; k < s.size(); ++k) out[small_at[k]] = std::move(s[k]);
  return out;
}

ImagePrediction Predictor::predict_slide(const InputImage& image) const {
  autograd::NoGradGuard no_grad;
  MTL_CHECK(
      image.rgb && image.depth && image.rgb->width == image.depth->width && image.rgb->height == image.depth->height,
      "predict_slide: the image has no depth of its RGB size");
  const int W = cfg_.train.input_size.width, H = cfg_.train.input_size.height;
  const int w = image.rgb->width, h = image.rgb->height;
  const int vw = std::max(w, W), vh = std::max(h, H);
  const int64_t HW = static_cast<int64_t>(W) * H;
  struct Pos {
    int x, y;
  };
  std::vector<Pos> windows;
  for (int y : slide_positions(vh, H))
    for (int x : slide_positions(vw, W)) windows.push_back({x, y});

  std::vector<float> count(static_cast<size_t>(vw) * vh, 0.0f);
  for (const Pos& p : windows)
    for (int y = p.y; y < p.y + H; ++y)
      for (int x = p.x; x < p.x + W; ++x) count[static_cast<size_t>(y) * vw + x] += 1.0f;

  Tensor sem_acc, depth_acc;
  if (semantic()) sem_acc = zeros({1, cfg_.model.num_classes, vh, vw}, Options(device_));
  if (depth()) depth_acc = zeros({1, 1, vh, vw}, Options(device_));
  auto add_into = [](const Tensor& acc, const Tensor& part, const Pos& p, int64_t h_, int64_t w_) {
    const Tensor view = acc.narrow(2, p.y, h_).narrow(3, p.x, w_);
    ops::copy_(view, ops::add(view, part));
  };
  for (size_t start = 0; start < windows.size(); start += static_cast<size_t>(opt_.batch)) {
    const int64_t n = static_cast<int64_t>(std::min(windows.size() - start, static_cast<size_t>(opt_.batch)));
    Tensor rgb = empty({n, 3, H, W}), depth = empty({n, 1, H, W});
    for (int64_t k = 0; k < n; ++k) {
      const Pos& p = windows[start + static_cast<size_t>(k)];
      const Window win{vw, vh, p.x, p.y, W, H, false};
      normalize_rgb(resample_bilinear(*image.rgb, win), rgb.data<float>() + k * 3 * HW);
      depth_input(resample_nearest(*image.depth, win), depth_mean_, depth_std_, depth.data<float>() + k * HW);
    }
    const NetOutput o = forward(rgb.to(device_), depth.to(device_));
    const Tensor probs = o.semantic.defined() && !o.probabilities ? ops::softmax(o.semantic, 1) : o.semantic;
    for (int64_t k = 0; k < n; ++k) {
      const Pos& p = windows[start + static_cast<size_t>(k)];
      if (sem_acc.defined()) add_into(sem_acc, probs.narrow(0, k, 1), p, H, W);
      if (depth_acc.defined()) add_into(depth_acc, o.depth.narrow(0, k, 1), p, H, W);
    }
  }
  const Tensor counts = from_data(count.data(), {1, 1, vh, vw}, device_);
  Tensor sem = sem_acc.defined() ? ops::div(sem_acc, counts) : Tensor();
  Tensor dep = depth_acc.defined() ? ops::div(depth_acc, counts) : Tensor();
  return resize_prediction(sem, true, dep, cfg_.data.max_depth, w, h);
}

}  // namespace mtl::train
