// train/dist/: the launch read from mpirun's, torchrun's and SLURM's variables; the TCP store of
// the environment launch (rank order, a rank that leaves, a stalled rank, an unreachable rank 0);
// the process group for one process and its errors; the MPI backend on 3 ranks under mpirun
// (sums, averages, broadcasts and gathers, the same bits on every rank, argument errors); and on a
// GPU, NCCL with one rank.
#include <doctest/doctest.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <future>
#include <map>
#include <thread>

#include "core/cuda_context.h"
#include "core/error.h"
#include "ops/ops.h"
#include "tests/support/compare.h"
#include "tests/support/gpu.h"
#include "tests/support/mpi.h"
#include "tests/support/random.h"
#include "train/dist/backends.h"
#include "train/dist/communicator.h"
#include "train/dist/gradient_sync.h"
#include "train/dist/launch.h"
#include "train/dist/tcp_store.h"

using namespace mtl;
using namespace mtl::train;

namespace {

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

TEST_CASE("detect_launch: mpirun's, torchrun's and SLURM's variables, in that order") {
  Launch l = detect_launch(env_of({}));
  CHECK(l.kind == LaunchKind::single);
  CHECK_FALSE(l.distributed());

  l = detect_launch(env_of({{"OMPI_COMM_WORLD_SIZE", "4"},
                            {"OMPI_COMM_WORLD_RANK", "3"},
                            {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                            {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"},
                            {"WORLD_SIZE", "8"},
                            {"RANK", "5"}}));
  CHECK(l.kind == LaunchKind::mpi);
  CHECK(l.rank == 3);
  CHECK(l.world_size == 4);
  CHECK(l.local_rank == 1);
  CHECK(l.local_world_size == 2);

  l = detect_launch(env_of({{"WORLD_SIZE", "8"},
                            {"RANK", "5"},
                            {"LOCAL_RANK", "1"},
                            {"LOCAL_WORLD_SIZE", "4"},
                            {"MASTER_ADDR", "node0"},
                            {"MASTER_PORT", "1234"},
                            {"SLURM_NTASKS", "2"},
                            {"SLURM_PROCID", "1"}}));
  CHECK(l.kind == LaunchKind::env);
  CHECK(l.rank == 5);
  CHECK(l.world_size == 8);
  CHECK(l.local_rank == 1);
  CHECK(l.master_addr == "node0");
  CHECK(l.master_port == 1234);

  l = detect_launch(env_of({{"SLURM_NTASKS", "16"},
                            {"SLURM_PROCID", "9"},
                            {"SLURM_LOCALID", "1"},
                            {"SLURM_TASKS_PER_NODE", "8(x2)"},
                            {"MASTER_ADDR", "10.0.0.1"}}));
  CHECK(l.kind == LaunchKind::env);
  CHECK(l.rank == 9);
  CHECK(l.world_size == 16);
  CHECK(l.local_world_size == 8);
  CHECK(l.master_port == 29500);

  // A world of one is one process, whatever launched it.
  CHECK(detect_launch(env_of({{"WORLD_SIZE", "1"}, {"RANK", "0"}})).kind == LaunchKind::single);
  CHECK(detect_launch(env_of({{"SLURM_NTASKS", "1"}, {"SLURM_PROCID", "0"}})).kind == LaunchKind::single);

  CHECK_THROWS_WITH_AS(detect_launch(env_of({{"WORLD_SIZE", "2"}, {"RANK", "0"}})),
                       doctest::Contains("needs MASTER_ADDR"), Error);
  CHECK_THROWS_WITH_AS(detect_launch(env_of({{"WORLD_SIZE", "2"}, {"RANK", "2"}, {"MASTER_ADDR", "a"}})),
                       doctest::Contains("rank 2 outside the world of 2"), Error);
  CHECK_THROWS_WITH_AS(detect_launch(env_of({{"WORLD_SIZE", "two"}, {"RANK", "0"}})),
                       doctest::Contains("WORLD_SIZE='two' is not an integer"), Error);
  CHECK_THROWS_WITH_AS(detect_launch(env_of({{"WORLD_SIZE", "2"}})), doctest::Contains("RANK is not"), Error);
  CHECK_THROWS_WITH_AS(
      detect_launch(env_of({{"WORLD_SIZE", "2"}, {"RANK", "1"}, {"MASTER_ADDR", "a"}, {"MASTER_PORT", "70000"}})),
      doctest::Contains("MASTER_PORT=70000 is not a TCP port"), Error);
}

TEST_CASE("the process group: none for one process; the environment launch needs CUDA") {
  CHECK(init_process_group(Launch{}, Device::cpu(), 10) == nullptr);
  CHECK(process_group() == nullptr);
  abort_process_group(1);  // returns: there is no group
  Launch l;
  l.kind = LaunchKind::env;
  l.world_size = 2;
  l.source = "RANK/WORLD_SIZE";
  l.master_addr = "127.0.0.1";
  CHECK_THROWS_WITH_AS(init_process_group(l, Device::cpu(), 10), doctest::Contains("start the processes with mpirun"),
                       Error);
  CHECK(process_group() == nullptr);
}

// ---- the TCP store ----

namespace {

// `world` ranks in threads of this process, rank 0 first (it picks the port); each runs `body`.
void run_store_ranks(int world, double timeout_s, const std::function<void(TcpStore&, int)>& body) {
  auto store0 = std::make_unique<TcpStore>("127.0.0.1", 0, 0, world, timeout_s);
  const int port = store0->port();
  std::vector<std::future<void>> ranks;
  ranks.push_back(std::async(std::launch::async, [&] { body(*store0, 0); }));
  for (int r = 1; r < world; ++r)
    ranks.push_back(std::async(std::launch::async, [=, &body] {
      TcpStore s("127.0.0.1", port, r, world, timeout_s);
      body(s, r);
    }));
  for (auto& f : ranks) f.get();
}

}  // namespace

TEST_CASE("the TCP store gathers every rank's bytes in rank order, round after round") {
  run_store_ranks(3, 20, [](TcpStore& s, int rank) {
    for (int round = 0; round < 20; ++round) {
      // Lengths differ per rank and round, rank 1 sends nothing on even rounds, and one message is large.
      std::string mine = rank == 1 && round % 2 == 0 ? "" : std::string(static_cast<size_t>(rank + round), 'a' + rank);
      if (round == 7 && rank == 2) mine = std::string(300000, 'z');
      const std::vector<std::string> all = s.all_gather_bytes(mine, "round " + std::to_string(round));
      REQUIRE(all.size() == 3);
      for (int r = 0; r < 3; ++r) {
        std::string want = r == 1 && round % 2 == 0 ? "" : std::string(static_cast<size_t>(r + round), 'a' + r);
        if (round == 7 && r == 2) want = std::string(300000, 'z');
        CHECK(all[r] == want);
      }
    }
  });
}

TEST_CASE("the TCP store: a rank that leaves makes the others fail at once") {
  const auto t0 = std::chrono::steady_clock::now();
  run_store_ranks(3, 30, [](TcpStore& s, int rank) {
    s.all_gather_bytes("x", "the first round");
    if (rank == 2) return;  // its store closes when the thread ends
    CHECK_THROWS_WITH_AS(s.all_gather_bytes("y", "the second round"),
                         doctest::Contains("rank 2 closed its connection to the TCP store"), Error);
  });
  CHECK(seconds_since(t0) < 10);  // long before the 30 s timeout
}

TEST_CASE("the TCP store: a stalled rank times out with the collective's name") {
  const auto t0 = std::chrono::steady_clock::now();
  run_store_ranks(2, 0.5, [](TcpStore& s, int rank) {
    if (rank == 1) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // never joins in time
      return;
    }
    CHECK_THROWS_WITH_AS(s.all_gather_bytes("x", "the stop requests"),
                         doctest::Contains("all-gather of the stop requests through the TCP store at 127.0.0.1:"),
                         Error);
  });
  CHECK(seconds_since(t0) < 10);
  // An unreachable rank 0 is reported with what to check.
  CHECK_THROWS_WITH_AS(TcpStore("127.0.0.1", 1, 1, 2, 0.3), doctest::Contains("could not reach rank 0's TCP store"),
                       Error);
}

TEST_CASE("the TCP store turns away a second process with a rank already taken, or another world size") {
  TcpStore s0("127.0.0.1", 0, 0, 3, 10);
  TcpStore s1("127.0.0.1", s0.port(), 1, 3, 10);
  TcpStore twin("127.0.0.1", s0.port(), 1, 3, 10);
  CHECK_THROWS_WITH_AS(twin.all_gather_bytes("", "the twin's"), doctest::Contains("two processes both claim rank 1"),
                       Error);
  TcpStore other("127.0.0.1", s0.port(), 2, 4, 10);
  CHECK_THROWS_WITH_AS(other.all_gather_bytes("", "the stranger's"),
                       doctest::Contains("rank 2 was started for a world of 4 processes, rank 0 for 3"), Error);
  TcpStore s2("127.0.0.1", s0.port(), 2, 3, 10);
  auto f1 = std::async(std::launch::async, [&] { return s1.all_gather_bytes("b", "the end"); });
  auto f2 = std::async(std::launch::async, [&] { return s2.all_gather_bytes("c", "the end"); });
  const std::vector<std::string> want{"a", "b", "c"};
  CHECK(s0.all_gather_bytes("a", "the end") == want);
  CHECK(f1.get() == want);
  CHECK(f2.get() == want);
}

// ---- the MPI backend, under mpirun ----

TEST_CASE("MPI on 3 ranks: sums, averages, broadcasts and gathers, the same bits on every rank") {
  MTL_REQUIRE_MPI();
  test::check_workers(3, "worker: collectives", "dist_mpi");
}

TEST_SUITE("mpi") {
  TEST_CASE("worker: collectives") {
    MTL_MPI_WORKER(comm);
    const int rank = comm->rank(), world = comm->size();
    CHECK(comm->backend() == "mpi");
    CHECK(world == 3);
    // 7 elements: not a multiple of the world, so the blocks are padded.
    for (DType t : {DType::f32, DType::f64}) {
      Tensor x = empty({7}, t);
      for (int64_t i = 0; i < 7; ++i) x.set({i}, 0.1 * static_cast<double>(i) + rank + 1.0 / 3.0);
      Tensor avg = x.clone();
      comm->all_reduce(x, ReduceOp::sum, "x");
      comm->all_reduce(avg, ReduceOp::average, "x");
      for (int64_t i = 0; i < 7; ++i) {
        double want = 0;
        for (int q = 0; q < world; ++q) want += 0.1 * static_cast<double>(i) + q + 1.0 / 3.0;
        CHECK(x.at({i}) == doctest::Approx(want).epsilon(1e-6));
        CHECK(avg.at({i}) == doctest::Approx(want / world).epsilon(1e-6));
      }
      // The same bits everywhere.
      const std::string bits(static_cast<const char*>(avg.data_ptr()), avg.nbytes());
      for (const std::string& b : comm->all_gather_bytes(bits, "the averages")) CHECK(b == bits);
    }
    Tensor counts = full({3, 2}, rank + 1, DType::i64);
    comm->all_reduce(counts, ReduceOp::sum, "counts");
    CHECK(counts.to_f64_vector() == std::vector<double>(6, 6.0));
    Tensor ints = full({5}, rank, DType::i32);
    comm->all_reduce(ints, ReduceOp::sum, "ints");
    CHECK(ints.to_f64_vector() == std::vector<double>(5, 3.0));
    Tensor b = full({4, 3}, rank * 10.0);
    comm->broadcast(b, 1, "b");
    CHECK(b.to_f64_vector() == std::vector<double>(12, 10.0));
    const std::vector<std::string> all = comm->all_gather_bytes(std::string(static_cast<size_t>(rank), 'r'), "names");
    CHECK(all == std::vector<std::string>{"", "r", "rr"});
    const std::vector<std::vector<double>> vals = comm->all_gather({1.5 * rank, -1.0}, "values");
    CHECK(vals[2] == std::vector<double>{3.0, -1.0});
    CHECK(comm->broadcast_string(rank == 0 ? "runs/x-20260101" : "other", 0, "the name") == "runs/x-20260101");
    comm->barrier("the end of the checks");
    // Argument errors before any communication, the same on every rank.
    CHECK_THROWS_WITH_AS(comm->all_reduce(ints, ReduceOp::average, "ints"),
                         doctest::Contains("needs a floating tensor"), Error);
    CHECK_THROWS_WITH_AS(comm->all_reduce(b.transpose(0, 1), ReduceOp::sum, "b^T"),
                         doctest::Contains("is not contiguous"), Error);
    CHECK_THROWS_WITH_AS(comm->broadcast(b, 3, "b"), doctest::Contains("from rank 3 in a world of 3"), Error);
    finalize_process_group();
  }
}

// ---- NCCL, on a GPU ----

TEST_SUITE("cuda") {
  TEST_CASE("cuda: NCCL with one rank: all-reduce, broadcast, gradient buckets, host values") {
    MTL_REQUIRE_GPU();
    auto store = std::make_shared<TcpStore>("127.0.0.1", 0, 0, 1, 60);
    std::unique_ptr<Communicator> comm = make_nccl_communicator(store, 0, 1, 60);
    INFO(comm->backend());
    CHECK(comm->backend().rfind("nccl ", 0) == 0);
    Tensor x = test::randn({1000, 3}).cuda(), ref = x.cpu();
    comm->all_reduce(x, ReduceOp::sum, "x");
    CHECK_BITWISE(x.cpu(), ref);
    comm->all_reduce(x, ReduceOp::average, "x");
    CHECK_BITWISE(x.cpu(), ref);
    Tensor n = full({17}, 5, Options(DType::i64, Device::cuda()));
    comm->all_reduce(n, ReduceOp::sum, "n");
    CHECK(n.cpu().to_f64_vector() == std::vector<double>(17, 5.0));
    comm->broadcast(x, 0, "x");
    CHECK_BITWISE(x.cpu(), ref);
    CHECK(comm->all_gather_bytes("id", "bytes") == std::vector<std::string>{"id"});
    CHECK_THROWS_WITH_AS(comm->all_reduce(ref, ReduceOp::sum, "ref"), doctest::Contains("NCCL moves CUDA tensors"),
                         Error);
    // Gradient buckets over one rank leave the gradients as they are.
    Tensor w = test::randn({64, 33}).cuda(), v = test::randn({7}).cuda();
    w.set_requires_grad(true);
    v.set_requires_grad(true);
    const Tensor gw = test::randn({64, 33});
    w.set_grad(gw.cuda());
    std::shared_ptr<Communicator> shared = std::move(comm);
    GradientSync sync(NamedTensors{{"w", w}, {"v", v}}, {}, shared, 4096);
    sync.synchronize();
    cuda::synchronize();
    CHECK_BITWISE(w.grad().cpu(), gw);
    CHECK(v.grad().cpu().to_f64_vector() == std::vector<double>(7, 0.0));
    // Synchronised batch norm through NCCL equals the plain one on one rank.
    Tensor in = test::randn({4, 5, 9, 11}).cuda();
    const Tensor plain = ops::batch_norm2d(in, Tensor(), Tensor(), Tensor(), Tensor(), true);
    const Tensor synced = ops::sync_batch_norm2d(in, Tensor(), Tensor(), Tensor(), Tensor(), [&](const Tensor& t) {
      shared->all_reduce(t, ReduceOp::sum, "the statistics");
    });
    CHECK_CLOSE(synced.cpu(), plain.cpu(), 1e-5, 1e-5);
  }
}
