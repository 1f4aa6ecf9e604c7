#pragma once
// A temporary folder for tests: created empty on construction under the system's temporary
// directory, named mtl_TAG_PID_N (unique per process and instance), and removed with everything
// in it when the TempDir goes out of scope. Header-only, standard library only.
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <system_error>

namespace mtl::test {

// A temporary folder removed at the end of the test; unique per process and instance.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& tag) {
    static std::atomic<int> counter{0};
    path = std::filesystem::temp_directory_path() /
           ("mtl_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  // PATH/name as a string.
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

}  // namespace mtl::test
