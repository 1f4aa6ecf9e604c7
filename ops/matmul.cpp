#include "ops/matmul.h"

#include "kernels/matmul.h"
#include "ops/autograd_util.h"
#include "ops/dispatch.h"
#include "ops/shape.h"

namespace mtl::ops {

namespace {
// A 2-D operand as (pointer, transposed?, leading dimension) without copying when it is either
// row-major or a transpose of row-major.
struct GemmOperand {
  Tensor t;
  bool trans;
  int64_t ld;
};
GemmOperand as_gemm_operand(const Tensor& x) {
  if (x.stride(1) == 1 && x.stride(0) >= std::max<int64_t>(x.size(1), 1)) return {x, false, x.stride(0)};
  if (x.stride(0) == 1 && x.stride(1) >= std::max<int64_t>(x.size(0), 1)) return {x, true, x.stride(1)};
  Tensor c = contiguous(x);
  return {c, false, std::max<int64_t>(c.size(1), 1)};
}
}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  detail::check_defined(a, "matmul", "a");
  detail::check_defined(b, "matmul", "b");
  detail::check_same(a, b, "matmul");
  detail::check_float_or_bf16(a, "matmul");
  MTL_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0), "matmul: shapes ", a.describe(), " and ",
            b.describe(), " do not multiply (need [m, k] x [k, n])");
  const int64_t m = a.size(0), k = a.size(1), n = b.size(1);
  Tensor out = k == 0 ? zeros({m, n}, a.options()) : empty({m, n}, a.options());
  if (k > 0) {
    Tensor x = a.detach(), y = b.detach();
    detail::run_kernel(
        "matmul", {&x, &y}, {&out},
        [&](auto t) {
          using T = decltype(t);
          const GemmOperand oa = as_gemm_operand(x), ob = as_gemm_operand(y);
          kernels::cuda::gemm(cuda::cublas(), oa.trans, ob.trans, m, n, k, 1.f, oa.t.data<T>(), oa.ld, ob.t.data<T>(),
                              ob.ld, 0.f, out.data<T>(), std::max<int64_t>(n, 1));
        },
        [&](auto t) {
          using T = decltype(t);
          const GemmOperand oa = as_gemm_operand(x), ob = as_gemm_operand(y);
          kernels::cpu::gemm<T>(oa.trans, ob.trans, m, n, k, T(1), oa.t.data<T>(), oa.ld, ob.t.data<T>(), ob.ld, T(0),
                                out.data<T>(), std::max<int64_t>(n, 1));
        });
  }
  Tensor sa = a.detach(), sb = b.detach();
  record("MatmulBackward", {a, b}, {out}, [sa, sb](const std::vector<Tensor>& g) {
    // dA = dC B^T, dB = A^T dC
    return std::vector<Tensor>{matmul(g[0], sb.transpose(0, 1)), matmul(sa.transpose(0, 1), g[0])};
  });
  return out;
}

}  // namespace mtl::ops
