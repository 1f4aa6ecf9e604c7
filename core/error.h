#pragma once
// mtl::Error is the one exception type users see: its message names the file, key or tensor
// involved and what was expected. The MTL_CHECK macros build that message from stream pieces.
#include <sstream>
#include <stdexcept>
#include <string>

namespace mtl {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
[[noreturn]] void throw_error(const char* file, int line, const std::string& msg);
}  // namespace detail

}  // namespace mtl

// Throws mtl::Error with the streamed message when cond is false.
#define MTL_CHECK(cond, ...)                                    \
  do {                                                          \
    if (!(cond)) [[unlikely]] {                                 \
      throw ::mtl::Error(::mtl::detail::concat(__VA_ARGS__));   \
    }                                                           \
  } while (0)

// Internal invariants (not user input): includes the source location.
#define MTL_ASSERT(cond, ...)                                                             \
  do {                                                                                    \
    if (!(cond)) [[unlikely]] {                                                           \
      ::mtl::detail::throw_error(__FILE__, __LINE__,                                      \
                                 ::mtl::detail::concat("internal check failed: " #cond " ", \
                                                       ##__VA_ARGS__));                   \
    }                                                                                     \
  } while (0)
