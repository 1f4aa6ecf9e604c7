#pragma once
// The TCP store of the environment launch (torchrun, SLURM): rank 0 listens on MASTER_PORT and
// every rank, rank 0 too, connects to MASTER_ADDR:MASTER_PORT. It carries the host values of an
// NCCL run (the unique id, loss values, flags) as all-gathers: each rank sends its bytes, and once
// every rank's have arrived the server sends all of them, in rank order, to each. Tensors never go
// through it.
//
// No wait is unbounded: connecting retries until the deadline (rank 0 may start last), every
// reply is awaited with poll() against it, and a rank whose connection closes (it ended or died)
// makes the server tell every other rank at once, which then fails with an error naming it.
#include <memory>
#include <string>
#include <vector>

#include "train/dist/communicator.h"

namespace mtl::train {

class TcpStore : public HostChannel {
 public:
  // Rank 0 starts the server on `port` (0: a free port, see port()). Throws mtl::Error when the
  // port cannot be bound or rank 0 cannot be reached within `timeout_s`.
  TcpStore(const std::string& host, int port, int rank, int world_size, double timeout_s);
  ~TcpStore() override;
  TcpStore(const TcpStore&) = delete;
  TcpStore& operator=(const TcpStore&) = delete;

  // The port the server listens on (rank 0), else the one connected to.
  int port() const { return port_; }
  std::vector<std::string> all_gather_bytes(const std::string& bytes, const std::string& what) override;
  void abort() override;
  std::string name() const override { return "the TCP store at " + where_; }

 private:
  class Server;
  std::unique_ptr<Server> server_;
  std::string where_;  // host:port, for messages
  int rank_, world_, port_;
  double timeout_s_;
  int fd_ = -1;
};

}  // namespace mtl::train
