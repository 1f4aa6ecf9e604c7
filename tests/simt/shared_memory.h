#pragma once
// Shared memory of the block that runs: every __shared__ variable and the dynamic area are filled
// with 0xFF at the block's start (NaN as a float, -1 as an integer, so a read before a write
// shows), and the guard zone after each is checked at its end (a write past the end shows).
#include <cstddef>
#include <string>

namespace mtl::simt {

constexpr size_t kMaxDynamicShared = 227 * 1024;  // an H100's opt-in limit per block
constexpr size_t kGuardBytes = 1024;
constexpr unsigned char kPoison = 0xff;

unsigned char* dynamic_shared_area();
void poison_shared(size_t dynamic_bytes);
// Empty when every guard zone is intact; otherwise names the variable written past its end.
std::string check_shared_guards(size_t dynamic_bytes);

}  // namespace mtl::simt
