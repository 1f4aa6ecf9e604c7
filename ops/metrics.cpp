#include "ops/metrics.h"

#include <cmath>
#include <limits>
#include <string>

#include "kernels/metrics.h"
#include "ops/dispatch.h"
#include "ops/labels.h"
#include "ops/shape.h"

namespace mtl::ops {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

}  // namespace

void accumulate_confusion(const Tensor& confusion, const Tensor& pred, const Tensor& target,
                          const ConfusionOptions& o) {
  const char* op = "confusion matrix";
  detail::check_defined(confusion, op, "confusion");
  detail::check_defined(pred, op, "pred");
  detail::check_defined(target, op, "target");
  detail::check_label_dtype(target, op, "target");
  MTL_CHECK(confusion.dim() == 2 && confusion.size(0) == confusion.size(1) && confusion.size(0) >= 1 &&
                confusion.dtype() == DType::i64 && confusion.is_contiguous(),
            op, ": confusion must be a contiguous I64 [C, C] tensor, got ", confusion.describe());
  MTL_CHECK(pred.device() == confusion.device() && target.device() == confusion.device(), op,
            ": pred, target and confusion must be on one device, got ", pred.describe(), ", ", target.describe(),
            " and ", confusion.describe());
  kernels::ConfusionDims d;
  d.c = confusion.size(0);
  d.ignore_index = o.ignore_index;
  const bool from_logits = is_floating(pred.dtype());
  if (from_logits) {
    detail::check_float(pred, op);
    Shape expect = target.shape();
    MTL_CHECK(target.dim() >= 1, op, ": target must be [N, ...], got ", target.describe());
    expect.insert(expect.begin() + 1, d.c);
    MTL_CHECK(pred.shape() == expect, op, ": logits must be ", shape_str(expect), " for target ", target.describe(),
              " and ", d.c, " classes, got ", pred.describe());
  } else {
    detail::check_label_dtype(pred, op, "pred");
    MTL_CHECK(pred.shape() == target.shape(), op, ": predicted labels ", pred.describe(), " and target ",
              target.describe(), " must have one shape");
  }
  d.n = target.dim() >= 1 ? target.size(0) : 1;
  d.hw = detail::trailing_numel(target.shape(), 1);
  Tensor y = contiguous(target.detach()), p = contiguous(pred.detach());
  Tensor bad = empty({1}, {DType::i64, confusion.device()});
  const kernels::Labels yv = detail::label_view(y);
  if (confusion.is_cuda()) {
    if (from_logits)
      kernels::cuda::confusion_from_logits(confusion.data<int64_t>(), bad.data<int64_t>(), p.data<float>(), yv, d,
                                           cuda::stream());
    else
      kernels::cuda::confusion_from_labels(confusion.data<int64_t>(), bad.data<int64_t>(), detail::label_view(p), yv, d,
                                           cuda::stream());
  } else if (from_logits) {
    detail::dispatch_cpu_float(p, op, [&](auto z) {
      using T = decltype(z);
      kernels::cpu::confusion_from_logits<T>(confusion.data<int64_t>(), bad.data<int64_t>(), p.data<T>(), yv, d);
    });
  } else {
    kernels::cpu::confusion_from_labels(confusion.data<int64_t>(), bad.data<int64_t>(), detail::label_view(p), yv, d);
  }
  if (!o.check_labels) return;
  const int64_t first_bad = bad.cpu().data<int64_t>()[0];  // the one host sync
  if (first_bad == kernels::kNoBadLabel) return;
  const int64_t t = detail::label_at(y, first_bad);
  if (t < 0 || t >= d.c)
    detail::throw_bad_label(op, "target", y, first_bad, d.c, " nor ignore_index " + std::to_string(d.ignore_index));
  detail::throw_bad_label(op, "predicted labels", p, first_bad, d.c, "");
}

Tensor confusion_matrix(const Tensor& pred, const Tensor& target, int64_t num_classes, const ConfusionOptions& o) {
  MTL_CHECK(num_classes >= 1, "confusion matrix: num_classes must be >= 1, got ", num_classes);
  detail::check_defined(pred, "confusion matrix", "pred");
  Tensor counts = zeros({num_classes, num_classes}, {DType::i64, pred.device()});
  accumulate_confusion(counts, pred, target, o);
  return counts;
}

SegmentationMetrics segmentation_metrics(const std::vector<int64_t>& confusion, int64_t num_classes) {
  MTL_CHECK(num_classes >= 0 && static_cast<int64_t>(confusion.size()) == num_classes * num_classes,
            "segmentation_metrics: ", confusion.size(), " counts for ", num_classes, " classes");
  const int64_t c = num_classes;
  SegmentationMetrics m;
  m.iou.resize(static_cast<size_t>(c));
  m.accuracy.resize(static_cast<size_t>(c));
  m.f1.resize(static_cast<size_t>(c));
  int64_t correct = 0, present = 0, labelled = 0;
  double iou_sum = 0, acc_sum = 0, f1_sum = 0;
  for (int64_t k = 0; k < c; ++k) {
    int64_t row = 0, col = 0;  // pixels of class k in the target, in the prediction
    for (int64_t j = 0; j < c; ++j) row += confusion[k * c + j], col += confusion[j * c + k];
    const int64_t tp = confusion[k * c + k], uni = row + col - tp;
    correct += tp;
    m.pixels += row;
    if (uni > 0) {
      m.iou[k] = static_cast<double>(tp) / static_cast<double>(uni);
      m.f1[k] = 2.0 * static_cast<double>(tp) / static_cast<double>(row + col);
      iou_sum += *m.iou[k];
      f1_sum += *m.f1[k];
      ++present;
    }
    if (row > 0) {
      m.accuracy[k] = static_cast<double>(tp) / static_cast<double>(row);
      acc_sum += *m.accuracy[k];
      ++labelled;
    }
  }
  m.miou = present ? iou_sum / static_cast<double>(present) : kNaN;
  m.mean_f1 = present ? f1_sum / static_cast<double>(present) : kNaN;
  m.mean_accuracy = labelled ? acc_sum / static_cast<double>(labelled) : kNaN;
  m.pixel_accuracy = m.pixels ? static_cast<double>(correct) / static_cast<double>(m.pixels) : kNaN;
  return m;
}

