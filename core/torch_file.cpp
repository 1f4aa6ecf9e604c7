#include "core/torch_file.h"

#include <cstring>
#include <functional>
#include <memory>

#include "core/error.h"
#include "core/file_io.h"
#include "core/pickle.h"
#include "core/zip_reader.h"

namespace mtl {

namespace {

using pickle::Kind;
using pickle::Value;
using pickle::ValuePtr;

// torch's storage classes: what a persistent id names, and what mtl makes of them.
enum class Src { f32, f64, f16, bf16, i64, i32, u8, b8 };
struct StorageType {
  const char* name;
  Src src;
  size_t elsize;
  DType out;
};
constexpr StorageType kStorageTypes[] = {
    {"FloatStorage", Src::f32, 4, DType::f32}, {"DoubleStorage", Src::f64, 8, DType::f64},
    {"HalfStorage", Src::f16, 2, DType::f32},  {"BFloat16Storage", Src::bf16, 2, DType::bf16},
    {"LongStorage", Src::i64, 8, DType::i64},  {"IntStorage", Src::i32, 4, DType::i32},
    {"ByteStorage", Src::u8, 1, DType::u8},    {"BoolStorage", Src::b8, 1, DType::b8}};

const StorageType* storage_type(const std::string& module, const std::string& name) {
  if (module != "torch") return nullptr;
  for (const StorageType& t : kStorageTypes)
    if (name == t.name) return &t;
  return nullptr;
}

struct StorageRef : pickle::Opaque {
  const StorageType* type = nullptr;
  std::string key;
  int64_t numel = 0;
  std::string_view data;  // numel * elsize bytes once resolved
  bool resolved = false;
};

struct TensorRef : pickle::Opaque {
  std::shared_ptr<StorageRef> storage;
  int64_t offset = 0;
  Shape size, stride;
};

const TensorRef* tensor_of(const Value* v) {
  return v && v->is(Kind::opaque) ? dynamic_cast<const TensorRef*>(v->opaque.get()) : nullptr;
}

// The only names a state dict's pickle needs. Values, not code: nothing here is ever imported.
bool allowed_global(const std::string& module, const std::string& name) {
  if (storage_type(module, name)) return true;
  if (module == "collections" && name == "OrderedDict") return true;
  if (module == "torch._utils")
    return name == "_rebuild_tensor_v2" || name == "_rebuild_parameter" || name == "_rebuild_parameter_with_state";
  if (module == "torch._tensor") return name == "_rebuild_from_type_v2";
  if (module == "torch" && name == "Tensor") return true;
  if (module == "torch.nn.parameter" && name == "Parameter") return true;
  // Protocol 2 writes bytes as _codecs.encode(text, "latin1"), and sets through their type.
  if (module == "_codecs" && name == "encode") return true;
  return (module == "builtins" || module == "__builtin__") && (name == "set" || name == "frozenset");
}

int64_t as_int(const Value* v, const char* what) {
  MTL_CHECK(v && v->is(Kind::integer), what, " is ", v ? v->describe() : "missing", ", not an int");
  return v->integer;
}

Shape as_shape(const Value* v, const char* what) {
  MTL_CHECK(v && v->is(Kind::tuple), what, " is ", v ? v->describe() : "missing", ", not a tuple");
  Shape s;
  for (const Value* x : v->items) s.push_back(as_int(x, what));
  return s;
}

// UTF-8 text whose code points are all below 256, as latin-1 bytes (protocol 2's bytes).
std::string latin1(const std::string& utf8) {
  std::string out;
  for (size_t i = 0; i < utf8.size(); ++i) {
    const auto c = static_cast<unsigned char>(utf8[i]);
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else {
      MTL_CHECK((c == 0xc2 || c == 0xc3) && i + 1 < utf8.size(), "_codecs.encode: text outside latin-1");
      out += static_cast<char>(((c & 0x03) << 6) | (static_cast<unsigned char>(utf8[++i]) & 0x3f));
    }
  }
  return out;
}

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while (!(mant & 0x400)) mant <<= 1, --exp;
      bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
    }
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

class Reader {
 public:
  Reader(std::string_view bytes, std::string source) : bytes_(bytes), source_(std::move(source)) {
    hooks_.allow_global = allowed_global;
    hooks_.persistent_load = [this](const Value& pid) { return persistent_load(pid); };
    hooks_.call = [this](const Value& fn, const Value& args) { return call(fn, args); };
    hooks_.build = [](Value& target, const Value& state) {
      // An OrderedDict's attributes (state_dict()'s `_metadata`) and a tensor's Python attributes
      // carry nothing a state dict needs.
      MTL_CHECK(target.is(Kind::dict) || tensor_of(&target), "BUILD on a ", target.describe(),
                " (only dicts and tensors take state)");
      (void)state;
    };
  }

