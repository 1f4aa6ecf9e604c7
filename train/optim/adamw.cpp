#include "train/optim/adamw.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
#include <sstream>

#include "core/autograd.h"
#include "core/cuda_context.h"
#include "core/error.h"
#include "ops/shape.h"

namespace mtl::train {

namespace kc = kernels::cuda;

namespace {

Tensor host_bytes(const void* data, size_t nbytes) {
  Tensor t = empty({static_cast<int64_t>(nbytes)}, DType::u8);
  if (nbytes) std::memcpy(t.data_ptr(), data, nbytes);
  return t;
}

}  // namespace

AdamW::AdamW(std::vector<ParamGroup> groups, AdamWOptions opts) : groups_(std::move(groups)), opts_(opts) {
  MTL_CHECK(opts_.beta1 >= 0 && opts_.beta1 < 1, "AdamW: beta1 must be in [0, 1), got ", opts_.beta1);
  MTL_CHECK(opts_.beta2 >= 0 && opts_.beta2 < 1, "AdamW: beta2 must be in [0, 1), got ", opts_.beta2);
  MTL_CHECK(opts_.eps >= 0 && std::isfinite(opts_.eps), "AdamW: eps must be finite and >= 0, got ", opts_.eps);
  MTL_CHECK(opts_.max_grad_norm >= 0 && std::isfinite(opts_.max_grad_norm),
            "AdamW: max_grad_norm must be finite and >= 0 (0 = no clipping), got ", opts_.max_grad_norm);
  std::set<std::string> names;
  std::set<const void*> storages;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const ParamGroup& g = groups_[gi];
    MTL_CHECK(g.weight_decay >= 0 && std::isfinite(g.weight_decay), "AdamW: group '", g.name,
              "' has weight_decay ", g.weight_decay, "; it must be finite and >= 0");
    MTL_CHECK(g.lr_scale >= 0 && std::isfinite(g.lr_scale), "AdamW: group '", g.name, "' has lr_scale ", g.lr_scale,
              "; it must be finite and >= 0");
    for (const auto& [name, p] : g.params) {
      MTL_CHECK(p.defined(), "AdamW: parameter '", name, "' is undefined");
      MTL_CHECK(names.insert(name).second, "AdamW: parameter name '", name, "' appears twice");
      MTL_CHECK(is_floating(p.dtype()) && p.dtype() != DType::bf16, "AdamW: parameter '", name, "' is ",
                p.describe(), "; only F32 (and F64 on the cpu) are supported");
      MTL_CHECK(p.is_contiguous(), "AdamW: parameter '", name, "' (", p.describe(), ") is not contiguous");
      if (entries_.empty()) {
        device_ = p.device();
        dtype_ = p.dtype();
        MTL_CHECK(device_.is_cpu() || dtype_ == DType::f32, "AdamW: parameter '", name, "' is ", p.describe(),
                  "; CUDA parameters must be F32");
      }
      MTL_CHECK(p.device() == device_ && p.dtype() == dtype_, "AdamW: parameter '", name, "' is ", p.describe(),
                " but '", entries_.front().name, "' is ", entries_.front().param.describe(),
                "; all parameters must share device and dtype");
      MTL_CHECK(p.numel() == 0 || storages.insert(p.data_ptr()).second, "AdamW: parameter '", name,
                "' shares its memory with another parameter (listed twice?)");
      // The caller's handle itself, not a detached alias: gradients live on it.
      entries_.push_back(Entry{name, p, zeros(p.shape(), p.options()), zeros(p.shape(), p.options()), 0,
                               static_cast<int>(gi)});
    }
  }
  MTL_CHECK(!entries_.empty(), "AdamW: no parameters to optimise");
  norm_ = zeros({}, Options(dtype_, device_));
  if (device_.is_cuda()) build_cuda_tables();
}

