// Data-parallel training on the CPU under mpirun (the Trainer with train/dist): 2 ranks with
// batch 2 reach the weights of one process with batch 4 (GroupNorm; and BatchNorm with
// model.sync_bn), both replicas hold bitwise-identical parameters and buffers after every step,
// and only rank 0 writes files; SIGTERM to one rank stops both after a checkpoint, and the run
// resumes on one process with another global batch at the same sample and learning rate; a rank
// that stalls or dies makes the other fail within runtime.dist_timeout.
#include <doctest/doctest.h>
#include <signal.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "core/file_io.h"
#include "tests/support/mpi.h"
#include "tests/support/run_folder.h"
#include "tests/support/temp_dir.h"
#include "tests/support/training.h"
#include "train/engine/hooks.h"
#include "train/engine/train_job.h"
#include "train/optim/schedule.h"

using namespace mtl;
using namespace mtl::train;
namespace fs = std::filesystem;

namespace {

// The tiny GroupNorm network of tests/support/training.h with `batch` samples per process, one
// epoch of 24 / (batch x ranks) steps. loss.source_weighting mean makes a batch's loss the mean of
// its images' losses, so that the mean over the ranks' shares is exactly the loss of one
// process's batch. AdamW's eps of 1 keeps the update proportional to the gradient: with the usual
// 1e-8, a gradient that is zero in exact arithmetic (a bias ahead of a normalisation) is rounding
// noise, whose sign Adam turns into a full step, so any change in the last bit of a sum (another
// world size, another thread count) moves those parameters by the learning rate.
Config dist_config(int batch) {
  Config c = test::tiny_train_config();
  c.model.norm = nn::NormKind::groupnorm;
  c.loss.source_weighting = SourceWeighting::mean;
  c.train.epochs = 1;
  c.train.batch_size = batch;
  c.eval.batch_size = 4;
  c.optim.lr = 0.3;
  c.optim.eps = 1.0;
  c.runtime.dist_timeout = 60;
  return c;
}

// The largest |a - b| / (atol + rtol |a|) over the tensors of two checkpoints' models, with the
// tensor where it is.
std::pair<double, std::string> worst_difference(const fs::path& a, const fs::path& b, double atol, double rtol) {
  const Checkpoint ca = load_checkpoint(a.string()), cb = load_checkpoint(b.string());
  std::pair<double, std::string> worst{0.0, ""};
  REQUIRE(ca.model.size() == cb.model.size());
  for (const auto& [name, t] : ca.model) {
    const std::vector<double> x = t.to_f64_vector(), y = cb.model.at(name).to_f64_vector();
    for (size_t i = 0; i < x.size(); ++i) {
      const double r = std::abs(x[i] - y[i]) / (atol + rtol * std::abs(x[i]));
      if (r > worst.first) worst = {r, name + " (" + std::to_string(x[i]) + " vs " + std::to_string(y[i]) + ")"};
    }
  }
  return worst;
}

// After every step: every rank's parameters and buffers hash to the same value.
class ReplicaCheck : public HookBase {
 public:
  void after_step(Trainer& t) override {
    uint64_t h = 1469598103934665603ull;
    auto mix = [&](const Tensor& x) {
      const auto* p = static_cast<const unsigned char*>(x.data_ptr());
      for (size_t i = 0; i < x.nbytes(); ++i) h = (h ^ p[i]) * 1099511628211ull;
    };
    for (const auto& [n, p] : t.parameters()) mix(p);
    for (const auto& [n, b] : t.model().named_buffers()) mix(b);
    const std::vector<std::string> all = t.communicator()->all_gather_bytes(std::to_string(h), "the replica hashes");
    for (const std::string& other : all) CHECK(other == all[0]);
    ++steps;
  }
  int steps = 0;
};

// Polls until `run` has logged `n` training records. The file is read while rank 0 writes it, so
// a last line may be incomplete: lines that do not parse are not counted.
bool wait_for_steps(const fs::path& run, size_t n, double timeout_s) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < end) {
    std::ifstream in(run / "metrics.jsonl");
    size_t steps = 0;
    for (std::string line; std::getline(in, line);) {
      const nlohmann::json r = nlohmann::json::parse(line, nullptr, false);
      if (!r.is_discarded() && r.value("type", "") == "train") ++steps;
    }
    if (steps >= n) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

}  // namespace

