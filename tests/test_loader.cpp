// The loader: batch contents and shapes, bitwise-identical batches for 1 and 3 workers, resume
// from a saved position, shuffling per epoch, drop_last, errors surfacing in order, clean
// shutdown mid-epoch, the data-parallel shares (one process with the global batch sees the same
// samples, the final partial batch, every sample once in evaluation, a resume at a sample
// offset), and (on a GPU) device batches equal to host batches.
#include <doctest/doctest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>

#include "core/error.h"
#include "core/file_io.h"
#include "tests/support/gpu.h"
#include "tests/support/temp_dir.h"
#include "train/data/synthetic/datagen.h"
#include "train/data/loader.h"

using namespace mtl;
using namespace mtl::train;
using doctest::Contains;
namespace fs = std::filesystem;

namespace {

// `n` procedural frames of 80x48 in ROOT/train.
void make_dataset(const std::string& root, int n, uint64_t seed = 5) {
  for (const char* sub : {"images", "masks", "depth"}) fs::create_directories(root + "/train/" + sub);
  for (int i = 0; i < n; ++i) {
    const Frame f = render_frame(frame_seed(seed, 0, i), 80, 48);
    char name[16];
    std::snprintf(name, sizeof name, "f%03d.png", 100 + i);
    write_png(root + "/train/images/" + name, f.rgb);
    write_png(root + "/train/masks/" + name, f.mask);
    write_png16(root + "/train/depth/" + name, f.depth);
  }
}

Config small_config(const std::string& root) {
  Config c;
  c.data.root = root;
  c.train.input_size = {64, 32};
  c.train.batch_size = 4;
  c.train.drop_last = false;
  c.eval.batch_size = 3;
  c.runtime.seed = 99;
  return c;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  if (a.defined() != b.defined()) return false;
  if (!a.defined()) return true;
  const Tensor ha = a.cpu(), hb = b.cpu();
  return ha.shape() == hb.shape() && ha.dtype() == hb.dtype() &&
         std::memcmp(ha.data_ptr(), hb.data_ptr(), ha.nbytes()) == 0;
}

bool same_batch(const Batch& a, const Batch& b) {
  bool ok = a.epoch == b.epoch && a.index == b.index && a.indices == b.indices && a.names == b.names &&
            same_bytes(a.rgb, b.rgb) && same_bytes(a.depth, b.depth) && same_bytes(a.depth_target, b.depth_target) &&
            same_bytes(a.depth_metres, b.depth_metres) && same_bytes(a.labels, b.labels) &&
            same_bytes(a.sample_weight, b.sample_weight) && same_bytes(a.source, b.source) &&
            a.label_scales.size() == b.label_scales.size();
  for (size_t i = 0; ok && i < a.label_scales.size(); ++i) ok = same_bytes(a.label_scales[i], b.label_scales[i]);
  return ok;
}

std::vector<Batch> run_epochs(Loader& l, int64_t first_epoch, int64_t epochs) {
  std::vector<Batch> out;
  for (int64_t e = first_epoch; e < first_epoch + epochs; ++e) {
    l.start_epoch(e);
    Batch b;
    while (l.next(b)) out.push_back(std::move(b));
  }
  return out;
}

struct Fixture {
  test::TempDir dir{"test_loader"};
  Config cfg;
  ScanResult scan;
  DatasetStats stats;
  explicit Fixture(int n = 11)
      : cfg((make_dataset(dir.path.string(), n), small_config(dir.path.string()))),
        scan(scan_split(cfg.data, "train", true)),
        stats(merge_stats(scan.stats, 7)) {}
  std::unique_ptr<Loader> loader(int workers, bool training = true) {
    LoaderOptions o = training ? LoaderOptions::training(cfg, Device::cpu()) : LoaderOptions::evaluation(cfg, Device::cpu());
    o.workers = workers;
    return std::make_unique<Loader>(scan.dataset, stats, o);
  }
  // Rank `rank` of `world`, batches of `batch` per rank.
  std::unique_ptr<Loader> shard(int rank, int world, int batch, bool drop_last, bool lockstep = true) {
    LoaderOptions o = LoaderOptions::training(cfg, Device::cpu());
    o.batch_size = batch;
    o.drop_last = drop_last;
    o.rank = rank;
    o.world_size = world;
    o.lockstep = lockstep;
    return std::make_unique<Loader>(scan.dataset, stats, o);
  }
};

// Each batch's sample indices.
std::vector<std::vector<int64_t>> epoch_indices(Loader& l, LoaderPosition from) {
  l.restore(from);
  std::vector<std::vector<int64_t>> out;
  Batch b;
  while (l.next(b)) out.push_back(b.indices);
  return out;
}

}  // namespace

