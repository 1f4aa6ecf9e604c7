#pragma once
// A read-only view of a zip archive held in memory, as torch.save writes them: stored
// (uncompressed) entries, ZIP64 records where sizes or offsets need them. Every size and offset
// read from the archive is checked against the buffer before it is used, so a truncated or
// corrupted file is an mtl::Error naming the file and the record, never a read outside it.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mtl {

struct ZipEntry {
  std::string name;
  uint64_t data_offset = 0;  // where the entry's bytes start in the buffer
  uint64_t size = 0;         // compressed size (equal to the uncompressed size for stored entries)
  uint64_t uncompressed_size = 0;
  uint32_t crc32 = 0;
  uint16_t method = 0;  // 0 = stored
};

class ZipArchive {
 public:
  // Reads the central directory. `bytes` must outlive the archive; `source` names it in messages.
  ZipArchive(std::string_view bytes, std::string source);
  const std::vector<ZipEntry>& entries() const { return entries_; }
  // nullptr when there is no entry of that name.
  const ZipEntry* find(std::string_view name) const;
  // The entry's bytes, CRC-checked; an error for compressed entries.
  std::string_view data(const ZipEntry& e) const;

 private:
  std::string_view bytes_;
  std::string source_;
  std::vector<ZipEntry> entries_;
};

// The local-file-header signature "PK\3\4" that every non-empty zip archive starts with.
bool starts_like_zip(std::string_view bytes);

// CRC-32 (IEEE 802.3, as zip uses it).
uint32_t crc32(std::string_view bytes);

}  // namespace mtl
