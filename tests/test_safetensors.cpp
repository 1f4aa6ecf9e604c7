// safetensors I/O: round trips of every dtype, atomic writes, and errors naming the file.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "core/error.h"
#include "core/safetensors.h"
#include "tests/support/random.h"
#include "tests/support/temp_dir.h"

using namespace mtl;
namespace fs = std::filesystem;

TEST_CASE("round trip of every dtype, views included") {
  test::TempDir tmp("st");
  const fs::path& d = tmp.path;
  std::map<std::string, Tensor> ts;
  for (DType t : {DType::f32, DType::f64, DType::bf16, DType::i32, DType::i64, DType::u8, DType::b8})
    ts[std::string("t_") + dtype_name(t)] = from_vector({0, 1, 1, 0, 1, 1}, {2, 3}, t);
  ts["random"] = test::randn({3, 5, 7});
  ts["transposed"] = test::randn({4, 6}).transpose(0, 1);
  ts["scalar"] = full({}, 2.5);
  std::string path = (d / "a.safetensors").string();
  save_safetensors(path, ts, {{"format", "pt"}, {"step", "12"}});
  SafetensorsFile f = load_safetensors(path);
  CHECK(f.metadata.at("step") == "12");
  REQUIRE(f.tensors.size() == ts.size());
  for (auto& [name, t] : ts) {
    INFO(name);
    CHECK(f.tensors.at(name).dtype() == t.dtype());
    CHECK(f.tensors.at(name).shape() == t.shape());
    CHECK(f.tensors.at(name).to_f64_vector() == t.to_f64_vector());
  }
  // The header length is a multiple of 8 and the data follows it directly.
  std::ifstream in(path, std::ios::binary);
  uint64_t hlen = 0;
  in.read(reinterpret_cast<char*>(&hlen), 8);
  CHECK(hlen % 8 == 0);
  // No temporary file is left behind.
  int files = 0;
  for (auto& e : fs::directory_iterator(d)) files += e.is_regular_file();
  CHECK(files == 1);
}

TEST_CASE("bad files give errors naming the file") {
  test::TempDir tmp("st");
  const fs::path& d = tmp.path;
  std::string missing = (d / "missing.safetensors").string();
  CHECK_THROWS_WITH_AS(load_safetensors(missing), doctest::Contains(("cannot open '" + missing + "'").c_str()), Error);

  std::string path = (d / "t.safetensors").string();
  save_safetensors(path, {{"w", test::randn({10, 10})}});
  fs::resize_file(path, fs::file_size(path) - 7);  // truncated data
  CHECK_THROWS_WITH_AS(load_safetensors(path), doctest::Contains("tensor 'w'"), Error);

  std::string junk = (d / "junk.safetensors").string();
  std::ofstream(junk) << "this is not a safetensors file at all";
  CHECK_THROWS_WITH_AS(load_safetensors(junk), doctest::Contains(junk.c_str()), Error);

  std::string badjson = (d / "badjson.safetensors").string();
  {
    std::ofstream o(badjson, std::ios::binary);
    uint64_t n = 8;
    o.write(reinterpret_cast<const char*>(&n), 8);
    o << "{nojson}";
  }
  CHECK_THROWS_WITH_AS(load_safetensors(badjson), doctest::Contains("not valid JSON"), Error);
}

TEST_CASE("a failed write leaves the old file intact") {
  test::TempDir tmp("st");
  const fs::path& d = tmp.path;
  std::string path = (d / "keep.safetensors").string();
  save_safetensors(path, {{"a", ones({3})}});
  // A folder in place of the temporary file makes the write fail.
  fs::create_directories(path + ".tmp." + std::to_string(::getpid()));
  CHECK_THROWS_AS(save_safetensors(path, {{"a", zeros({3})}}), Error);
  CHECK(load_safetensors(path).tensors.at("a").to_f64_vector() == std::vector<double>{1, 1, 1});
}
