#pragma once
// Collectives between the processes of a data-parallel run, one replica per process (rank):
// all-reduce (sum or average) and broadcast of tensors in place, and all-gather of small host
// values. Two backends behind one interface (docs/distributed.md): MPI for CPU tensors (mpirun)
// and NCCL for CUDA tensors, whose host values and unique id go through MPI (mpirun) or through
// the TCP store on rank 0 (torchrun/SLURM environment). Every collective must be called by every
// rank in the same order with the same shapes.
//
// No collective waits forever: one that has not completed after runtime.dist_timeout seconds
// fails with mtl::Error naming it (MPI and the TCP store: non-blocking operations polled against
// a deadline in the calling thread) or, for NCCL, whose kernels cannot be interrupted, a watchdog
// thread aborts the communicator and ends the process with the message. A timed-out communicator
// is not usable any more: the process reports the error and ends (abort_process_group()).
#include <memory>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/tensor.h"
#include "train/dist/launch.h"

namespace mtl::train {

enum class ReduceOp { sum, average };

// Small host values between the ranks (the NCCL unique id, loss values, flags): every rank's
// bytes, in rank order.
class HostChannel {
 public:
  virtual ~HostChannel() = default;
  // `what` names the exchange in error messages.
  virtual std::vector<std::string> all_gather_bytes(const std::string& bytes, const std::string& what) = 0;
  // Tears the channel down at once after a failure, so that the other ranks fail fast too.
  virtual void abort() {}
  // What carries the values, for messages.
  virtual std::string name() const = 0;
};

class Communicator : public HostChannel {
 public:
  int rank() const { return rank_; }
  int size() const { return size_; }
  double timeout_s() const { return timeout_s_; }
  // "mpi", "nccl, host values over mpi", "nccl, host values over the TCP store".
  virtual std::string backend() const = 0;
  std::string name() const override { return backend(); }

  // In place on a contiguous tensor of the backend's device (F32, F64, I64, I32; average: F32 and
  // F64), the same shape on every rank. Afterwards every rank holds the same bits. On CUDA the
  // operation is ordered on the context's stream like a kernel.
  virtual void all_reduce(const Tensor& t, ReduceOp op, const std::string& what) = 0;
  // Rank `root`'s values into every rank's `t` (any dtype).
  virtual void broadcast(const Tensor& t, int root, const std::string& what) = 0;

  void barrier(const std::string& what);
  // Every rank's values, in rank order (each rank may give a different count).
  std::vector<std::vector<double>> all_gather(const std::vector<double>& values, const std::string& what);
  // Rank `root`'s string on every rank.
  std::string broadcast_string(const std::string& s, int root, const std::string& what);

 protected:
  Communicator(int rank, int size, double timeout_s) : rank_(rank), size_(size), timeout_s_(timeout_s) {}
  // "... did not complete within T s (runtime.dist_timeout): ..." for a collective `what`.
  std::string timeout_message(const std::string& op, const std::string& what) const;

 private:
  int rank_, size_;
  double timeout_s_;
};

// The process group: one communicator per process, made once (MPI cannot be started twice) and
// kept until finalize_process_group().
//
// The communicator of `launch` for tensors on `device`, made on the first call and returned by
// later ones; null for a single process. A CUDA device is first switched to the local rank's GPU
// (cuda::select_device), so call this before anything touches CUDA. Throws mtl::Error when the
// backend is missing (built without MPI, libnccl.so.2 not found), for the environment launch on
// the CPU (it needs NCCL), and when the ranks cannot meet within `timeout_s`.
std::shared_ptr<Communicator> init_process_group(const Launch& launch, Device device, double timeout_s);
// The current one, or null.
std::shared_ptr<Communicator> process_group();
// Ends the group cleanly (MPI_Finalize, NCCL and TCP store closed): the normal end of a process.
void finalize_process_group();
// After an error on this rank: tears the group down so that the other ranks end at once rather
// than at their timeout (MPI_Abort under mpirun, which ends them all; otherwise NCCL aborted and
// the TCP store closed) and ends the process with `code`. Returns when there is no group.
void abort_process_group(int code);

}  // namespace mtl::train
