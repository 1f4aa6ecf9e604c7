#pragma once
// A restricted unpickler: it reads the subset of Python's pickle format (protocols 2 to 5) that
// serialised state dicts use and builds a tree of plain values. It executes nothing: a global is
// only a name, accepted when the caller's allow-list has it, and REDUCE, BUILD and persistent ids
// are handed to the caller's hooks, which build only what they know. Any other opcode is an
// mtl::Error naming it, its byte position and the file; so are truncation and malformed operands.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mtl::pickle {

enum class Kind : uint8_t { none, boolean, integer, floating, string, bytes, tuple, list, dict, global, opaque };

// What a hook built (a storage, a tensor); the caller derives its own types from it.
struct Opaque {
  virtual ~Opaque() = default;
};

struct Value;
// Values are owned by an Arena and point to each other freely: a pickle may build cycles (a list
// that holds itself), which shared ownership would leak.
using ValuePtr = Value*;

struct Value {
  Kind kind = Kind::none;
  bool boolean = false;
  int64_t integer = 0;
  double floating = 0;
  std::string text;                                    // string, bytes; global: the module
  std::string name;                                    // global: the name within the module
  std::vector<ValuePtr> items;                         // tuple, list (a set reads as a list)
  std::vector<std::pair<ValuePtr, ValuePtr>> entries;  // dict, in insertion order
  std::shared_ptr<Opaque> opaque;

  bool is(Kind k) const { return kind == k; }
  // "dict", "tuple", "global torch._utils._rebuild_tensor_v2", for messages.
  std::string describe() const;
  // A dict entry by string key; nullptr when absent (or not a dict).
  const Value* get(std::string_view key) const;
};

class Arena {
 public:
  ValuePtr make(Kind k);
  size_t size() const { return values_.size(); }

 private:
  std::vector<std::unique_ptr<Value>> values_;
};

struct Hooks {
  // Whether `module.name` may appear in the pickle at all.
  std::function<bool(const std::string& module, const std::string& name)> allow_global;
  // BINPERSID: what the persistent id (usually a tuple) stands for.
  std::function<ValuePtr(const Value& pid)> persistent_load;
  // REDUCE: callable(*args); `callable` is an allowed global, `args` a tuple.
  std::function<ValuePtr(const Value& callable, const Value& args)> call;
  // BUILD: sets `state` on `target` (for OrderedDict metadata, say); may throw to refuse.
  std::function<void(Value& target, const Value& state)> build;
};

// Runs the pickle that starts at bytes[pos] up to its STOP, returns the value it leaves (allocated
// in `arena`, as the hooks' values must be) and moves `pos` past the STOP. `source` names the file
// in messages.
ValuePtr unpickle(std::string_view bytes, size_t& pos, const Hooks& hooks, Arena& arena, const std::string& source);

}  // namespace mtl::pickle