// The ranks of the tests below: the config in MTL_TEST_CONFIG, the run folder "run" in the
// working directory, and a check of the replicas after every step.
TEST_SUITE("mpi") {
  TEST_CASE("worker: train") {
    MTL_MPI_WORKER(comm);
    const char* path = std::getenv("MTL_TEST_CONFIG");
    REQUIRE(path);
    TrainOptions o;
    o.output_dir = "run";
    o.quiet = true;
    o.comm = comm;
    Trainer trainer(load_config(path), o);
    for (auto& h : default_hooks(trainer)) trainer.register_hook(std::move(h));
    auto check = std::make_unique<ReplicaCheck>();
    ReplicaCheck* replicas = check.get();
    trainer.register_hook(std::move(check));
    const TrainSummary s = trainer.train();
    CHECK(replicas->steps == s.steps);
    CHECK(s.steps == trainer.total_steps());
    finalize_process_group();
  }
}

namespace {

// Trains `cfg` (batch 2) on 2 ranks, rank 0 in rank0/ and rank 1 in rank1/ of `tmp`, and compares
// the result with one process training `cfg` with batch 4.
void check_two_by_two(const test::TempDir& tmp, Config cfg) {
  cfg.train.batch_size = 4;
  const fs::path ref = tmp.path / "one_by_four";
  run_training(cfg, test::quiet_options(ref));
  cfg.train.batch_size = 2;
  write_file_atomic(tmp / "cfg.yaml", to_yaml(cfg));
  fs::create_directories(tmp.path / "rank0");
  fs::create_directories(tmp.path / "rank1");
  const std::string rank = " " + test::self_exe() + " " + test::worker_args("worker: train");
  const auto t0 = std::chrono::steady_clock::now();
  const test::CommandResult r =
      test::run_command("MTL_TEST_CONFIG=" + tmp / "cfg.yaml" + " " + test::mpirun_options() + " -np 1 --wdir " +
                            tmp / "rank0" + rank + " : -np 1 --wdir " + tmp / "rank1" + rank,
                        tmp);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  INFO(r.out, r.err);
  REQUIRE(r.status == 0);
  CHECK(test::workers_passed(r.out) == 2);
  MESSAGE("2 ranks x batch 2 under mpirun: " << seconds << " s");

  // Rank 0 wrote the run folder one process writes; rank 1 wrote nothing at all.
  const fs::path run = tmp.path / "rank0" / "run";
  CHECK(fs::is_empty(tmp.path / "rank1"));
  for (const char* f : {"config.yaml", "mtl_stats.json", "metrics.jsonl", "checkpoints/last.safetensors",
                        "checkpoints/best.safetensors", "test_metrics.json", "visuals/epoch001_0.png"})
    CHECK_MESSAGE(fs::exists(run / f), f);
  std::set<std::string> names, ref_names;
  for (const auto& e : fs::recursive_directory_iterator(run))
    names.insert(fs::relative(e.path(), run).string().substr(0, 20));
  for (const auto& e : fs::recursive_directory_iterator(ref))
    ref_names.insert(fs::relative(e.path(), ref).string().substr(0, 20));
  CHECK(names == ref_names);

  // The same training: the losses step by step, the validation, and the weights.
  const auto a = test::records_of(ref, "train"), b = test::records_of(run, "train");
  REQUIRE(a.size() == 6);
  REQUIRE(b.size() == a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    CHECK(b[i]["images_per_s"].get<double>() > 0);
    CHECK(b[i]["loss"].get<double>() == doctest::Approx(a[i]["loss"].get<double>()).epsilon(1e-5));
  }
  const auto ea = test::records_of(ref, "eval"), eb = test::records_of(run, "eval");
  REQUIRE(ea.size() == 1);
  REQUIRE(eb.size() == 1);
  CHECK(eb[0]["miou"].get<double>() == doctest::Approx(ea[0]["miou"].get<double>()).epsilon(1e-3));
  CHECK(eb[0]["loss"].get<double>() == doctest::Approx(ea[0]["loss"].get<double>()).epsilon(1e-4));
  CHECK(test::records_of(run, "train_epoch").at(0)["images"] == 24);
  const auto [worst, where] =
      worst_difference(ref / "checkpoints/last.safetensors", run / "checkpoints/last.safetensors", 1e-5, 1e-5);
  MESSAGE("the weights of 2 x 2 against 1 x 4: the largest |a - b| / (1e-5 + 1e-5 |a|) is " << worst << " at "
                                                                                            << where);
  CHECK(worst <= 1.0);
}

}  // namespace

