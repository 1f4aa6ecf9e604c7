#pragma once
// Names of an enum's values, for configuration files, command lines and messages. The enum's own
// namespace declares them with MTL_ENUM_NAMES (in the order of the values), which defines an
// `enum_names(E)` that the functions below find by argument-dependent lookup.
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#define MTL_ENUM_NAMES(E, ...)                                                  \
  inline constexpr std::string_view mtl_enum_names_##E[] = {__VA_ARGS__};      \
  constexpr std::span<const std::string_view> enum_names(E) { return mtl_enum_names_##E; }

namespace mtl {

template <class E>
concept NamedEnum = std::is_enum_v<E> && requires(E e) { enum_names(e); };

template <NamedEnum E>
std::string_view to_string(E e) {
  return enum_names(E{})[static_cast<size_t>(e)];
}

template <NamedEnum E>
std::optional<E> parse_enum(std::string_view s) {
  const auto names = enum_names(E{});
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == s) return static_cast<E>(i);
  return std::nullopt;
}

template <NamedEnum E>
std::vector<std::string> enum_name_list() {
  std::vector<std::string> out;
  for (std::string_view n : enum_names(E{})) out.emplace_back(n);
  return out;
}

// "a, b or c", for messages.
template <NamedEnum E>
std::string enum_choices() {
  const auto names = enum_names(E{});
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i) out += i + 1 == names.size() ? " or " : ", ";
    out += names[i];
  }
  return out;
}

}  // namespace mtl
