#include "train/data/loader.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>

#include "core/cuda_check.h"
#include "core/cuda_context.h"
#include "core/error.h"
#include "core/generator.h"

namespace mtl::train {

LoaderOptions LoaderOptions::training(const Config& cfg, Device device) {
  LoaderOptions o;
  o.batch_size = cfg.train.batch_size;
  o.shuffle = true;
  o.drop_last = cfg.train.drop_last;
  o.augment = AugmentConfig::training(cfg);
  o.seed = cfg.runtime.seed;
  o.workers = cfg.runtime.workers;
  o.device = device;
  if (cfg.loss.deep_supervision && cfg.model.has_task(Task::semantic)) o.label_factors = {8, 16, 32};
  if (!cfg.data.batch_mix.empty()) {
    const std::vector<DataSource> sources = cfg.data.resolved_sources();
    o.source_mix.assign(sources.size(), 0);
    for (const auto& [name, count] : cfg.data.batch_mix)
      for (size_t s = 0; s < sources.size(); ++s)
        if (sources[s].name == name) o.source_mix[s] = count;
  }
  return o;
}

LoaderOptions LoaderOptions::evaluation(const Config& cfg, Device device) {
  LoaderOptions o;
  o.batch_size = cfg.eval.batch_size;
  o.augment = AugmentConfig::evaluation(cfg);
  o.seed = cfg.runtime.seed;
  o.workers = cfg.runtime.workers;
  o.device = device;
  o.depth_metres = true;
  return o;
}

// Uploads go through page-locked buffers so that cudaMemcpyAsync really is asynchronous. Two
// slots alternate; a slot is reused only after the event recorded behind its last copies fired.
struct Loader::Staging {
  struct Slot {
    void* host = nullptr;
    size_t capacity = 0;
    cudaEvent_t done = nullptr;
  };
  std::array<Slot, 2> slots;
  int next = 0;

  ~Staging() {
    for (Slot& s : slots) {
      if (s.done) {
        cudaEventSynchronize(s.done);
        cudaEventDestroy(s.done);
      }
      if (s.host) cudaFreeHost(s.host);
    }
  }

  void upload(const std::vector<Tensor*>& tensors, Device device) {
    auto align = [](size_t n) { return (n + 255) / 256 * 256; };
    size_t total = 0;
    for (const Tensor* t : tensors) total += align(t->nbytes());
    Slot& s = slots[next];
    next = (next + 1) % static_cast<int>(slots.size());
    if (!s.done) MTL_CUDA_CHECK(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming));
    else MTL_CUDA_CHECK(cudaEventSynchronize(s.done));
    if (s.capacity < total) {
      if (s.host) MTL_CUDA_CHECK(cudaFreeHost(s.host));
      s.host = nullptr;
      s.capacity = 0;
      MTL_CUDA_CHECK(cudaHostAlloc(&s.host, total, cudaHostAllocDefault));
      s.capacity = total;
    }
    size_t off = 0;
    for (Tensor* t : tensors) {
      char* h = static_cast<char*>(s.host) + off;
      std::memcpy(h, t->data_ptr(), t->nbytes());
      Tensor d = empty(t->shape(), Options(t->dtype(), device));
      MTL_CUDA_CHECK(cudaMemcpyAsync(d.data_ptr(), h, t->nbytes(), cudaMemcpyHostToDevice, cuda::stream()));
      *t = d;
      off += align(t->nbytes());
    }
    MTL_CUDA_CHECK(cudaEventRecord(s.done, cuda::stream()));
  }
};

