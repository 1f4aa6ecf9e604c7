#include "tests/simt/symbols.h"

#include <cxxabi.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace mtl::simt {

namespace {

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "simt: cannot read the executable's symbol table: %s\n", what);
  std::abort();
}

}  // namespace

std::string demangle(const char* name) {
  int status = 0;
  char* d = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  std::string out = status == 0 && d ? d : name;
  std::free(d);
  return out;
}

namespace {

uintptr_t load_bias() {
  uintptr_t bias = 0;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* out) {
        *static_cast<uintptr_t*>(out) = info->dlpi_addr;
        return 1;  // the first object is the executable
      },
      &bias);
  return bias;
}

Symbols read_symbols() {
  const int fd = open("/proc/self/exe", O_RDONLY);
  if (fd < 0) die("open /proc/self/exe");
  struct stat st;
  if (fstat(fd, &st) != 0) die("fstat");
  void* map = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (map == MAP_FAILED) die("mmap");
  const auto* base = static_cast<const unsigned char*>(map);
  const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(base);
  const auto* sh = reinterpret_cast<const Elf64_Shdr*>(base + eh->e_shoff);
  const char* shstr = reinterpret_cast<const char*>(base + sh[eh->e_shstrndx].sh_offset);
  const uintptr_t bias = load_bias();

  Symbols out;
  size_t shared_index = 0;
  const Elf64_Shdr* symtab = nullptr;
  for (size_t i = 0; i < eh->e_shnum; ++i) {
    if (std::strcmp(shstr + sh[i].sh_name, "mtl_simt_shared") == 0) {
      shared_index = i;
      out.shared_end = bias + sh[i].sh_addr + sh[i].sh_size;
    }
    if (sh[i].sh_type == SHT_SYMTAB) symtab = &sh[i];
  }
  if (!symtab) die("no .symtab (is the test executable stripped?)");
  const char* strtab = reinterpret_cast<const char*>(base + sh[symtab->sh_link].sh_offset);
  const auto* sym = reinterpret_cast<const Elf64_Sym*>(base + symtab->sh_offset);
  const size_t count = symtab->sh_size / sizeof(Elf64_Sym);
  for (size_t i = 0; i < count; ++i) {
    const Elf64_Sym& s = sym[i];
    const int type = ELF64_ST_TYPE(s.st_info);
    if (shared_index && s.st_shndx == shared_index && type == STT_OBJECT)
      out.shared.push_back({bias + s.st_value, s.st_size, demangle(strtab + s.st_name)});
    else if (type == STT_FUNC && s.st_size > 0)
      out.functions.push_back({bias + s.st_value, s.st_size, strtab + s.st_name});
  }
  munmap(map, static_cast<size_t>(st.st_size));
  auto by_address = [](const Symbol& a, const Symbol& b) { return a.address < b.address; };
  std::sort(out.shared.begin(), out.shared.end(), by_address);
  std::sort(out.functions.begin(), out.functions.end(), by_address);
  return out;
}

}  // namespace

const Symbol* Symbols::function_at(uintptr_t pc) const {
  auto it = std::upper_bound(functions.begin(), functions.end(), pc,
                             [](uintptr_t a, const Symbol& s) { return a < s.address; });
  if (it == functions.begin()) return nullptr;
  --it;
  return pc < it->address + it->size ? &*it : nullptr;
}

const Symbols& symbols() {
  static const Symbols s = read_symbols();
  return s;
}

}  // namespace mtl::simt
