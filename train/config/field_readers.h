#pragma once
// One configuration key as the schema sees it (how to read it from a YAML node and write it back),
// and the generic readers for scalar keys: numbers in a range, integers, booleans, strings, enum
// names and ordered pairs. Internal to train/config/.
#include <yaml-cpp/yaml.h>

#include <functional>
#include <string>

#include "train/config/config.h"
#include "train/config/reader.h"

namespace mtl::train::schema {

using ReadFn = std::function<void(const YAML::Node&, Config&, Reader&, const std::string&)>;
using RenderFn = std::function<std::string(const Config&)>;

struct Field {
  std::string path;
  std::string help;  // the comment above the key in the default config
  ReadFn read;
  RenderFn render;   // YAML flow text, or block lines starting with '\n'
  std::function<bool(const Config&)> present;  // written by to_yaml only when this holds
};

template <class Acc>
Field f_num(std::string path, Acc acc, double lo, bool lo_open, double hi, bool hi_open, std::string help) {
  return {std::move(path), std::move(help),
          [=](const YAML::Node& n, Config& c, Reader& r, const std::string& p) {
            if (auto v = r.number(n, p, lo, lo_open, hi, hi_open)) acc(c) = *v;
          },
          [=](const Config& c) { return render_double(acc(c)); }, nullptr};
}

template <class Acc>
Field f_int(std::string path, Acc acc, int64_t lo, int64_t hi, std::string help) {
  return {std::move(path), std::move(help),
          [=](const YAML::Node& n, Config& c, Reader& r, const std::string& p) {
            using T = std::remove_reference_t<decltype(acc(c))>;
            if (auto v = r.integer(n, p, lo, hi)) acc(c) = static_cast<T>(*v);
          },
          [=](const Config& c) { return std::to_string(acc(c)); }, nullptr};
}

template <class Acc>
Field f_bool(std::string path, Acc acc, std::string help) {
  return {std::move(path), std::move(help),
          [=](const YAML::Node& n, Config& c, Reader& r, const std::string& p) {
            if (auto v = r.boolean(n, p)) acc(c) = *v;
          },
          [=](const Config& c) { return std::string(acc(c) ? "true" : "false"); }, nullptr};
}

template <class Acc>
Field f_string(std::string path, Acc acc, std::string help) {
  return {std::move(path), std::move(help),
          [=](const YAML::Node& n, Config& c, Reader& r, const std::string& p) {
            if (auto v = r.string(n, p)) acc(c) = *v;
          },
          [=](const Config& c) { return render_string(acc(c)); }, nullptr};
}

template <class E, class Acc>
Field f_enum(std::string path, Acc acc, std::string help) {
  return {std::move(path), std::move(help),
          [=](const YAML::Node& n, Config& c, Reader& r, const std::string& p) {
            if (auto v = r.choice(n, p, enum_name_list<E>())) acc(c) = *parse_enum<E>(*v);
          },
          [=](const Config& c) { return std::string(to_string(acc(c))); }, nullptr};
}

// A [lo, hi] or [a, b] pair of numbers, each in the given range; `ordered` requires lo <= hi.
template <class Acc>
Field f_pair(std::string path, Acc acc, double lo, bool lo_open, double hi, bool hi_open, bool ordered,
             std::string help) {
  return {std::move(path), std::move(help),
          [=](const YAML::Node& n, Config& c, Reader& r, const std::string& p) {
            if (!n.IsSequence() || n.size() != 2) {
              r.error(n, p, "expected " + r.list_word() + " of two numbers, got " + r.show(n));
              return;
            }
            auto a = r.number(n[0], p + "[0]", lo, lo_open, hi, hi_open);
            auto b = r.number(n[1], p + "[1]", lo, lo_open, hi, hi_open);
            if (!a || !b) return;
            if (ordered && *a > *b) {
              r.error(n, p, "[" + n[0].Scalar() + ", " + n[1].Scalar() +
                                "] is not a range: the first value must not exceed the second");
              return;
            }
            acc(c) = {*a, *b};
          },
          [=](const Config& c) {
            std::string s = "[";  // built by appending: GCC 12 warns falsely on "[" + std::string
            s += render_double(acc(c)[0]);
            s += ", ";
            s += render_double(acc(c)[1]);
            return s + "]";
          },
          nullptr};
}

}  // namespace mtl::train::schema
