#pragma once
// The running executable's symbol table: where each __shared__ variable lives and how large it
// is (the section kernel_language.h puts them in), and which function holds a code address.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace mtl::simt {

struct Symbol {
  uintptr_t address = 0;  // at run time
  size_t size = 0;
  std::string name;  // demangled
};

struct Symbols {
  std::vector<Symbol> shared;     // the __shared__ variables, by address
  uintptr_t shared_end = 0;       // end of their section
  std::vector<Symbol> functions;  // by address, names mangled (demangled on use)
  const Symbol* function_at(uintptr_t pc) const;
};

std::string demangle(const char* name);

// Read once from /proc/self/exe; aborts with a message if the file has no symbol table.
const Symbols& symbols();

}  // namespace mtl::simt
