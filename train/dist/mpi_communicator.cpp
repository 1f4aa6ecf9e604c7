// The MPI backend (backends.h): CPU tensors between the processes that mpirun started.
//
// Timeouts: every collective is a non-blocking MPI operation polled with MPI_Test against a
// deadline in the calling thread (backing off to short sleeps, so that a waiting rank leaves the
// cores to the others), never a blocking call. An operation that misses the deadline cannot be
// cancelled: the error ends the process (the app calls abort_process_group(), MPI_Abort), and
// mpirun ends the others.
//
// Every rank gets the same bits: an all-reduce is a reduce-scatter (each block summed on one
// rank) followed by an all-gather of the blocks, so no rank's result depends on the order in
// which an MPI algorithm happened to add its operands.
#include "train/dist/backends.h"

#ifdef MTL_HAVE_MPI

#include <mpi.h>

#include <chrono>
#include <climits>
#include <cstring>
#include <thread>

#include "core/error.h"

namespace mtl::train {

namespace {

std::string mpi_error(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, text, &len);
  return std::string(text, static_cast<size_t>(len));
}

MPI_Datatype mpi_type(DType t, const std::string& what) {
  switch (t) {
    case DType::f32:
      return MPI_FLOAT;
    case DType::f64:
      return MPI_DOUBLE;
    case DType::i64:
      return MPI_INT64_T;
    case DType::i32:
      return MPI_INT32_T;
    case DType::u8:
      return MPI_UINT8_T;
    default:
      break;
  }
  throw Error("MPI: " + what + " has dtype " + std::string(dtype_name(t)) + ", which cannot be sent");
}

class MpiCommunicator : public Communicator {
 public:
  static std::unique_ptr<MpiCommunicator> create(double timeout_s) {
    int initialised = 0;
    MPI_Initialized(&initialised);
    bool owner = false;
    if (!initialised) {
      // Only this thread calls MPI; the loader's and NCCL's threads never do.
      int provided = 0;
      const int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
      MTL_CHECK(rc == MPI_SUCCESS, "MPI_Init failed: ", mpi_error(rc));
      owner = true;
    }
    MPI_Comm comm;
    MPI_Comm_dup(MPI_COMM_WORLD, &comm);
    MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
    int rank = 0, size = 1;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    return std::unique_ptr<MpiCommunicator>(new MpiCommunicator(comm, rank, size, timeout_s, owner));
  }

  ~MpiCommunicator() override {
    if (aborted_) return;
    MPI_Comm_free(&comm_);
    if (owner_) MPI_Finalize();
  }

  std::string backend() const override { return "mpi"; }

  void all_reduce(const Tensor& t, ReduceOp op, const std::string& what) override {
    check_tensor(t, what);
    MTL_CHECK(op == ReduceOp::sum || t.dtype() == DType::f32 || t.dtype() == DType::f64, "MPI: the average of ", what,
              " (", t.describe(), ") needs a floating tensor");
    const MPI_Datatype type = mpi_type(t.dtype(), what);
    const int64_t n = t.numel(), world = size();
    if (n == 0) return;
    const size_t es = dtype_size(t.dtype());
    // Padded to whole blocks of one per rank; the padding is zeros and is dropped afterwards.
    const int64_t block = (n + world - 1) / world;
    const bool padded = block * world != n;
    std::vector<char> full(padded ? static_cast<size_t>(block * world) * es : 0, 0),
        mine(static_cast<size_t>(block) * es);
    if (padded) std::memcpy(full.data(), t.data_ptr(), static_cast<size_t>(n) * es);
    char* buf = padded ? full.data() : static_cast<char*>(t.data_ptr());
    MPI_Request req;
    check(MPI_Ireduce_scatter_block(buf, mine.data(), count(block, what), type, MPI_SUM, comm_, &req), "all-reduce",
          what);
    wait(req, "all-reduce", what);
    check(MPI_Iallgather(mine.data(), count(block, what), type, buf, count(block, what), type, comm_, &req),
          "all-reduce", what);
    wait(req, "all-reduce", what);
    if (padded) std::memcpy(t.data_ptr(), full.data(), static_cast<size_t>(n) * es);
    if (op == ReduceOp::average) {
      if (t.dtype() == DType::f32) {
        float* p = t.data<float>();
        for (int64_t i = 0; i < n; ++i) p[i] /= static_cast<float>(world);
      } else {
        double* p = t.data<double>();
        for (int64_t i = 0; i < n; ++i) p[i] /= static_cast<double>(world);
      }
    }
  }

