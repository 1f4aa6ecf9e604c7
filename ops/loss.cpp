#include "ops/loss.h"

#include <string>

#include "kernels/loss.h"
#include "ops/autograd_util.h"
#include "ops/dispatch.h"
#include "ops/labels.h"
#include "ops/shape.h"

namespace mtl::ops {

namespace {

// pred and target: one shape [N, *], float, same device and dtype.
void check_depth_args(const Tensor& pred, const Tensor& target, const char* op) {
  detail::check_defined(pred, op, "pred");
  detail::check_defined(target, op, "target");
  detail::check_float(pred, op);
  detail::check_same(pred, target, op);
  MTL_CHECK(pred.dim() >= 1 && pred.shape() == target.shape(), op,
            ": pred and target must have one shape [N, ...], got ", pred.describe(), " and ", target.describe());
}

DepthLossResult depth_loss(const Tensor& pred, const Tensor& target, const Tensor& sample_weights,
                           kernels::DepthLossParams p, const char* op, const char* node) {
  p.n = pred.size(0);
  p.hw = detail::trailing_numel(pred.shape(), 1);
  Tensor x = contiguous(pred.detach()), t = contiguous(target.detach());
  Tensor sw = detail::check_weights(sample_weights, p.n, pred, op, "sample_weights");
  Tensor loss = empty({}, pred.options()), per_sample = empty({p.n}, pred.options());
  Tensor stats = empty({p.n + 1, 3}, {DType::f64, pred.device()});
  if (pred.is_cuda()) {
    kernels::cuda::depth_loss_forward(loss.data<float>(), per_sample.data<float>(), stats.data<double>(),
                                      x.data<float>(), t.data<float>(), detail::data_or_null<float>(sw), p, cuda::stream());
  } else {
    detail::dispatch_cpu_float(pred, op, [&](auto z) {
      using T = decltype(z);
      kernels::cpu::depth_loss_forward<T>(loss.data<T>(), per_sample.data<T>(), stats.data<double>(), x.data<T>(),
                                          t.data<T>(), detail::data_or_null<T>(sw), p);
    });
  }
  record(node, {pred}, {loss, per_sample}, [x, t, sw, stats, p](const std::vector<Tensor>& g) {
    Tensor gl = contiguous(g[0]), gs = contiguous(g[1]);
    Tensor grad = empty(x.shape(), x.options());
    if (x.is_cuda()) {
      kernels::cuda::depth_loss_backward(grad.data<float>(), x.data<float>(), t.data<float>(), stats.data<double>(),
                                         detail::data_or_null<float>(sw), gl.data<float>(), gs.data<float>(), p, cuda::stream());
    } else {
      detail::dispatch_cpu_float(x, "depth loss backward", [&](auto z) {
        using T = decltype(z);
        kernels::cpu::depth_loss_backward<T>(grad.data<T>(), x.data<T>(), t.data<T>(), stats.data<double>(),
                                             detail::data_or_null<T>(sw), gl.data<T>(), gs.data<T>(), p);
      });
    }
    return std::vector<Tensor>{grad};
  });
  return {loss, per_sample};
}

}  // namespace

CrossEntropyResult cross_entropy(const Tensor& logits, const Tensor& labels, const CrossEntropyOptions& o) {
  const char* op = "cross_entropy";
  detail::check_defined(logits, op, "logits");
  detail::check_defined(labels, op, "labels");
  detail::check_float(logits, op);
  MTL_CHECK(logits.dim() >= 2, op, ": logits must be [N, C, ...], got ", logits.describe());
  MTL_CHECK(logits.size(1) >= 1, op, ": logits ", logits.describe(), " have no classes");
  detail::check_label_dtype(labels, op, "labels");
  Shape label_shape = logits.shape();
  label_shape.erase(label_shape.begin() + 1);
  MTL_CHECK(labels.shape() == label_shape && labels.device() == logits.device(), op, ": labels must be ",
            shape_str(label_shape), " on ", logits.device().str(), " to match logits ", logits.describe(), ", got ",
            labels.describe());
  kernels::CrossEntropyDims d;
  d.n = logits.size(0);
  d.c = logits.size(1);
  d.hw = detail::trailing_numel(logits.shape(), 2);
  d.ignore_index = o.ignore_index;
  Tensor cw = detail::check_weights(o.class_weights, d.c, logits, op, "class_weights");
  Tensor sw = detail::check_weights(o.sample_weights, d.n, logits, op, "sample_weights");
  Tensor x = contiguous(logits.detach()), y = contiguous(labels.detach());
  const kernels::Labels yv = detail::label_view(y);

  Tensor loss = empty({}, logits.options()), per_sample = empty({d.n}, logits.options());
  Tensor lse = empty({d.n * d.hw}, logits.options());
  Tensor stats = empty({d.n + 1, 2}, {DType::f64, logits.device()});
  Tensor bad = empty({1}, {DType::i64, logits.device()});
  if (logits.is_cuda()) {
    kernels::cuda::cross_entropy_forward(loss.data<float>(), per_sample.data<float>(), lse.data<float>(),
                                         stats.data<double>(), bad.data<int64_t>(), x.data<float>(), yv,
                                         detail::data_or_null<float>(cw), detail::data_or_null<float>(sw), d, cuda::stream());
  } else {
    detail::dispatch_cpu_float(logits, op, [&](auto z) {
      using T = decltype(z);
      kernels::cpu::cross_entropy_forward<T>(loss.data<T>(), per_sample.data<T>(), lse.data<T>(), stats.data<double>(),
                                             bad.data<int64_t>(), x.data<T>(), yv, detail::data_or_null<T>(cw),
                                             detail::data_or_null<T>(sw), d);
    });
  }
  if (o.check_labels) {
    const int64_t first_bad = bad.cpu().data<int64_t>()[0];  // the one host sync
    if (first_bad != kernels::kNoBadLabel)
      detail::throw_bad_label(op, "labels", y, first_bad, d.c, " nor ignore_index " + std::to_string(d.ignore_index));
  }

  record("CrossEntropyBackward", {logits}, {loss, per_sample},
         [x, y, yv, lse, stats, cw, sw, d](const std::vector<Tensor>& g) {
           Tensor gl = contiguous(g[0]), gs = contiguous(g[1]);
           Tensor grad = empty(x.shape(), x.options());
           if (x.is_cuda()) {
             kernels::cuda::cross_entropy_backward(grad.data<float>(), x.data<float>(), yv, lse.data<float>(),
                                                   stats.data<double>(), detail::data_or_null<float>(cw), detail::data_or_null<float>(sw),
                                                   gl.data<float>(), gs.data<float>(), d, cuda::stream());
           } else {
             detail::dispatch_cpu_float(x, "cross_entropy backward", [&](auto z) {
               using T = decltype(z);
               kernels::cpu::cross_entropy_backward<T>(grad.data<T>(), x.data<T>(), yv, lse.data<T>(),
                                                       stats.data<double>(), detail::data_or_null<T>(cw), detail::data_or_null<T>(sw),
                                                       gl.data<T>(), gs.data<T>(), d);
             });
           }
           return std::vector<Tensor>{grad};
         });
  return {loss, per_sample};
}

DepthLossResult silog_loss(const Tensor& pred, const Tensor& target, const SILogOptions& o) {
  const char* op = "silog_loss";
  check_depth_args(pred, target, op);
  MTL_CHECK(o.lambda >= 0 && o.lambda <= 1, op, ": lambda must be in [0, 1], got ", o.lambda);
  MTL_CHECK(o.min_pred > 0, op, ": min_pred must be > 0, got ", o.min_pred);
  kernels::DepthLossParams p;
  p.kind = kernels::DepthLossKind::silog;
  p.lambda = o.lambda;
  p.sqrt_scaled = o.sqrt_scaled;
  p.min_pred = o.min_pred;
  return depth_loss(pred, target, o.sample_weights, p, op, "SILogBackward");
}

DepthLossResult masked_l1_loss(const Tensor& pred, const Tensor& target, const MaskedL1Options& o) {
  const char* op = "masked_l1_loss";
  check_depth_args(pred, target, op);
  kernels::DepthLossParams p;
  p.kind = kernels::DepthLossKind::l1;
  return depth_loss(pred, target, o.sample_weights, p, op, "MaskedL1Backward");
}

}  // namespace mtl::ops
