#include "train/dist/gradient_sync.h"

#include <cuda_runtime.h>

#include <cstring>

#include "core/cuda_check.h"
#include "core/cuda_context.h"
#include "core/error.h"

namespace mtl::train {

namespace {

// The elements [offset, offset + n) of a flat bucket, shaped like `like`.
Tensor slice_as(const Bucket& b, size_t k, const Tensor& like) {
  return b.flat.narrow(0, b.offsets[k], like.numel()).view(like.shape());
}

void fill_zeros(const Tensor& t) {
  if (t.nbytes() == 0) return;
  if (t.is_cuda())
    MTL_CUDA_CHECK(cudaMemsetAsync(t.data_ptr(), 0, t.nbytes(), cuda::stream()));
  else
    std::memset(t.data_ptr(), 0, t.nbytes());
}

std::string bucket_name(const std::string& what, size_t i, size_t n, const Bucket& b) {
  return what + " (bucket " + std::to_string(i + 1) + " of " + std::to_string(n) + ", " +
         std::to_string(b.flat.nbytes()) + " bytes)";
}

}  // namespace

std::vector<Bucket> make_buckets(const NamedTensors& tensors, int64_t bucket_bytes) {
  MTL_CHECK(bucket_bytes > 0, "gradient buckets need a positive size, got ", bucket_bytes, " bytes");
  std::vector<Bucket> out;
  std::vector<int64_t> numel;  // of each bucket so far
  auto fits = [&](const Tensor& t) {
    if (out.empty()) return false;
    const Bucket& b = out.back();
    const Tensor& first = tensors[b.members.front()].second;
    return first.dtype() == t.dtype() && first.device() == t.device() &&
           static_cast<int64_t>((numel.back() + t.numel()) * dtype_size(t.dtype())) <= bucket_bytes;
  };
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i].second;
    MTL_CHECK(t.defined() && t.is_contiguous(), "bucketing: '", tensors[i].first, "' is ",
              t.defined() ? t.describe() : std::string("undefined"), "; it must be a contiguous tensor");
    if (!fits(t)) {
      out.emplace_back();
      numel.push_back(0);
    }
    out.back().members.push_back(i);
    out.back().offsets.push_back(numel.back());
    numel.back() += t.numel();
  }
  for (size_t b = 0; b < out.size(); ++b) {
    const Tensor& first = tensors[out[b].members.front()].second;
    out[b].flat = empty({numel[b]}, first.options());
  }
  return out;
}

namespace {

void broadcast_packed(const NamedTensors& tensors, const std::vector<Bucket>& buckets, Communicator& comm, int root,
                      const std::string& what) {
  for (size_t i = 0; i < buckets.size(); ++i) {
    const Bucket& b = buckets[i];
    for (size_t k = 0; k < b.members.size(); ++k) {
      const Tensor& t = tensors[b.members[k]].second;
      copy_bytes(slice_as(b, k, t), t);
    }
    comm.broadcast(b.flat, root, bucket_name(what, i, buckets.size(), b));
    for (size_t k = 0; k < b.members.size(); ++k) {
      const Tensor& t = tensors[b.members[k]].second;
      copy_bytes(t, slice_as(b, k, t));
    }
  }
}

}  // namespace

void broadcast_tensors(const NamedTensors& tensors, Communicator& comm, int root, const std::string& what,
                       int64_t bucket_bytes) {
  broadcast_packed(tensors, make_buckets(tensors, bucket_bytes), comm, root, what);
}

GradientSync::GradientSync(const NamedTensors& params, NamedTensors buffers, std::shared_ptr<Communicator> comm,
                           int64_t bucket_bytes)
    : buffers_(std::move(buffers)), comm_(std::move(comm)) {
  MTL_CHECK(comm_, "GradientSync needs a communicator");
  for (auto it = params.rbegin(); it != params.rend(); ++it)
    if (it->second.requires_grad()) params_.push_back(*it);
  buckets_ = make_buckets(params_, bucket_bytes);
  buffer_buckets_ = make_buckets(buffers_, bucket_bytes);
}

void GradientSync::synchronize() {
  for (size_t i = 0; i < buckets_.size(); ++i) {
    const Bucket& b = buckets_[i];
    for (size_t k = 0; k < b.members.size(); ++k) {
      const auto& [name, p] = params_[b.members[k]];
      const Tensor g = p.grad();
      const Tensor slot = slice_as(b, k, p);
      if (!g.defined()) {
        fill_zeros(slot);
        continue;
      }
      MTL_CHECK(g.is_contiguous() && g.shape() == p.shape() && g.dtype() == p.dtype(), "the gradient of '", name,
                "' is ", g.describe(), " for the parameter ", p.describe());
      copy_bytes(slot, g);
    }
    comm_->all_reduce(b.flat, ReduceOp::average, bucket_name("the gradients", i, buckets_.size(), b));
    for (size_t k = 0; k < b.members.size(); ++k) {
      Tensor p = params_[b.members[k]].second;
      const Tensor slot = slice_as(b, k, p);
      const Tensor g = p.grad();
      // In place where the gradient exists (the backward pass made it, nothing else holds it).
      if (g.defined())
        copy_bytes(g, slot);
      else
        p.set_grad(slot.clone());
    }
  }
  broadcast_packed(buffers_, buffer_buckets_, *comm_, 0, "the buffers");
}

}  // namespace mtl::train
