#pragma once
// The backends behind Communicator (communicator.h), made by init_process_group(); declared here
// so that their tests can make them directly.
#include <memory>
#include <string>

#include "train/dist/communicator.h"

namespace mtl::train {

// MPI_COMM_WORLD of an mpirun launch (MPI started here, finalised by the destructor). CPU tensors
// only. Throws mtl::Error when mtl was built without MPI.
std::unique_ptr<Communicator> make_mpi_communicator(double timeout_s);
// CUDA tensors over NCCL (libnccl.so.2 opened at run time); the unique id and all host values go
// through `host`, whose ranks these are. Throws mtl::Error when NCCL cannot be loaded or started.
std::unique_ptr<Communicator> make_nccl_communicator(std::shared_ptr<HostChannel> host, int rank, int size,
                                                     double timeout_s);

}  // namespace mtl::train