TEST_CASE("batch contents: shapes, types, normalisation and per-sample metadata") {
  Fixture fx;
  auto l = fx.loader(0);
  CHECK(l->batches_per_epoch() == 3);  // 11 samples, batches of 4, the last one of 3
  l->start_epoch(0);
  Batch b;
  REQUIRE(l->next(b));
  CHECK(b.rgb.shape() == Shape{4, 3, 32, 64});
  CHECK(b.depth.shape() == Shape{4, 1, 32, 64});
  CHECK(b.depth_target.shape() == Shape{4, 1, 32, 64});
  CHECK_FALSE(b.depth_metres.defined());
  CHECK(b.labels.shape() == Shape{4, 32, 64});
  CHECK(b.labels.dtype() == DType::i32);
  REQUIRE(b.label_scales.size() == 3);
  CHECK(b.label_scales[0].shape() == Shape{4, 4, 8});
  CHECK(b.label_scales[1].shape() == Shape{4, 2, 4});
  CHECK(b.label_scales[2].shape() == Shape{4, 1, 2});
  CHECK(b.sample_weight.to_f64_vector() == std::vector<double>{1, 1, 1, 1});
  CHECK(b.source.to_f64_vector() == std::vector<double>{0, 0, 0, 0});
  CHECK(b.names.size() == 4);
  CHECK(b.names[0] == fx.scan.dataset.index().samples[b.indices[0]].stem);
  const std::vector<double> d = b.depth.to_f64_vector(), t = b.depth_target.to_f64_vector();
  int64_t invalid = 0;
  for (size_t i = 0; i < d.size(); ++i) {
    CHECK((t[i] >= 0 && t[i] <= 1));
    CHECK((t[i] == 0) == (d[i] == 0));  // invalid in both, at the same places
    invalid += t[i] == 0;
  }
  CHECK(invalid > 0);
  CHECK(invalid < static_cast<int64_t>(d.size()) / 2);
  for (double v : b.labels.to_f64_vector()) CHECK((v >= 0 && v < 7));
  double mean = 0;
  for (double v : b.rgb.to_f64_vector()) mean += v;
  mean /= static_cast<double>(b.rgb.numel());
  CHECK(std::abs(mean) < 2.0);  // roughly standardised
  REQUIRE(l->next(b));
  REQUIRE(l->next(b));
  CHECK(b.size() == 3);
  CHECK_FALSE(l->next(b));
  CHECK(l->position() == LoaderPosition{0, 3});

  // Evaluation: in order, no augmentation (the same every epoch), depth in metres.
  auto ev = fx.loader(0, false);
  CHECK(ev->batches_per_epoch() == 4);
  std::vector<Batch> e0 = run_epochs(*ev, 0, 1), e1 = run_epochs(*ev, 1, 1);
  CHECK(e0[0].indices == std::vector<int64_t>{0, 1, 2});
  CHECK(e0[0].label_scales.empty());
  REQUIRE(e0[0].depth_metres.defined());
  CHECK(same_bytes(e0[2].rgb, e1[2].rgb));
  const std::vector<double> m = e0[0].depth_metres.to_f64_vector(), tt = e0[0].depth_target.to_f64_vector();
  for (size_t i = 0; i < m.size(); ++i) CHECK(tt[i] == doctest::Approx(std::min(m[i], 10.0) / 10.0).epsilon(1e-6));
}

