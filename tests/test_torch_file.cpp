// The native torch.save reader (core/torch_file.h, core/pickle.h, core/zip_reader.h): PyTorch's
// own files in both formats and every storage type (fixtures from
// tests/reference/make_pretrained_fixtures.py), nested and wrapped checkpoints, refused globals
// and opcodes, broken files with clear errors, and a bounded fuzz loop of mutated real files
// that must only ever end in a value or an mtl::Error.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <random>

#include "core/error.h"
#include "core/file_io.h"
#include "core/pickle.h"
#include "core/torch_file.h"
#include "core/zip_reader.h"

using namespace mtl;
using doctest::Contains;

namespace {

std::string fixture(const std::string& name) {
  return std::string(MTL_SOURCE_DIR) + "/tests/reference/pretrained/" + name;
}

// A zip of stored entries, as torch.save writes one, for hand-made pickles.
std::string make_zip(const std::vector<std::pair<std::string, std::string>>& entries) {
  auto le = [](std::string& s, uint64_t v, int n) {
    for (int i = 0; i < n; ++i) s += static_cast<char>((v >> (8 * i)) & 0xff);
  };
  std::string out, cd;
  for (const auto& [name, data] : entries) {
    const uint64_t off = out.size();
    const uint32_t crc = crc32(data);
    le(out, 0x04034b50, 4), le(out, 20, 2), le(out, 0, 2), le(out, 0, 2), le(out, 0, 4), le(out, crc, 4);
    le(out, data.size(), 4), le(out, data.size(), 4), le(out, name.size(), 2), le(out, 0, 2);
    out += name + data;
    le(cd, 0x02014b50, 4), le(cd, 20, 2), le(cd, 20, 2), le(cd, 0, 2), le(cd, 0, 2), le(cd, 0, 4), le(cd, crc, 4);
    le(cd, data.size(), 4), le(cd, data.size(), 4), le(cd, name.size(), 2), le(cd, 0, 2), le(cd, 0, 2);
    le(cd, 0, 2), le(cd, 0, 2), le(cd, 0, 4), le(cd, off, 4);
    cd += name;
  }
  const uint64_t cd_off = out.size();
  out += cd;
  le(out, 0x06054b50, 4), le(out, 0, 2), le(out, 0, 2), le(out, entries.size(), 2), le(out, entries.size(), 2);
  le(out, cd.size(), 4), le(out, cd_off, 4), le(out, 0, 2);
  return out;
}

// Pieces of a protocol-2 pickle.
std::string str(const std::string& s) {
  std::string o = "X";
  for (int i = 0; i < 4; ++i) o += static_cast<char>((s.size() >> (8 * i)) & 0xff);
  return o + s;
}
std::string int1(int v) { return std::string("K") + static_cast<char>(v); }
std::string int4(int64_t v) {
  std::string o = "J";
  for (int i = 0; i < 4; ++i) o += static_cast<char>((static_cast<uint64_t>(v) >> (8 * i)) & 0xff);
  return o;
}
std::string tuple(const std::vector<std::string>& items) {
  std::string o = "(";
  for (const auto& i : items) o += i;
  return o + "t";
}
// {"w": _rebuild_tensor_v2(storage("0", FloatStorage, numel), offset, size, stride)}
std::string one_tensor_pickle(int64_t numel, int64_t offset, const std::vector<int64_t>& size,
                              const std::vector<int64_t>& stride) {
  std::vector<std::string> sz, st;
  for (int64_t v : size) sz.push_back(int4(v));
  for (int64_t v : stride) st.push_back(int4(v));
  return std::string("\x80\x02}") + str("w") + "ctorch._utils\n_rebuild_tensor_v2\n(" +
         tuple({str("storage"), "ctorch\nFloatStorage\n", str("0"), str("cpu"), int4(numel)}) + "Q" + int4(offset) +
         tuple(sz) + tuple(st) + "\x89" + "ccollections\nOrderedDict\n)RtRs.";
}
std::string floats(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) {
    float f = static_cast<float>(i);
    s.append(reinterpret_cast<const char*>(&f), 4);
  }
  return s;
}
TorchFile parse_zip(const std::string& pkl, const std::string& storage) {
  return parse_torch_file(make_zip({{"archive/data.pkl", pkl}, {"archive/data/0", storage}}), "made.pth");
}

}  // namespace

