#pragma once
// Batches for training and evaluation. Worker threads decode and augment whole batches; a bounded
// queue hands them over in order. Every batch is a pure function of (seed, epoch, batch index):
// the epoch's order is shuffled from (seed, epoch) and each sample's augmentation is drawn from
// (seed, epoch, sample index), so the thread count never changes a batch, and restoring a saved
// position yields exactly the batches that would have followed it.
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/device.h"
#include "core/tensor.h"
#include "train/data/dataset.h"
#include "train/data/dataset_stats.h"
#include "train/data/transforms.h"

namespace mtl::train {

struct Batch {
  int64_t epoch = 0, index = 0;  // which batch of which epoch
  Tensor rgb;           // [B, 3, H, W] f32, /255 then ImageNet mean/std
  Tensor depth;         // [B, 1, H, W] f32, (metres - mean) / std, 0 where invalid
  Tensor depth_target;  // [B, 1, H, W] f32, min(metres, max_depth) / max_depth, 0 where invalid
  Tensor depth_metres;  // [B, 1, H, W] f32 metres, 0 invalid; only with LoaderOptions::depth_metres
  Tensor labels;        // [B, H, W] i32 class ids or ignore_index; undefined without masks
  std::vector<Tensor> label_scales;  // [B, ceil(H/f), ceil(W/f)] i32 per LoaderOptions::label_factors
  Tensor sample_weight;  // [B] f32: the weight of each sample's source
  Tensor source;         // [B] i32: index into the data set's sources
  std::vector<int64_t> indices;     // sample indices in the Dataset
  std::vector<std::string> names;   // sample names (stems, "source/stem" when mixed)
  int64_t size() const { return static_cast<int64_t>(indices.size()); }
};

struct LoaderOptions {
  int batch_size = 8;
  bool shuffle = false;
  bool drop_last = false;
  AugmentConfig augment;  // augment = false: resize only
  uint64_t seed = 0;
  int workers = 0;        // 0: batches are made in the calling thread
  int prefetch = 0;       // batches made ahead of the consumer; 0 = 2 per worker
  Device device = Device::cpu();
  bool depth_metres = false;
  std::vector<int> label_factors;  // e.g. {8, 16, 32} for deep supervision
  // Samples of each source (by index into the data set's sources) in every batch, summing to
  // batch_size; empty: batches drawn from all samples alike. With a mix, each source is shuffled
  // on its own and an epoch ends when the first source runs out of whole shares.
  std::vector<int> source_mix;
  // train.* and runtime.* settings: shuffled, augmented, drop_last from the config, label
  // scales when deep supervision trains the semantic task, data.batch_mix.
  static LoaderOptions training(const Config& cfg, Device device);
  // eval.batch_size, in order, no augmentation, every sample, depth in metres for metrics.
  static LoaderOptions evaluation(const Config& cfg, Device device);
};

struct LoaderPosition {
  int64_t epoch = 0;
  int64_t batch = 0;  // the next batch next() returns
  bool operator==(const LoaderPosition&) const = default;
};

class Loader {
 public:
  Loader(Dataset dataset, DatasetStats stats, LoaderOptions options);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  int64_t batches_per_epoch() const { return batches_; }
  const Dataset& dataset() const { return dataset_; }
  const LoaderOptions& options() const { return opt_; }

  // Moves to batch 0 of `epoch` (same as restore({epoch, 0})).
  void start_epoch(int64_t epoch) { restore({epoch, 0}); }
  // Moves to a saved position: batches already made ahead are dropped, the workers restart there.
  void restore(LoaderPosition pos);
  LoaderPosition position() const;
  // The next batch of the current epoch (on options().device); false once the epoch is done.
  // An error while making a batch (an unreadable file, say) is thrown here, in order.
  bool next(Batch& out);

  // The sample order of an epoch, and one batch made synchronously on the host: what the
  // workers compute, exposed for tests and tools.
  std::vector<int64_t> order(int64_t epoch) const;
  Batch make_batch(int64_t epoch, int64_t batch) const;

 private:
  struct Result {
    Batch batch;
    std::exception_ptr error;
  };
  void stop_workers();
  void start_workers();
  void worker_loop();
  Batch make_batch_from(const std::vector<int64_t>& order, int64_t epoch, int64_t batch) const;
  // The data set indices of one source's samples, in data set order.
  std::vector<int64_t> source_members(int source) const;
  void to_device(Batch& b);

  Dataset dataset_;
  DatasetStats stats_;
  LoaderOptions opt_;
  int64_t batches_ = 0;

  mutable std::mutex mu_;
  std::condition_variable produce_cv_, consume_cv_;
  std::vector<std::thread> threads_;
  bool stop_ = false;
  bool running_ = false;
  int64_t epoch_ = 0;
  std::vector<int64_t> order_;  // of epoch_
  int64_t next_claim_ = 0;      // next batch a worker takes
  int64_t consumed_ = 0;        // next batch next() returns
  std::map<int64_t, Result> ready_;

  struct Staging;  // pinned host buffers for CUDA uploads
  std::unique_ptr<Staging> staging_;
};

}  // namespace mtl::train
