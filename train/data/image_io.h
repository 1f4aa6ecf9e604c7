#pragma once
// Host images and PNG/JPEG files (stb_image / stb_image_write, plus a 16-bit PNG writer that
// stb lacks). Decoding goes through memory so that every failure names the file and stb's reason.
#include <cstdint>
#include <string>
#include <vector>

namespace mtl::train {

// Row-major, interleaved channels (HWC).
template <class T>
struct Image {
  int width = 0, height = 0, channels = 0;
  std::vector<T> data;

  Image() = default;
  Image(int w, int h, int c, T fill = T{})
      : width(w), height(h), channels(c), data(static_cast<size_t>(w) * h * c, fill) {}
  bool empty() const { return data.empty(); }
  size_t pixels() const { return static_cast<size_t>(width) * height; }
  T& at(int x, int y, int c = 0) { return data[(static_cast<size_t>(y) * width + x) * channels + c]; }
  const T& at(int x, int y, int c = 0) const {
    return data[(static_cast<size_t>(y) * width + x) * channels + c];
  }
  bool operator==(const Image&) const = default;
};
using ImageU8 = Image<uint8_t>;
using ImageU16 = Image<uint16_t>;
using ImageF = Image<float>;
using ImageI32 = Image<int32_t>;

struct ImageInfo {
  int width = 0, height = 0;
  int channels = 0;  // as stored (a palette PNG reports 3 or 4, as stb expands it)
  int bits = 8;      // 8 or 16
};

// Header only: cheap, but says nothing about whether the pixel data decodes.
ImageInfo read_image_info(const std::string& path);

// An 8-bit colour image as 3 channels. Grey and grey+alpha are replicated, RGBA drops alpha, and
// a 16-bit file is scaled to 8 bits; each kind of conversion prints one note per process.
ImageU8 read_rgb(const std::string& path);
// A single-channel 8- or 16-bit PNG with its stored values unchanged (8-bit values stay 0..255),
// for label masks and depth maps. `what` ("mask", "depth") goes into error messages.
ImageU16 read_gray(const std::string& path, const std::string& what);

// Encoders return the file bytes; the write_* functions store them atomically.
std::string encode_png(const ImageU8& img);     // 1 to 4 channels
std::string encode_png16(const ImageU16& img);  // 1 channel, 16-bit greyscale
std::string encode_jpeg(const ImageU8& img, int quality = 95);  // 1 or 3 channels
void write_png(const std::string& path, const ImageU8& img);
void write_png16(const std::string& path, const ImageU16& img);
void write_jpeg(const std::string& path, const ImageU8& img, int quality = 95);

}  // namespace mtl::train