void AdamW::build_cuda_tables() {
  std::vector<kc::AdamWTensor> tensors;
  std::vector<kc::AdamWChunk> chunks;
  Segment seg;
  auto close = [&](int64_t t_end) {
    seg.t1 = t_end;
    seg.c1 = static_cast<int64_t>(chunks.size());
    if (seg.t1 > seg.t0) segments_.push_back(seg);
    seg = Segment{};
    seg.t0 = t_end;
    seg.c0 = static_cast<int64_t>(chunks.size());
  };
  for (size_t i = 0; i < entries_.size(); ++i) {
    const Entry& e = entries_[i];
    const int64_t t = static_cast<int64_t>(i);
    if (t > seg.t0 && (e.group != seg.group || t - seg.t0 == kc::kAdamWMaxTensors)) close(t);
    seg.group = e.group;
    tensors.push_back({e.param.data<float>(), e.m.data<float>(), e.v.data<float>(), e.param.numel()});
    for (int64_t start = 0; start < e.param.numel(); start += kc::kAdamWChunk) {
      const int64_t len = std::min(kc::kAdamWChunk, e.param.numel() - start);
      chunks.push_back({static_cast<int32_t>(t - seg.t0), static_cast<int32_t>(len), start});
    }
  }
  close(static_cast<int64_t>(entries_.size()));
  // Chunk tensor indices are relative to their segment, so each launch gets the table from its
  // segment's first tensor on.
  num_chunks_ = static_cast<int64_t>(chunks.size());
  tensor_table_ = host_bytes(tensors.data(), tensors.size() * sizeof(kc::AdamWTensor)).to(device_);
  chunk_table_ = host_bytes(chunks.data(), chunks.size() * sizeof(kc::AdamWChunk)).to(device_);
  partials_ = zeros({std::max<int64_t>(num_chunks_, 1)}, Options(DType::f32, device_));
  scale_ = ones({}, Options(DType::f32, device_));
  grads_.assign(segments_.size(), kc::AdamWGrads{});
}

kernels::AdamWScalars AdamW::scalars(int group, double lr, int64_t step) const {
  const ParamGroup& g = groups_[static_cast<size_t>(group)];
  const double glr = lr * g.lr_scale;
  const double t = static_cast<double>(step);
  kernels::AdamWScalars s;
  s.decay = 1.0 - glr * g.weight_decay;
  s.beta1 = opts_.beta1;
  s.beta2 = opts_.beta2;
  s.eps = opts_.eps;
  s.step_size = glr / (1.0 - std::pow(opts_.beta1, t));
  s.bc2_sqrt = std::sqrt(1.0 - std::pow(opts_.beta2, t));
  return s;
}

void AdamW::check_grads() const {
  for (const Entry& e : entries_) {
    Tensor g = e.param.grad();
    if (!g.defined()) continue;
    MTL_CHECK(g.shape() == e.param.shape() && g.dtype() == e.param.dtype() && g.device() == e.param.device(),
              "AdamW: gradient of '", e.name, "' is ", g.describe(), " but the parameter is ", e.param.describe());
    MTL_CHECK(g.is_contiguous(), "AdamW: gradient of '", e.name, "' (", g.describe(), ") is not contiguous");
  }
}

Tensor AdamW::step(double lr) {
  MTL_CHECK(std::isfinite(lr) && lr >= 0, "AdamW: learning rate must be finite and >= 0, got ", lr);
  check_grads();
  if (device_.is_cuda())
    step_cuda(lr);
  else
    step_cpu(lr);
  return opts_.max_grad_norm > 0 ? norm_ : Tensor();
}

double AdamW::cpu_sum_squares() const {
  double total = 0.0;
  for (const Entry& e : entries_) {
    Tensor g = e.param.grad();
    if (!g.defined()) continue;
    if (dtype_ == DType::f64)
      total += kernels::cpu::sum_squares(g.data<double>(), g.numel());
    else
      total += kernels::cpu::sum_squares(g.data<float>(), g.numel());
  }
  return total;
}

