#include "nn/structured.hpp"

#include "tensor/ops.hpp"
#include "tensor/parallel.hpp"

namespace theta::nn {

Tensor StructuredLayer::cotangent_kernel(const Tensor& a1, const Tensor& d1, const Tensor& a2, const Tensor& d2,
                                         bool same, bool trace, std::int64_t max_bytes) const {
  const std::int64_t n1 = d1.size(0), n2 = (same ? d1 : d2).size(0), m = d1.size(1);
  const Tensor k = trace ? zeros({n1, n2}, d1.dtype()) : zeros({n1, n2, m, m}, d1.dtype());
  add_cotangent_kernel(k, a1, d1, a2, d2, same, trace, max_bytes);
  if (same && !trace) mirror_lower_blocks(k);
  return k;
}

void FactoredLayer::add_cotangent_kernel(const Tensor& k, const Tensor& a1, const Tensor& d1, const Tensor& a2,
                                         const Tensor& d2, bool same, bool trace, std::int64_t) const {
  const std::int64_t n1 = d1.size(0), n2 = (same ? d1 : d2).size(0), m = d1.size(1);
  const Tensor aa = input_kernel(a1, same ? a1 : a2);  // [n1, n2]
  if (trace) {
    const Tensor f1 = d1.reshape_copy({n1, -1});
    k.add_((same ? gram(f1) : matmul(f1, d2.reshape_copy({n2, -1}).t())) * aa);
    return;
  }
  const Tensor f1 = d1.reshape_copy({n1 * m, -1});
  add_pair_blocks(k, same ? gram(f1, false) : matmul(f1, d2.reshape_copy({n2 * m, -1}).t()), aa, same);
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

void add_pair_blocks(const Tensor& k, const Tensor& dd, const Tensor& scale, bool lower) {
  THETA_CHECK(k.dim() == 4 && k.size(2) == k.size(3) && k.strides()[3] == 1 && k.strides()[2] == k.size(3) &&
                  dd.dim() == 2 && dd.is_contiguous() && dd.size(0) == k.size(0) * k.size(2) &&
                  dd.size(1) == k.size(1) * k.size(3) && (!lower || k.size(0) == k.size(1)) &&
                  (!scale.defined() || (scale.is_contiguous() && scale.shape() == Shape{k.size(0), k.size(1)})),
              ShapeError, "add_pair_blocks: kernel ", shape_str(k.shape()), ", pair products ", shape_str(dd.shape()),
              " and scale ", scale.defined() ? shape_str(scale.shape()) : std::string("(none)"), " do not fit");
  THETA_CHECK(dd.dtype() == k.dtype() && (!scale.defined() || scale.dtype() == k.dtype()), DTypeError,
              "add_pair_blocks: dtypes differ");
  const std::int64_t n1 = k.size(0), n2 = k.size(1), m = k.size(2), cols = n2 * m;
  const std::int64_t row_stride = k.strides()[0], col_stride = k.strides()[1];
  visit_float_dtype(k.dtype(), [&](auto v) {
    using T = decltype(v);
    T* kp = k.data<T>();
    const T* dp = dd.data<T>();
    const T* sp = scale.defined() ? scale.data<T>() : nullptr;
    parallel_for(n1, 1, [&](std::int64_t i0, std::int64_t i_end) {
      for (std::int64_t i = i0; i < i_end; ++i)
        for (std::int64_t a = 0; a < m; ++a) {
          const std::int64_t r = i * m + a;
          const T* drow = dp + r * cols;
          const std::int64_t j_end = lower ? i + 1 : n2;
          for (std::int64_t j = 0; j < j_end; ++j) {
            const T s = sp ? sp[i * n2 + j] : T(1);
            T* out = kp + i * row_stride + j * col_stride + a * m;
            if (!lower || j < i) {
              const T* src = drow + j * m;
              for (std::int64_t b = 0; b < m; ++b) out[b] += src[b] * s;
            } else {  // the diagonal block: its upper triangle from the transpose
              for (std::int64_t b = 0; b < m; ++b) {
                const std::int64_t c = j * m + b;
                out[b] += (c <= r ? drow[c] : dp[c * cols + r]) * s;
              }
            }
          }
        }
    });
  });
}

}  // namespace theta::nn
