#include "core/pickle.h"

#include <cstring>
#include <unordered_map>

#include "core/error.h"

namespace mtl::pickle {

namespace {

// The opcodes of Python's pickletools that this reader accepts, by protocol.
enum Op : unsigned char {
  MARK = '(',
  STOP = '.',
  POP = '0',
  POP_MARK = '1',
  DUP = '2',
  BININT = 'J',
  BININT1 = 'K',
  BININT2 = 'M',
  NONE = 'N',
  BINFLOAT = 'G',
  BINSTRING = 'T',
  SHORT_BINSTRING = 'U',
  BINUNICODE = 'X',
  APPEND = 'a',
  BUILD = 'b',
  GLOBAL = 'c',
  APPENDS = 'e',
  BINGET = 'h',
  LONG_BINGET = 'j',
  EMPTY_LIST = ']',
  BINPUT = 'q',
  LONG_BINPUT = 'r',
  SETITEM = 's',
  TUPLE = 't',
  EMPTY_TUPLE = ')',
  SETITEMS = 'u',
  EMPTY_DICT = '}',
  BINPERSID = 'Q',
  REDUCE = 'R',
  // protocol 2
  PROTO = 0x80,
  TUPLE1 = 0x85,
  TUPLE2 = 0x86,
  TUPLE3 = 0x87,
  NEWTRUE = 0x88,
  NEWFALSE = 0x89,
  LONG1 = 0x8a,
  LONG4 = 0x8b,
  // protocol 3
  BINBYTES = 'B',
  SHORT_BINBYTES = 'C',
  // protocol 4
  SHORT_BINUNICODE = 0x8c,
  BINUNICODE8 = 0x8d,
  BINBYTES8 = 0x8e,
  EMPTY_SET = 0x8f,
  ADDITEMS = 0x90,
  FROZENSET = 0x91,
  STACK_GLOBAL = 0x93,
  MEMOIZE = 0x94,
  FRAME = 0x95,
};

// Names for the opcodes that are refused, so that the message says what the file asked for.
const char* refused_name(unsigned char op) {
  switch (op) {
    case 'i':
      return "INST";
    case 'o':
      return "OBJ";
    case 0x81:
      return "NEWOBJ";
    case 0x92:
      return "NEWOBJ_EX";
    case 'P':
      return "PERSID";
    case 0x82:
      return "EXT1";
    case 0x83:
      return "EXT2";
    case 0x84:
      return "EXT4";
    case 'S':
      return "STRING";
    case 'V':
      return "UNICODE";
    case 'F':
      return "FLOAT";
    case 'I':
      return "INT";
    case 'L':
      return "LONG";
    case 'd':
      return "DICT";
    case 'l':
      return "LIST";
    case 'g':
      return "GET";
    case 'p':
      return "PUT";
    case 0x96:
      return "BYTEARRAY8";
    case 0x97:
      return "NEXT_BUFFER";
    case 0x98:
      return "READONLY_BUFFER";
    default:
      return nullptr;
  }
}

class Machine {
 public:
  Machine(std::string_view b, size_t pos, const Hooks& h, Arena& arena, const std::string& source)
      : b_(b), pos_(pos), hooks_(h), arena_(arena), source_(source) {}