  TorchFile read() {
    TorchFile out;
    const Value* root = nullptr;
    if (starts_like_zip(bytes_)) {
      out.format = "zip";
      root = read_zip();
    } else if (is_legacy()) {
      out.format = "legacy";
      root = read_legacy();
    } else {
      fail_not_torch();
    }
    std::string where = "top level";
    const Value* sd = find_state_dict(root, where, 0);
    out.location = where;
    std::map<std::string, Tensor> named;
    for (const auto& [k, v] : sd->entries) named[k->text] = materialize(*tensor_of(v), k->text);
    strip_prefixes(named, out.removed_prefixes);
    out.tensors = std::move(named);
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const { throw Error("'" + source_ + "': " + what); }

  [[noreturn]] void fail_not_torch() const {
    if (bytes_.size() >= 2 && static_cast<unsigned char>(bytes_[0]) == 0x1f &&
        static_cast<unsigned char>(bytes_[1]) == 0x8b)
      fail(
          "this is gzip-compressed (a .tar.gz of released weights?): extract it first (tar -xzf FILE) and pass "
          "the .pth inside");
    if (bytes_.size() >= 262 && bytes_.substr(257, 5) == "ustar")
      fail(
          "this is a tar archive: extract it (tar -xf FILE) and pass the .pth inside; a checkpoint from torch < 0.4 "
          "in tar form must be re-saved with a current torch: torch.save(torch.load(F), 'new.pth')");
    fail("not a torch.save file (neither its zip format nor the legacy pickle format)");
  }

  // ---- the zip format ----
  const Value* read_zip() {
    zip_ = std::make_unique<ZipArchive>(bytes_, source_);
    const ZipEntry* pkl = nullptr;
    for (const ZipEntry& e : zip_->entries()) {
      const size_t n = e.name.size();
      if (n >= 8 && e.name.compare(n - 8, 8, "data.pkl") == 0 && (n == 8 || e.name[n - 9] == '/')) {
        pkl = &e;
        break;
      }
    }
    if (!pkl) fail("the zip archive has no data.pkl entry, so it is not a torch.save file");
    prefix_ = pkl->name.substr(0, pkl->name.size() - 8);
    if (const ZipEntry* bo = zip_->find(prefix_ + "byteorder")) {
      const std::string_view order = zip_->data(*bo);
      if (order != "little") fail("byte order '" + std::string(order) + "' is not supported (only little-endian)");
    }
    const std::string_view program = zip_->data(*pkl);
    size_t pos = 0;
    return pickle::unpickle(program, pos, hooks_, arena_, source_ + ":" + pkl->name);
  }

  // ---- the legacy format: magic, protocol version, system info, the object, storage keys, storages ----
  static constexpr unsigned char kMagic[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                             0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, '.'};
  bool is_legacy() const {
    return bytes_.size() >= sizeof kMagic && std::memcmp(bytes_.data(), kMagic, sizeof kMagic) == 0;
  }

  const Value* read_legacy() {
    legacy_ = true;
    size_t pos = sizeof kMagic;
    const Value* version = pickle::unpickle(bytes_, pos, hooks_, arena_, source_);
    if (!version->is(Kind::integer) || version->integer != 1001)
      fail("legacy torch file with protocol version " + version->describe() +
           (version->is(Kind::integer) ? " " + std::to_string(version->integer) : std::string()) + ", not 1001");
    const Value* info = pickle::unpickle(bytes_, pos, hooks_, arena_, source_);
    const Value* little = info->get("little_endian");
    if (!little || !little->is(Kind::boolean) || !little->boolean)
      fail("only little-endian legacy files are supported");
    const Value* root = pickle::unpickle(bytes_, pos, hooks_, arena_, source_);
    const Value* keys = pickle::unpickle(bytes_, pos, hooks_, arena_, source_);
    if (!keys->is(Kind::list)) fail("the legacy file's storage key list is a " + keys->describe());
    for (const Value* k : keys->items) {
      if (!k->is(Kind::string)) fail("a legacy storage key is a " + k->describe() + ", not a string");
      auto it = storages_.find(k->text);
      if (it == storages_.end()) fail("the legacy file lists storage '" + k->text + "' that no tensor uses");
      StorageRef& s = *it->second;
      if (s.resolved) fail("the legacy file lists storage '" + k->text + "' twice");
      if (bytes_.size() - pos < 8) fail("truncated before the size of storage '" + k->text + "'");
      uint64_t n = 0;
      for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<unsigned char>(bytes_[pos + i])) << (8 * i);
      pos += 8;
      if (n > (bytes_.size() - pos) / s.type->elsize)
        fail("storage '" + k->text + "' of " + std::to_string(n) +
             " elements runs past the end of the file (truncated)");
      s.numel = static_cast<int64_t>(n);
      s.data = bytes_.substr(pos, n * s.type->elsize);
      s.resolved = true;
      pos += n * s.type->elsize;
    }
    return root;
  }

