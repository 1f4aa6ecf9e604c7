#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/bfloat16.h"

namespace mtl {

enum class DType : uint8_t { f32, f64, bf16, i32, i64, u8, b8 };

size_t dtype_size(DType t);
// Names as in safetensors headers: F32, F64, BF16, I32, I64, U8, BOOL.
const char* dtype_name(DType t);
DType dtype_from_name(const std::string& name);  // throws mtl::Error for an unknown name
bool is_floating(DType t);

template <typename T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::f32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::f64; };
template <> struct dtype_of<bf16> { static constexpr DType value = DType::bf16; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::i32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::i64; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::u8; };
template <> struct dtype_of<bool> { static constexpr DType value = DType::b8; };
template <typename T> inline constexpr DType dtype_v = dtype_of<T>::value;

}  // namespace mtl