TEST_CASE("torchvision state dicts in the zip, legacy and wrapped forms read the same") {
  TorchFile zip = load_torch_file(fixture("resnet18_tv.pth"));
  CHECK(zip.format == "zip");
  CHECK(zip.location == "top level");
  REQUIRE(zip.tensors.count("conv1.weight"));
  CHECK(zip.tensors.at("conv1.weight").shape() == Shape{4, 3, 7, 7});
  CHECK(zip.tensors.at("conv1.weight").dtype() == DType::f32);
  CHECK(zip.tensors.at("layer2.0.downsample.0.weight").shape() == Shape{8, 4, 1, 1});
  CHECK(zip.tensors.at("bn1.num_batches_tracked").dtype() == DType::i64);
  CHECK(zip.tensors.at("bn1.num_batches_tracked").item() == 7);
  CHECK(zip.tensors.count("fc.weight"));
  for (const char* other : {"resnet18_tv_legacy.pth", "resnet18_tv_dataparallel.pth", "resnet18_tv_lightning.ckpt"}) {
    INFO(other);
    TorchFile f = load_torch_file(fixture(other));
    REQUIRE(f.tensors.size() == zip.tensors.size());
    for (const auto& [k, t] : zip.tensors) {
      REQUIRE(f.tensors.count(k));
      CHECK(f.tensors.at(k).to_f64_vector() == t.to_f64_vector());  // bit for bit
    }
  }
  CHECK(load_torch_file(fixture("resnet18_tv_legacy.pth")).format == "legacy");
  CHECK(load_torch_file(fixture("resnet18_tv_dataparallel.pth")).removed_prefixes ==
        std::vector<std::string>{"module."});
  TorchFile lightning = load_torch_file(fixture("resnet18_tv_lightning.ckpt"));
  CHECK(lightning.location == "under 'state_dict'");
  CHECK(lightning.removed_prefixes == std::vector<std::string>{"model."});
}

TEST_CASE("ESANet's ImageNet checkpoint layout: legacy format, state dict beside the optimizer") {
  TorchFile f = load_torch_file(fixture("r18_nbt1d_imagenet.pth"));
  CHECK(f.format == "legacy");
  CHECK(f.location == "under 'state_dict'");
  CHECK(f.tensors.count("encoder.layer1.0.conv3x1_1.weight"));
  CHECK(f.tensors.count("fc.bias"));
}

TEST_CASE("every storage type, views, offsets and parameters") {
  TorchFile f = load_torch_file(fixture("dtypes.pth"));
  const auto& t = f.tensors;
  auto values = [&](const char* k) { return t.at(k).to_f64_vector(); };
  CHECK(t.at("f32").shape() == Shape{2, 3});
  CHECK(values("f32") == std::vector<double>{0, 0.25, 0.5, 0.75, 1, 1.25});
  CHECK(t.at("f64").dtype() == DType::f64);
  CHECK(values("f64") == std::vector<double>{0, 0.125, 0.25, 0.375, 0.5, 0.625});
  CHECK(t.at("f16").dtype() == DType::f32);  // mtl has no float16: widened exactly
  CHECK(values("f16") == std::vector<double>{-0.5, -0.25, 0, 0.25, 0.5, 0.75});
  CHECK(t.at("bf16").dtype() == DType::bf16);
  CHECK(values("bf16") == std::vector<double>{0, 2, 4, 6});
  CHECK(t.at("i64").dtype() == DType::i64);
  CHECK(values("i64") == std::vector<double>{-2, -1, 0, 1, 2});
  CHECK(t.at("i32").dtype() == DType::i32);
  CHECK(values("i32") == std::vector<double>{0, 3, 6, 9});
  CHECK(t.at("u8").dtype() == DType::u8);
  CHECK(values("u8") == std::vector<double>{250, 251, 252, 253, 254, 255});
  CHECK(t.at("bool").dtype() == DType::b8);
  CHECK(values("bool") == std::vector<double>{1, 0, 1});
  // A transposed view comes out contiguous, in its logical order.
  CHECK(t.at("transposed").shape() == Shape{4, 3});
  CHECK(t.at("transposed").is_contiguous());
  std::vector<double> tr;
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j) tr.push_back(j * 4 + i);
  CHECK(values("transposed") == tr);
  CHECK(values("offset") == std::vector<double>{3, 4, 5, 6});  // a storage offset into a shared storage
  CHECK(values("shares_storage").size() == 10);
  CHECK(t.at("scalar").dim() == 0);
  CHECK(t.at("scalar").item() == 3.5);
  CHECK(values("param") == std::vector<double>{1.25, 1.25});
  CHECK(values("with_attr") == std::vector<double>{0, 1, 2});
}