  void broadcast(const Tensor& t, int root, const std::string& what) override {
    check_tensor(t, what);
    MTL_CHECK(root >= 0 && root < size(), "MPI: broadcast of ", what, " from rank ", root, " in a world of ", size());
    if (t.numel() == 0) return;
    MPI_Request req;
    check(MPI_Ibcast(t.data_ptr(), count(t.numel(), what), mpi_type(t.dtype(), what), root, comm_, &req), "broadcast",
          what);
    wait(req, "broadcast", what);
  }

  std::vector<std::string> all_gather_bytes(const std::string& bytes, const std::string& what) override {
    const int world = size();
    int64_t mine = static_cast<int64_t>(bytes.size());
    std::vector<int64_t> sizes(static_cast<size_t>(world));
    MPI_Request req;
    check(MPI_Iallgather(&mine, 1, MPI_INT64_T, sizes.data(), 1, MPI_INT64_T, comm_, &req), "all-gather", what);
    wait(req, "all-gather", what);
    std::vector<int> counts(static_cast<size_t>(world)), displs(static_cast<size_t>(world));
    int64_t total = 0;
    for (int r = 0; r < world; ++r) {
      counts[r] = count(sizes[r], what);
      displs[r] = count(total, what);
      total += sizes[r];
    }
    std::string all(static_cast<size_t>(total), '\0');
    check(MPI_Iallgatherv(bytes.data(), counts[rank()], MPI_BYTE, all.data(), counts.data(), displs.data(), MPI_BYTE,
                          comm_, &req),
          "all-gather", what);
    wait(req, "all-gather", what);
    std::vector<std::string> out;
    for (int r = 0; r < world; ++r) out.push_back(all.substr(static_cast<size_t>(displs[r]), sizes[r]));
    return out;
  }

  void abort() override {
    aborted_ = true;
    MPI_Abort(MPI_COMM_WORLD, 1);
  }

 private:
  MpiCommunicator(MPI_Comm comm, int rank, int size, double timeout_s, bool owner)
      : Communicator(rank, size, timeout_s), comm_(comm), owner_(owner) {}

  void check_tensor(const Tensor& t, const std::string& what) const {
    MTL_CHECK(t.defined() && t.device().is_cpu(), "MPI moves CPU tensors; ", what, " is ",
              t.defined() ? t.describe() : std::string("undefined"), " (CUDA tensors go through NCCL)");
    MTL_CHECK(t.is_contiguous(), "MPI: ", what, " (", t.describe(), ") is not contiguous");
  }

  static int count(int64_t n, const std::string& what) {
    MTL_CHECK(n <= INT_MAX, "MPI: ", what, " has ", n, " elements, more than one MPI call moves");
    return static_cast<int>(n);
  }

  void check(int rc, const char* op, const std::string& what) const {
    MTL_CHECK(rc == MPI_SUCCESS, "MPI ", op, " of ", what, " failed: ", mpi_error(rc));
  }

  // Polls until the operation completes or the deadline passes.
  void wait(MPI_Request& req, const char* op, const std::string& what) {
    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s());
    for (int polls = 0;; ++polls) {
      int done = 0;
      check(MPI_Test(&req, &done, MPI_STATUS_IGNORE), op, what);
      if (done) return;
      if (Clock::now() > deadline) throw Error(timeout_message(op, what));
      if (polls < 64)
        std::this_thread::yield();
      else
        std::this_thread::sleep_for(std::chrono::microseconds(polls < 1024 ? 20 : 200));
    }
  }

  MPI_Comm comm_;
  bool owner_;
  bool aborted_ = false;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(double timeout_s) { return MpiCommunicator::create(timeout_s); }

}  // namespace mtl::train

#else  // built without MPI

#include "core/error.h"

namespace mtl::train {

std::unique_ptr<Communicator> make_mpi_communicator(double) {
  throw Error(
      "this process was started by mpirun, but mtl was built without MPI (Debian: libopenmpi-dev; "
      "scripts/setup.sh installs it)");
}

}  // namespace mtl::train

#endif
