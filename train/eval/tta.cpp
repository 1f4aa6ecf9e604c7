#include "train/eval/tta.h"

#include <algorithm>
#include <cmath>

#include "core/autograd.h"
#include "core/error.h"
#include "ops/ops.h"

namespace mtl::train {

namespace {

int64_t scaled_side(double scale, int64_t side) {
  return std::max<int64_t>(32, std::llround(scale * static_cast<double>(side) / 32.0) * 32);
}

}  // namespace

std::vector<TtaView> tta_views(const TtaOptions& o, int64_t height, int64_t width) {
  const bool flip = o.tta == Tta::flip || o.tta == Tta::multiscale_flip;
  const bool scaled = o.tta == Tta::multiscale || o.tta == Tta::multiscale_flip;
  std::vector<TtaView> sizes;
  if (scaled) {
    MTL_CHECK(!o.scales.empty(), "multiscale test-time augmentation needs at least one scale");
    for (double s : o.scales) {
      MTL_CHECK(std::isfinite(s) && s > 0, "test-time augmentation: scale ", s, " is not a positive number");
      sizes.push_back({scaled_side(s, height), scaled_side(s, width), false});
    }
    // The unaugmented view (a scale of 1) first, so that `first` is the plain prediction.
    std::stable_partition(sizes.begin(), sizes.end(),
                          [&](const TtaView& v) { return v.height == height && v.width == width; });
  } else {
    sizes.push_back({height, width, false});
  }
  std::vector<TtaView> views;
  for (const TtaView& v : sizes) {
    views.push_back(v);
    if (flip) views.push_back({v.height, v.width, true});
  }
  return views;
}

NetOutput tta_forward(const std::vector<models::ESANet*>& models, const Tensor& rgb, const Tensor& depth,
                      const TtaOptions& o, models::ESANetOutput* first) {
  autograd::NoGradGuard no_grad;
  MTL_CHECK(!models.empty(), "test-time augmentation needs at least one model");
  const int64_t H = rgb.size(2), W = rgb.size(3);
  const std::vector<TtaView> views = tta_views(o, H, W);
  NetOutput r;
  if (models.size() == 1 && views.size() == 1 && !views[0].flip && views[0].height == H && views[0].width == W) {
    models::ESANetOutput out = models.front()->forward(rgb, depth);
    r.semantic = out.semantic;
    r.depth = out.depth;
    if (first) *first = std::move(out);
    return r;
  }
  Tensor sem_sum, depth_sum;
  auto back = [&](Tensor t, const TtaView& v) {  // to the input's view and size
    if (v.flip) t = ops::flip(t, {-1});
    if (v.height != H || v.width != W) t = ops::interpolate_bilinear(t, H, W);
    return t;
  };
  auto add = [](Tensor& sum, const Tensor& t) { sum = sum.defined() ? ops::add(sum, t) : t; };
  for (const TtaView& v : views) {
    Tensor rv = rgb, dv = depth;
    if (v.height != H || v.width != W) {
      rv = ops::interpolate_bilinear(rv, v.height, v.width);
      dv = ops::interpolate_nearest(dv, v.height, v.width);
    }
    if (v.flip) {
      rv = ops::flip(rv, {-1});
      dv = ops::flip(dv, {-1});
    }
    for (models::ESANet* m : models) {
      models::ESANetOutput out = m->forward(rv, dv);
      if (out.semantic.defined()) add(sem_sum, back(ops::softmax(out.semantic, 1), v));
      if (out.depth.defined()) add(depth_sum, back(out.depth, v));
      if (first && &v == &views.front() && m == models.front()) *first = std::move(out);
    }
  }
  const double inv = 1.0 / static_cast<double>(views.size() * models.size());
  if (sem_sum.defined()) r.semantic = ops::mul_scalar(sem_sum, inv);
  if (depth_sum.defined()) r.depth = ops::mul_scalar(depth_sum, inv);
  r.probabilities = true;
  return r;
}

}  // namespace mtl::train
