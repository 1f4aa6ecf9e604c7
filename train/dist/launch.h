#pragma once
// How this process was started: alone, by mpirun (OpenMPI), or with the environment that torchrun
// and SLURM's srun set. Read from environment variables only, so that it is known before anything
// else starts (the CUDA device, MPI) and errors can carry the rank from the first line on.
#include <functional>
#include <string>

namespace mtl::train {

enum class LaunchKind {
  single,  // no launcher, or a world of one: one process, exactly as without this layer
  mpi,     // mpirun: OMPI_COMM_WORLD_{RANK,SIZE,LOCAL_RANK,LOCAL_SIZE}; MPI carries host values
  env,     // torchrun (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE) or srun (SLURM_PROCID,
           // SLURM_NTASKS, SLURM_LOCALID): MASTER_ADDR:MASTER_PORT hosts the TCP store on rank 0
};

struct Launch {
  LaunchKind kind = LaunchKind::single;
  int rank = 0, world_size = 1;
  int local_rank = 0, local_world_size = 1;  // among the processes on this machine
  std::string master_addr;                   // env only
  int master_port = 29500;                   // env only; torchrun's default
  std::string source;                        // the variables it came from, for messages
  bool distributed() const { return world_size > 1; }
};

using EnvLookup = std::function<const char*(const char*)>;

// The launch described by the environment (`env` looks a variable up; null when unset). mpirun's
// variables win over torchrun's, which win over SLURM's. Throws mtl::Error naming the variable
// when one is malformed or they disagree (a rank outside the world, a missing MASTER_ADDR).
Launch detect_launch(const EnvLookup& env);
Launch detect_launch();  // from the process's environment

// "[rank R] " in a distributed launch, else "": what every rank's error lines start with.
std::string rank_prefix();

}  // namespace mtl::train
