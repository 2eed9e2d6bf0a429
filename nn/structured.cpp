#include "nn/structured.hpp"

#include "tensor/ops.hpp"

namespace theta::nn {

Tensor FactoredLayer::cotangent_kernel(const Tensor& a1, const Tensor& d1, const Tensor& a2, const Tensor& d2,
                                       bool same, bool trace, std::int64_t) const {
  const std::int64_t n1 = d1.size(0), n2 = d2.size(0), m = d1.size(1);
  const Tensor aa = input_kernel(a1, same ? a1 : a2);  // [n1, n2]
  if (trace) {
    const Tensor f1 = d1.reshape_copy({n1, -1});
    return (same ? gram(f1) : matmul(f1, d2.reshape_copy({n2, -1}).t())) * aa;
  }
  const Tensor f1 = d1.reshape_copy({n1 * m, -1});
  const Tensor dd = same ? gram(f1) : matmul(f1, d2.reshape_copy({n2 * m, -1}).t());
  return dd.reshape({n1, m, n2, m}) * aa.reshape({n1, 1, n2, 1});
}

Tensor FactoredLayer::cotangent_kernel_diagonal(const Tensor& a, const Tensor& d, std::int64_t) const {
  const std::int64_t n = d.size(0), m = d.size(1);
  const Tensor f = d.reshape_copy({n, m, -1});
  return matmul(f, f.transpose(1, 2)) * input_kernel_diagonal(a).reshape({n, 1, 1});
}

}  // namespace theta::nn
