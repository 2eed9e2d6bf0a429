#include "nn/structured.hpp"

#include "tensor/ops.hpp"
#include "tensor/parallel.hpp"

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
  return (dd.reshape({n1, m, n2, m}) * aa.reshape({n1, 1, n2, 1})).permute({0, 2, 1, 3}).contiguous();
}

Tensor FactoredLayer::cotangent_kernel_diagonal(const Tensor& a, const Tensor& d, std::int64_t) const {
  const std::int64_t n = d.size(0), m = d.size(1);
  const Tensor f = d.reshape_copy({n, m, -1});
  return matmul(f, f.transpose(1, 2)) * input_kernel_diagonal(a).reshape({n, 1, 1});
}

void mirror_lower_blocks(const Tensor& k) {
  THETA_CHECK(k.dim() == 4 && k.size(0) == k.size(1) && k.size(2) == k.size(3) && k.is_contiguous(), ShapeError,
              "mirror_lower_blocks: expected a contiguous [n, n, m, m] kernel, got ", shape_str(k.shape()));
  const std::int64_t n = k.size(0), m = k.size(2);
  visit_float_dtype(k.dtype(), [&](auto v) {
    using T = decltype(v);
    T* kp = k.data<T>();
    parallel_for(n, 1, [&](std::int64_t i0, std::int64_t i_end) {
      for (std::int64_t i = i0; i < i_end; ++i) {
        T* own = kp + (i * n + i) * m * m;
        for (std::int64_t a = 0; a < m; ++a)
          for (std::int64_t b = 0; b < a; ++b) own[a * m + b] = own[b * m + a] = (own[a * m + b] + own[b * m + a]) / 2;
        for (std::int64_t j = 0; j < i; ++j) {
          const T* lower = kp + (i * n + j) * m * m;
          T* upper = kp + (j * n + i) * m * m;
          for (std::int64_t a = 0; a < m; ++a)
            for (std::int64_t b = 0; b < m; ++b) upper[b * m + a] = lower[a * m + b];
        }
      }
    });
  });
}

}  // namespace theta::nn