TEST_CASE("1 and 3 workers give bitwise-identical batches, equal to make_batch") {
  Fixture fx;
  auto serial = fx.loader(1), parallel = fx.loader(3);
  std::vector<Batch> a = run_epochs(*serial, 0, 3), b = run_epochs(*parallel, 0, 3);
  REQUIRE(a.size() == 9);
  REQUIRE(b.size() == 9);
  for (size_t i = 0; i < a.size(); ++i) CHECK_MESSAGE(same_batch(a[i], b[i]), "batch " << i);
  auto inline_loader = fx.loader(0);
  CHECK(same_batch(a[4], inline_loader->make_batch(1, 1)));
  // Epochs are shuffled differently, and each covers every sample once.
  std::set<int64_t> seen;
  for (int k = 0; k < 3; ++k) seen.insert(a[k].indices.begin(), a[k].indices.end());
  CHECK(seen.size() == 11);
  CHECK(serial->order(0) != serial->order(1));
  CHECK_FALSE(same_bytes(a[0].rgb, a[3].rgb));
}

TEST_CASE("restoring a saved position yields the identical remaining batches") {
  Fixture fx;
  auto first = fx.loader(2);
  std::vector<Batch> full = run_epochs(*first, 0, 3);
  // Stop after two batches of epoch 1, as a checkpoint would.
  auto interrupted = fx.loader(2);
  interrupted->start_epoch(1);
  Batch b;
  REQUIRE(interrupted->next(b));
  REQUIRE(interrupted->next(b));
  const LoaderPosition saved = interrupted->position();
  CHECK(saved == LoaderPosition{1, 2});
  interrupted.reset();  // destroyed with batches in flight

  auto resumed = fx.loader(3);
  resumed->restore(saved);
  std::vector<Batch> rest;
  while (resumed->next(b)) rest.push_back(b);
  std::vector<Batch> more = run_epochs(*resumed, 2, 1);
  rest.insert(rest.end(), more.begin(), more.end());
  REQUIRE(rest.size() == 4);  // batch 2 of epoch 1, then epoch 2
  for (size_t i = 0; i < rest.size(); ++i) CHECK(same_batch(rest[i], full[5 + i]));
  CHECK_THROWS_WITH_AS(resumed->restore({0, 4}), Contains("an epoch has 3 batches"), Error);
}

TEST_CASE("drop_last, too few samples, errors in order, shutdown mid-epoch") {
  Fixture fx(5);
  fx.cfg.train.drop_last = true;
  auto l = fx.loader(2);
  CHECK(l->batches_per_epoch() == 1);
  fx.cfg.train.batch_size = 8;
  CHECK_THROWS_WITH_AS(fx.loader(2), Contains("the train split has 5 samples, fewer than one batch of 8"), Error);
  fx.cfg.train.batch_size = 2;
  fx.cfg.train.drop_last = false;
  // A file that breaks after the scan fails the batch holding it, when that batch is reached.
  auto broken = fx.loader(2, false);
  write_file_atomic(fx.scan.dataset.index().samples[3].rgb, "garbage");
  Batch b;
  REQUIRE(broken->next(b));  // samples 0 to 2 (eval batches of 3)
  CHECK_THROWS_WITH_AS(broken->next(b), Contains(fx.scan.dataset.index().samples[3].rgb.c_str()), Error);
  CHECK(broken->position() == LoaderPosition{0, 1});
  // Destroying loaders mid-epoch with workers busy or waiting must not hang.
  for (int w : {1, 4}) {
    auto x = fx.loader(w, false);
    x->start_epoch(0);
  }
}

