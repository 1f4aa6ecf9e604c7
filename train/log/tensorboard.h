#pragma once
// TensorBoard event files written without TensorFlow or protobuf: the few Event/Summary messages
// we need are encoded by hand and framed as TFRecords, so TensorBoard (and anything reading
// TFRecords) opens them while training runs.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/file_io.h"
#include "train/data/image_io.h"

namespace mtl::train {

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum TFRecord uses. `crc` is a
// previous result to continue from, so a buffer may be checksummed in pieces.
uint32_t crc32c(const void* data, size_t n, uint32_t crc = 0);
inline uint32_t crc32c(std::string_view s) { return crc32c(s.data(), s.size()); }
// TFRecord stores CRCs rotated and offset, so that a CRC of data that itself holds CRCs stays
// well distributed.
uint32_t mask_crc32c(uint32_t crc);
uint32_t unmask_crc32c(uint32_t masked);

// One TFRecord: uint64 length, masked CRC of those 8 bytes, the payload, masked CRC of the
// payload; integers little-endian.
std::string tfrecord(std::string_view payload);

// Serialised tensorflow.Event messages.
namespace tb_proto {
struct ScalarValue {
  std::string tag;
  float value = 0;
};
std::string file_version_event(double wall_time, std::string_view version = "brain.Event:2");
std::string scalars_event(double wall_time, int64_t step, const std::vector<ScalarValue>& values);
// `png` holds an encoded image of the given size; colorspace is the channel count (1 grey,
// 2 grey+alpha, 3 RGB, 4 RGBA), as TensorFlow's Summary.Image defines it.
std::string image_event(double wall_time, int64_t step, std::string_view tag, int height, int width,
                        int colorspace, std::string_view png);
}  // namespace tb_proto

// Appends events to `<run_dir>/events.out.tfevents.<unix seconds>.<hostname>` (a numeric suffix
// is added when that name is taken, so a restarted run never overwrites its predecessor's file).
// Writes are buffered; call flush() after each group of writes so TensorBoard sees them.
class EventWriter {
 public:
  // Creates run_dir when missing. Throws mtl::Error naming the path when the file cannot be made.
  explicit EventWriter(const std::string& run_dir);

  const std::string& path() const { return file_.path(); }

  // Stored as float (TensorBoard's simple_value).
  void add_scalar(const std::string& tag, double value, int64_t step);
  // Several scalars of one step in one event.
  void add_scalars(const std::vector<std::pair<std::string, double>>& values, int64_t step);
  // An 8-bit image with 1 to 4 channels (normally RGB), stored as PNG.
  void add_image(const std::string& tag, const ImageU8& image, int64_t step);

  // Hands buffered events to the OS; throws mtl::Error naming the file when writing failed.
  void flush();
  // Flushes and closes; later writes throw. The destructor closes too, reporting nothing.
  void close();

 private:
  void write_record(const std::string& event);

  AppendFile file_;
};

// Seconds since the Unix epoch with sub-second resolution, as Event.wall_time wants.
double wall_time_now();

}  // namespace mtl::train
