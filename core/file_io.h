#pragma once
// Files as the tools use them: read whole, written atomically (a temporary file in the same folder,
// then a rename, so that a crash never leaves a half-written file under the final name), and
// appended to (the run's metrics.jsonl and TensorBoard event files). Every failure is an
// mtl::Error naming the file.
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

namespace mtl {

std::string read_file(const std::string& path);
// Creates the folders above `path`; nothing when it names none.
void create_parent_folders(const std::string& path);
// Creates the parent folders too.
void write_file_atomic(const std::string& path, const std::string& data);

// An open file that only grows. `what` names it in messages ("metrics log").
class AppendFile {
 public:
  // Opens `path` for appending, creating it and its parent folders when missing.
  AppendFile(std::string path, std::string what);
  // Creates `path`, which must not exist yet; nullopt when it does (so that a caller can pick
  // another name and two writers never share a file).
  static std::optional<AppendFile> create_new(std::string path, std::string what);
  ~AppendFile();
  AppendFile(AppendFile&& o) noexcept;
  AppendFile& operator=(AppendFile&& o) noexcept;
  AppendFile(const AppendFile&) = delete;
  AppendFile& operator=(const AppendFile&) = delete;

  const std::string& path() const { return path_; }
  void write(std::string_view bytes);
  // Hands buffered bytes to the operating system.
  void flush();
  // Flushes and closes; later writes throw. The destructor closes too, reporting nothing.
  void close();

 private:
  AppendFile(std::string path, std::string what, std::FILE* f);
  std::string path_, what_;
  std::FILE* file_ = nullptr;
};

}  // namespace mtl
