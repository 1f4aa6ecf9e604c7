#pragma once
// safetensors files: an 8-byte little-endian header length, a JSON header mapping each name to
// {dtype, shape, data_offsets}, then the raw little-endian data. Readable by PyTorch's
// `safetensors` package and written atomically (temporary file, then rename).
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace mtl {

struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;            // CPU tensors, contiguous
  std::map<std::string, std::string> metadata;      // the "__metadata__" entry
};

// Throws mtl::Error naming the file and the problem (missing, truncated, bad header, ...).
SafetensorsFile load_safetensors(const std::string& path);
// Tensors may live on any device and have any layout; they are copied to the host as needed.
void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace mtl