  // ---- hooks ----
  ValuePtr persistent_load(const Value& pid) {
    const size_t want = legacy_ ? 6 : 5;
    if (!pid.is(Kind::tuple) || pid.items.size() != want || !pid.items[0]->is(Kind::string) ||
        pid.items[0]->text != "storage")
      throw Error("persistent id " + pid.describe() + " is not ('storage', type, key, location, size" +
                  (legacy_ ? ", view)" : ")"));
    const Value* type = pid.items[1];
    const StorageType* st = type->is(Kind::global) ? storage_type(type->text, type->name) : nullptr;
    if (!st) throw Error("persistent id names " + type->describe() + ", not a torch storage type");
    const Value* key = pid.items[2];
    if (!key->is(Kind::string)) throw Error("storage key is a " + key->describe() + ", not a string");
    const int64_t numel = as_int(pid.items[4], "storage size");
    if (numel < 0) throw Error("storage '" + key->text + "' has a negative size");
    if (legacy_ && !pid.items[5]->is(Kind::none))
      throw Error("storage '" + key->text +
                  "' is a view of another (torch < 1.0); re-save the file with a current "
                  "torch: torch.save(torch.load(F), 'new.pth')");
    std::shared_ptr<StorageRef>& s = storages_[key->text];
    if (!s) {
      s = std::make_shared<StorageRef>();
      s->type = st;
      s->key = key->text;
      s->numel = numel;
      if (!legacy_) resolve_zip_storage(*s);
    } else if (s->type != st) {
      throw Error("storage '" + key->text + "' is used as two different types");
    }
    ValuePtr v = arena_.make(Kind::opaque);
    v->opaque = s;
    return v;
  }

  void resolve_zip_storage(StorageRef& s) {
    const std::string name = prefix_ + "data/" + s.key;
    const ZipEntry* e = zip_->find(name);
    if (!e) throw Error("storage '" + s.key + "' has no entry '" + name + "' in the archive (truncated or corrupt)");
    const std::string_view d = zip_->data(*e);
    if (static_cast<uint64_t>(s.numel) > d.size() / s.type->elsize)
      throw Error("storage '" + s.key + "' should hold " + std::to_string(s.numel) + " " + s.type->name +
                  " elements but its entry has only " + std::to_string(d.size()) + " bytes");
    s.data = d.substr(0, static_cast<size_t>(s.numel) * s.type->elsize);
    s.resolved = true;
  }

