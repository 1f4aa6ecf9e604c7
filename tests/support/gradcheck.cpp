#include "tests/support/gradcheck.h"

#include <cmath>
#include <sstream>

#include "core/autograd.h"
#include "core/error.h"
#include "core/generator.h"

namespace mtl::test {

namespace {
double project(const Tensor& out, const std::vector<double>& w) {
  std::vector<double> v = out.to_f64_vector();
  double s = 0;
  for (size_t i = 0; i < v.size(); ++i) s += v[i] * w[i];
  return s;
}
}  // namespace

GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                          const std::vector<Tensor>& inputs, GradcheckOptions opts) {
  GradcheckResult res;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad() && (t.dtype() != DType::f64 || !t.device().is_cpu())) {
      res.ok = false;
      res.message = "gradcheck needs float64 CPU inputs, got " + t.describe();
      return res;
    }
  for (const Tensor& t : inputs)
    if (t.defined()) Tensor(t).zero_grad();

  Tensor out = f(inputs);
  Generator gen(opts.seed);
  std::vector<double> w(static_cast<size_t>(out.numel()));
  gen.fill_uniform(w.data(), w.size(), -1.0, 1.0);
  if (!out.requires_grad()) {
    res.ok = false;
    res.message = "output does not require grad: the op recorded no backward";
    return res;
  }
  out.backward(from_vector(w, out.shape(), out.options()));

  std::ostringstream os;
  os.precision(10);
  int failures = 0;
  for (size_t k = 0; k < inputs.size(); ++k) {
    Tensor x = inputs[k];
    if (!x.defined() || !x.requires_grad()) continue;
    Tensor g = x.grad();
    std::vector<double> analytic = g.defined() ? g.to_f64_vector() : std::vector<double>(x.numel(), 0.0);
    MTL_CHECK(x.is_contiguous(), "gradcheck inputs must be contiguous");
    double* data = x.data<double>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      const double orig = data[i];
      double fp, fm;
      {
        autograd::NoGradGuard ng;
        data[i] = orig + opts.eps;
        fp = project(f(inputs), w);
        data[i] = orig - opts.eps;
        fm = project(f(inputs), w);
      }
      data[i] = orig;
      const double numeric = (fp - fm) / (2 * opts.eps);
      const double a = analytic[static_cast<size_t>(i)];
      if (!(std::abs(a - numeric) <= opts.atol + opts.rtol * std::abs(numeric))) {
        if (failures < 5)
          os << "input " << k << " (" << x.describe() << ") element " << i << ": analytic " << a << ", numeric "
             << numeric << "\n";
        ++failures;
      }
    }
  }
  if (failures) {
    res.ok = false;
    os << failures << " gradient elements out of tolerance";
    res.message = os.str();
  }
  return res;
}

}  // namespace mtl::test
