#pragma once
// The protobuf wire format, write side only: enough to encode the few messages mtl writes
// (TensorBoard events, ONNX models) by hand, without protoc or libprotobuf. Fields are written in
// the order of the calls; a sub-message is encoded into its own string and written with
// put_bytes.
#include <cstdint>
#include <string>
#include <string_view>

namespace mtl::protobuf {

enum Wire : uint32_t { kVarint = 0, kFixed64 = 1, kBytes = 2, kFixed32 = 5 };

void put_varint(std::string& out, uint64_t v);
void put_key(std::string& out, uint32_t field, Wire wire);
// int32, int64, enum and bool fields: negative values are sign-extended to 64 bits (ten varint
// bytes), as protobuf encodes them.
void put_int(std::string& out, uint32_t field, int64_t v);
// string, bytes and sub-message fields.
void put_bytes(std::string& out, uint32_t field, std::string_view bytes);
void put_double(std::string& out, uint32_t field, double v);
void put_float(std::string& out, uint32_t field, float v);

}  // namespace mtl::protobuf
