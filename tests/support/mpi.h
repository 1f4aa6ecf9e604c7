#pragma once
// Data-parallel tests on the CPU. An ordinary case (an "outer" one) starts `mpirun -np N` on a test
// executable or on mtl_train and checks what came out; the cases the ranks run are in
// TEST_SUITE("mpi"), which ctest does not register (tests/cmake/discover_tests.cmake), so they run
// only under mpirun. Header-only; MTL_MPIEXEC is mpirun's path, empty when built without MPI.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/gpu.h"
#include "tests/support/run_folder.h"
#include "tests/support/temp_dir.h"
#include "train/dist/communicator.h"

#ifndef MTL_MPIEXEC
#define MTL_MPIEXEC ""
#endif

#define MTL_REQUIRE_MPI()                                                \
  do {                                                                   \
    if (std::string(MTL_MPIEXEC).empty()) {                              \
      std::printf(MTL_SKIP_MARKER " built without MPI: test not run\n"); \
      std::fflush(stdout);                                               \
      return;                                                            \
    }                                                                    \
  } while (0)

// The first line of a worker case: `comm` becomes the process group, or the case reports SKIPPED
// when it was started without mpirun.
#define MTL_MPI_WORKER(comm)                                                            \
  const std::shared_ptr<::mtl::train::Communicator> comm = ::mtl::test::worker_group(); \
  if (!comm) {                                                                          \
    std::printf(MTL_SKIP_MARKER " a rank of an mpirun test: run by its outer case\n");  \
    std::fflush(stdout);                                                                \
    return;                                                                             \
  }

namespace mtl::test {

inline std::shared_ptr<train::Communicator> worker_group() {
  return train::init_process_group(train::detect_launch(), Device::cpu(), 60);
}

// mpirun and its options for local ranks: oversubscribed (CI has 2 cores), unbound, shared memory
// only, as root where that is who runs the tests, killed after `timeout_s`.
inline std::string mpirun_options(int timeout_s = 240) {
  std::string c = "timeout -s KILL " + std::to_string(timeout_s) + " " + MTL_MPIEXEC +
                  " --oversubscribe --bind-to none --mca btl self,vader --mca btl_vader_single_copy_mechanism none";
  if (::geteuid() == 0) c += " --allow-run-as-root";
  return c;
}

// The same for `np` ranks of one command.
inline std::string mpirun(int np, int timeout_s = 240) {
  return mpirun_options(timeout_s) + " -np " + std::to_string(np);
}

// This test executable, for mpirun to start.
inline std::string self_exe() { return std::filesystem::read_symlink("/proc/self/exe").string(); }

// The arguments that make a test executable run one case of the "mpi" suite.
inline std::string worker_args(const std::string& test_case) {
  return "--test-suite=mpi '--test-case=" + test_case + "' --no-intro --no-version --no-colors";
}

// How many ranks reported that their one worker case passed.
inline int workers_passed(const std::string& out) {
  const std::regex passed("test cases: *1 \\| *1 passed \\| *0 failed");
  return static_cast<int>(std::distance(std::sregex_iterator(out.begin(), out.end(), passed), std::sregex_iterator()));
}

// Runs the worker case `test_case` of this test executable on `np` ranks under mpirun, in a
// scratch folder named `scratch`, and checks that mpirun succeeded and every rank passed the case
// (its output is shown when not).
inline void check_workers(int np, const std::string& test_case, const std::string& scratch) {
  const TempDir tmp(scratch);
  const CommandResult r = run_command(mpirun(np) + " " + self_exe() + " " + worker_args(test_case), tmp);
  INFO(r.out, r.err);
  CHECK(r.status == 0);
  CHECK(workers_passed(r.out) == np);
}

// A command started in the background through the shell (`exec` it to get its own pid), with
// stdout and stderr into files.
struct Background {
  pid_t pid = -1;
  std::string out, err;  // file paths

  Background(const std::string& command, std::string out_path, std::string err_path)
      : out(std::move(out_path)), err(std::move(err_path)) {
    pid = ::fork();
    if (pid == 0) {
      const std::string c = command + " > '" + out + "' 2> '" + err + "' < /dev/null";
      ::execl("/bin/sh", "sh", "-c", c.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  ~Background() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;

  // The exit status, or nullopt if it is still running after `timeout_s`.
  std::optional<int> wait(double timeout_s) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    while (std::chrono::steady_clock::now() < end) {
      int st = 0;
      if (::waitpid(pid, &st, WNOHANG) == pid) {
        pid = -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return std::nullopt;
  }
};

// The process among the descendants of `root` whose environment says it is mpirun's rank `rank`.
inline std::optional<pid_t> rank_pid(pid_t root, int rank) {
  namespace fs = std::filesystem;
  const std::string want = "OMPI_COMM_WORLD_RANK=" + std::to_string(rank);
  auto parent_of = [](pid_t p) -> pid_t {
    std::ifstream f("/proc/" + std::to_string(p) + "/stat");
    std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    const size_t close = s.rfind(')');
    if (close == std::string::npos) return -1;
    std::istringstream rest(s.substr(close + 2));
    char state;
    pid_t ppid = -1;
    rest >> state >> ppid;
    return ppid;
  };
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t p = std::stoi(name);
    bool below = false;
    for (pid_t q = p; q > 1; q = parent_of(q))
      if (parent_of(q) == root) {
        below = true;
        break;
      }
    if (!below) continue;
    std::ifstream env("/proc/" + name + "/environ", std::ios::binary);
    std::string var;
    while (std::getline(env, var, '\0'))
      if (var == want) return p;
  }
  return std::nullopt;
}

}  // namespace mtl::test
