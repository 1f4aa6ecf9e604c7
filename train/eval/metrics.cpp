#include "train/eval/metrics.h"

#include "core/error.h"

namespace mtl::train {

MetricsAccumulator::MetricsAccumulator(const Config& cfg, Device device, bool check_labels) : device_(device) {
  if (cfg.model.has_task(Task::semantic)) {
    ops::ConfusionOptions co;
    co.ignore_index = cfg.data.ignore_index;
    co.check_labels = check_labels;
    confusion_.emplace(cfg.model.num_classes, device, co);
  }
  if (cfg.model.has_task(Task::depth)) depth_.emplace(device);
}

void MetricsAccumulator::reset() {
  if (confusion_) confusion_->reset();
  if (depth_) depth_->reset();
}

void MetricsAccumulator::update(const Tensor& semantic, const Tensor& labels, const Tensor& depth,
                                const Tensor& depth_gt) {
  if (confusion_ && labels.defined()) {
    MTL_CHECK(semantic.defined(), "the prediction has no semantic output to compare with the labels");
    MTL_CHECK(semantic.dim() == 4 && labels.dim() == 3 && semantic.size(2) == labels.size(1) &&
                  semantic.size(3) == labels.size(2),
              "the semantic prediction ", semantic.describe(), " does not have the labels' size ", labels.size(-1),
              "x", labels.size(-2));
    confusion_->update(semantic, labels);
  }
  if (depth_ && depth_gt.defined()) {
    MTL_CHECK(depth.defined(), "the prediction has no depth output to compare with the depth map");
    MTL_CHECK(depth.shape() == depth_gt.shape(), "the depth prediction ", depth.describe(),
              " does not have the depth map's size ", depth_gt.size(-1), "x", depth_gt.size(-2));
    depth_->update(depth, depth_gt);
  }
}

void MetricsAccumulator::update_image(const Tensor& semantic, const ImageI32& labels, const Tensor& depth,
                                      const ImageF& depth_gt) {
  const Tensor l = labels.empty() ? Tensor() : from_data(labels.data.data(), {1, labels.height, labels.width}, device_);
  const Tensor d =
      depth_gt.empty() ? Tensor() : from_data(depth_gt.data.data(), {1, 1, depth_gt.height, depth_gt.width}, device_);
  update(semantic, l, depth, d);
}

void MetricsAccumulator::all_reduce(Communicator& comm) {
  if (confusion_) comm.all_reduce(confusion_->counts(), ReduceOp::sum, "the confusion matrix");
  if (depth_) {
    comm.all_reduce(depth_->state().sums, ReduceOp::sum, "the depth error sums");
    comm.all_reduce(depth_->state().counts, ReduceOp::sum, "the depth pixel counts");
  }
}

EvalMetrics MetricsAccumulator::compute() const {
  EvalMetrics m;
  if (confusion_) m.segmentation = confusion_->compute();
  if (depth_) m.depth = depth_->compute();
  return m;
}

}  // namespace mtl::train