  ValuePtr run(size_t& end) {
    for (;;) {
      op_pos_ = pos_;
      const unsigned char op = u8();
      switch (op) {
        case PROTO: {
          const unsigned v = u8();
          if (v > 5) fail("protocol " + std::to_string(v) + " is newer than pickle's 5");
          break;
        }
        case FRAME:
          take(8);
          break;  // a length hint for buffered readers; the bytes follow inline
        case STOP: {
          ValuePtr v = pop();
          end = pos_;
          return v;
        }
        case MARK:
          marks_.push_back(stack_.size());
          break;
        case POP:
          if (!marks_.empty() && marks_.back() == stack_.size())
            marks_.pop_back();
          else
            pop();
          break;
        case POP_MARK:
          pop_mark();
          break;
        case DUP:
          push(top());
          break;
        case NONE:
          push(arena_.make(Kind::none));
          break;
        case NEWTRUE:
          push(boolean(true));
          break;
        case NEWFALSE:
          push(boolean(false));
          break;
        case BININT:
          push(integer(static_cast<int32_t>(le(4))));
          break;
        case BININT1:
          push(integer(u8()));
          break;
        case BININT2:
          push(integer(static_cast<int64_t>(le(2))));
          break;
        case LONG1:
          push(long_int(u8()));
          break;
        case LONG4: {
          const int64_t n = static_cast<int32_t>(le(4));
          if (n < 0) fail("LONG4 has a negative length");
          push(long_int(static_cast<uint64_t>(n)));
          break;
        }
        case BINFLOAT: {
          uint64_t bits = 0;
          for (unsigned char ch : take(8)) bits = (bits << 8) | ch;  // big-endian
          ValuePtr v = arena_.make(Kind::floating);
          std::memcpy(&v->floating, &bits, 8);
          push(v);
          break;
        }
        case SHORT_BINUNICODE:
          push(text(Kind::string, u8()));
          break;
        case BINUNICODE:
          push(text(Kind::string, le(4)));
          break;
        case BINUNICODE8:
          push(text(Kind::string, le(8)));
          break;
        case SHORT_BINSTRING:
          push(text(Kind::string, u8()));
          break;
        case BINSTRING: {
          const int64_t n = static_cast<int32_t>(le(4));
          if (n < 0) fail("BINSTRING has a negative length");
          push(text(Kind::string, static_cast<uint64_t>(n)));
          break;
        }
        case SHORT_BINBYTES:
          push(text(Kind::bytes, u8()));
          break;
        case BINBYTES:
          push(text(Kind::bytes, le(4)));
          break;
        case BINBYTES8:
          push(text(Kind::bytes, le(8)));
          break;
        case EMPTY_TUPLE:
          push(arena_.make(Kind::tuple));
          break;
        case EMPTY_LIST:
          push(arena_.make(Kind::list));
          break;
        case EMPTY_DICT:
          push(arena_.make(Kind::dict));
          break;
        case EMPTY_SET:
          push(arena_.make(Kind::list));
          break;
        case TUPLE1:
        case TUPLE2:
        case TUPLE3: {
          const size_t n = op - TUPLE1 + 1;
          if (stack_.size() < n + floor()) fail("TUPLE" + std::to_string(n) + " on a stack of fewer items");
          ValuePtr t = arena_.make(Kind::tuple);
          t->items.assign(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
          stack_.resize(stack_.size() - n);
          push(t);
          break;
        }
        case TUPLE:
        case FROZENSET: {
          ValuePtr t = arena_.make(op == TUPLE ? Kind::tuple : Kind::list);
          t->items = pop_mark();
          push(t);
          break;
        }
        case APPEND: {
          ValuePtr v = pop();
          list_at_top("APPEND")->items.push_back(v);
          break;
        }
        case APPENDS:
        case ADDITEMS: {
          std::vector<ValuePtr> vs = pop_mark();
          Value* l = list_at_top(op == APPENDS ? "APPENDS" : "ADDITEMS");
          l->items.insert(l->items.end(), vs.begin(), vs.end());
          break;
        }
        case SETITEM: {
          ValuePtr v = pop(), k = pop();
          dict_at_top("SETITEM")->entries.emplace_back(k, v);
          break;
        }
        case SETITEMS: {
          std::vector<ValuePtr> kv = pop_mark();
          if (kv.size() % 2) fail("SETITEMS with an odd number of items");
          Value* d = dict_at_top("SETITEMS");
          for (size_t i = 0; i < kv.size(); i += 2) d->entries.emplace_back(kv[i], kv[i + 1]);
          break;
        }
        case BINPUT:
          memo_[u8()] = top();
          break;
        case LONG_BINPUT:
          memo_[le(4)] = top();
          break;
        case MEMOIZE:
          memo_[memo_.size()] = top();
          break;
        case BINGET:
          push(memo(u8()));
          break;
        case LONG_BINGET:
          push(memo(le(4)));
          break;
        case GLOBAL: {
          std::string module = line(), name = line();
          push(global(module, name));
          break;
        }
        case STACK_GLOBAL: {
          ValuePtr name = pop(), module = pop();
          if (!module->is(Kind::string) || !name->is(Kind::string))
            fail("STACK_GLOBAL expects two strings, got " + module->describe() + " and " + name->describe());
          push(global(module->text, name->text));
          break;
        }
        case BINPERSID: {
          ValuePtr pid = pop();
          if (!hooks_.persistent_load) fail("a persistent id where none is expected");
          push(guard([&] { return hooks_.persistent_load(*pid); }));
          break;
        }
        case REDUCE: {
          ValuePtr args = pop(), fn = pop();
          if (!fn->is(Kind::global) || !args->is(Kind::tuple))
            fail("REDUCE expects a global and a tuple, got " + fn->describe() + " and " + args->describe());
          push(guard([&] { return hooks_.call(*fn, *args); }));
          break;
        }
        case BUILD: {
          ValuePtr state = pop();
          ValuePtr target = top();
          guard([&] {
            hooks_.build(*target, *state);
            return target;
          });
          break;
        }
        default: {
          const char* n = refused_name(op);
          char hex[8];
          std::snprintf(hex, sizeof hex, "0x%02x", op);
          fail(std::string("opcode ") + hex + (n ? std::string(" (") + n + ")" : std::string()) +
               " is outside the subset of pickle that state dicts use; nothing was executed");
        }
      }
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error("'" + source_ + "': pickle byte " + std::to_string(op_pos_) + ": " + what);
  }
  // Hooks throw plain messages; this adds the file and the position.
  template <class F>
  ValuePtr guard(F&& f) {
    try {
      return f();
    } catch (const Error& e) {
      fail(e.what());
    }
  }
  std::string_view take(uint64_t n) {
    if (n > b_.size() - pos_) fail("the pickle is truncated (it needs " + std::to_string(n) + " more bytes)");
    std::string_view s = b_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  unsigned u8() { return static_cast<unsigned char>(take(1)[0]); }
  uint64_t le(int n) {
    uint64_t v = 0;
    std::string_view s = take(static_cast<uint64_t>(n));
    for (int i = 0; i < n; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(s[i])) << (8 * i);
    return v;
  }
  std::string line() {
    const size_t nl = b_.find('\n', pos_);
    if (nl == std::string_view::npos || nl - pos_ > 256) fail("GLOBAL without a short newline-terminated name");
    std::string s(b_.substr(pos_, nl - pos_));
    pos_ = nl + 1;
    return s;
  }
  ValuePtr boolean(bool v) {
    ValuePtr p = arena_.make(Kind::boolean);
    p->boolean = v;
    return p;
  }
  ValuePtr integer(int64_t v) {
    ValuePtr p = arena_.make(Kind::integer);
    p->integer = v;
    return p;
  }
  ValuePtr long_int(uint64_t n) {
    if (n > 8) fail("an integer of " + std::to_string(n) + " bytes is too large");
    std::string_view s = take(n);
    uint64_t v = 0;
    for (uint64_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(s[i])) << (8 * i);
    if (n > 0 && n < 8 && (static_cast<unsigned char>(s[n - 1]) & 0x80)) v |= ~uint64_t{0} << (8 * n);  // sign
    return integer(static_cast<int64_t>(v));
  }
  ValuePtr text(Kind k, uint64_t n) {
    ValuePtr p = arena_.make(k);
    p->text.assign(take(n));
    return p;
  }
  ValuePtr global(const std::string& module, const std::string& name) {
    if (!hooks_.allow_global || !hooks_.allow_global(module, name))
      fail("global '" + module + "." + name + "' is not allowed (only the torch names a state dict needs are); " +
           "nothing was executed");
    ValuePtr p = arena_.make(Kind::global);
    p->text = module;
    p->name = name;
    return p;
  }
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  void push(ValuePtr v) { stack_.push_back(std::move(v)); }
  ValuePtr top() {
    if (stack_.size() <= floor()) fail("the stack is empty");
    return stack_.back();
  }
  ValuePtr pop() {
    ValuePtr v = top();
    stack_.pop_back();
    return v;
  }
  std::vector<ValuePtr> pop_mark() {
    if (marks_.empty()) fail("no MARK to pop to");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<ValuePtr> v(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return v;
  }
  Value* list_at_top(const char* op) {
    Value* v = top();
    if (!v->is(Kind::list)) fail(std::string(op) + " on a " + v->describe() + ", not a list");
    return v;
  }
  Value* dict_at_top(const char* op) {
    Value* v = top();
    if (!v->is(Kind::dict)) fail(std::string(op) + " on a " + v->describe() + ", not a dict");
    return v;
  }
  ValuePtr memo(uint64_t i) {
    auto it = memo_.find(i);
    if (it == memo_.end()) fail("memo entry " + std::to_string(i) + " was never stored");
    return it->second;
  }

  std::string_view b_;
  size_t pos_, op_pos_ = 0;
  const Hooks& hooks_;
  Arena& arena_;
  const std::string& source_;
  std::vector<ValuePtr> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, ValuePtr> memo_;
};

}  // namespace

ValuePtr Arena::make(Kind k) {
  values_.push_back(std::make_unique<Value>());
  values_.back()->kind = k;
  return values_.back().get();
}

std::string Value::describe() const {
  switch (kind) {
    case Kind::none:
      return "None";
    case Kind::boolean:
      return "bool";
    case Kind::integer:
      return "int";
    case Kind::floating:
      return "float";
    case Kind::string:
      return "str";
    case Kind::bytes:
      return "bytes";
    case Kind::tuple:
      return "tuple";
    case Kind::list:
      return "list";
    case Kind::dict:
      return "dict";
    case Kind::global:
      return "global " + text + "." + name;
    case Kind::opaque:
      return "object";
  }
  return "value";
}

const Value* Value::get(std::string_view key) const {
  if (kind != Kind::dict) return nullptr;
  for (const auto& [k, v] : entries)
    if (k->is(Kind::string) && k->text == key) return v;
  return nullptr;
}

ValuePtr unpickle(std::string_view bytes, size_t& pos, const Hooks& hooks, Arena& arena, const std::string& source) {
  MTL_CHECK(pos <= bytes.size(), "'", source, "': pickle start ", pos, " is past the end");
  Machine m(bytes, pos, hooks, arena, source);
  return m.run(pos);
}

}  // namespace mtl::pickle
