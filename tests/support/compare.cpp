#include "tests/support/compare.h"

#include <cmath>
#include <sstream>

namespace mtl::test {

Comparison compare(const Tensor& out, const Tensor& ref, double atol, double rtol, const Tensor& nan_expected) {
  Comparison c;
  if (out.shape() != ref.shape() || (nan_expected.defined() && nan_expected.shape() != out.shape())) {
    c.ok = false;
    c.message = "shape mismatch: " + out.describe() + " vs reference " + ref.describe() +
                (nan_expected.defined() ? " and NaN mask " + nan_expected.describe() : "");
    return c;
  }
  std::vector<double> o = out.to_f64_vector(), r = ref.to_f64_vector();
  std::vector<double> nan_at = nan_expected.defined() ? nan_expected.to_f64_vector() : std::vector<double>();
  int64_t bad = 0;
  for (size_t i = 0; i < o.size(); ++i) {
    double excess;
    if (!nan_at.empty() && nan_at[i] != 0) {
      excess = std::isnan(o[i]) ? 0.0 : INFINITY;
    } else if (std::isnan(o[i]) || std::isnan(r[i])) {
      excess = INFINITY;
    } else if (std::isinf(o[i]) || std::isinf(r[i])) {
      excess = o[i] == r[i] ? 0.0 : INFINITY;
    } else {
      excess = std::abs(o[i] - r[i]) - (atol + rtol * std::abs(r[i]));
    }
    if (excess > 0) {
      ++bad;
      if (c.worst_index < 0 || excess > c.worst_excess) {
        c.worst_index = static_cast<int64_t>(i);
        c.worst_excess = excess;
        c.worst_out = o[i];
        c.worst_ref = r[i];
      }
    }
  }
  if (bad) {
    c.ok = false;
    std::ostringstream os;
    os.precision(9);
    os << bad << " of " << o.size() << " elements out of tolerance (atol " << atol << ", rtol " << rtol
       << "); worst at flat index " << c.worst_index << ": got " << c.worst_out << ", expected " << c.worst_ref
       << (!nan_at.empty() && nan_at[static_cast<size_t>(c.worst_index)] != 0 ? " (NaN expected there)" : "") << " ("
       << out.describe() << ")";
    c.message = os.str();
  }
  return c;
}

double relative_error(const Tensor& out, const Tensor& ref) {
  if (out.shape() != ref.shape()) return INFINITY;
  std::vector<double> o = out.to_f64_vector(), r = ref.to_f64_vector();
  double num = 0, den = 0;
  for (size_t i = 0; i < o.size(); ++i) {
    if (std::isnan(o[i])) return INFINITY;
    num += (o[i] - r[i]) * (o[i] - r[i]);
    den += r[i] * r[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.to_f64_vector()) m = std::max(m, std::abs(v));
  return m;
}

}  // namespace mtl::test
