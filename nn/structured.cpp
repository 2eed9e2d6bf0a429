#include "nn/structured.hpp"

#include <algorithm>
#include <stdexcept>
#include <utility>
#include <vector>

#include "nn/layer_support.hpp"
#include "tensor/blas_runtime.hpp"
#include "tensor/ops.hpp"
#include "tensor/parallel.hpp"

namespace theta::nn {

Tensor StructuredLayer::cotangent_kernel(const Tensor& a1, const Cotangents& d1, const Tensor& a2,
                                         const Cotangents& d2, bool same, bool trace, std::int64_t max_bytes) const {
  const std::int64_t n1 = d1.rows(), n2 = (same ? d1 : d2).rows(), m = d1.count();
  const Tensor k = trace ? zeros({n1, n2}, d1.dtype()) : zeros({n1, n2, m, m}, d1.dtype());
  add_cotangent_kernel(k, a1, d1, a2, d2, same, trace, max_bytes);
  if (same && !trace) mirror_lower_blocks(k);
  return k;
}

bool StructuredLayer::prefers_features(const Tensor& /*a*/, const Cotangents& /*d*/) const { return false; }

Tensor StructuredLayer::cotangent_features(const Tensor& /*a*/, const Cotangents& /*d*/) const {
  throw std::logic_error("StructuredLayer::cotangent_features: this rule forms its NTK block without features");
}

namespace {

// Note [Shared cotangents]
// The outputs' own cotangents are the same for every sample (d f_a / d f_b is 1 for a = b, else
// 0), so the last layer's block is K[i, j] = K_in(a_i, a_j) G with G = D1 D2^T [m, m], the one
// product of the shared cotangents, and no feature Gram of n m rows is needed. Sharing is tested
// exactly: every sample's cotangents must equal the first sample's (one pass, stopping at the
// first difference; NaN never compares equal). The entries where G is zero (all off the
// diagonal for the outputs' own cotangents) are skipped, which leaves k as adding K_in * 0 would
// when K_in is finite; when it is not, the general route runs.

// d:[n, m, ...] as the [m, P] cotangents every sample shares; undefined if they differ.
Tensor shared_cotangents(const Tensor& d) {
  const std::int64_t n = d.size(0), m = d.size(1);
  if (n == 0 || m == 0) return {};
  const Tensor c = d.contiguous();
  const std::int64_t per_sample = c.numel() / n;
  bool shared = true;
  visit_float_dtype(c.dtype(), [&](auto v) {
    using T = decltype(v);
    const T* p = c.data<T>();
    for (std::int64_t i = 1; i < n && shared; ++i) shared = std::equal(p, p + per_sample, p + i * per_sample);
  });
  return shared ? c.select(0, 0).reshape({m, per_sample / m}) : Tensor();
}

// K[i, j] += aa[i, j] G for shared cotangents (Note [Shared cotangents]); false, with k untouched,
// when the cotangents are not shared or aa is not finite.
bool add_shared_block(const Tensor& k, const Tensor& aa_in, const Tensor& d1, const Tensor& d2, bool same, bool trace) {
  if (!k.is_contiguous()) return false;
  const Tensor s1 = shared_cotangents(d1);
  if (!s1.defined()) return false;
  const Tensor s2 = same ? s1 : shared_cotangents(d2);
  if (!s2.defined() || !all_finite(aa_in)) return false;
  const Tensor g = matmul(s1, s2.t()).contiguous(), aa = aa_in.contiguous();  // [m, m], [n1, n2]
  const std::int64_t n1 = aa.size(0), n2 = aa.size(1), m = g.size(0);
  visit_float_dtype(k.dtype(), [&](auto v) {
    using T = decltype(v);
    const T* gp = g.data<T>();
    if (trace) {
      T diagonal = 0;
      for (std::int64_t a = 0; a < m; ++a) diagonal += gp[a * m + a];
      k.add_(aa * static_cast<double>(diagonal));
      return;
    }
    std::vector<std::pair<std::int64_t, T>> nonzero;  // (a m + b, G[a, b])
    for (std::int64_t e = 0; e < m * m; ++e)
      if (gp[e] != T(0)) nonzero.emplace_back(e, gp[e]);
    const T* ap = aa.data<T>();
    T* kp = k.data<T>();
    const auto add_row = [&](std::int64_t i) {
      T* row = kp + i * n2 * m * m;
      for (std::int64_t j = 0, end = same ? i + 1 : n2; j < end; ++j)
        for (const auto& [e, value] : nonzero) row[j * m * m + e] += ap[i * n2 + j] * value;
    };
    // With `same`, row i has i + 1 blocks: row q is paired with row n1 - 1 - q over the threads.
    parallel_for(same ? (n1 + 1) / 2 : n1, 1, [&](std::int64_t q0, std::int64_t q_end) {
      for (std::int64_t q = q0; q < q_end; ++q) {
        add_row(q);
        if (same && n1 - 1 - q != q) add_row(n1 - 1 - q);
      }
    });
  });
  return true;
}

}  // namespace

void FactoredLayer::add_cotangent_kernel(const Tensor& k, const Tensor& a1, const Cotangents& c1, const Tensor& a2,
                                         const Cotangents& c2, bool same, bool trace, std::int64_t) const {
  const Tensor d1 = c1.dense(), d2 = same ? d1 : c2.dense();
  const std::int64_t n1 = d1.size(0), n2 = (same ? d1 : d2).size(0), m = d1.size(1);
  const Tensor aa = input_kernel(a1, same ? a1 : a2);  // [n1, n2]
  if (add_shared_block(k, aa, d1, d2, same, trace)) return;
  if (trace) {
    const Tensor f1 = d1.reshape_copy({n1, -1});
    k.add_((same ? gram(f1) : matmul(f1, d2.reshape_copy({n2, -1}).t())) * aa);
    return;
  }
  const Tensor f1 = d1.reshape_copy({n1 * m, -1});
  add_feature_gram(k, f1, same ? f1 : d2.reshape_copy({n2 * m, -1}), aa, same);
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
    const auto mirror_row = [&](std::int64_t i) {
      T* own = kp + (i * n + i) * m * m;
      for (std::int64_t a = 0; a < m; ++a)
        for (std::int64_t b = 0; b < a; ++b) own[a * m + b] = own[b * m + a] = (own[a * m + b] + own[b * m + a]) / 2;
      for (std::int64_t j = 0; j < i; ++j) {
        const T* lower = kp + (i * n + j) * m * m;
        T* upper = kp + (j * n + i) * m * m;
        for (std::int64_t a = 0; a < m; ++a)
          for (std::int64_t b = 0; b < m; ++b) upper[b * m + a] = lower[a * m + b];
      }
    };
    // Row i mirrors i blocks: row q is paired with row n - 1 - q so that threads get equal work.
    parallel_for((n + 1) / 2, 1, [&](std::int64_t q0, std::int64_t q_end) {
      for (std::int64_t q = q0; q < q_end; ++q) {
        mirror_row(q);
        if (n - 1 - q != q) mirror_row(n - 1 - q);
      }
    });
  });
}