Loader::Loader(Dataset dataset, DatasetStats stats, LoaderOptions options)
    : dataset_(std::move(dataset)), stats_(std::move(stats)), opt_(std::move(options)) {
  const int64_t n = static_cast<int64_t>(dataset_.size());
  MTL_CHECK(opt_.batch_size >= 1, "batch size ", opt_.batch_size, " must be at least 1");
  MTL_CHECK(opt_.workers >= 0, "loader workers ", opt_.workers, " must be >= 0");
  for (int f : opt_.label_factors) MTL_CHECK(f >= 1, "label downsampling factor ", f, " must be >= 1");
  MTL_CHECK(stats_.depth_std > 0, "depth standard deviation ", stats_.depth_std, " must be positive");
  MTL_CHECK(opt_.world_size >= 1 && opt_.rank >= 0 && opt_.rank < opt_.world_size, "loader: rank ", opt_.rank, " of ",
            opt_.world_size, " processes");
  const bool dist = opt_.world_size > 1;
  const std::string of_world = dist ? " x " + std::to_string(opt_.world_size) + " processes" : "";
  if (opt_.source_mix.empty()) {
    samples_ = n;
    batches_ = batches_after(0);
    MTL_CHECK(batches_ > 0 || (dist && !opt_.lockstep && n > 0), "the ", dataset_.index().split, " split has ", n,
              " samples, fewer than one ", dist ? "global batch of " : "batch of ", opt_.batch_size, of_world,
              opt_.drop_last ? " (train.drop_last is on)" : "");
  } else {
    const auto& sources = dataset_.index().sources;
    MTL_CHECK(opt_.source_mix.size() == sources.size(), "the batch mix gives ", opt_.source_mix.size(),
              " shares for ", sources.size(), " sources");
    int total = 0;
    blocks_ = std::numeric_limits<int64_t>::max();
    for (size_t s = 0; s < sources.size(); ++s) {
      const int k = opt_.source_mix[s];
      MTL_CHECK(k >= 1, "data.batch_mix: source '", sources[s].name, "' needs a share of at least 1, got ", k);
      total += k;
      blocks_ = std::min(blocks_, static_cast<int64_t>(source_members(static_cast<int>(s)).size()) / k);
    }
    MTL_CHECK(total == opt_.batch_size, "data.batch_mix sums to ", total, " samples, but the batch size is ",
              opt_.batch_size);
    samples_ = blocks_ * opt_.batch_size;
    batches_ = batches_after(0);
    MTL_CHECK(batches_ > 0, "data.batch_mix: a source of the ", dataset_.index().split,
              " split has fewer samples than its share of one ", dist ? "global batch" : "batch", of_world);
  }
  if (opt_.prefetch <= 0) opt_.prefetch = std::max(2, 2 * opt_.workers);
  if (opt_.device.is_cuda()) {
    cuda::require();
    staging_ = std::make_unique<Staging>();
  }
  order_ = order(0);
  epoch_batches_ = batches_;
}

Loader::~Loader() { stop_workers(); }

namespace {

// Fisher-Yates with its own generator, so that every shuffle is a function of (seed, epoch, list).
void shuffle(std::vector<int64_t>& o, uint64_t seed) {
  Generator gen(seed);
  for (int64_t i = static_cast<int64_t>(o.size()) - 1; i > 0; --i) {
    const int64_t j = static_cast<int64_t>(gen.next_u64() % static_cast<uint64_t>(i + 1));
    std::swap(o[i], o[j]);
  }
}

}  // namespace

std::vector<int64_t> Loader::source_members(int source) const {
  std::vector<int64_t> out;
  const auto& samples = dataset_.index().samples;
  for (size_t i = 0; i < samples.size(); ++i)
    if (samples[i].source == source) out.push_back(static_cast<int64_t>(i));
  return out;
}

std::vector<int64_t> Loader::order(int64_t epoch) const {
  const int64_t n = static_cast<int64_t>(dataset_.size());
  constexpr uint64_t kShuffle = 0x73687566ull;
  if (opt_.source_mix.empty()) {
    std::vector<int64_t> o(n);
    for (int64_t i = 0; i < n; ++i) o[i] = i;
    if (opt_.shuffle) shuffle(o, mix_seed(opt_.seed, epoch, 0, kShuffle));
    return o;
  }
  // Batch b holds share k_s of source s's (shuffled) list at [b * k_s, (b + 1) * k_s), sources in order.
  std::vector<std::vector<int64_t>> lists;
  for (size_t s = 0; s < opt_.source_mix.size(); ++s) {
    lists.push_back(source_members(static_cast<int>(s)));
    if (opt_.shuffle) shuffle(lists.back(), mix_seed(opt_.seed, epoch, static_cast<int64_t>(s) + 1, kShuffle));
  }
  std::vector<int64_t> o;
  o.reserve(static_cast<size_t>(samples_));
  for (int64_t b = 0; b < blocks_; ++b)
    for (size_t s = 0; s < lists.size(); ++s) {
      const int64_t k = opt_.source_mix[s];
      o.insert(o.end(), lists[s].begin() + b * k, lists[s].begin() + (b + 1) * k);
    }
  return o;
}

