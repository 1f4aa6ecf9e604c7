#include "core/safetensors.h"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "core/error.h"
#include "core/file_io.h"

namespace mtl {

void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<Tensor> host;
  size_t offset = 0;
  for (const auto& [name, t] : tensors) {
    MTL_CHECK(t.defined(), "save_safetensors: tensor '", name, "' is undefined");
    Tensor h = t.device().is_cpu() ? t : t.to(Device::cpu());
    if (!h.is_contiguous()) h = h.clone();
    header[name] = {{"dtype", dtype_name(h.dtype())}, {"shape", h.shape()},
                    {"data_offsets", {offset, offset + h.nbytes()}}};
    offset += h.nbytes();
    host.push_back(h);
  }
  std::string hs = header.dump();
  hs.append((8 - hs.size() % 8) % 8, ' ');  // keeps the data 8-byte aligned, as the format advises
  std::string out;
  out.resize(8);
  uint64_t n = hs.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  out += hs;
  out.reserve(out.size() + offset);
  for (const Tensor& h : host) out.append(static_cast<const char*>(h.data_ptr()), h.nbytes());
  write_file_atomic(path, out);
}

SafetensorsFile load_safetensors(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  MTL_CHECK(f.good(), "cannot open '", path, "'");
  f.seekg(0, std::ios::end);
  const uint64_t size = static_cast<uint64_t>(f.tellg());
  f.seekg(0);
  MTL_CHECK(size >= 8, "'", path, "' is not a safetensors file (", size, " bytes)");
  unsigned char lenbuf[8];
  f.read(reinterpret_cast<char*>(lenbuf), 8);
  uint64_t hlen = 0;
  for (int i = 0; i < 8; ++i) hlen |= static_cast<uint64_t>(lenbuf[i]) << (8 * i);
  MTL_CHECK(hlen <= size - 8 && hlen < (100u << 20), "'", path, "': header length ", hlen,
            " does not fit in a file of ", size, " bytes (truncated or not safetensors)");
  std::string hs(hlen, '\0');
  f.read(hs.data(), static_cast<std::streamsize>(hlen));
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(hs);
  } catch (const std::exception& e) {
    throw Error("'" + path + "': the safetensors header is not valid JSON: " + e.what());
  }
  MTL_CHECK(header.is_object(), "'", path, "': the safetensors header is not a JSON object");
  const uint64_t data_size = size - 8 - hlen;
  SafetensorsFile out;
  for (auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      for (auto& [k, v] : entry.items())
        out.metadata[k] = v.is_string() ? v.get<std::string>() : v.dump();
      continue;
    }
    try {
      DType dt = dtype_from_name(entry.at("dtype").get<std::string>());
      Shape shape = entry.at("shape").get<Shape>();
      auto offs = entry.at("data_offsets").get<std::vector<uint64_t>>();
      MTL_CHECK(offs.size() == 2 && offs[0] <= offs[1] && offs[1] <= data_size, "data_offsets out of range");
      MTL_CHECK(offs[1] - offs[0] == static_cast<uint64_t>(numel(shape)) * dtype_size(dt),
                "data_offsets span ", offs[1] - offs[0], " bytes but ", dtype_name(dt), shape_str(shape),
                " needs ", numel(shape) * static_cast<int64_t>(dtype_size(dt)));
      Tensor t = empty(shape, dt);
      f.seekg(static_cast<std::streamoff>(8 + hlen + offs[0]));
      f.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(t.nbytes()));
      MTL_CHECK(f.good(), "read failed");
      out.tensors[name] = t;
    } catch (const Error& e) {
      throw Error("'" + path + "': tensor '" + name + "': " + e.what());
    } catch (const std::exception& e) {
      throw Error("'" + path + "': tensor '" + name + "' has a malformed header entry: " + e.what());
    }
  }
  return out;
}

}  // namespace mtl