TEST_CASE("a pickle that names a global outside the subset is refused and nothing runs") {
  CHECK_THROWS_WITH_AS(load_torch_file(fixture("forbidden_global.pth")), Contains("global 'os.system' is not allowed"),
                       Error);
  CHECK_THROWS_WITH_AS(load_torch_file(fixture("forbidden_global.pth")), Contains("forbidden_global.pth"), Error);
  // Protocol 4's STACK_GLOBAL goes through the same allow-list.
  const std::string p4 =
      std::string("\x80\x04\x8c\x08") + "builtins" + "\x8c\x04" + "eval" + "\x93" + str("1") + "\x85R.";
  CHECK_THROWS_WITH_AS(parse_zip(p4, ""), Contains("global 'builtins.eval' is not allowed"), Error);
  // So does a name that is allowed as a value but is not callable.
  CHECK_THROWS_WITH_AS(parse_zip(std::string("\x80\x02") + "ctorch\nFloatStorage\n)R.", ""),
                       Contains("'torch.FloatStorage' cannot be called"), Error);
  // Opcodes outside the subset are named.
  CHECK_THROWS_WITH_AS(parse_zip(std::string("\x80\x02(cos\nsystem\n") + str("x") + "i.", ""),
                       Contains("global 'os.system'"), Error);
  CHECK_THROWS_WITH_AS(parse_zip(std::string("\x80\x02") + "(" + str("x") + "o.", ""), Contains("opcode 0x6f (OBJ)"),
                       Error);
  CHECK_THROWS_WITH_AS(parse_zip(std::string("\x80\x02") + "\x81.", ""), Contains("(NEWOBJ)"), Error);
}

