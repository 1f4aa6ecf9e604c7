// sync_batch_norm2d: with one process (the sum an identity) it is batch_norm2d in training,
// outputs, running statistics and gradients; float64 gradient checks; argument errors; under
// mpirun, 2 ranks holding half a batch each get the outputs, input gradients, summed parameter
// gradients and running statistics of one batch norm over the whole batch; CUDA-vs-CPU parity.
#include <doctest/doctest.h>

#include "core/error.h"
#include "core/generator.h"
#include "ops/ops.h"
#include "tests/support/compare.h"
#include "tests/support/gpu.h"
#include "tests/support/gradcheck.h"
#include "tests/support/mpi.h"
#include "tests/support/parity.h"
#include "tests/support/random.h"
#include "train/dist/communicator.h"

using namespace mtl;
using test::randn;

namespace {

// One process: nothing to add.
const ops::ChannelSum alone = [](const Tensor&) {};

Tensor positive(const Shape& s, DType t = DType::f32) { return test::rand(s, 0.5, 2.0, t); }

}  // namespace

TEST_CASE("sync_batch_norm2d in one process is batch_norm2d in training") {
  for (DType t : {DType::f64, DType::f32}) {
    Tensor x = ops::add_scalar(randn({3, 4, 5, 7}, t), 2.0);
    Tensor w = randn({4}, t), b = randn({4}, t);
    Tensor rm = randn({4}, t), rv = positive({4}, t), rm2 = rm.clone(), rv2 = rv.clone();
    const double tol = t == DType::f64 ? 1e-12 : 2e-5;
    CHECK_CLOSE(ops::sync_batch_norm2d(x, w, b, rm, rv, alone, 0.1, 1e-3),
                ops::batch_norm2d(x, w, b, rm2, rv2, true, 0.1, 1e-3), tol, tol);
    CHECK_CLOSE(rm, rm2, tol, tol);
    CHECK_CLOSE(rv, rv2, tol, tol);
    // Without affine parameters or running statistics.
    CHECK_CLOSE(ops::sync_batch_norm2d(x, Tensor(), Tensor(), Tensor(), Tensor(), alone),
                ops::batch_norm2d(x, Tensor(), Tensor(), Tensor(), Tensor(), true), tol, tol);
  }
  // Gradients of x, weight and bias against batch_norm2d's.
  const Tensor x = randn({2, 3, 4, 5}, DType::f64), w = randn({3}, DType::f64), b = randn({3}, DType::f64);
  const Tensor gy = randn({2, 3, 4, 5}, DType::f64);
  auto grads = [&](bool sync) {
    Tensor xl = test::leaf(x), wl = test::leaf(w), bl = test::leaf(b);
    Tensor y = sync ? ops::sync_batch_norm2d(xl, wl, bl, Tensor(), Tensor(), alone)
                    : ops::batch_norm2d(xl, wl, bl, Tensor(), Tensor(), true);
    y.backward(gy);
    return std::vector<Tensor>{xl.grad(), wl.grad(), bl.grad()};
  };
  const std::vector<Tensor> s = grads(true), p = grads(false);
  for (size_t i = 0; i < 3; ++i) CHECK_CLOSE(s[i], p[i], 1e-12, 1e-12);
}

TEST_CASE("sync_batch_norm2d gradients (float64 finite differences)") {
  Tensor x = test::leaf(randn({2, 3, 4, 3}, DType::f64)), w = test::leaf(randn({3}, DType::f64)),
         b = test::leaf(randn({3}, DType::f64));
  CHECK_GRADCHECK(
      [](const std::vector<Tensor>& in) {
        return ops::sync_batch_norm2d(in[0], in[1], in[2], Tensor(), Tensor(), alone, 0.1, 1e-3);
      },
      {x, w, b});
}

TEST_CASE("sync_batch_norm2d argument errors") {
  const Tensor x = randn({2, 3, 4, 4});
  CHECK_THROWS_WITH_AS(ops::sync_batch_norm2d(x, randn({4}), Tensor(), Tensor(), Tensor(), alone),
                       doctest::Contains("weight F32[4] on cpu must have shape [3]"), Error);
  CHECK_THROWS_WITH_AS(ops::sync_batch_norm2d(x, Tensor(), Tensor(), Tensor(), Tensor(), nullptr),
                       doctest::Contains("no function to sum"), Error);
  CHECK_THROWS_WITH_AS(ops::sync_batch_norm2d(randn({1, 3, 1, 1}), Tensor(), Tensor(), Tensor(), Tensor(), alone),
                       doctest::Contains("more than 1 value per channel"), Error);
  CHECK_THROWS_WITH_AS(ops::sync_batch_norm2d(x, Tensor(), Tensor(), randn({3}), Tensor(), alone),
                       doctest::Contains("both be defined or both undefined"), Error);
}

