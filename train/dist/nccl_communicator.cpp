// The NCCL backend (backends.h): CUDA tensors, collectives enqueued on the context's stream.
//
// libnccl.so.2 is opened at run time (MTL_NCCL_LIBRARY or the loader's search path, then the
// library CMake found), so that nothing links NCCL and CPU-only machines run without it.
//
// Timeouts: NCCL kernels wait for their peers on the GPU and cannot be interrupted from the host,
// so a watchdog thread follows every collective through an event recorded after it. One that is
// still pending at its deadline, or an asynchronous NCCL error (a peer's connection lost), makes
// the watchdog print the error, abort the communicator and end the process: the host thread may
// be blocked in a synchronisation that would never return.
#include "train/dist/backends.h"

#ifdef MTL_HAVE_NCCL

#include <cuda_runtime.h>
#include <dlfcn.h>
#include <nccl.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "core/cuda_check.h"
#include "core/cuda_context.h"
#include "core/error.h"

namespace mtl::train {

namespace {

// The NCCL entry points mtl uses, from the library opened at run time.
struct Nccl {
  decltype(&ncclGetVersion) get_version = nullptr;
  decltype(&ncclGetUniqueId) get_unique_id = nullptr;
  decltype(&ncclCommInitRank) comm_init_rank = nullptr;
  decltype(&ncclAllReduce) all_reduce = nullptr;
  decltype(&ncclBroadcast) broadcast = nullptr;
  decltype(&ncclCommAbort) comm_abort = nullptr;
  decltype(&ncclCommDestroy) comm_destroy = nullptr;
  decltype(&ncclCommGetAsyncError) get_async_error = nullptr;
  decltype(&ncclGetErrorString) error_string = nullptr;
  std::string library;
  int version = 0;

  static const Nccl& get() {
    static const Nccl n = load();
    return n;
  }

 private:
  static Nccl load() {
    std::vector<std::string> tries;
    if (const char* env = std::getenv("MTL_NCCL_LIBRARY")) tries.push_back(env);
    tries.push_back("libnccl.so.2");
    if (std::strlen(MTL_NCCL_LIBRARY) > 0) tries.push_back(MTL_NCCL_LIBRARY);
    void* h = nullptr;
    std::string errors;
    Nccl n;
    for (const std::string& t : tries) {
      h = ::dlopen(t.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (h) {
        n.library = t;
        break;
      }
      errors += "\n  " + t + ": " + ::dlerror();
    }
    MTL_CHECK(h,
              "NCCL could not be loaded (CUDA tensors between processes need it; put libnccl.so.2 on "
              "LD_LIBRARY_PATH, e.g. the nvidia-nccl-cu13 wheel's nvidia/nccl/lib, or set MTL_NCCL_LIBRARY):",
              errors);
    auto sym = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(::dlsym(h, name));
      MTL_CHECK(fn, "NCCL library ", n.library, " has no ", name);
    };
    sym(n.get_version, "ncclGetVersion");
    sym(n.get_unique_id, "ncclGetUniqueId");
    sym(n.comm_init_rank, "ncclCommInitRank");
    sym(n.all_reduce, "ncclAllReduce");
    sym(n.broadcast, "ncclBroadcast");
    sym(n.comm_abort, "ncclCommAbort");
    sym(n.comm_destroy, "ncclCommDestroy");
    sym(n.get_async_error, "ncclCommGetAsyncError");
    sym(n.error_string, "ncclGetErrorString");
    n.get_version(&n.version);
    // ncclAvg and the ABI of this header's calls.
    MTL_CHECK(n.version >= 21000, "NCCL ", n.version, " in ", n.library, " is too old: mtl needs 2.10 or later");
    return n;
  }
};

void nccl_check(ncclResult_t r, const char* op, const std::string& what) {
  MTL_CHECK(r == ncclSuccess, "NCCL ", op, " of ", what, " failed: ", Nccl::get().error_string(r));
}

ncclDataType_t nccl_type(DType t, const std::string& what) {
  switch (t) {
    case DType::f32:
      return ncclFloat32;
    case DType::f64:
      return ncclFloat64;
    case DType::i64:
      return ncclInt64;
    case DType::i32:
      return ncclInt32;
    case DType::u8:
      return ncclUint8;
    case DType::bf16:
      return ncclBfloat16;
    default:
      break;
  }
  throw Error("NCCL: " + what + " has dtype " + std::string(dtype_name(t)) + ", which cannot be sent");
}

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(std::shared_ptr<HostChannel> host, int rank, int size, double timeout_s)
      : Communicator(rank, size, timeout_s), host_(std::move(host)), device_(cuda::selected_device()) {
    const Nccl& nccl = Nccl::get();
    cuda::stream();  // the context (and its device) before NCCL's
    ncclUniqueId id{};
    if (rank == 0) nccl_check(nccl.get_unique_id(&id), "ncclGetUniqueId", "the communicator");
    const std::string bytes =
        host_->all_gather_bytes(std::string(reinterpret_cast<const char*>(&id), sizeof id), "the NCCL unique id")[0];
    MTL_CHECK(bytes.size() == sizeof id, "rank 0 sent an NCCL unique id of ", bytes.size(), " bytes");
    std::memcpy(&id, bytes.data(), sizeof id);
    watchdog_ = std::thread([this] { watch(); });
    // Initialisation blocks until every rank has joined: the watchdog bounds it too.
    const uint64_t ticket = begin_wait("initialisation", "the NCCL communicator");
    ncclComm_t comm = nullptr;
    const ncclResult_t r = nccl.comm_init_rank(&comm, size, id, rank);
    end_wait(ticket);
    if (r != ncclSuccess) {
      stop_watchdog();
      throw Error(std::string("NCCL initialisation failed: ") + nccl.error_string(r));
    }
    std::lock_guard<std::mutex> lk(mu_);
    comm_ = comm;
  }

