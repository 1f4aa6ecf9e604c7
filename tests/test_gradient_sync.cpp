// train/dist/gradient_sync.h: how tensors are laid out in buckets (the size cap, the order, one
// dtype per bucket), the packing round trip through a stand-in communicator (gradients averaged,
// missing ones as zeros, buffers from rank 0), and under mpirun on 2 ranks the averaged gradients
// of different per-rank gradients in several buckets, the same bits on both ranks.
#include <doctest/doctest.h>

#include "core/error.h"
#include "ops/ops.h"
#include "tests/support/compare.h"
#include "tests/support/mpi.h"
#include "tests/support/random.h"
#include "train/dist/gradient_sync.h"

using namespace mtl;
using namespace mtl::train;

namespace {

// Rank 1 of 2 whose peer, rank 0, always holds three times this rank's values: an average is then
// twice the values, a sum four times, and a broadcast from rank 0 three times. Records each call.
class PeerOfThree : public Communicator {
 public:
  PeerOfThree() : Communicator(1, 2, 10) {}
  std::string backend() const override { return "stand-in"; }
  void all_reduce(const Tensor& t, ReduceOp op, const std::string& what) override {
    scale(t, op == ReduceOp::sum ? 4.0 : 2.0);
    calls.push_back(std::string("all-reduce ").append(what));
    sizes.push_back(t.numel());
  }
  void broadcast(const Tensor& t, int root, const std::string& what) override {
    CHECK(root == 0);
    scale(t, 3.0);
    calls.push_back(std::string("broadcast ").append(what));
  }
  std::vector<std::string> all_gather_bytes(const std::string& bytes, const std::string&) override {
    return {bytes, bytes};
  }
  std::vector<std::string> calls;
  std::vector<int64_t> sizes;

 private:
  static void scale(const Tensor& t, double k) {
    for (int64_t i = 0; i < t.numel(); ++i) {
      if (t.dtype() == DType::f32) t.data<float>()[i] *= static_cast<float>(k);
      if (t.dtype() == DType::f64) t.data<double>()[i] *= k;
      if (t.dtype() == DType::i64) t.data<int64_t>()[i] *= static_cast<int64_t>(k);
    }
  }
};

Tensor param(const Shape& s, DType t = DType::f32) {
  Tensor p = test::randn(s, t);
  p.set_requires_grad(true);
  return p;
}

}  // namespace

TEST_CASE("make_buckets: runs of one dtype up to the byte cap, a large tensor alone, in the order given") {
  const NamedTensors ts{
      {"a", zeros({10})}, {"b", zeros({20})},     {"c", zeros({100})}, {"d", zeros({5})}, {"e", zeros({5}, DType::f64)},
      {"f", zeros({3})},  {"g", zeros({2, 3, 4})}};
  const std::vector<Bucket> b = make_buckets(ts, 30 * 4);
  REQUIRE(b.size() == 5);
  CHECK(b[0].members == std::vector<size_t>{0, 1});  // 30 floats: exactly the cap
  CHECK(b[0].offsets == std::vector<int64_t>{0, 10});
  CHECK(b[1].members == std::vector<size_t>{2});  // larger than the cap: on its own
  CHECK(b[2].members == std::vector<size_t>{3});  // a float64 tensor next starts its own bucket
  CHECK(b[3].members == std::vector<size_t>{4});
  CHECK(b[3].flat.dtype() == DType::f64);
  CHECK(b[4].members == std::vector<size_t>{5, 6});
  CHECK(b[4].flat.numel() == 27);
  CHECK_THROWS_WITH_AS(make_buckets(ts, 0), doctest::Contains("positive size"), Error);
  CHECK_THROWS_WITH_AS(make_buckets({{"t", zeros({3, 4}).transpose(0, 1)}}, 100), doctest::Contains("'t' is F32[4, 3]"),
                       Error);
}