TEST_CASE("sync_batch_norm2d on 2 ranks under mpirun: one batch norm over both halves of the batch") {
  MTL_REQUIRE_MPI();
  test::check_workers(2, "worker: sync batch norm", "sync_bn_mpi");
}

TEST_SUITE("mpi") {
  TEST_CASE("worker: sync batch norm") {
    using namespace mtl::train;
    MTL_MPI_WORKER(comm);
    const int rank = comm->rank();
    // The whole batch on both ranks (a fixed seed); rank r holds samples [3r, 3r + 3), a mean
    // far from 0 so that the variance of the sums is tested too.
    Generator gen(5);
    const Tensor x = ops::add_scalar(normal({6, 4, 5, 3}, 0, 1, gen, DType::f64), 50.0);
    const Tensor w = normal({4}, 1, 0.2, gen, DType::f64), b = normal({4}, 0, 1, gen, DType::f64);
    const Tensor gy = normal({6, 4, 5, 3}, 0, 1, gen, DType::f64);
    const Tensor rm0 = normal({4}, 0, 1, gen, DType::f64), rv0 = ops::add_scalar(rm0, 3.0);

    Tensor xf = test::leaf(x), wf = test::leaf(w), bf = test::leaf(b), rmf = rm0.clone(), rvf = rv0.clone();
    Tensor yf = ops::batch_norm2d(xf, wf, bf, rmf, rvf, true, 0.1, 1e-5);
    yf.backward(gy);

    Tensor xs = test::leaf(ops::slice(x, 0, 3 * rank, 3));
    Tensor ws = test::leaf(w), bs = test::leaf(b), rms = rm0.clone(), rvs = rv0.clone();
    const ops::ChannelSum sum = [&](const Tensor& t) { comm->all_reduce(t, ReduceOp::sum, "the statistics"); };
    Tensor ys = ops::sync_batch_norm2d(xs, ws, bs, rms, rvs, sum, 0.1, 1e-5);
    ys.backward(ops::slice(gy, 0, 3 * rank, 3));

    CHECK_CLOSE(ys, ops::slice(yf, 0, 3 * rank, 3), 1e-9, 1e-9);
    CHECK_CLOSE(xs.grad(), ops::slice(xf.grad(), 0, 3 * rank, 3), 1e-9, 1e-9);
    CHECK_CLOSE(rms, rmf, 1e-9, 1e-9);
    CHECK_CLOSE(rvs, rvf, 1e-9, 1e-9);
    // Each rank's own parameter gradients; summed they are the whole batch's.
    Tensor gw = ws.grad().clone(), gb = bs.grad().clone();
    comm->all_reduce(gw, ReduceOp::sum, "gw");
    comm->all_reduce(gb, ReduceOp::sum, "gb");
    CHECK_CLOSE(gw, wf.grad(), 1e-9, 1e-9);
    CHECK_CLOSE(gb, bf.grad(), 1e-9, 1e-9);
    finalize_process_group();
  }
}

TEST_SUITE("cuda") {
  TEST_CASE("cuda parity: sync_batch_norm2d (one process) outputs, running statistics and gradients") {
    MTL_REQUIRE_CUDA();
    for (Shape s : {Shape{3, 5, 7, 9}, Shape{5, 4, 1, 1}, Shape{2, 67, 13, 15}, Shape{4, 3, 128, 129}}) {
      const int64_t C = s[1];
      Tensor x = test::leaf(ops::add_scalar(randn(s), 3.0));
      test::check_parity(
          {shape_str(s),
           test::copies_of({x, test::leaf(randn({C})), test::leaf(randn({C})), randn({C}), positive({C})}),
           [](const std::vector<Tensor>& in) {
             Tensor y = ops::sync_batch_norm2d(in[0], in[1], in[2], in[3], in[4], alone, 0.1, 1e-3);
             return std::vector<Tensor>{y, in[3], in[4]};
           },
           {{1e-4, 1e-4}, {1e-5, 1e-5}, {1e-5, 1e-5}},
           {{1e-4, 1e-3}, {1e-3, 1e-4}}});
    }
  }
}