  ~NcclCommunicator() override {
    if (comm_ && !aborted_) {
      try {
        cuda::synchronize();
      } catch (const Error&) {
        // A failed stream leaves nothing to flush; the communicator is destroyed either way.
      }
    }
    stop_watchdog();
    if (comm_) {
      const Nccl& nccl = Nccl::get();
      aborted_ ? nccl.comm_abort(comm_) : nccl.comm_destroy(comm_);
    }
    for (cudaEvent_t e : free_events_) cudaEventDestroy(e);
  }

  std::string backend() const override {
    return "nccl " + std::to_string(Nccl::get().version) + ", host values over " + host_->name();
  }

  void all_reduce(const Tensor& t, ReduceOp op, const std::string& what) override {
    check_tensor(t, what);
    MTL_CHECK(op == ReduceOp::sum || is_floating(t.dtype()), "NCCL: the average of ", what, " (", t.describe(),
              ") needs a floating tensor");
    if (t.numel() == 0) return;
    nccl_check(
        Nccl::get().all_reduce(t.data_ptr(), t.data_ptr(), static_cast<size_t>(t.numel()), nccl_type(t.dtype(), what),
                               op == ReduceOp::sum ? ncclSum : ncclAvg, comm_, cuda::stream()),
        "all-reduce", what);
    watch_stream("all-reduce", what);
  }

  void broadcast(const Tensor& t, int root, const std::string& what) override {
    check_tensor(t, what);
    MTL_CHECK(root >= 0 && root < size(), "NCCL: broadcast of ", what, " from rank ", root, " in a world of ", size());
    if (t.numel() == 0) return;
    nccl_check(Nccl::get().broadcast(t.data_ptr(), t.data_ptr(), static_cast<size_t>(t.numel()),
                                     nccl_type(t.dtype(), what), root, comm_, cuda::stream()),
               "broadcast", what);
    watch_stream("broadcast", what);
  }

  std::vector<std::string> all_gather_bytes(const std::string& bytes, const std::string& what) override {
    return host_->all_gather_bytes(bytes, what);
  }

  void abort() override {
    ncclComm_t comm = nullptr;
    {
      std::lock_guard<std::mutex> lk(mu_);
      aborted_ = true;
      std::swap(comm, comm_);
    }
    if (comm) Nccl::get().comm_abort(comm);
    host_->abort();
  }

 private:
  struct Pending {
    uint64_t ticket = 0;
    cudaEvent_t event = nullptr;  // null: a host-side wait (initialisation)
    std::string op, what;
    std::chrono::steady_clock::time_point deadline;
  };