TEST_CASE("broken files give clear errors") {
  CHECK_THROWS_WITH_AS(load_torch_file(fixture("truncated.pth")), Contains("truncated.pth"), Error);
  CHECK_THROWS_WITH_AS(load_torch_file(fixture("truncated.pth")), Contains("truncated"), Error);
  CHECK_THROWS_WITH_AS(load_torch_file(fixture("nowhere.pth")), Contains("cannot open"), Error);
  CHECK_THROWS_WITH_AS(parse_torch_file("hello", "x.pth"), Contains("not a torch.save file"), Error);
  CHECK_THROWS_WITH_AS(parse_torch_file(std::string("\x1f\x8b\x08\x00", 4) + std::string(40, '\0'), "w.tar.gz"),
                       Contains("gzip-compressed"), Error);
  // The legacy file cut short: inside a pickle, and inside the raw storages after them.
  const std::string legacy = read_file(fixture("resnet18_tv_legacy.pth"));
  CHECK_THROWS_WITH_AS(parse_torch_file(legacy.substr(0, 300), "l.pth"), Contains("truncated"), Error);
  CHECK_THROWS_WITH_AS(parse_torch_file(legacy.substr(0, legacy.size() - 100), "l.pth"), Contains("truncated"), Error);

  // A storage shorter than its tensor, an offset past the end, a missing storage entry.
  const std::string ok = one_tensor_pickle(6, 0, {2, 3}, {3, 1});
  CHECK(parse_zip(ok, floats(6)).tensors.at("w").to_f64_vector() == std::vector<double>{0, 1, 2, 3, 4, 5});
  CHECK_THROWS_WITH_AS(parse_zip(ok, floats(2)),
                       Contains("should hold 6 FloatStorage elements but its entry has only 8 bytes"), Error);
  CHECK_THROWS_WITH_AS(parse_zip(one_tensor_pickle(6, 4, {2, 3}, {3, 1}), floats(6)),
                       Contains("at offset 4 needs more than the 6 elements of storage '0'"), Error);
  CHECK_THROWS_WITH_AS(parse_zip(one_tensor_pickle(6, 0, {2, 3}, {-3, 1}), floats(6)), Contains("negative"), Error);
  CHECK_THROWS_WITH_AS(parse_zip(one_tensor_pickle(6, 0, {2, 100000}, {0, 0}), floats(6)),
                       Contains("more elements than its storage"), Error);
  CHECK_THROWS_WITH_AS(parse_zip(one_tensor_pickle(6, 0, {2, 3}, {2147483647, 1}), floats(6)),
                       Contains("needs more than the 6 elements"), Error);
  CHECK_THROWS_WITH_AS(parse_torch_file(make_zip({{"archive/data.pkl", ok}}), "m.pth"),
                       Contains("has no entry 'archive/data/0'"), Error);
  // A CRC mismatch is corruption.
  std::string bad = make_zip({{"archive/data.pkl", ok}, {"archive/data/0", floats(6)}});
  bad[bad.find(floats(6)) + 5] ^= 0x40;
  CHECK_THROWS_WITH_AS(parse_torch_file(bad, "c.pth"), Contains("fails its CRC check"), Error);
  // No state dict anywhere.
  CHECK_THROWS_WITH_AS(parse_zip(std::string("\x80\x02}") + str("epoch") + int1(3) + "s.", ""),
                       Contains("no state dict found: the file holds a dict with keys 'epoch' (int)"), Error);
}

TEST_CASE("pickle machine: memo, cycles and malformed programs") {
  pickle::Hooks hooks;
  auto run = [&](const std::string& p) {
    pickle::Arena arena;
    size_t pos = 0;
    const pickle::Value* v = pickle::unpickle(p, pos, hooks, arena, "p.pkl");
    return std::make_pair(v->kind, pos);
  };
  // A list that holds itself (through the memo) is fine: values live in the arena.
  CHECK(run(std::string("\x80\x02]q\x00h\x00\x61.", 9)).first == pickle::Kind::list);
  CHECK_THROWS_WITH_AS(run(std::string("\x80\x02h\x05.")), Contains("memo entry 5 was never stored"), Error);
  CHECK_THROWS_WITH_AS(run(std::string("\x80\x02X\xff\xff\xff\x7f")), Contains("truncated"), Error);
  CHECK_THROWS_WITH_AS(run(std::string("\x80\x02.")), Contains("the stack is empty"), Error);
  CHECK_THROWS_WITH_AS(run(std::string("\x80\x02K\x01K\x02\x61.")), Contains("APPEND on a int"), Error);
  CHECK_THROWS_WITH_AS(run(std::string("\x80\x02u.")), Contains("no MARK"), Error);
  CHECK_THROWS_WITH_AS(run(std::string("\x80\x09.")), Contains("protocol 9"), Error);
  CHECK_THROWS_WITH_AS(run(std::string("\x80\x02\x8a\x09") + std::string(9, '\1') + "."), Contains("too large"), Error);
  CHECK_THROWS_WITH_AS(run(std::string("\x80\x02") + "cos\nsystem\n."),
                       Contains("p.pkl': pickle byte 2: global 'os.system'"), Error);
}