  ValuePtr call(const Value& fn, const Value& args) {
    const std::string f = fn.text + "." + fn.name;
    const std::vector<ValuePtr>& a = args.items;
    if (f == "collections.OrderedDict") {
      ValuePtr d = arena_.make(Kind::dict);
      if (a.empty()) return d;
      MTL_CHECK(a.size() == 1 && a[0]->is(Kind::list), "OrderedDict(", args.describe(), ") is not supported");
      for (const Value* kv : a[0]->items) {
        MTL_CHECK((kv->is(Kind::tuple) || kv->is(Kind::list)) && kv->items.size() == 2,
                  "OrderedDict item is not a pair");
        d->entries.emplace_back(kv->items[0], kv->items[1]);
      }
      return d;
    }
    if (f == "torch._utils._rebuild_tensor_v2") {
      MTL_CHECK(a.size() >= 4, "_rebuild_tensor_v2 with ", a.size(), " arguments");
      auto* s = a[0]->is(Kind::opaque) ? dynamic_cast<StorageRef*>(a[0]->opaque.get()) : nullptr;
      MTL_CHECK(s, "_rebuild_tensor_v2's first argument is a ", a[0]->describe(), ", not a storage");
      auto t = std::make_shared<TensorRef>();
      t->storage = std::static_pointer_cast<StorageRef>(a[0]->opaque);
      t->offset = as_int(a[1], "storage offset");
      t->size = as_shape(a[2], "tensor size");
      t->stride = as_shape(a[3], "tensor stride");
      MTL_CHECK(t->size.size() == t->stride.size(), "tensor size ", shape_str(t->size), " and stride ",
                shape_str(t->stride), " differ in length");
      ValuePtr v = arena_.make(Kind::opaque);
      v->opaque = t;
      return v;
    }
    if (f == "torch._utils._rebuild_parameter" || f == "torch._utils._rebuild_parameter_with_state") {
      MTL_CHECK(!a.empty() && tensor_of(a[0]), fn.name, "'s first argument is not a tensor");
      return a[0];
    }
    if (f == "torch._tensor._rebuild_from_type_v2") {
      MTL_CHECK(a.size() >= 3 && a[0]->is(Kind::global) && a[2]->is(Kind::tuple), "_rebuild_from_type_v2(",
                args.describe(), ") is malformed");
      MTL_CHECK(++depth_ < 8, "_rebuild_from_type_v2 nested too deeply");
      ValuePtr r = call(*a[0], *a[2]);
      --depth_;
      MTL_CHECK(tensor_of(r), "_rebuild_from_type_v2 did not rebuild a tensor");
      return r;
    }
    if (f == "_codecs.encode") {
      MTL_CHECK(!a.empty() && a[0]->is(Kind::string), "_codecs.encode of a ", a.empty() ? "nothing" : a[0]->describe());
      ValuePtr b = arena_.make(Kind::bytes);
      b->text = latin1(a[0]->text);
      return b;
    }
    if (fn.name == "set" || fn.name == "frozenset") {
      ValuePtr l = arena_.make(Kind::list);
      if (!a.empty()) {
        MTL_CHECK(a[0]->is(Kind::list) || a[0]->is(Kind::tuple), fn.name, " of a ", a[0]->describe());
        l->items = a[0]->items;
      }
      return l;
    }
    throw Error("'" + f + "' cannot be called (it is a type name, allowed only as an argument)");
  }

  // ---- the state dict ----
  static bool is_state_dict(const Value* v) {
    if (!v->is(Kind::dict) || v->entries.empty()) return false;
    for (const auto& [k, x] : v->entries)
      if (!k->is(Kind::string) || !tensor_of(x)) return false;
    return true;
  }

  const Value* find_state_dict(const Value* v, std::string& where, int depth) const {
    if (is_state_dict(v)) return v;
    static const char* kKeys[] = {"state_dict", "model_state_dict", "model", "net", "network", "module", "weights"};
    if (v->is(Kind::dict) && depth < 4) {
      for (const char* k : kKeys)
        if (const Value* inner = v->get(k); inner && inner->is(Kind::dict)) {
          std::string w = (depth == 0 ? "under '" : where + ", then '") + std::string(k) + "'";
          if (const Value* sd = find_state_dict(inner, w, depth + 1)) {
            where = w;
            return sd;
          }
        }
    }
    if (depth > 0) return nullptr;
    std::string what = v->describe();
    if (v->is(Kind::dict)) {
      what += " with keys ";
      size_t n = 0;
      for (const auto& [k, x] : v->entries) {
        if (n++ == 8) {
          what += ", ...";
          break;
        }
        what += (n > 1 ? ", '" : "'") + (k->is(Kind::string) ? k->text : k->describe()) + "' (" +
                (tensor_of(x) ? std::string("tensor") : x->describe()) + ")";
      }
    }
    fail("no state dict found: the file holds a " + what +
         "; expected a dict of tensors, or one under 'state_dict', 'model_state_dict', 'model', 'net', 'network', "
         "'module' or 'weights'");
  }

  static void strip_prefixes(std::map<std::string, Tensor>& named, std::vector<std::string>& removed) {
    for (bool again = true; again;) {
      again = false;
      for (const std::string p : {"module.", "model."}) {
        bool all = true;
        for (const auto& [k, t] : named) all = all && k.size() > p.size() && k.compare(0, p.size(), p) == 0;
        if (!all) continue;
        std::map<std::string, Tensor> stripped;
        for (auto& [k, t] : named) stripped[k.substr(p.size())] = t;
        named = std::move(stripped);
        removed.push_back(p);
        again = true;
      }
    }
  }

