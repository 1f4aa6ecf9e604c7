// The one translation unit that holds the stb implementations.
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_FAILURE_USERMSG
#include "train/data/image_io.h"

#include <stb_image.h>
#include <stb_image_write.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>

#include "core/error.h"
#include "core/file_io.h"

namespace mtl::train {

namespace {

struct StbFree {
  void operator()(void* p) const { stbi_image_free(p); }
};

void note_once(std::atomic<bool>& flag, const std::string& msg) {
  if (!flag.exchange(true)) std::fprintf(stderr, "note: %s (shown once)\n", msg.c_str());
}

const stbi_uc* bytes_of(const std::string& s) { return reinterpret_cast<const stbi_uc*>(s.data()); }

std::string reason() {
  const char* r = stbi_failure_reason();
  return r ? r : "unknown reason";
}

ImageInfo info_from_memory(const std::string& bytes, const std::string& path) {
  ImageInfo info;
  MTL_CHECK(stbi_info_from_memory(bytes_of(bytes), static_cast<int>(bytes.size()), &info.width,
                                  &info.height, &info.channels),
            "'", path, "' is not a readable PNG or JPEG image (", reason(), ")");
  info.bits = stbi_is_16_bit_from_memory(bytes_of(bytes), static_cast<int>(bytes.size())) ? 16 : 8;
  return info;
}

void append_be32(std::string& s, uint32_t v) {
  for (int i = 3; i >= 0; --i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint32_t crc32(const unsigned char* p, size_t n, uint32_t crc = 0) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

void append_chunk(std::string& out, const char type[4], const std::string& payload) {
  append_be32(out, static_cast<uint32_t>(payload.size()));
  std::string body(type, 4);
  body += payload;
  out += body;
  append_be32(out, crc32(reinterpret_cast<const unsigned char*>(body.data()), body.size()));
}

int paeth(int a, int b, int c) {
  int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  if (pa <= pb && pa <= pc) return a;
  return pb <= pc ? b : c;
}

void write_collect(void* ctx, void* data, int size) {
  static_cast<std::string*>(ctx)->append(static_cast<const char*>(data), static_cast<size_t>(size));
}

void check_image(const char* what, int w, int h, int c, size_t n, std::initializer_list<int> channels) {
  bool ok_c = false;
  for (int k : channels) ok_c |= (k == c);
  MTL_CHECK(w > 0 && h > 0 && ok_c && n == static_cast<size_t>(w) * h * c, what, ": cannot encode a ",
            w, "x", h, "x", c, " image holding ", n, " values");
}

std::string image_bytes(const std::string& path) {
  std::string bytes = read_file(path);
  MTL_CHECK(!bytes.empty(), "'", path, "' is empty");
  MTL_CHECK(bytes.size() < (1u << 31), "'", path, "' is too large for an image (", bytes.size(), " bytes)");
  return bytes;
}

}  // namespace

ImageInfo read_image_info(const std::string& path) {
  return info_from_memory(image_bytes(path), path);
}

ImageU8 read_rgb(const std::string& path) {
  static std::atomic<bool> grey_note{false}, alpha_note{false}, deep_note{false};
  const std::string bytes = image_bytes(path);
  const ImageInfo info = info_from_memory(bytes, path);
  int w = 0, h = 0, c = 0;
  std::unique_ptr<stbi_uc, StbFree> px(
      stbi_load_from_memory(bytes_of(bytes), static_cast<int>(bytes.size()), &w, &h, &c, 3));
  MTL_CHECK(px != nullptr, "cannot decode '", path, "': ", reason());
  if (c <= 2) note_once(grey_note, "greyscale RGB images (e.g. '" + path + "') are replicated to 3 channels");
  if (c == 2 || c == 4) note_once(alpha_note, "the alpha channel of RGB images (e.g. '" + path + "') is dropped");
  if (info.bits == 16) note_once(deep_note, "16-bit RGB images (e.g. '" + path + "') are scaled to 8 bits");
  ImageU8 img;
  img.width = w, img.height = h, img.channels = 3;
  img.data.assign(px.get(), px.get() + static_cast<size_t>(w) * h * 3);
  return img;
}

ImageU16 read_gray(const std::string& path, const std::string& what) {
  const std::string bytes = image_bytes(path);
  const ImageInfo info = info_from_memory(bytes, path);
  MTL_CHECK(info.channels == 1, what, " '", path, "' has ", info.channels,
            " channels; it must be a single-channel (greyscale) PNG",
            info.channels >= 3 ? " (palette and colour PNGs are not label or depth maps)" : "");
  int w = 0, h = 0, c = 0;
  ImageU16 img;
  if (info.bits == 16) {
    std::unique_ptr<stbi_us, StbFree> px(
        stbi_load_16_from_memory(bytes_of(bytes), static_cast<int>(bytes.size()), &w, &h, &c, 1));
    MTL_CHECK(px != nullptr, "cannot decode ", what, " '", path, "': ", reason());
    img.data.assign(px.get(), px.get() + static_cast<size_t>(w) * h);
  } else {
    // stbi_load_16 would scale 8-bit values by 257; label ids and depth units must stay as stored.
    std::unique_ptr<stbi_uc, StbFree> px(
        stbi_load_from_memory(bytes_of(bytes), static_cast<int>(bytes.size()), &w, &h, &c, 1));
    MTL_CHECK(px != nullptr, "cannot decode ", what, " '", path, "': ", reason());
    img.data.assign(px.get(), px.get() + static_cast<size_t>(w) * h);
  }
  img.width = w, img.height = h, img.channels = 1;
  return img;
}

std::string encode_png(const ImageU8& img) {
  check_image("encode_png", img.width, img.height, img.channels, img.data.size(), {1, 2, 3, 4});
  std::string out;
  int ok = stbi_write_png_to_func(write_collect, &out, img.width, img.height, img.channels,
                                  img.data.data(), img.width * img.channels);
  MTL_CHECK(ok, "PNG encoding failed for a ", img.width, "x", img.height, " image");
  return out;
}

std::string encode_png16(const ImageU16& img) {
  check_image("encode_png16", img.width, img.height, img.channels, img.data.size(), {1});
  const size_t row_bytes = static_cast<size_t>(img.width) * 2;
  std::vector<unsigned char> raw(row_bytes * img.height);
  for (size_t i = 0; i < img.data.size(); ++i) {  // PNG samples are big-endian
    raw[2 * i] = static_cast<unsigned char>(img.data[i] >> 8);
    raw[2 * i + 1] = static_cast<unsigned char>(img.data[i] & 0xff);
  }
  // Per row, the filter with the smallest sum of |residual| (the usual libpng heuristic).
  std::vector<unsigned char> filtered((row_bytes + 1) * img.height);
  std::vector<unsigned char> cand(row_bytes);
  const int bpp = 2;
  for (int y = 0; y < img.height; ++y) {
    const unsigned char* cur = raw.data() + y * row_bytes;
    const unsigned char* up = y > 0 ? cur - row_bytes : nullptr;
    long best_score = -1;
    unsigned char* dst = filtered.data() + y * (row_bytes + 1);
    for (int f = 0; f < 5; ++f) {
      long score = 0;
      for (size_t i = 0; i < row_bytes; ++i) {
        int a = i >= bpp ? cur[i - bpp] : 0, b = up ? up[i] : 0, c = (up && i >= bpp) ? up[i - bpp] : 0;
        int pred = f == 0 ? 0 : f == 1 ? a : f == 2 ? b : f == 3 ? (a + b) / 2 : paeth(a, b, c);
        cand[i] = static_cast<unsigned char>(cur[i] - pred);
        score += std::abs(static_cast<signed char>(cand[i]));
      }
      if (best_score < 0 || score < best_score) {
        best_score = score;
        dst[0] = static_cast<unsigned char>(f);
        std::memcpy(dst + 1, cand.data(), row_bytes);
      }
    }
  }
  int zlen = 0;
  unsigned char* z = stbi_zlib_compress(filtered.data(), static_cast<int>(filtered.size()), &zlen,
                                        stbi_write_png_compression_level);
  MTL_CHECK(z != nullptr, "zlib compression failed for a 16-bit PNG");
  std::string idat(reinterpret_cast<const char*>(z), static_cast<size_t>(zlen));
  STBIW_FREE(z);

  std::string out("\x89PNG\r\n\x1a\n", 8);
  std::string ihdr;
  append_be32(ihdr, static_cast<uint32_t>(img.width));
  append_be32(ihdr, static_cast<uint32_t>(img.height));
  ihdr += std::string("\x10\x00\x00\x00\x00", 5);  // 16 bits, greyscale, deflate, adaptive, no interlace
  append_chunk(out, "IHDR", ihdr);
  append_chunk(out, "IDAT", idat);
  append_chunk(out, "IEND", "");
  return out;
}

std::string encode_jpeg(const ImageU8& img, int quality) {
  check_image("encode_jpeg", img.width, img.height, img.channels, img.data.size(), {1, 3});
  std::string out;
  int ok = stbi_write_jpg_to_func(write_collect, &out, img.width, img.height, img.channels,
                                  img.data.data(), quality);
  MTL_CHECK(ok, "JPEG encoding failed for a ", img.width, "x", img.height, " image");
  return out;
}

void write_png(const std::string& path, const ImageU8& img) { write_file_atomic(path, encode_png(img)); }
void write_png16(const std::string& path, const ImageU16& img) { write_file_atomic(path, encode_png16(img)); }
void write_jpeg(const std::string& path, const ImageU8& img, int quality) {
  write_file_atomic(path, encode_jpeg(img, quality));
}

}  // namespace mtl::train
