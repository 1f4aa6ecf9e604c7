#include "train/dist/communicator.h"

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sstream>

#include "core/cuda_context.h"
#include "core/error.h"
#include "train/dist/backends.h"
#include "train/dist/tcp_store.h"

namespace mtl::train {

void Communicator::barrier(const std::string& what) { all_gather_bytes("", what); }

std::vector<std::vector<double>> Communicator::all_gather(const std::vector<double>& values, const std::string& what) {
  std::string bytes(values.size() * sizeof(double), '\0');
  if (!values.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
  std::vector<std::vector<double>> out;
  for (const std::string& b : all_gather_bytes(bytes, what)) {
    MTL_ASSERT(b.size() % sizeof(double) == 0, "all_gather of '", what, "': ", b.size(), " bytes");
    std::vector<double> v(b.size() / sizeof(double));
    if (!v.empty()) std::memcpy(v.data(), b.data(), b.size());
    out.push_back(std::move(v));
  }
  return out;
}

std::string Communicator::broadcast_string(const std::string& s, int root, const std::string& what) {
  MTL_CHECK(root >= 0 && root < size_, "broadcast of '", what, "' from rank ", root, " in a world of ", size_);
  return all_gather_bytes(rank_ == root ? s : std::string(), what)[static_cast<size_t>(root)];
}

std::string Communicator::timeout_message(const std::string& op, const std::string& what) const {
  std::ostringstream os;
  os << op << " of " << what << " did not complete within " << timeout_s_
     << " s (runtime.dist_timeout): another rank has died, stalled or left the collective";
  return os.str();
}

// ---- the process group ----

namespace {

struct Group {
  std::mutex mu;
  std::shared_ptr<Communicator> comm;
  Launch launch;
  Device device;
};

Group& group() {
  static Group g;
  return g;
}

std::shared_ptr<Communicator> make_group(const Launch& l, Device device, double timeout_s) {
  MTL_CHECK(timeout_s > 0, "runtime.dist_timeout must be positive, got ", timeout_s);
  if (device.is_cuda()) {
    // One GPU per process: the local rank's. More processes than GPUs share them round robin.
    const int gpus = cuda::device_count();
    MTL_CHECK(gpus > 0, "rank ", l.rank, " has no visible GPU");
    cuda::select_device(l.local_rank % gpus);
    if (l.kind == LaunchKind::mpi)
      return make_nccl_communicator(std::shared_ptr<HostChannel>(make_mpi_communicator(timeout_s)), l.rank,
                                    l.world_size, timeout_s);
    return make_nccl_communicator(
        std::make_shared<TcpStore>(l.master_addr, l.master_port, l.rank, l.world_size, timeout_s), l.rank, l.world_size,
        timeout_s);
  }
  MTL_CHECK(l.kind == LaunchKind::mpi, "the ", l.source, " launch of ", l.world_size,
            " processes trains on CUDA devices (NCCL); on the CPU, start the processes with mpirun -np ", l.world_size,
            " (docs/distributed.md)");
  return make_mpi_communicator(timeout_s);
}

}  // namespace

std::shared_ptr<Communicator> init_process_group(const Launch& launch, Device device, double timeout_s) {
  if (!launch.distributed()) return nullptr;
  Group& g = group();
  std::lock_guard<std::mutex> lk(g.mu);
  if (g.comm) {
    MTL_CHECK(g.device.is_cuda() == device.is_cuda(), "the process group was started for ", g.device.str(),
              " tensors; it cannot move ", device.str(), " tensors");
    return g.comm;
  }
  g.comm = make_group(launch, device, timeout_s);
  g.launch = launch;
  g.device = device;
  MTL_ASSERT(g.comm->rank() == launch.rank && g.comm->size() == launch.world_size, "the communicator has rank ",
             g.comm->rank(), " of ", g.comm->size(), ", the launch says ", launch.rank, " of ", launch.world_size);
  return g.comm;
}

std::shared_ptr<Communicator> process_group() {
  Group& g = group();
  std::lock_guard<std::mutex> lk(g.mu);
  return g.comm;
}

void finalize_process_group() {
  std::shared_ptr<Communicator> c;
  {
    Group& g = group();
    std::lock_guard<std::mutex> lk(g.mu);
    c = std::move(g.comm);
  }
  c.reset();  // the last owner's destructor finalises
}

void abort_process_group(int code) {
  std::shared_ptr<Communicator> c = process_group();
  if (!c) return;
  c->abort();
  std::_Exit(code);
}

}  // namespace mtl::train