  // ---- tensors ----
  Tensor materialize(const TensorRef& t, const std::string& name) const {
    const StorageRef& s = *t.storage;
    auto bad = [&](const std::string& what) { fail("tensor '" + name + "': " + what); };
    if (!s.resolved) bad("its storage '" + s.key + "' has no data in the file (truncated?)");
    if (t.offset < 0) bad("negative storage offset " + std::to_string(t.offset));
    int64_t numel = 1;
    __int128 last = t.offset;  // the highest element index the tensor touches
    for (size_t d = 0; d < t.size.size(); ++d) {
      if (t.size[d] < 0 || t.stride[d] < 0)
        bad("size " + shape_str(t.size) + " with stride " + shape_str(t.stride) + " is not supported (negative)");
      if (t.size[d] == 0) numel = 0;
    }
    if (numel != 0) {
      for (size_t d = 0; d < t.size.size(); ++d) {
        if (t.size[d] > (int64_t{1} << 40) || numel > (int64_t{1} << 40) / t.size[d])
          bad("size " + shape_str(t.size) + " is too large");
        numel *= t.size[d];
        last += static_cast<__int128>(t.size[d] - 1) * t.stride[d];
      }
      // Overlapping strides (an expanded tensor) could claim far more elements than the file holds.
      if (numel > s.numel)
        bad("size " + shape_str(t.size) + " has more elements than its storage '" + s.key + "' (" +
            std::to_string(s.numel) + "); overlapping strides are not supported");
      if (last >= s.numel)
        bad("size " + shape_str(t.size) + " with stride " + shape_str(t.stride) + " at offset " +
            std::to_string(t.offset) + " needs more than the " + std::to_string(s.numel) + " elements of storage '" +
            s.key + "'");
    }
    Tensor out = empty(t.size, s.type->out);
    if (numel == 0) return out;
    const size_t es = s.type->elsize;
    const auto* src = reinterpret_cast<const unsigned char*>(s.data.data());
    auto* dst = static_cast<unsigned char*>(out.data_ptr());
    // Row-major walk over the index space; the innermost dimension runs as one loop.
    const size_t nd = t.size.size();
    std::vector<int64_t> idx(nd, 0);
    const int64_t inner = nd ? t.size[nd - 1] : 1, inner_stride = nd ? t.stride[nd - 1] : 1;
    int64_t written = 0;
    while (written < numel) {
      int64_t base = t.offset;
      for (size_t d = 0; d + 1 < nd; ++d) base += idx[d] * t.stride[d];
      for (int64_t i = 0; i < inner; ++i, ++written) {
        const unsigned char* e = src + static_cast<size_t>(base + i * inner_stride) * es;
        if (s.type->src == Src::f16) {
          uint16_t h;
          std::memcpy(&h, e, 2);
          const float f = half_to_float(h);
          std::memcpy(dst + static_cast<size_t>(written) * 4, &f, 4);
        } else {
          std::memcpy(dst + static_cast<size_t>(written) * es, e, es);
        }
      }
      for (size_t d = nd > 0 ? nd - 1 : 0; d-- > 0;) {  // the outer dimensions, last first
        if (++idx[d] < t.size[d]) break;
        idx[d] = 0;
      }
    }
    return out;
  }

  std::string_view bytes_;
  std::string source_;
  pickle::Hooks hooks_;
  pickle::Arena arena_;
  std::unique_ptr<ZipArchive> zip_;
  std::string prefix_;
  bool legacy_ = false;
  int depth_ = 0;
  std::map<std::string, std::shared_ptr<StorageRef>> storages_;
};

}  // namespace

bool looks_like_torch_file(std::string_view head) {
  static constexpr unsigned char kLegacy[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46};
  return starts_like_zip(head) ||
         (head.size() >= sizeof kLegacy && std::memcmp(head.data(), kLegacy, sizeof kLegacy) == 0);
}

TorchFile parse_torch_file(std::string_view bytes, const std::string& source) { return Reader(bytes, source).read(); }

TorchFile load_torch_file(const std::string& path) {
  const std::string bytes = read_file(path);
  return parse_torch_file(bytes, path);
}

}  // namespace mtl