void AdamW::step_cpu(double lr) {
  double scale = 1.0;
  if (opts_.max_grad_norm > 0) {
    const double norm = std::sqrt(cpu_sum_squares());
    norm_.set({}, norm);
    const double coef = opts_.max_grad_norm / (norm + 1e-6);
    scale = coef >= 1.0 ? 1.0 : coef;  // NaN stays NaN, as in PyTorch
  }
  for (Entry& e : entries_) {
    Tensor g = e.param.grad();
    if (!g.defined()) continue;
    ++e.step;
    const kernels::AdamWScalars s = scalars(e.group, lr, e.step);
    if (dtype_ == DType::f64)
      kernels::cpu::adamw(e.param.data<double>(), g.data<double>(), e.m.data<double>(), e.v.data<double>(),
                          e.param.numel(), s, scale);
    else
      kernels::cpu::adamw(e.param.data<float>(), g.data<float>(), e.m.data<float>(), e.v.data<float>(),
                          e.param.numel(), s, scale);
  }
}

// Gradients are reallocated by every backward pass, so their pointers are gathered per step;
// tensors without a gradient get null and are skipped by the kernels.
void AdamW::fill_cuda_grads() {
  for (size_t si = 0; si < segments_.size(); ++si) {
    const Segment& sg = segments_[si];
    for (int64_t t = sg.t0; t < sg.t1; ++t) {
      Tensor g = entries_[static_cast<size_t>(t)].param.grad();
      grads_[si].g[t - sg.t0] = g.defined() ? g.data<float>() : nullptr;
    }
  }
}

void AdamW::cuda_norm(float* norm, float* scale) {
  for (size_t si = 0; si < segments_.size(); ++si) {
    const Segment& sg = segments_[si];
    kc::adamw_sum_squares(chunk_table() + sg.c0, sg.c1 - sg.c0, grads_[si], partials_.data<float>() + sg.c0,
                          cuda::stream());
  }
  kc::adamw_clip_scale(partials_.data<float>(), num_chunks_, opts_.max_grad_norm, norm, scale, cuda::stream());
}

void AdamW::step_cuda(double lr) {
  fill_cuda_grads();
  const bool clip = opts_.max_grad_norm > 0;
  if (clip) cuda_norm(norm_.data<float>(), scale_.data<float>());

  const kc::AdamWTensor* tensors = tensor_table();
  const kc::AdamWChunk* chunks = chunk_table();
  const float* scale = clip ? scale_.data<float>() : nullptr;
  for (size_t si = 0; si < segments_.size(); ++si) {
    const Segment& sg = segments_[si];
    // Tensors skipped on earlier steps lag behind and need their own bias correction: one launch
    // per distinct step count, normally just one.
    std::vector<int64_t> counts;
    for (int64_t t = sg.t0; t < sg.t1; ++t) {
      if (!grads_[si].g[t - sg.t0]) continue;
      Entry& e = entries_[static_cast<size_t>(t)];
      ++e.step;
      if (std::find(counts.begin(), counts.end(), e.step) == counts.end()) counts.push_back(e.step);
    }
    for (int64_t count : counts) {
      const kc::AdamWGrads* grads = &grads_[si];
      if (counts.size() > 1) {
        for (int64_t t = sg.t0; t < sg.t1; ++t)
          masked_.g[t - sg.t0] = entries_[static_cast<size_t>(t)].step == count ? grads_[si].g[t - sg.t0] : nullptr;
        grads = &masked_;
      }
      kc::adamw_multi_tensor(tensors + sg.t0, chunks + sg.c0, sg.c1 - sg.c0, *grads, scalars(sg.group, lr, count),
                             scale, cuda::stream());
    }
  }
}