namespace {

// Bytes of one panel of feature products: a few MiB, so it is added into the kernel from cache.
constexpr std::int64_t kPanelBytes = std::int64_t{4} << 20;

// k[i, j, a, b] += panel[i m + a, j m + b] * scale[i, j] for the rows of one panel; row i updates
// columns j < j_end(i) = (last_column < 0 ? all : i + last_column + 1).
template <class T>
void add_panel(T* kp, std::int64_t k_row, std::int64_t k_col, const T* panel, std::int64_t rows, std::int64_t cols,
               std::int64_t m, const T* scale, std::int64_t scale_row, std::int64_t last_column) {
  parallel_for(rows, 1, [&](std::int64_t i0, std::int64_t i_end) {
    for (std::int64_t i = i0; i < i_end; ++i) {
      const std::int64_t j_end = last_column < 0 ? cols : std::min(cols, i + last_column + 1);
      for (std::int64_t j = 0; j < j_end; ++j) {  // block by block: each [m, m] block written in one sweep
        const T s = scale ? scale[i * scale_row + j] : T(1);
        T* out = kp + i * k_row + j * k_col;
        for (std::int64_t a = 0; a < m; ++a) {
          const T* src = panel + (i * m + a) * cols * m + j * m;
          for (std::int64_t b = 0; b < m; ++b) out[a * m + b] += src[b] * s;
        }
      }
    }
  });
}

}  // namespace