TEST_CASE("2 ranks x batch 2 train like 1 process x batch 4; identical replicas; rank 0 alone writes") {
  MTL_REQUIRE_MPI();
  test::TempDir tmp("trainer_dist_gn");
  check_two_by_two(tmp, dist_config(2));
}

TEST_CASE("with model.sync_bn, BatchNorm over 2 ranks x batch 2 trains like 1 process x batch 4") {
  MTL_REQUIRE_MPI();
  test::TempDir tmp("trainer_dist_bn");
  Config c = dist_config(2);
  c.model.norm = nn::NormKind::batchnorm;
  c.model.sync_bn = true;
  check_two_by_two(tmp, c);
}

namespace {

// What came of a signal to rank 1 of a long run on 2 ranks.
struct SignalledRun {
  std::optional<int> status;  // mpirun's exit status; nullopt when it still ran 120 s later
  double seconds = 0;         // from the signal to mpirun's end
  std::string out, err;
};

constexpr int kLongEpochs = 40;  // far more than a test waits for

// Starts `c` for kLongEpochs epochs on 2 ranks of mtl_train under mpirun,
// with the run folder tmp/run, sends `sig` to rank 1 once `steps` steps are logged, and waits.
SignalledRun signal_rank1(const test::TempDir& tmp, Config c, size_t steps, int sig) {
  c.train.epochs = kLongEpochs;
  c.log.visuals = 0;
  write_file_atomic(tmp / "cfg.yaml", to_yaml(c));
  const fs::path run = tmp.path / "run";
  test::Background job(test::mpirun(2) + " " + MTL_TRAIN_EXE + " " + tmp / "cfg.yaml" + " --output " + run.string(),
                       tmp / "out.txt", tmp / "err.txt");
  REQUIRE(wait_for_steps(run, steps, 120));
  const std::optional<pid_t> rank1 = test::rank_pid(job.pid, 1);
  REQUIRE(rank1);
  const auto t0 = std::chrono::steady_clock::now();
  ::kill(*rank1, sig);
  SignalledRun r;
  r.status = job.wait(120);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (sig == SIGSTOP) ::kill(*rank1, SIGKILL);  // in case it outlived the job
  r.out = test::read_text(tmp / "out.txt");
  r.err = test::read_text(tmp / "err.txt");
  return r;
}

}  // namespace