Tensor AdamW::grad_norm() {
  check_grads();
  if (device_.is_cpu()) return full({}, std::sqrt(cpu_sum_squares()), Options(dtype_, device_));
  fill_cuda_grads();
  Tensor out = empty({}, Options(DType::f32, device_));
  cuda_norm(out.data<float>(), nullptr);
  return out;
}

void AdamW::zero_grad() {
  for (Entry& e : entries_) e.param.zero_grad();
}

std::map<std::string, Tensor> AdamW::state_dict() const {
  std::map<std::string, Tensor> sd;
  for (const Entry& e : entries_) {
    sd[e.name + ".exp_avg"] = e.m.detach();
    sd[e.name + ".exp_avg_sq"] = e.v.detach();
    sd[e.name + ".step"] = full({}, static_cast<double>(e.step), DType::i64);
  }
  return sd;
}

void AdamW::load_state_dict(const std::map<std::string, Tensor>& sd, const std::string& source) {
  std::vector<std::string> problems;
  std::set<std::string> known;
  std::vector<int64_t> steps(entries_.size(), 0);
  for (size_t i = 0; i < entries_.size(); ++i) {
    const Entry& e = entries_[i];
    for (const char* suffix : {".exp_avg", ".exp_avg_sq"}) {
      const std::string key = e.name + suffix;
      known.insert(key);
      auto it = sd.find(key);
      if (it == sd.end()) {
        problems.push_back("missing: " + key);
      } else if (!it->second.defined() || !is_floating(it->second.dtype()) || it->second.shape() != e.param.shape()) {
        problems.push_back(key + ": " + source + " has " +
                           (it->second.defined() ? it->second.describe() : std::string("an undefined tensor")) +
                           ", expected a floating tensor of shape " + shape_str(e.param.shape()));
      }
    }
    const std::string key = e.name + ".step";
    known.insert(key);
    auto it = sd.find(key);
    if (it == sd.end()) {
      problems.push_back("missing: " + key);
    } else if (!it->second.defined() || it->second.numel() != 1) {
      problems.push_back(key + ": expected one element, " + source + " has " +
                         (it->second.defined() ? it->second.describe() : std::string("an undefined tensor")));
    } else {
      const double s = it->second.item();
      if (!(s >= 0 && s == std::floor(s) && s < 9.0e15))
        problems.push_back(key + ": step count " + std::to_string(s) + " is not a non-negative integer");
      else
        steps[i] = static_cast<int64_t>(s);
    }
  }
  for (const auto& [name, t] : sd)
    if (!known.count(name)) problems.push_back("unexpected: " + name);
  if (!problems.empty()) {
    std::ostringstream os;
    os << "loading " << source << " failed: it does not match the optimiser's parameters (" << problems.size()
       << " problems):";
    for (const auto& p : problems) os << "\n  " << p;
    throw Error(os.str());
  }
  autograd::NoGradGuard ng;
  for (size_t i = 0; i < entries_.size(); ++i) {
    Entry& e = entries_[i];
    for (auto [suffix, dst] : {std::pair<const char*, Tensor*>{".exp_avg", &e.m}, {".exp_avg_sq", &e.v}}) {
      Tensor src = ops::contiguous(sd.at(e.name + suffix).detach());
      if (src.data_ptr() == dst->data_ptr()) continue;  // our own state handed back
      // Casts run on the CPU, which handles every floating dtype.
      if (src.dtype() != dst->dtype()) src = ops::to(src.cpu(), dst->dtype());
      copy_bytes(*dst, src.to(dst->device()));
    }
    e.step = steps[i];
  }
}

int64_t AdamW::step_count(const std::string& param) const {
  for (const Entry& e : entries_)
    if (e.name == param) return e.step;
  throw Error("AdamW: no parameter named '" + param + "'");
}

int64_t AdamW::num_parameters() const {
  int64_t n = 0;
  for (const Entry& e : entries_) n += e.param.numel();
  return n;
}

}  // namespace mtl::train
