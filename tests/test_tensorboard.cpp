// TensorBoard event files: CRC-32C against published vectors, the TFRecord framing and protobuf
// fields read back by an independent decoder written here, and (when the `tensorboard` Python
// package is installed) the same file read by TensorBoard's own loader.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "tests/support/temp_dir.h"
#include "train/data/image_io.h"
#include "train/log/tensorboard.h"

using namespace mtl;
using namespace mtl::train;
namespace fs = std::filesystem;

namespace {

std::string read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

uint64_t le(const std::string& s, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint64_t{static_cast<unsigned char>(s[at + i])} << (8 * i);
  return v;
}

// Splits a TFRecord stream into payloads, checking both CRCs of every record.
std::vector<std::string> read_records(const std::string& file) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < file.size()) {
    REQUIRE(at + 12 <= file.size());
    const uint64_t len = le(file, at, 8);
    CHECK(le(file, at + 8, 4) == mask_crc32c(crc32c(file.data() + at, 8)));
    REQUIRE(at + 12 + len + 4 <= file.size());
    std::string payload = file.substr(at + 12, len);
    CHECK(le(file, at + 12 + len, 4) == mask_crc32c(crc32c(payload)));
    out.push_back(std::move(payload));
    at += 12 + len + 4;
  }
  return out;
}

// A generic protobuf decoder: field number -> occurrences (varints and fixed values as integers,
// length-delimited fields as bytes).
struct Field {
  int wire = 0;
  uint64_t number = 0;
  std::string bytes;
};
using Message = std::multimap<int, Field>;

uint64_t read_varint(const std::string& s, size_t& at) {
  uint64_t v = 0;
  for (int shift = 0;; shift += 7) {
    REQUIRE(at < s.size());
    REQUIRE(shift < 64);
    const auto b = static_cast<unsigned char>(s[at++]);
    v |= uint64_t{b & 0x7fu} << shift;
    if (!(b & 0x80)) return v;
  }
}

Message decode(const std::string& s) {
  Message m;
  size_t at = 0;
  while (at < s.size()) {
    const uint64_t key = read_varint(s, at);
    Field f;
    f.wire = static_cast<int>(key & 7);
    switch (f.wire) {
      case 0: f.number = read_varint(s, at); break;
      case 1: REQUIRE(at + 8 <= s.size()); f.number = le(s, at, 8); at += 8; break;
      case 5: REQUIRE(at + 4 <= s.size()); f.number = le(s, at, 4); at += 4; break;
      case 2: {
        const uint64_t n = read_varint(s, at);
        REQUIRE(at + n <= s.size());
        f.bytes = s.substr(at, n);
        at += n;
        break;
      }
      default: FAIL("unexpected wire type " << f.wire);
    }
    m.emplace(static_cast<int>(key >> 3), std::move(f));
  }
  return m;
}

const Field* one(const Message& m, int field, int wire) {
  auto [lo, hi] = m.equal_range(field);
  if (lo == hi) return nullptr;
  CHECK(std::next(lo) == hi);  // not repeated
  CHECK(lo->second.wire == wire);
  return &lo->second;
}

struct DecodedValue {
  std::string tag;
  std::optional<float> simple_value;
  int height = 0, width = 0, colorspace = 0;
  std::string png;
};
struct DecodedEvent {
  double wall_time = 0;
  int64_t step = 0;
  std::string file_version;
  std::vector<DecodedValue> values;
};

DecodedEvent decode_event(const std::string& payload) {
  const Message m = decode(payload);
  DecodedEvent e;
  if (const Field* f = one(m, 1, 1)) std::memcpy(&e.wall_time, &f->number, 8);
  if (const Field* f = one(m, 2, 0)) e.step = static_cast<int64_t>(f->number);
  if (const Field* f = one(m, 3, 2)) e.file_version = f->bytes;
  if (const Field* f = one(m, 5, 2)) {
    const Message summary = decode(f->bytes);
    for (auto [it, end] = summary.equal_range(1); it != end; ++it) {
      const Message value = decode(it->second.bytes);
      DecodedValue v;
      if (const Field* t = one(value, 1, 2)) v.tag = t->bytes;
      if (const Field* s = one(value, 2, 5)) {
        const auto bits = static_cast<uint32_t>(s->number);
        float x;
        std::memcpy(&x, &bits, 4);
        v.simple_value = x;
      }
      if (const Field* im = one(value, 4, 2)) {
        const Message image = decode(im->bytes);
        if (const Field* h = one(image, 1, 0)) v.height = static_cast<int>(h->number);
        if (const Field* w = one(image, 2, 0)) v.width = static_cast<int>(w->number);
        if (const Field* c = one(image, 3, 0)) v.colorspace = static_cast<int>(c->number);
        if (const Field* p = one(image, 4, 2)) v.png = p->bytes;
      }
      e.values.push_back(std::move(v));
    }
  }
  return e;
}

ImageU8 test_image(int w, int h) {
  ImageU8 img(w, h, 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      img.at(x, y, 0) = static_cast<uint8_t>(x * 17);
      img.at(x, y, 1) = static_cast<uint8_t>(y * 29);
      img.at(x, y, 2) = static_cast<uint8_t>((x + y) * 7);
    }
  return img;
}

