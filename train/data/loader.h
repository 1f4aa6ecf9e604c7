#pragma once
// Batches for training and evaluation. Worker threads decode and augment whole batches; a bounded
// queue hands them over in order. Every batch is a pure function of (seed, epoch, batch index):
// the epoch's order is shuffled from (seed, epoch) and each sample's augmentation is drawn from
// (seed, epoch, sample index), so the thread count never changes a batch, and restoring a saved
// position yields exactly the batches that would have followed it.
//
// Data parallelism (LoaderOptions::rank, world_size): the epoch's order does not depend on the
// number of processes. Global batch b is the samples [b * G, (b + 1) * G) of it, G = batch_size *
// world_size, and rank r's share is the r-th block of batch_size: one process with batch size G
// sees the same samples per step as world_size processes with batch_size (augmentation is a
// function of the sample, not of the batch). A final partial global batch of m samples (drop_last
// off) is split into near-equal contiguous shares, [floor(r m / N), floor((r + 1) m / N)); with a
// batch mix the global batch is world_size consecutive mixed blocks.
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
  int64_t global_size = 0;       // samples in this global batch over every rank (size() in one process)
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
  // This process's share of every global batch (see above); 0 of 1 outside data parallelism.
  int rank = 0, world_size = 1;
  // With several ranks: every rank gets the same number of batches, none of them empty, so that
  // the ranks can step together (training; a final global batch with fewer samples than ranks is
  // dropped). Off (evaluation): every sample exactly once over the ranks, and a rank whose share
  // of the final global batch is empty has one batch fewer.
  bool lockstep = true;
  // train.* and runtime.* settings: shuffled, augmented, drop_last from the config, label
  // scales when deep supervision trains the semantic task, data.batch_mix.
  static LoaderOptions training(const Config& cfg, Device device);
  // eval.batch_size, in order, no augmentation, every sample, depth in metres for metrics.
  static LoaderOptions evaluation(const Config& cfg, Device device);
};

struct LoaderPosition {
  int64_t epoch = 0;
  int64_t batch = 0;  // the next batch next() returns
  // Samples of the epoch's order before batch 0: a run resumed with another global batch size
  // continues at the sample where it stopped, on a grid that starts there (0 otherwise).
  int64_t offset = 0;
  bool operator==(const LoaderPosition&) const = default;
};

class Loader {
 public:
  Loader(Dataset dataset, DatasetStats stats, LoaderOptions options);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // Batches of a whole epoch on this rank (offset 0), and of the current one.
  int64_t batches_per_epoch() const { return batches_; }
  int64_t batches_in_epoch() const { return epoch_batches_; }
  // Samples of one global batch: batch_size * world_size.
  int64_t global_batch() const { return static_cast<int64_t>(opt_.batch_size) * opt_.world_size; }
  const Dataset& dataset() const { return dataset_; }
  const LoaderOptions& options() const { return opt_; }

  // Moves to batch 0 of `epoch` (same as restore({epoch, 0})).
  void start_epoch(int64_t epoch) { restore({epoch, 0}); }
  // Moves to a saved position: batches already made ahead are dropped, the workers restart there.
  // The offset must leave the batch mix's blocks whole (a multiple of batch_size with a mix).
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
  Batch make_batch_from(const std::vector<int64_t>& order, int64_t epoch, int64_t batch, int64_t offset) const;
  // This rank's batches of an epoch whose grid starts `offset` samples in.
  int64_t batches_after(int64_t offset) const;
  // This rank's share [first, end) of the epoch's order in batch `batch`, and the global batch's size.
  struct Share {
    int64_t first = 0, end = 0, global = 0;
  };
  Share share(int64_t batch, int64_t offset) const;
  // The data set indices of one source's samples, in data set order.
  std::vector<int64_t> source_members(int source) const;
  void to_device(Batch& b);

  Dataset dataset_;
  DatasetStats stats_;
  LoaderOptions opt_;
  int64_t batches_ = 0;
  int64_t samples_ = 0;  // the epoch order's length (with a mix: its whole blocks)
  int64_t blocks_ = 0;   // with a mix: batch_size blocks an epoch holds

  mutable std::mutex mu_;
  std::condition_variable produce_cv_, consume_cv_;
  std::vector<std::thread> threads_;
  bool stop_ = false;
  bool running_ = false;
  int64_t epoch_ = 0;
  int64_t offset_ = 0, epoch_batches_ = 0;  // of epoch_
  std::vector<int64_t> order_;  // of epoch_
  int64_t next_claim_ = 0;      // next batch a worker takes
  int64_t consumed_ = 0;        // next batch next() returns
  std::map<int64_t, Result> ready_;

  struct Staging;  // pinned host buffers for CUDA uploads
  std::unique_ptr<Staging> staging_;
};

}  // namespace mtl::train