TEST_CASE("SIGTERM to one rank stops both after a checkpoint; --resume on one process continues there") {
  MTL_REQUIRE_MPI();
  test::TempDir tmp("trainer_dist_signal");
  const Config c = dist_config(2);
  const SignalledRun b = signal_rank1(tmp, c, 2, SIGTERM);
  INFO(b.out, b.err);
  REQUIRE(b.status);
  CHECK(*b.status == 0);
  CHECK(b.out.find("(requested on rank 1): saved") != std::string::npos);
  const fs::path run = tmp.path / "run";
  const Checkpoint saved = load_checkpoint((run / "checkpoints/last.safetensors").string());
  REQUIRE(saved.state);
  const TrainState st = *saved.state;
  CHECK_FALSE(st.finished);
  CHECK(st.global_batch == 4);
  REQUIRE(st.step >= 2);
  CHECK(st.step == static_cast<int64_t>(test::records_of(run, "train").size()));

  // One process with the run's own train.batch_size 2: a global batch of 2 instead of 4.
  TrainOptions again;
  again.resume_dir = run.string();
  again.quiet = true;
  again.stop_after_steps = st.step + 3;
  const TrainSummary s = run_training(load_config((run / "config.yaml").string()), again);
  CHECK(s.interrupted);
  const TrainState after = *load_checkpoint((run / "checkpoints/last.safetensors").string()).state;
  // The same sample of the same epoch order, then three steps of 2 samples.
  const int64_t sample = st.epoch * 24 + st.batch * 4 + 3 * 2;
  CHECK(after.global_batch == 2);
  CHECK(after.epoch == sample / 24);
  CHECK(after.batch == sample % 24 / 2);
  CHECK(after.step == st.step + 3);
  CHECK(after.schedule_offset == st.step);  // 4 / 2 steps of 2 for every step of 4
  // The learning rate goes on from where the schedule of the two ranks stood.
  const LrSchedule two = make_schedule(c.schedule, c.optim.lr, 6, kLongEpochs);
  const auto logged = test::records_of(run, "train");
  REQUIRE(logged.size() == static_cast<size_t>(st.step + 3));
  CHECK(logged[st.step]["step"] == st.step + 1);
  CHECK(logged[st.step]["lr"].get<double>() == doctest::Approx(two.lr(st.step)).epsilon(1e-12));
}

TEST_CASE("a rank that stalls or dies makes the other fail within runtime.dist_timeout") {
  MTL_REQUIRE_MPI();
  Config c = dist_config(2);
  c.runtime.dist_timeout = 5;
  for (int sig : {SIGSTOP, SIGKILL}) {
    CAPTURE(sig);
    test::TempDir tmp("trainer_dist_break");
    const SignalledRun b = signal_rank1(tmp, c, 1, sig);
    INFO(b.out, b.err);
    MESSAGE("rank 1 " << std::string(sig == SIGSTOP ? "stopped" : "killed") << ": mpirun ended after " << b.seconds
                      << " s");
    REQUIRE(b.status);
    CHECK(*b.status != 0);
    CHECK(b.seconds < 5 + 20);
    // A stalled rank is found by the timeout, which names the collective.
    if (sig == SIGSTOP) {
      CHECK(b.err.find("[rank 0] mtl_train: error: ") != std::string::npos);
      CHECK(b.err.find("did not complete within 5 s (runtime.dist_timeout)") != std::string::npos);
    }
  }
}

TEST_CASE("bad launches fail at once with one line: a malformed variable, the CPU without mpirun, unequal configs") {
  MTL_REQUIRE_MPI();
  test::TempDir tmp("trainer_dist_bad");
  write_file_atomic(tmp / "cfg.yaml", to_yaml(dist_config(2)));
  const std::string train = std::string(MTL_TRAIN_EXE) + " " + tmp / "cfg.yaml" + " --output " + tmp / "run";
  test::CommandResult r = test::run_command("WORLD_SIZE=two RANK=0 " + train, tmp);
  CHECK(r.status == 1);
  CHECK(r.err == "mtl_train: error: environment variable WORLD_SIZE='two' is not an integer >= 1\n");
  r = test::run_command("WORLD_SIZE=2 RANK=1 MASTER_ADDR=127.0.0.1 " + train, tmp);
  CHECK(r.status == 1);
  CHECK(r.err ==
        "[rank 1] mtl_train: error: the RANK/WORLD_SIZE launch of 2 processes trains on CUDA devices "
        "(NCCL); on the CPU, start the processes with mpirun -np 2 (docs/distributed.md)\n");
  // Rank 1 with another learning rate: the line is named before anything is written (by the rank
  // that fails first: its MPI_Abort may end the other before that one prints).
  r = test::run_command(test::mpirun_options() + " -np 1 " + train + " : -np 1 " + train + " --set optim.lr=0.25", tmp);
  INFO(r.out, r.err);
  CHECK(r.status != 0);
  CHECK(r.err.find("] mtl_train: error: rank 1 was given another configuration than rank 0 (every rank must train "
                   "the same one): the resolved configurations differ at line ") != std::string::npos);
  CHECK(r.err.find("lr: 0.3' against '  lr: 0.25'") != std::string::npos);
  CHECK_FALSE(fs::exists(tmp.path / "run"));
}