TEST_CASE("GradientSync averages every gradient bucket by bucket; a missing one counts as zeros") {
  auto comm = std::make_shared<PeerOfThree>();
  Tensor w = param({6, 5}), b = param({5}), frozen = test::randn({4}), v = param({40}), none = param({3});
  const Tensor rm = test::randn({5}), count = full({}, 7, DType::i64);
  const Tensor gw = test::randn({6, 5}), gb = test::randn({5}), gv = test::randn({40});
  w.set_grad(gw.clone());
  b.set_grad(gb.clone());
  v.set_grad(gv.clone());
  GradientSync sync({{"w", w}, {"b", b}, {"frozen", frozen}, {"v", v}, {"none", none}},
                    {{"running_mean", rm}, {"count", count}}, comm, 35 * 4);
  // Reverse order, without the tensor that needs no gradient.
  REQUIRE(sync.parameters().size() == 4);
  CHECK(sync.parameters()[0].first == "none");
  CHECK(sync.parameters()[3].first == "w");
  CHECK(sync.buckets().size() == 3);  // [none], [v], [b, w]
  const Tensor grad_w = w.grad();
  sync.synchronize();
  CHECK(w.grad().same(grad_w));  // in place
  CHECK_BITWISE(w.grad(), ops::mul_scalar(gw, 2.0));
  CHECK_BITWISE(b.grad(), ops::mul_scalar(gb, 2.0));
  CHECK_BITWISE(v.grad(), ops::mul_scalar(gv, 2.0));
  REQUIRE(none.grad().defined());
  CHECK(none.grad().to_f64_vector() == std::vector<double>(3, 0.0));
  CHECK_FALSE(frozen.grad().defined());
  CHECK(sync.buckets()[2].flat.numel() == 35);
  CHECK(comm->sizes == std::vector<int64_t>{3, 40, 35});
  CHECK(comm->calls[0] == "all-reduce the gradients (bucket 1 of 3, 12 bytes)");
  // The buffers: rank 0's, every step.
  CHECK(comm->calls.back().rfind("broadcast the buffers", 0) == 0);
  CHECK(count.item() == 21);
}

TEST_CASE("broadcast_tensors sends rank 0's values of every tensor") {
  PeerOfThree comm;
  const Tensor a = test::randn({3, 3}), b = test::randn({2}, DType::f64), c = full({4}, 2, DType::i64);
  const Tensor a0 = a.clone(), b0 = b.clone();
  broadcast_tensors({{"a", a}, {"b", b}, {"c", c}}, comm, 0, "the start", 1 << 20);
  CHECK_BITWISE(a, ops::mul_scalar(a0, 3.0));
  CHECK_BITWISE(b, ops::mul_scalar(b0, 3.0));
  CHECK(c.to_f64_vector() == std::vector<double>(4, 6.0));
  CHECK(comm.calls.size() == 3);  // one bucket per dtype
}

TEST_CASE("GradientSync on 2 ranks under mpirun: the mean of different gradients, the same bits on both") {
  MTL_REQUIRE_MPI();
  test::check_workers(2, "worker: gradient sync", "gradient_sync_mpi");
}

TEST_SUITE("mpi") {
  TEST_CASE("worker: gradient sync") {
    MTL_MPI_WORKER(comm);
    const int rank = comm->rank();
    // The same parameters on both ranks (a fixed seed), gradients that differ by rank, and one
    // parameter without a gradient on rank 1.
    Generator gen(11);
    NamedTensors params;
    std::vector<Tensor> base;
    for (int i = 0; i < 9; ++i) {
      Tensor p = normal({3 + i * 7}, 0, 1, gen);
      p.set_requires_grad(true);
      params.emplace_back(std::string("p").append(std::to_string(i)), p);  // GCC 12's -Wrestrict trips on "p" + s
      base.push_back(normal({3 + i * 7}, 0, 1, gen));
      if (!(rank == 1 && i == 4)) p.set_grad(ops::mul_scalar(base.back(), rank + 1.0));
    }
    GradientSync sync(params, {}, comm, 64);  // a few tensors per bucket
    CHECK(sync.buckets().size() > 3);
    sync.synchronize();
    for (int i = 0; i < 9; ++i) {
      // (1 + 2) / 2 of the base, or (1 + 0) / 2 where rank 1 had none.
      const double k = i == 4 ? 0.5 : 1.5;
      CHECK_CLOSE(params[i].second.grad(), ops::mul_scalar(base[i], k), 1e-6, 1e-6);
      const Tensor g = params[i].second.grad();
      const std::string bits(static_cast<const char*>(g.data_ptr()), g.nbytes());
      const std::vector<std::string> all = comm->all_gather_bytes(bits, "the gradient bits");
      CHECK(all[0] == all[1]);
    }
    finalize_process_group();
  }
}