TEST_CASE("data.batch_mix puts each source's share in every batch") {
  test::TempDir dir("test_loader_mix");
  const std::string real = (dir.path / "real").string(), syn = (dir.path / "synthetic").string();
  make_dataset(real, 7, 5);
  make_dataset(syn, 13, 6);
  Config c = small_config(real);
  c.data.sources = {{"real", real, 1.0}, {"synthetic", syn, 0.5}};
  c.data.batch_mix = {{"real", 3}, {"synthetic", 1}};
  const ScanResult scan = scan_split(c.data, "train", true);
  Loader loader(scan.dataset, merge_stats(scan.stats, 7), LoaderOptions::training(c, Device::cpu()));
  // The shorter share runs out first: 7 real samples make two batches of 3.
  CHECK(loader.batches_per_epoch() == 2);
  for (int64_t epoch = 0; epoch < 4; ++epoch) {
    std::set<int64_t> seen;
    std::vector<int64_t> synthetic;
    for (int64_t b = 0; b < loader.batches_per_epoch(); ++b) {
      const Batch batch = loader.make_batch(epoch, b);
      REQUIRE(batch.size() == 4);
      const std::vector<double> src = batch.source.to_f64_vector(), w = batch.sample_weight.to_f64_vector();
      CHECK(src == std::vector<double>{0, 0, 0, 1});
      CHECK(w == std::vector<double>{1, 1, 1, 0.5});
      for (int64_t i : batch.indices) CHECK(seen.insert(i).second);  // no sample twice in an epoch
      synthetic.push_back(batch.indices.back());
    }
    // Each source is shuffled on its own: its first share changes from epoch to epoch.
    CAPTURE(epoch);
    CHECK(synthetic.size() == 2);
  }
  const std::vector<int64_t> o0 = loader.order(0), o1 = loader.order(1);
  CHECK(o0 != o1);
  CHECK(o0 == loader.order(0));  // a function of (seed, epoch)
  // The config reader checks the mix against the sources and the batch size.
  c.data.batch_mix = {{"real", 3}, {"synthetic", 2}};
  CHECK_THROWS_WITH_AS(validate(c), Contains("data.batch_mix: sums to 5 samples, but train.batch_size is 4"), Error);
  c.data.batch_mix = {{"real", 4}};
  CHECK_THROWS_WITH_AS(validate(c), Contains("gives source 'synthetic' no share"), Error);
  c.data.batch_mix = {{"real", 3}, {"synthetic", 1}, {"other", 1}};
  CHECK_THROWS_WITH_AS(validate(c), Contains("data.batch_mix.other: names no source of data.sources"), Error);
}

TEST_CASE("data parallelism: the ranks' shares of a global batch make up one process's batch of that size") {
  Fixture fx(11);
  for (int world : {2, 3})
    for (int batch : {1, 2})
      for (bool drop_last : {true, false}) {
        CAPTURE(world);
        CAPTURE(batch);
        CAPTURE(drop_last);
        auto one = fx.shard(0, 1, batch * world, drop_last);
        const auto whole = epoch_indices(*one, {1, 0});
        std::vector<std::vector<std::vector<int64_t>>> ranks;
        for (int r = 0; r < world; ++r) {
          auto l = fx.shard(r, world, batch, drop_last);
          ranks.push_back(epoch_indices(*l, {1, 0}));
          CHECK(l->global_batch() == batch * world);
        }
        for (size_t g = 0; g < whole.size(); ++g) {
          std::vector<int64_t> joined;
          for (int r = 0; r < world; ++r)
            if (g < ranks[r].size()) joined.insert(joined.end(), ranks[r][g].begin(), ranks[r][g].end());
          // In lockstep a final global batch with fewer samples than ranks is left out.
          if (g + 1 == whole.size() && !drop_last && static_cast<int>(whole[g].size()) < world) {
            CHECK(ranks[0].size() == g);
            continue;
          }
          CHECK(joined == whole[g]);
        }
        for (int r = 1; r < world; ++r) CHECK(ranks[r].size() == ranks[0].size());  // lockstep
      }
  // Augmentation belongs to the sample: rank 1's first sample is the one process's second.
  auto one = fx.shard(0, 1, 4, true), second = fx.shard(1, 2, 2, true);
  const Batch a = one->make_batch(2, 0), b = second->make_batch(2, 0);
  CHECK(b.global_size == 4);
  CHECK(b.indices[0] == a.indices[2]);
  CHECK(same_bytes(b.rgb.narrow(0, 0, 1).clone(), a.rgb.narrow(0, 2, 1).clone()));
  CHECK(same_bytes(b.labels.narrow(0, 0, 1).clone(), a.labels.narrow(0, 2, 1).clone()));
}