std::vector<fs::path> event_files(const fs::path& dir) {
  std::vector<fs::path> out;
  for (auto& e : fs::directory_iterator(dir)) out.push_back(e.path());
  return out;
}

}  // namespace

TEST_CASE("crc32c matches published test vectors") {
  CHECK(crc32c("123456789") == 0xE3069283u);
  CHECK(crc32c("") == 0u);
  // RFC 3720 (iSCSI) appendix B.4.
  CHECK(crc32c(std::string(32, '\0')) == 0x8A9136AAu);
  CHECK(crc32c(std::string(32, '\xff')) == 0x62A8AB43u);
  std::string ascending, descending;
  for (int i = 0; i < 32; ++i) {
    ascending.push_back(static_cast<char>(i));
    descending.push_back(static_cast<char>(31 - i));
  }
  CHECK(crc32c(ascending) == 0x46DD794Eu);
  CHECK(crc32c(descending) == 0x113FDB5Cu);
  // Continuing from a previous result equals checksumming the whole buffer.
  const std::string s = "The quick brown fox jumps over the lazy dog";
  CHECK(crc32c(s.data() + 10, s.size() - 10, crc32c(s.data(), 10)) == crc32c(s));
}

TEST_CASE("masked crc32c matches TensorFlow's record format") {
  // Values from TensorBoard's own Python implementation (compat/tensorflow_stub).
  CHECK(mask_crc32c(crc32c("123456789")) == 0xC78AB0E5u);
  CHECK(mask_crc32c(crc32c(std::string(8, '\0'))) == 0x07980329u);
  CHECK(mask_crc32c(0) == 0xA282EAD8u);
  for (uint32_t x : {0u, 1u, 0xE3069283u, 0xFFFFFFFFu, 0x80000000u, 0x12345678u})
    CHECK(unmask_crc32c(mask_crc32c(x)) == x);

  const std::string rec = tfrecord("abc");
  REQUIRE(rec.size() == 8 + 4 + 3 + 4);
  CHECK(le(rec, 0, 8) == 3);
  CHECK(rec.substr(12, 3) == "abc");
  CHECK(le(rec, 15, 4) == mask_crc32c(crc32c("abc")));
}

TEST_CASE("event file holds scalars and images that decode back") {
  test::TempDir dir("test_tensorboard");
  const fs::path run = dir.path / "run";  // made by the writer
  const double before = wall_time_now();
  EventWriter w(run.string());
  const std::string name = fs::path(w.path()).filename().string();
  CHECK(fs::path(w.path()).parent_path() == run);
  CHECK(name.rfind("events.out.tfevents.", 0) == 0);
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  CHECK(name.find(std::string(".") + host) != std::string::npos);

  w.add_scalar("train/loss", 1.25, 1);
  w.add_scalar("train/lr", 3.0e-4, 1);
  w.add_scalars({{"train/loss", 0.875}, {"train/loss/depth", -0.1}}, 2);
  const int64_t big_step = (int64_t{1} << 40) + 3;  // a varint of six bytes
  w.add_scalar("train/loss", 0.5, big_step);
  const ImageU8 img = test_image(13, 7);
  w.add_image("val/panel", img, 2);
  w.flush();

  // Read while the writer is still open: flush() must have made every record visible.
  const std::vector<std::string> records = read_records(read_bytes(w.path()));
  REQUIRE(records.size() == 6);
  const double after = wall_time_now();

  DecodedEvent first = decode_event(records[0]);
  CHECK(first.file_version == "brain.Event:2");
  CHECK(first.values.empty());
  CHECK(first.wall_time >= std::floor(before));
  CHECK(first.wall_time <= after);

  DecodedEvent e1 = decode_event(records[1]);
  CHECK(e1.step == 1);
  REQUIRE(e1.values.size() == 1);
  CHECK(e1.values[0].tag == "train/loss");
  CHECK(e1.values[0].simple_value == 1.25f);
  CHECK(e1.wall_time >= first.wall_time);

  DecodedEvent e2 = decode_event(records[2]);
  REQUIRE(e2.values.size() == 1);
  CHECK(e2.values[0].tag == "train/lr");
  CHECK(e2.values[0].simple_value == 3.0e-4f);

  DecodedEvent e3 = decode_event(records[3]);
  CHECK(e3.step == 2);
  REQUIRE(e3.values.size() == 2);
  CHECK(e3.values[0].tag == "train/loss");
  CHECK(e3.values[0].simple_value == 0.875f);
  CHECK(e3.values[1].tag == "train/loss/depth");
  CHECK(e3.values[1].simple_value == -0.1f);

  DecodedEvent e4 = decode_event(records[4]);
  CHECK(e4.step == big_step);

  DecodedEvent e5 = decode_event(records[5]);
  CHECK(e5.step == 2);
  REQUIRE(e5.values.size() == 1);
  const DecodedValue& v = e5.values[0];
  CHECK(v.tag == "val/panel");
  CHECK(!v.simple_value);
  CHECK(v.height == 7);
  CHECK(v.width == 13);
  CHECK(v.colorspace == 3);
  REQUIRE(v.png.size() > 8);
  CHECK(v.png.substr(0, 8) == std::string("\x89PNG\r\n\x1a\n", 8));
  // The PNG decodes to the image we wrote.
  const fs::path png = dir.path / "decoded.png";
  {
    std::ofstream f(png, std::ios::binary);
    f.write(v.png.data(), static_cast<std::streamsize>(v.png.size()));
  }
  CHECK(read_rgb(png.string()) == img);

  w.close();
  CHECK_THROWS_WITH_AS(w.add_scalar("x", 1, 3), doctest::Contains("is closed"), Error);
}

