#include "core/file_io.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/error.h"

namespace mtl {

namespace fs = std::filesystem;

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  MTL_CHECK(f.good(), "cannot open '", path, "'");
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  MTL_CHECK(!f.bad(), "error reading '", path, "'");
  return bytes;
}

void create_parent_folders(const std::string& path) {
  const fs::path p(path);
  if (!p.has_parent_path()) return;
  std::error_code ec;
  fs::create_directories(p.parent_path(), ec);
  MTL_CHECK(!ec, "cannot create folder '", p.parent_path().string(), "': ", ec.message());
}

void write_file_atomic(const std::string& path, const std::string& data) {
  create_parent_folders(path);
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    MTL_CHECK(f.good(), "cannot write '", tmp, "'");
    f.write(data.data(), static_cast<std::streamsize>(data.size()));
    f.flush();
    if (!f.good()) {
      f.close();
      std::remove(tmp.c_str());
      throw Error("writing '" + path + "' failed (disk full?)");
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    throw Error("cannot move '" + tmp + "' to '" + path + "': " + ec.message());
  }
}

AppendFile::AppendFile(std::string path, std::string what, std::FILE* f)
    : path_(std::move(path)), what_(std::move(what)), file_(f) {}

AppendFile::AppendFile(std::string path, std::string what) : path_(std::move(path)), what_(std::move(what)) {
  create_parent_folders(path_);
  file_ = std::fopen(path_.c_str(), "ab");
  MTL_CHECK(file_ != nullptr, "cannot open ", what_, " '", path_, "' for appending: ", std::strerror(errno));
}

std::optional<AppendFile> AppendFile::create_new(std::string path, std::string what) {
  create_parent_folders(path);
  std::FILE* f = std::fopen(path.c_str(), "wbx");  // "x": exclusive create
  if (f == nullptr && errno == EEXIST) return std::nullopt;
  MTL_CHECK(f != nullptr, "cannot create ", what, " '", path, "': ", std::strerror(errno));
  return AppendFile(std::move(path), std::move(what), f);
}

AppendFile::~AppendFile() {
  if (file_ != nullptr) std::fclose(file_);
}

AppendFile::AppendFile(AppendFile&& o) noexcept
    : path_(std::move(o.path_)), what_(std::move(o.what_)), file_(o.file_) {
  o.file_ = nullptr;
}

AppendFile& AppendFile::operator=(AppendFile&& o) noexcept {
  if (this != &o) {
    if (file_ != nullptr) std::fclose(file_);
    path_ = std::move(o.path_);
    what_ = std::move(o.what_);
    file_ = o.file_;
    o.file_ = nullptr;
  }
  return *this;
}

void AppendFile::write(std::string_view bytes) {
  MTL_CHECK(file_ != nullptr, what_, " '", path_, "' is closed");
  if (std::fwrite(bytes.data(), 1, bytes.size(), file_) != bytes.size())
    throw Error("writing " + what_ + " '" + path_ + "' failed: " + std::strerror(errno));
}

void AppendFile::flush() {
  MTL_CHECK(file_ != nullptr, what_, " '", path_, "' is closed");
  if (std::fflush(file_) != 0 || std::ferror(file_))
    throw Error("writing " + what_ + " '" + path_ + "' failed: " + std::strerror(errno));
}

void AppendFile::close() {
  if (file_ == nullptr) return;
  flush();
  std::FILE* f = file_;
  file_ = nullptr;
  if (std::fclose(f) != 0) throw Error("closing " + what_ + " '" + path_ + "' failed: " + std::strerror(errno));
}

}  // namespace mtl
