#include "train/log/tensorboard.h"

#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "core/protobuf.h"

namespace mtl::train {

// The messages below are encoded with the hand-written wire format of core/protobuf.h.
using namespace protobuf;

namespace {

constexpr std::array<uint32_t, 256> make_crc32c_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr std::array<uint32_t, 256> kCrc32cTable = make_crc32c_table();

constexpr uint32_t kMaskDelta = 0xa282ead8u;

void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// Event fields: wall_time 1, step 2, file_version 3, summary 5.
std::string event_header(double wall_time, int64_t step) {
  std::string e;
  put_double(e, 1, wall_time);
  if (step != 0) put_int(e, 2, step);  // proto3 leaves defaults out
  return e;
}

std::string hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

}  // namespace

uint32_t crc32c(const void* data, size_t n, uint32_t crc) {
  const auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = kCrc32cTable[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

uint32_t mask_crc32c(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + kMaskDelta; }

uint32_t unmask_crc32c(uint32_t masked) {
  uint32_t rot = masked - kMaskDelta;
  return (rot >> 17) | (rot << 15);
}

std::string tfrecord(std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 16);
  put_le(out, payload.size(), 8);
  put_le(out, mask_crc32c(crc32c(out.data(), 8)), 4);
  out.append(payload);
  put_le(out, mask_crc32c(crc32c(payload)), 4);
  return out;
}

namespace tb_proto {

std::string file_version_event(double wall_time, std::string_view version) {
  std::string e = event_header(wall_time, 0);
  put_bytes(e, 3, version);
  return e;
}

// Summary{repeated Value value = 1}; Value{tag = 1, simple_value = 2, image = 4}.
std::string scalars_event(double wall_time, int64_t step, const std::vector<ScalarValue>& values) {
  std::string summary;
  for (const ScalarValue& v : values) {
    std::string value;
    put_bytes(value, 1, v.tag);
    put_float(value, 2, v.value);
    put_bytes(summary, 1, value);
  }
  std::string e = event_header(wall_time, step);
  put_bytes(e, 5, summary);
  return e;
}

// Image{height = 1, width = 2, colorspace = 3, encoded_image_string = 4}.
std::string image_event(double wall_time, int64_t step, std::string_view tag, int height, int width,
                        int colorspace, std::string_view png) {
  std::string image;
  put_int(image, 1, height);
  put_int(image, 2, width);
  put_int(image, 3, colorspace);
  put_bytes(image, 4, png);
  std::string value;
  put_bytes(value, 1, tag);
  put_bytes(value, 4, image);
  std::string summary;
  put_bytes(summary, 1, value);
  std::string e = event_header(wall_time, step);
  put_bytes(e, 5, summary);
  return e;
}

}  // namespace tb_proto

double wall_time_now() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

namespace {

// "x" (exclusive create) so that two writers started in the same second never share a file.
AppendFile create_event_file(const std::string& run_dir, double now) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(run_dir, ec);
  MTL_CHECK(!ec, "cannot create run folder '", run_dir, "': ", ec.message());
  const std::string base = (fs::path(run_dir) / ("events.out.tfevents." +
                                                  std::to_string(static_cast<long long>(now)) + "." +
                                                  hostname()))
                               .string();
  for (int n = 0; n < 1000; ++n)
    if (auto f = AppendFile::create_new(n == 0 ? base : base + "." + std::to_string(n), "TensorBoard event file"))
      return std::move(*f);
  throw Error("cannot create TensorBoard event file '" + base + "': 1000 files of that name exist");
}

}  // namespace

EventWriter::EventWriter(const std::string& run_dir) : file_(create_event_file(run_dir, wall_time_now())) {
  write_record(tb_proto::file_version_event(wall_time_now()));
  flush();
}

void EventWriter::write_record(const std::string& event) { file_.write(tfrecord(event)); }

void EventWriter::add_scalar(const std::string& tag, double value, int64_t step) {
  add_scalars({{tag, value}}, step);
}

void EventWriter::add_scalars(const std::vector<std::pair<std::string, double>>& values, int64_t step) {
  if (values.empty()) return;
  std::vector<tb_proto::ScalarValue> vs;
  vs.reserve(values.size());
  for (const auto& [tag, v] : values) vs.push_back({tag, static_cast<float>(v)});
  write_record(tb_proto::scalars_event(wall_time_now(), step, vs));
}

void EventWriter::add_image(const std::string& tag, const ImageU8& image, int64_t step) {
  MTL_CHECK(image.channels >= 1 && image.channels <= 4 && image.width > 0 && image.height > 0,
            "TensorBoard image '", tag, "' must be a non-empty 8-bit image with 1 to 4 channels, got ",
            image.width, "x", image.height, "x", image.channels);
  const std::string png = encode_png(image);
  write_record(tb_proto::image_event(wall_time_now(), step, tag, image.height, image.width,
                                     image.channels, png));
}

void EventWriter::flush() { file_.flush(); }

void EventWriter::close() { file_.close(); }

}  // namespace mtl::train