Batch Loader::make_batch(int64_t epoch, int64_t batch) const { return make_batch_from(order(epoch), epoch, batch, 0); }

int64_t Loader::batches_after(int64_t offset) const {
  const int64_t ranks = opt_.world_size, g = global_batch();
  const int64_t left = std::max<int64_t>(samples_ - offset, 0), full = left / g, m = left % g;
  if (m == 0 || opt_.drop_last || !opt_.source_mix.empty()) return full;
  if (ranks == 1) return full + 1;
  if (opt_.lockstep) return full + (m >= ranks ? 1 : 0);
  const Share last = share(full, offset);
  return full + (last.end > last.first ? 1 : 0);
}

Loader::Share Loader::share(int64_t batch, int64_t offset) const {
  const int64_t ranks = opt_.world_size, r = opt_.rank, b = opt_.batch_size, g = global_batch();
  const int64_t first = offset + batch * g, left = samples_ - first;
  if (left >= g) return {first + r * b, first + (r + 1) * b, g};
  return {first + r * left / ranks, first + (r + 1) * left / ranks, left};
}

Batch Loader::make_batch_from(const std::vector<int64_t>& ord, int64_t epoch, int64_t batch, int64_t offset) const {
  const int64_t batches = batches_after(offset);
  MTL_CHECK(batch >= 0 && batch < batches, "batch ", batch, " out of range: an epoch has ", batches, " batches");
  const Share sh = share(batch, offset);
  const int64_t first = sh.first, B = sh.end - sh.first;
  const int64_t H = opt_.augment.input.height, W = opt_.augment.input.width, HW = H * W;
  const bool masks = dataset_.index().has_masks;
  Batch b;
  b.epoch = epoch;
  b.index = batch;
  b.global_size = sh.global;
  b.rgb = empty({B, 3, H, W});
  b.depth = empty({B, 1, H, W});
  b.depth_target = empty({B, 1, H, W});
  if (opt_.depth_metres) b.depth_metres = empty({B, 1, H, W});
  if (masks) {
    b.labels = empty({B, H, W}, DType::i32);
    for (int f : opt_.label_factors) b.label_scales.push_back(empty({B, (H + f - 1) / f, (W + f - 1) / f}, DType::i32));
  }
  b.sample_weight = empty({B});
  b.source = empty({B}, DType::i32);
  const double max_depth = dataset_.data().max_depth;
  for (int64_t k = 0; k < B; ++k) {
    const int64_t idx = ord[first + k];
    const Sample s = dataset_.load(static_cast<size_t>(idx));
    const AugmentParams p = draw_augment(opt_.augment, opt_.seed, epoch, idx);
    const Prepared pr = prepare(s, p, opt_.augment);
    normalize_rgb(pr.rgb, b.rgb.data<float>() + k * 3 * HW);
    depth_input(pr.depth, stats_.depth_mean, stats_.depth_std, b.depth.data<float>() + k * HW);
    depth_target(pr.depth, max_depth, b.depth_target.data<float>() + k * HW);
    if (opt_.depth_metres) std::memcpy(b.depth_metres.data<float>() + k * HW, pr.depth.data.data(), HW * sizeof(float));
    if (masks) {
      std::memcpy(b.labels.data<int32_t>() + k * HW, pr.labels.data.data(), HW * sizeof(int32_t));
      for (size_t f = 0; f < opt_.label_factors.size(); ++f) {
        const ImageI32 small = downsample_labels(pr.labels, opt_.label_factors[f]);
        std::memcpy(b.label_scales[f].data<int32_t>() + k * small.data.size(), small.data.data(),
                    small.data.size() * sizeof(int32_t));
      }
    }
    b.sample_weight.data<float>()[k] = static_cast<float>(dataset_.index().sources[s.source].weight);
    b.source.data<int32_t>()[k] = s.source;
    b.indices.push_back(idx);
    b.names.push_back(sample_name(dataset_.index(), static_cast<size_t>(idx)));
  }
  return b;
}