  void check_tensor(const Tensor& t, const std::string& what) const {
    MTL_CHECK(t.defined() && t.is_cuda(), "NCCL moves CUDA tensors; ", what, " is ",
              t.defined() ? t.describe() : std::string("undefined"), " (CPU tensors go through MPI)");
    MTL_CHECK(t.is_contiguous(), "NCCL: ", what, " (", t.describe(), ") is not contiguous");
    MTL_CHECK(comm_, "NCCL: the communicator has been aborted");
  }

  std::chrono::steady_clock::time_point deadline() const {
    return std::chrono::steady_clock::now() +
           std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(timeout_s()));
  }

  uint64_t begin_wait(const std::string& op, const std::string& what) {
    std::lock_guard<std::mutex> lk(mu_);
    pending_.push_back({++tickets_, nullptr, op, what, deadline()});
    return tickets_;
  }

  void end_wait(uint64_t ticket) {
    std::lock_guard<std::mutex> lk(mu_);
    for (auto it = pending_.begin(); it != pending_.end(); ++it)
      if (it->ticket == ticket) {
        pending_.erase(it);
        return;
      }
  }

  // An event behind the collective just enqueued, for the watchdog to follow.
  void watch_stream(const std::string& op, const std::string& what) {
    cudaEvent_t e = nullptr;
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (!free_events_.empty()) {
        e = free_events_.back();
        free_events_.pop_back();
      }
    }
    if (!e) MTL_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    MTL_CUDA_CHECK(cudaEventRecord(e, cuda::stream()));
    std::lock_guard<std::mutex> lk(mu_);
    pending_.push_back({++tickets_, e, op, what, deadline()});
  }

  void watch() {
    cudaSetDevice(device_);
    std::unique_lock<std::mutex> lk(mu_);
    while (!stop_) {
      cv_.wait_for(lk, std::chrono::milliseconds(50));
      if (stop_ || aborted_) return;
      const auto now = std::chrono::steady_clock::now();
      // Collectives complete in order on the one stream: the oldest pending one is the one to watch.
      while (!pending_.empty()) {
        Pending& p = pending_.front();
        if (p.event) {
          const cudaError_t q = cudaEventQuery(p.event);
          if (q == cudaSuccess) {
            free_events_.push_back(p.event);
            pending_.pop_front();
            continue;
          }
          if (q != cudaErrorNotReady) fatal(p.op + " of " + p.what + " failed on the GPU: " + cudaGetErrorString(q));
        }
        if (now > p.deadline) fatal(timeout_message(p.op, p.what));
        break;
      }
      if (comm_) {
        ncclResult_t async = ncclSuccess;
        Nccl::get().get_async_error(comm_, &async);
        if (async != ncclSuccess && async != ncclInProgress)
          fatal(std::string("NCCL reports an error: ") + Nccl::get().error_string(async) +
                " (a peer's connection was lost, or a rank has died)");
      }
    }
  }

  // From the watchdog: nothing else can end a wait on the GPU.
  [[noreturn]] void fatal(const std::string& message) {
    std::fprintf(stderr, "%serror: %s; aborting\n", rank_prefix().c_str(), message.c_str());
    std::fflush(stderr);
    if (comm_) Nccl::get().comm_abort(comm_);
    host_->abort();
    std::_Exit(1);
  }

  void stop_watchdog() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (watchdog_.joinable()) watchdog_.join();
  }

  std::shared_ptr<HostChannel> host_;
  int device_;
  ncclComm_t comm_ = nullptr;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> pending_;
  std::vector<cudaEvent_t> free_events_;
  uint64_t tickets_ = 0;
  bool stop_ = false, aborted_ = false;
  std::thread watchdog_;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(std::shared_ptr<HostChannel> host, int rank, int size,
                                                     double timeout_s) {
  return std::make_unique<NcclCommunicator>(std::move(host), rank, size, timeout_s);
}

}  // namespace mtl::train

#else  // built without nccl.h

#include "core/error.h"

namespace mtl::train {

std::unique_ptr<Communicator> make_nccl_communicator(std::shared_ptr<HostChannel>, int, int, double) {
  throw Error(
      "CUDA tensors between processes need NCCL, but mtl was built without nccl.h (set NCCL_ROOT or "
      "NCCL_INCLUDE_DIR when configuring)");
}

}  // namespace mtl::train

#endif
