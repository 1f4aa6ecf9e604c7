#include "train/dist/launch.h"

#include <cstdlib>

#include "core/error.h"

namespace mtl::train {

namespace {

// The integer in variable `name`, or `fallback` when it is unset.
int int_var(const EnvLookup& env, const char* name, int fallback, int lo) {
  const char* v = env(name);
  if (!v) return fallback;
  const std::string s(v);
  char* end = nullptr;
  const long x = std::strtol(s.c_str(), &end, 10);
  MTL_CHECK(!s.empty() && end && *end == '\0' && x >= lo && x <= 1 << 20, "environment variable ", name, "='", s,
            "' is not an integer >= ", lo);
  return static_cast<int>(x);
}

// SLURM writes tasks per node as "4", "4(x2)" or "4(x2),3": the first count is this layout's.
int slurm_count(const EnvLookup& env, const char* name, int fallback) {
  const char* v = env(name);
  if (!v) return fallback;
  const int x = std::atoi(v);
  return x > 0 ? x : fallback;
}

void check_ranks(const Launch& l) {
  MTL_CHECK(l.world_size >= 1, "the launch (", l.source, ") gives a world size of ", l.world_size);
  MTL_CHECK(l.rank >= 0 && l.rank < l.world_size, "the launch (", l.source, ") gives rank ", l.rank,
            " outside the world of ", l.world_size, " processes");
  MTL_CHECK(l.local_rank >= 0 && l.local_rank < std::max(l.local_world_size, 1), "the launch (", l.source,
            ") gives local rank ", l.local_rank, " of ", l.local_world_size, " processes on this machine");
}

}  // namespace

Launch detect_launch(const EnvLookup& env) {
  Launch l;
  if (env("OMPI_COMM_WORLD_SIZE")) {
    l.kind = LaunchKind::mpi;
    l.source = "mpirun: OMPI_COMM_WORLD_*";
    l.world_size = int_var(env, "OMPI_COMM_WORLD_SIZE", 1, 1);
    l.rank = int_var(env, "OMPI_COMM_WORLD_RANK", 0, 0);
    l.local_rank = int_var(env, "OMPI_COMM_WORLD_LOCAL_RANK", 0, 0);
    l.local_world_size = int_var(env, "OMPI_COMM_WORLD_LOCAL_SIZE", 1, 1);
  } else if (env("WORLD_SIZE")) {
    l.kind = LaunchKind::env;
    l.source = "RANK/WORLD_SIZE";
    l.world_size = int_var(env, "WORLD_SIZE", 1, 1);
    MTL_CHECK(env("RANK") || l.world_size == 1, "WORLD_SIZE=", l.world_size, " is set but RANK is not");
    l.rank = int_var(env, "RANK", 0, 0);
    l.local_rank = int_var(env, "LOCAL_RANK", 0, 0);
    l.local_world_size = int_var(env, "LOCAL_WORLD_SIZE", l.local_rank + 1, 1);
  } else if (env("SLURM_NTASKS") && env("SLURM_PROCID")) {
    l.kind = LaunchKind::env;
    l.source = "SLURM_PROCID/SLURM_NTASKS";
    l.world_size = int_var(env, "SLURM_NTASKS", 1, 1);
    l.rank = int_var(env, "SLURM_PROCID", 0, 0);
    l.local_rank = int_var(env, "SLURM_LOCALID", 0, 0);
    l.local_world_size = slurm_count(env, "SLURM_TASKS_PER_NODE", l.local_rank + 1);
  }
  check_ranks(l);
  if (l.world_size == 1) return Launch{};
  if (l.kind == LaunchKind::env) {
    const char* addr = env("MASTER_ADDR");
    MTL_CHECK(addr && *addr, "the launch (", l.source, ", ", l.world_size,
              " processes) needs MASTER_ADDR: the host name or address of rank 0's machine, where the TCP store "
              "listens (docs/distributed.md)");
    l.master_addr = addr;
    l.master_port = int_var(env, "MASTER_PORT", 29500, 1);
    MTL_CHECK(l.master_port <= 65535, "environment variable MASTER_PORT=", l.master_port, " is not a TCP port");
  }
  return l;
}

Launch detect_launch() {
  return detect_launch([](const char* name) -> const char* { return std::getenv(name); });
}

std::string rank_prefix() {
  try {
    const Launch l = detect_launch();
    return l.distributed() ? "[rank " + std::to_string(l.rank) + "] " : "";
  } catch (const Error&) {
    return "";  // the malformed variable is reported by the set-up itself
  }
}

}  // namespace mtl::train