void Loader::to_device(Batch& b) {
  if (!opt_.device.is_cuda()) return;
  std::vector<Tensor*> ts{&b.rgb, &b.depth, &b.depth_target, &b.sample_weight, &b.source};
  if (b.depth_metres.defined()) ts.push_back(&b.depth_metres);
  if (b.labels.defined()) ts.push_back(&b.labels);
  for (Tensor& t : b.label_scales) ts.push_back(&t);
  staging_->upload(ts, opt_.device);
}

void Loader::stop_workers() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  produce_cv_.notify_all();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  std::lock_guard<std::mutex> lk(mu_);
  stop_ = false;
  running_ = false;
  ready_.clear();
}

void Loader::start_workers() {
  running_ = true;
  next_claim_ = consumed_;
  for (int i = 0; i < opt_.workers; ++i) threads_.emplace_back([this] { worker_loop(); });
}

void Loader::worker_loop() {
  std::unique_lock<std::mutex> lk(mu_);
  while (true) {
    produce_cv_.wait(
        lk, [&] { return stop_ || (next_claim_ < epoch_batches_ && next_claim_ < consumed_ + opt_.prefetch); });
    if (stop_) return;
    const int64_t b = next_claim_++;
    const int64_t epoch = epoch_, offset = offset_;
    lk.unlock();
    Result r;
    try {
      r.batch = make_batch_from(order_, epoch, b, offset);
    } catch (...) {
      r.error = std::current_exception();
    }
    lk.lock();
    if (stop_) return;
    ready_.emplace(b, std::move(r));
    consume_cv_.notify_all();
  }
}

void Loader::restore(LoaderPosition pos) {
  MTL_CHECK(pos.offset >= 0 && pos.offset <= samples_ && (opt_.source_mix.empty() || pos.offset % opt_.batch_size == 0),
            "cannot restore the loader to sample ", pos.offset, " of an epoch of ", samples_,
            opt_.source_mix.empty() ? "" : " (with data.batch_mix, a multiple of the batch size)");
  const int64_t batches = batches_after(pos.offset);
  MTL_CHECK(pos.epoch >= 0 && pos.batch >= 0 && pos.batch <= batches, "cannot restore the loader to epoch ", pos.epoch,
            " batch ", pos.batch, ": an epoch has ", batches, " batches");
  stop_workers();
  std::lock_guard<std::mutex> lk(mu_);
  if (pos.epoch != epoch_ || order_.size() != static_cast<size_t>(samples_)) order_ = order(pos.epoch);
  epoch_ = pos.epoch;
  consumed_ = pos.batch;
  offset_ = pos.offset;
  epoch_batches_ = batches;
}

LoaderPosition Loader::position() const {
  std::lock_guard<std::mutex> lk(mu_);
  return {epoch_, consumed_, offset_};
}

bool Loader::next(Batch& out) {
  if (opt_.workers == 0) {
    if (consumed_ >= epoch_batches_) return false;
    Batch b = make_batch_from(order_, epoch_, consumed_, offset_);
    ++consumed_;
    to_device(b);
    out = std::move(b);
    return true;
  }
  std::unique_lock<std::mutex> lk(mu_);
  if (consumed_ >= epoch_batches_) return false;
  if (!running_) start_workers();
  consume_cv_.wait(lk, [&] { return ready_.count(consumed_) != 0; });
  auto it = ready_.find(consumed_);
  if (it->second.error) std::rethrow_exception(it->second.error);  // stays at this batch
  Batch b = std::move(it->second.batch);
  ready_.erase(it);
  ++consumed_;
  lk.unlock();
  produce_cv_.notify_all();
  to_device(b);
  out = std::move(b);
  return true;
}

}  // namespace mtl::train