// Mutations of the real fixtures: whole-file byte changes (the zip layer and its CRCs), the
// pickle changed and re-packed with valid CRCs (so the pickle machine and the tensor checks see
// it), and the legacy file (no CRC at all). Each run must end in a value or an mtl::Error.
TEST_CASE("fuzz: mutated real files never crash") {
  const double seconds = std::getenv("MTL_FUZZ_SECONDS") ? std::atof(std::getenv("MTL_FUZZ_SECONDS")) : 3.0;
  const uint64_t seed = std::getenv("MTL_TEST_SEED") ? std::strtoull(std::getenv("MTL_TEST_SEED"), nullptr, 10) : 1234;
  MESSAGE("fuzz seed " << seed << " (MTL_TEST_SEED), " << seconds << " s (MTL_FUZZ_SECONDS)");
  std::mt19937_64 rng(seed);
  const std::vector<std::string> files = {read_file(fixture("resnet18_tv.pth")), read_file(fixture("dtypes.pth")),
                                          read_file(fixture("r18_nbt1d_imagenet.pth")),
                                          read_file(fixture("resnet18_tv_lightning.ckpt"))};
  // The zip fixtures' entries, to re-pack after mutating data.pkl.
  std::vector<std::vector<std::pair<std::string, std::string>>> unpacked;
  for (const std::string& f : files) {
    if (!starts_like_zip(f)) continue;
    ZipArchive z(f, "fixture");
    std::vector<std::pair<std::string, std::string>> e;
    for (const ZipEntry& x : z.entries()) e.emplace_back(x.name, std::string(z.data(x)));
    unpacked.push_back(std::move(e));
  }
  auto mutate = [&](std::string s) {
    const int n = 1 + static_cast<int>(rng() % 8);
    for (int k = 0; k < n && !s.empty(); ++k) {
      const size_t at = rng() % s.size();
      switch (rng() % 6) {
        case 0:
          s[at] = static_cast<char>(rng());
          break;
        case 1:
          s[at] ^= static_cast<char>(1u << (rng() % 8));
          break;
        case 2:
          s.resize(at);
          break;
        case 3:
          s.erase(at, 1 + rng() % 16);
          break;
        case 4:
          s.insert(at, std::string(1 + rng() % 4, static_cast<char>(rng())));
          break;
        case 5: {  // an extreme value in a length or size field
          static const uint64_t extremes[] = {0, 1, 0x7f, 0xff, 0xffff, 0x7fffffff, 0xffffffff, ~uint64_t{0}};
          const uint64_t v = extremes[rng() % 8];
          for (size_t i = 0; i < 4 && at + i < s.size(); ++i) s[at + i] = static_cast<char>(v >> (8 * i));
          break;
        }
      }
    }
    return s;
  };
  int64_t runs = 0, parsed = 0, refused = 0;
  const auto t0 = std::chrono::steady_clock::now();
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < seconds) {
    std::string input;
    const uint64_t mode = rng() % 3;
    if (mode == 0 || unpacked.empty()) {
      input = mutate(files[rng() % files.size()]);
    } else if (mode == 1) {
      auto entries = unpacked[rng() % unpacked.size()];
      for (auto& [name, data] : entries)
        if (name.size() >= 8 && name.compare(name.size() - 8, 8, "data.pkl") == 0) data = mutate(data);
      input = make_zip(entries);
    } else {
      input = mutate(files[2]);  // the legacy file: no CRC guards its pickles or storages
    }
    ++runs;
    try {
      parse_torch_file(input, "fuzz");
      ++parsed;
    } catch (const Error&) {
      ++refused;
    } catch (const std::exception& e) {
      FAIL("a mutated file escaped as a non-mtl exception: " << e.what());
    }
  }
  MESSAGE(runs << " mutated files: " << parsed << " parsed, " << refused << " refused with mtl::Error");
  CHECK(runs > 100);
  CHECK(refused > 0);
}
