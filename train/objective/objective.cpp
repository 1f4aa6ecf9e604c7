#include "train/objective/objective.h"

#include "core/error.h"
#include "ops/ops.h"

namespace mtl::train {

Objective::Objective(const Config& cfg, const std::vector<double>& class_weights, Device device) : cfg_(cfg) {
  if (!class_weights.empty())
    class_weights_ =
        from_vector(class_weights, {static_cast<int64_t>(class_weights.size())}, Options(DType::f32, device));
}

std::vector<std::string> Objective::tasks() const {
  std::vector<std::string> t;
  if (cfg_.model.has_task(Task::semantic)) t.push_back("semantic");
  if (cfg_.model.has_task(Task::depth)) t.push_back("depth");
  return t;
}

TaskLosses Objective::compute(const models::ESANetOutput& out, const Batch& batch) const {
  TaskLosses r;
  // loss.source_weighting: normalized lets each op weigh the sources' pixels (sum w L / sum w);
  // mean takes the ops' unweighted per-image losses and averages w_i L_i over the images.
  const bool mean = cfg_.loss.source_weighting == SourceWeighting::mean;
  const Tensor op_weights = mean ? Tensor() : batch.sample_weight;
  auto reduce = [&](const ops::LossResult& l) {
    return mean ? ops::mean(ops::mul(l.per_sample, batch.sample_weight)) : l.loss;
  };
  if (out.semantic.defined()) {
    MTL_CHECK(batch.labels.defined(), "the semantic task needs masks, but the batch has none");
    ops::CrossEntropyOptions o;
    o.class_weights = class_weights_;
    o.sample_weights = op_weights;
    o.ignore_index = cfg_.data.ignore_index;
    // Labels were validated by the data set scan; checking again would cost a host sync per call.
    o.check_labels = false;
    ops::CrossEntropyResult full = ops::cross_entropy(out.semantic, batch.labels, o);
    Tensor loss = reduce(full);
    if (cfg_.loss.deep_supervision && !out.side.empty()) {
      MTL_CHECK(batch.label_scales.size() == out.side.size(), "deep supervision needs ", out.side.size(),
                " label scales, the batch has ", batch.label_scales.size());
      r.parts["semantic/main"] = loss.detach();
      for (size_t i = 0; i < out.side.size(); ++i) {
        const Tensor side = reduce(ops::cross_entropy(out.side[i], batch.label_scales[i], o));
        const int64_t factor = out.semantic.size(2) / out.side[i].size(2);
        r.parts["semantic/side_" + std::to_string(factor)] = side.detach();
        loss = ops::add(loss, side);
      }
    }
    r.task["semantic"] = loss;
    r.per_sample["semantic"] = full.per_sample.detach();
  }
  if (out.depth.defined()) {
    ops::DepthLossResult d;
    if (cfg_.loss.depth == DepthLoss::silog) {
      ops::SILogOptions o;
      o.lambda = cfg_.loss.silog_lambda;
      o.sample_weights = op_weights;
      d = ops::silog_loss(out.depth, batch.depth_target, o);
    } else {
      ops::MaskedL1Options o;
      o.sample_weights = op_weights;
      d = ops::masked_l1_loss(out.depth, batch.depth_target, o);
    }
    r.task["depth"] = reduce(d);
    r.per_sample["depth"] = d.per_sample.detach();
  }
  return r;
}

}  // namespace mtl::train