SegmentationMetrics segmentation_metrics(const Tensor& confusion) {
  MTL_CHECK(confusion.defined() && confusion.dim() == 2 && confusion.size(0) == confusion.size(1) &&
                confusion.dtype() == DType::i64,
            "segmentation_metrics: confusion must be I64 [C, C], got ",
            confusion.defined() ? confusion.describe() : std::string("an undefined tensor"));
  Tensor host = contiguous(confusion.detach()).cpu();
  const int64_t* p = host.data<int64_t>();
  return segmentation_metrics(std::vector<int64_t>(p, p + host.numel()), confusion.size(0));
}

ConfusionMatrix::ConfusionMatrix(int64_t num_classes, Device device, ConfusionOptions o) : opts_(o) {
  MTL_CHECK(num_classes >= 1, "ConfusionMatrix: num_classes must be >= 1, got ", num_classes);
  counts_ = zeros({num_classes, num_classes}, {DType::i64, device});
}

void ConfusionMatrix::reset() { counts_ = zeros(counts_.shape(), counts_.options()); }

DepthMetricState DepthMetricState::zeros(Device device) {
  return {mtl::zeros({kernels::kNumDepthSums}, {DType::f64, device}),
          mtl::zeros({kernels::kNumDepthCounts}, {DType::i64, device})};
}

void accumulate_depth_metrics(DepthMetricState& state, const Tensor& pred, const Tensor& target,
                              const DepthMetricOptions& o) {
  const char* op = "depth metrics";
  detail::check_defined(pred, op, "pred");
  detail::check_defined(target, op, "target");
  detail::check_float(pred, op);
  detail::check_same(pred, target, op);
  MTL_CHECK(pred.shape() == target.shape(), op, ": pred ", pred.describe(), " and target ", target.describe(),
            " must have one shape");
  MTL_CHECK(o.min_pred > 0, op, ": min_pred must be > 0, got ", o.min_pred);
  MTL_CHECK(state.sums.defined() && state.counts.defined() && state.sums.shape() == Shape{kernels::kNumDepthSums} &&
                state.sums.dtype() == DType::f64 && state.counts.shape() == Shape{kernels::kNumDepthCounts} &&
                state.counts.dtype() == DType::i64 && state.sums.device() == pred.device() &&
                state.counts.device() == pred.device(),
            op, ": the state must come from DepthMetricState::zeros(", pred.device().str(), ")");
  Tensor x = contiguous(pred.detach()), t = contiguous(target.detach());
  if (pred.is_cuda()) {
    kernels::cuda::depth_metrics_accumulate(state.sums.data<double>(), state.counts.data<int64_t>(), x.data<float>(),
                                            t.data<float>(), x.numel(), o.min_pred, cuda::stream());
  } else {
    detail::dispatch_cpu_float(pred, op, [&](auto z) {
      using T = decltype(z);
      kernels::cpu::depth_metrics_accumulate<T>(state.sums.data<double>(), state.counts.data<int64_t>(), x.data<T>(),
                                                t.data<T>(), x.numel(), o.min_pred);
    });
  }
}

std::vector<std::pair<std::string, double>> named_values(const DepthMetrics& d) {
  return {{"abs_rel", d.abs_rel}, {"sq_rel", d.sq_rel}, {"rmse", d.rmse},    {"rmse_log", d.rmse_log},
          {"delta1", d.delta1},   {"delta2", d.delta2}, {"delta3", d.delta3}};
}

DepthMetrics depth_metrics(const std::array<double, 4>& sums, const std::array<int64_t, 4>& counts) {
  DepthMetrics m;
  m.pixels = counts[kernels::kValid];
  const double n = static_cast<double>(m.pixels);
  if (m.pixels == 0) {
    m.abs_rel = m.sq_rel = m.rmse = m.rmse_log = m.delta1 = m.delta2 = m.delta3 = kNaN;
    return m;
  }
  m.abs_rel = sums[kernels::kAbsRel] / n;
  m.sq_rel = sums[kernels::kSqRel] / n;
  m.rmse = std::sqrt(sums[kernels::kSqErr] / n);
  m.rmse_log = std::sqrt(sums[kernels::kSqLogErr] / n);
  m.delta1 = static_cast<double>(counts[kernels::kDelta1]) / n;
  m.delta2 = static_cast<double>(counts[kernels::kDelta2]) / n;
  m.delta3 = static_cast<double>(counts[kernels::kDelta3]) / n;
  return m;
}

DepthMetrics depth_metrics(const DepthMetricState& state) {
  Tensor s = state.sums.cpu(), c = state.counts.cpu();
  std::array<double, 4> sums;
  std::array<int64_t, 4> counts;
  for (int i = 0; i < 4; ++i) sums[i] = s.data<double>()[i], counts[i] = c.data<int64_t>()[i];
  return depth_metrics(sums, counts);
}

DepthMetricAccumulator::DepthMetricAccumulator(Device device, DepthMetricOptions o)
    : state_(DepthMetricState::zeros(device)), opts_(o) {}

}  // namespace mtl::ops