TEST_CASE("event writers never share a file") {
  test::TempDir tmp("test_tensorboard");
  const fs::path dir = tmp.path / "logs";  // made by the first writer
  EventWriter a(dir.string());
  EventWriter b(dir.string());
  EventWriter c(dir.string());
  CHECK(a.path() != b.path());
  CHECK(b.path() != c.path());
  CHECK(a.path() != c.path());
  a.add_scalar("a", 1, 1);
  a.flush();
  b.close();
  CHECK(read_records(read_bytes(a.path())).size() == 2);
  CHECK(read_records(read_bytes(b.path())).size() == 1);
  CHECK(event_files(dir).size() == 3);
}

TEST_CASE("event writer errors name the path") {
  test::TempDir dir("test_tensorboard");
  const fs::path blocker = dir.path / "not_a_folder";
  std::ofstream(blocker) << "x";
  const std::string run = (blocker / "run").string();
  CHECK_THROWS_WITH_AS(EventWriter{run}, doctest::Contains(run.c_str()), Error);

  EventWriter w(dir.path.string());
  ImageU8 empty;
  CHECK_THROWS_WITH_AS(w.add_image("val/panel", empty, 1), doctest::Contains("val/panel"), Error);
  ImageU8 five(2, 2, 5);
  CHECK_THROWS_WITH_AS(w.add_image("val/five", five, 1), doctest::Contains("1 to 4 channels"), Error);
}

TEST_CASE("TensorBoard's own reader sees the scalars and images") {
  // scripts/setup.sh installs it (scripts/requirements-test.txt): without it this fails, not skips.
  const std::string python = MTL_PYTHON;  // tests/CMakeLists.txt
  REQUIRE_MESSAGE(std::system(("'" + python + "' -c 'import tensorboard' >/dev/null 2>&1").c_str()) == 0, python,
                  " cannot import tensorboard: run scripts/setup.sh (pip install -r scripts/requirements-test.txt)");
  test::TempDir tmp("test_tensorboard");
  const fs::path dir = tmp.path / "logs";  // made by the writer
  std::vector<std::pair<int64_t, float>> loss;
  {
    EventWriter w(dir.string());
    for (int64_t step = 0; step < 40; ++step) {
      const double value = std::exp(-0.1 * static_cast<double>(step)) + 1e-7 * static_cast<double>(step);
      loss.emplace_back(step, static_cast<float>(value));
      w.add_scalars({{"train/loss", value}, {"train/lr", 1e-3 / static_cast<double>(step + 1)}}, step);
    }
    w.add_image("val/panel", test_image(21, 9), 39);
    w.add_image("val/panel", test_image(5, 3), 40);
    w.flush();
  }
  const std::string cmd =
      "'" + python + "' '" + MTL_SOURCE_DIR + "/tests/reference/read_tensorboard.py' '" + dir.string() + "' 2>&1";
  std::FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string text;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) text.append(buf, n);
  const int rc = ::pclose(p);
  INFO(text);
  REQUIRE(rc == 0);
  // TensorBoard may log warnings before the JSON line; the result is the last line.
  const size_t start = text.rfind('\n', text.size() - 2);
  const nlohmann::json j = nlohmann::json::parse(start == std::string::npos ? text : text.substr(start + 1));

  CHECK(j["file_version"].get<double>() == 2.0);
  const auto& got = j["scalars"]["train/loss"];
  REQUIRE(got.size() == loss.size());
  for (size_t i = 0; i < loss.size(); ++i) {
    CHECK(got[i][0].get<int64_t>() == loss[i].first);
    // Exactly the float written: the JSON double holds the float32 value without rounding.
    CHECK(static_cast<float>(got[i][1].get<double>()) == loss[i].second);
    CHECK(got[i][1].get<double>() == static_cast<double>(loss[i].second));
  }
  const auto& lr = j["scalars"]["train/lr"];
  REQUIRE(lr.size() == 40);
  CHECK(lr[9][1].get<double>() == static_cast<double>(static_cast<float>(1e-4)));
  const auto& images = j["images"]["val/panel"];
  REQUIRE(images.size() == 2);
  CHECK(images[0][0] == 39);
  CHECK(images[0][1] == 21);  // width
  CHECK(images[0][2] == 9);   // height
  CHECK(images[1][0] == 40);
  CHECK(images[1][1] == 5);
  CHECK(images[1][2] == 3);
}
