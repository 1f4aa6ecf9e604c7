#include "core/zip_reader.h"

#include <array>
#include <limits>

#include "core/error.h"

namespace mtl {

namespace {

constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEndSig = 0x06054b50;
constexpr uint32_t kZip64EndSig = 0x06064b50, kZip64LocatorSig = 0x07064b50;
constexpr size_t kEndSize = 22, kCentralSize = 46, kLocalSize = 30, kZip64LocatorSize = 20, kZip64EndSize = 56;

// Little-endian fields at checked positions: every read names the record it belongs to.
class Cursor {
 public:
  Cursor(std::string_view b, const std::string& source) : b_(b), source_(source) {}
  void need(uint64_t pos, uint64_t n, const char* what) const {
    if (pos > b_.size() || n > b_.size() - pos)
      throw Error("'" + source_ + "': the zip " + what + " at byte " + std::to_string(pos) +
                  " runs past the end of the " + std::to_string(b_.size()) + "-byte file (truncated or corrupt)");
  }
  uint64_t le(uint64_t pos, int n, const char* what) const {
    need(pos, static_cast<uint64_t>(n), what);
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(b_[pos + i])) << (8 * i);
    return v;
  }

 private:
  std::string_view b_;
  const std::string& source_;
};

}  // namespace

uint32_t crc32(std::string_view bytes) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xffffffffu;
  for (unsigned char ch : bytes) c = table[(c ^ ch) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

bool starts_like_zip(std::string_view b) { return b.size() >= 4 && b.substr(0, 4) == std::string_view("PK\3\4", 4); }

ZipArchive::ZipArchive(std::string_view bytes, std::string source) : bytes_(bytes), source_(std::move(source)) {
  const Cursor c(bytes_, source_);
  const uint64_t size = bytes_.size();
  MTL_CHECK(size >= kEndSize, "'", source_, "': ", size, " bytes are too few for a zip archive (truncated?)");
  // The end-of-central-directory record is the last 22 bytes plus a comment of at most 64 KiB.
  uint64_t end = std::numeric_limits<uint64_t>::max();
  const uint64_t lowest = size - kEndSize > 0xffff ? size - kEndSize - 0xffff : 0;
  for (uint64_t p = size - kEndSize + 1; p-- > lowest;) {
    if (c.le(p, 4, "end record") == kEndSig && p + kEndSize + c.le(p + 20, 2, "end record") == size) {
      end = p;
      break;
    }
  }
  MTL_CHECK(end != std::numeric_limits<uint64_t>::max(), "'", source_,
            "': no zip end-of-central-directory record (the file is truncated or not a zip archive)");
  uint64_t count = c.le(end + 10, 2, "end record"), cd_size = c.le(end + 12, 4, "end record"),
           cd_offset = c.le(end + 16, 4, "end record");
  if (count == 0xffff || cd_size == 0xffffffff || cd_offset == 0xffffffff) {
    MTL_CHECK(end >= kZip64LocatorSize && c.le(end - kZip64LocatorSize, 4, "ZIP64 locator") == kZip64LocatorSig, "'",
              source_, "': the zip end record asks for ZIP64 but there is no ZIP64 locator before it (corrupt)");
    const uint64_t z = c.le(end - kZip64LocatorSize + 8, 8, "ZIP64 locator");
    c.need(z, kZip64EndSize, "ZIP64 end record");
    MTL_CHECK(c.le(z, 4, "ZIP64 end record") == kZip64EndSig, "'", source_, "': no ZIP64 end record at byte ", z,
              " (corrupt)");
    count = c.le(z + 32, 8, "ZIP64 end record");
    cd_size = c.le(z + 40, 8, "ZIP64 end record");
    cd_offset = c.le(z + 48, 8, "ZIP64 end record");
  }
  c.need(cd_offset, cd_size, "central directory");
  MTL_CHECK(count <= cd_size / kCentralSize, "'", source_, "': the zip end record lists ", count,
            " entries, more than its ", cd_size, "-byte central directory can hold (corrupt)");
  entries_.reserve(count);
  uint64_t p = cd_offset;
  for (uint64_t i = 0; i < count; ++i) {
    MTL_CHECK(p + kCentralSize <= cd_offset + cd_size && c.le(p, 4, "central directory entry") == kCentralSig, "'",
              source_, "': zip central directory entry ", i, " at byte ", p, " is malformed (corrupt)");
    ZipEntry e;
    e.method = static_cast<uint16_t>(c.le(p + 10, 2, "central directory entry"));
    e.crc32 = static_cast<uint32_t>(c.le(p + 16, 4, "central directory entry"));
    e.size = c.le(p + 20, 4, "central directory entry");
    e.uncompressed_size = c.le(p + 24, 4, "central directory entry");
    const uint64_t name_len = c.le(p + 28, 2, "central directory entry"),
                   extra_len = c.le(p + 30, 2, "central directory entry"),
                   comment_len = c.le(p + 32, 2, "central directory entry");
    uint64_t local = c.le(p + 42, 4, "central directory entry");
    const uint64_t next = p + kCentralSize + name_len + extra_len + comment_len;
    MTL_CHECK(next <= cd_offset + cd_size, "'", source_, "': zip central directory entry ", i,
              " runs past the directory (corrupt)");
    e.name.assign(bytes_.substr(p + kCentralSize, name_len));
    // The ZIP64 extra field holds, in this order, the 64-bit values whose 32-bit fields are full.
    for (uint64_t x = p + kCentralSize + name_len, xend = x + extra_len; x + 4 <= xend;) {
      const uint64_t id = c.le(x, 2, "extra field"), len = c.le(x + 2, 2, "extra field");
      MTL_CHECK(x + 4 + len <= xend, "'", source_, "': a zip extra field of entry '", e.name, "' is malformed");
      if (id == 0x0001) {
        uint64_t q = x + 4;
        auto take = [&](uint64_t& field) {
          MTL_CHECK(q + 8 <= x + 4 + len, "'", source_, "': the ZIP64 field of entry '", e.name, "' is too short");
          field = c.le(q, 8, "ZIP64 field");
          q += 8;
        };
        if (e.uncompressed_size == 0xffffffff) take(e.uncompressed_size);
        if (e.size == 0xffffffff) take(e.size);
        if (local == 0xffffffff) take(local);
      }
      x += 4 + len;
    }
    MTL_CHECK(c.le(local, 4, "local header") == kLocalSig, "'", source_, "': entry '", e.name,
              "' has no local header at byte ", local, " (corrupt)");
    const uint64_t data =
        local + kLocalSize + c.le(local + 26, 2, "local header") + c.le(local + 28, 2, "local header");
    c.need(data, e.size, ("data of entry '" + e.name + "'").c_str());
    e.data_offset = data;
    entries_.push_back(std::move(e));
    p = next;
  }
}

const ZipEntry* ZipArchive::find(std::string_view name) const {
  for (const ZipEntry& e : entries_)
    if (e.name == name) return &e;
  return nullptr;
}

std::string_view ZipArchive::data(const ZipEntry& e) const {
  MTL_CHECK(e.method == 0, "'", source_, "': zip entry '", e.name, "' is compressed (method ", e.method,
            "); torch.save stores entries uncompressed, so re-save the file with torch.save");
  MTL_CHECK(e.size == e.uncompressed_size, "'", source_, "': zip entry '", e.name, "' is stored but its sizes differ (",
            e.size, " vs ", e.uncompressed_size, "): corrupt");
  std::string_view d = bytes_.substr(e.data_offset, e.size);
  MTL_CHECK(crc32(d) == e.crc32, "'", source_, "': zip entry '", e.name, "' fails its CRC check (the file is corrupt)");
  return d;
}

}  // namespace mtl