TEST_CASE("data parallelism: the final partial batch, and every sample once in evaluation") {
  Fixture fx(11);
  // 3 ranks x 2 = 6: one whole global batch, then 5 samples shared 1, 2, 2.
  std::vector<size_t> sizes;
  for (int r = 0; r < 3; ++r) {
    auto l = fx.shard(r, 3, 2, false);
    const auto e = epoch_indices(*l, {0, 0});
    REQUIRE(e.size() == 2);
    sizes.push_back(e[1].size());
    CHECK(l->make_batch(0, 1).global_size == 5);
  }
  CHECK(sizes == std::vector<size_t>{1, 2, 2});
  // 4 ranks x 2 = 8, then 3 samples: fewer than the ranks, so the ranks stepping together stop
  // after one batch; in evaluation every sample comes once and rank 0 has a batch fewer.
  std::multiset<int64_t> seen;
  for (int r = 0; r < 4; ++r) {
    CHECK(epoch_indices(*fx.shard(r, 4, 2, false), {0, 0}).size() == 1);
    auto ev = fx.shard(r, 4, 2, false, false);
    const auto e = epoch_indices(*ev, {0, 0});
    CHECK(e.size() == (r == 0 ? 1u : 2u));
    CHECK(ev->batches_per_epoch() == static_cast<int64_t>(e.size()));
    for (const auto& b : e) seen.insert(b.begin(), b.end());
  }
  CHECK(seen.size() == 11);
  CHECK(std::set<int64_t>(seen.begin(), seen.end()).size() == 11);
  // More ranks than samples: training cannot start; evaluation still covers the set.
  CHECK_THROWS_WITH_AS(fx.shard(0, 12, 1, false), Contains("fewer than one global batch of 1 x 12 processes"), Error);
  CHECK(fx.shard(0, 12, 1, false, false)->batches_per_epoch() == 0);   // share [0, 0)
  CHECK(fx.shard(11, 12, 1, false, false)->batches_per_epoch() == 1);  // share [10, 11)
  CHECK_THROWS_WITH_AS(fx.shard(2, 2, 1, false), Contains("rank 2 of 2"), Error);
}

TEST_CASE("data parallelism: restoring at a sample offset continues the epoch there") {
  Fixture fx(11);
  auto one = fx.shard(0, 1, 4, false);
  const std::vector<int64_t> order = one->order(1);
  const auto e = epoch_indices(*one, {1, 0, 6});
  REQUIRE(e.size() == 2);  // samples 6..9 and 10
  CHECK(e[0] == std::vector<int64_t>(order.begin() + 6, order.begin() + 10));
  CHECK(e[1] == std::vector<int64_t>(order.begin() + 10, order.end()));
  CHECK(one->position() == LoaderPosition{1, 2, 6});
  CHECK(one->batches_in_epoch() == 2);
  CHECK(one->batches_per_epoch() == 3);
  // 2 ranks x 2 from sample 6: one global batch of 4, the single sample left is dropped.
  for (int r = 0; r < 2; ++r) {
    auto l = fx.shard(r, 2, 2, false);
    const auto s = epoch_indices(*l, {1, 0, 6});
    REQUIRE(s.size() == 1);
    CHECK(s[0] == std::vector<int64_t>(order.begin() + 6 + 2 * r, order.begin() + 8 + 2 * r));
  }
  CHECK_THROWS_WITH_AS(one->restore({1, 0, 12}), Contains("cannot restore the loader to sample 12"), Error);
  CHECK_THROWS_WITH_AS(one->restore({1, 3, 6}), Contains("an epoch has 2 batches"), Error);
}

TEST_SUITE("cuda") {
  TEST_CASE("CUDA batches hold the same values as host batches") {
    MTL_REQUIRE_CUDA();
    Fixture fx;
    LoaderOptions o = LoaderOptions::training(fx.cfg, Device::cuda());
    o.workers = 2;
    Loader gpu(fx.scan.dataset, fx.stats, o);
    auto cpu = fx.loader(0);
    for (int64_t e = 0; e < 2; ++e) {
      gpu.start_epoch(e);
      Batch b;
      int64_t k = 0;
      while (gpu.next(b)) {
        CHECK(b.rgb.is_cuda());
        CHECK(b.labels.is_cuda());
        CHECK(same_batch(b, cpu->make_batch(e, k++)));
      }
    }
  }
}