void add_feature_gram(const Tensor& k, const Tensor& f1, const Tensor& f2, const Tensor& scale, bool same) {
  THETA_CHECK(k.dim() == 4 && k.size(2) == k.size(3) && k.strides()[3] == 1 && k.strides()[2] == k.size(3) &&
                  f1.dim() == 2 && f2.dim() == 2 && f1.size(1) == f2.size(1) &&
                  f1.size(0) == k.size(0) * k.size(2) && f2.size(0) == k.size(1) * k.size(3) &&
                  (!same || k.size(0) == k.size(1)) &&
                  (!scale.defined() || (scale.shape() == Shape{k.size(0), k.size(1)} && scale.strides()[1] == 1)),
              ShapeError, "add_feature_gram: kernel ", shape_str(k.shape()), ", features ", shape_str(f1.shape()),
              " and ", shape_str(f2.shape()), ", scale ", scale.defined() ? shape_str(scale.shape()) : std::string("(none)"),
              " do not fit");
  THETA_CHECK(f1.dtype() == k.dtype() && f2.dtype() == k.dtype() && (!scale.defined() || scale.dtype() == k.dtype()),
              DTypeError, "add_feature_gram: dtypes differ");
  const std::int64_t n1 = k.size(0), n2 = k.size(1), m = k.size(2);
  if (n1 == 0 || n2 == 0 || m == 0) return;
  const std::int64_t rows_per_panel = detail::balanced_block_rows(n1, kPanelBytes / (m * m * n2 * 8), same);
  const std::int64_t panels = (n1 + rows_per_panel - 1) / rows_per_panel;
  const auto add_one_panel = [&](std::int64_t q) {
    const std::int64_t r0 = q * rows_per_panel, r1 = std::min(n1, r0 + rows_per_panel), cols = same ? r1 : n2;
    const Tensor panel = matmul(f1.slice(0, r0 * m, r1 * m), f2.slice(0, 0, cols * m).t());  // [(r1 - r0) m, cols m]
    visit_float_dtype(k.dtype(), [&](auto v) {
      using T = decltype(v);
      const T* sp = scale.defined() ? scale.data<T>() + r0 * scale.strides()[0] : nullptr;
      add_panel<T>(k.data<T>() + r0 * k.strides()[0], k.strides()[0], k.strides()[1], panel.data<T>(), r1 - r0, cols, m,
                   sp, scale.defined() ? scale.strides()[0] : 0, same ? r0 : -1);
    });
  };
  // Panels run on theta's threads, each gemm on one; with `same`, panel q (r1 columns) is paired
  // with panel panels - 1 - q to balance the work.
  theta::detail::parallel_for_blas(same ? (panels + 1) / 2 : panels, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t q = begin; q < end; ++q) {
      add_one_panel(q);
      if (same && panels - 1 - q != q) add_one_panel(panels - 1 - q);
    }
  });
}

namespace detail {

std::int64_t balanced_block_rows(std::int64_t n, std::int64_t max_rows, bool paired) {
  if (n <= 0) return 1;
  const auto ceil_div = [](std::int64_t a, std::int64_t b) { return (a + b - 1) / b; };
  const std::int64_t unit = (paired ? 2 : 1) * std::max(1, get_num_threads());
  const std::int64_t blocks = ceil_div(n, std::clamp<std::int64_t>(max_rows, 1, n));
  return ceil_div(n, std::min(n, ceil_div(blocks, unit) * unit));
}

}  // namespace detail

}  // namespace theta::nn
