// matmul, outer and dot on OpenBLAS gemm, or for some shapes theta's own kernel
// (tensor/simd_gemm.hpp). Transposed views are passed as transposed, never copied.

#include <cblas.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include "tensor/blas_runtime.hpp"
#include "tensor/ops.hpp"
#include "tensor/overlap.hpp"
#include "tensor/simd_gemm.hpp"
#include "tensor/strided_loop.hpp"

namespace theta {

namespace {

// How a [rows, cols] matrix with strides (rs, cs) is handed to gemm without copying.
struct GemmLayout {
  bool ok = false;
  CBLAS_TRANSPOSE trans = CblasNoTrans;
  std::int64_t ld = 1;
};

GemmLayout gemm_layout(std::int64_t rows, std::int64_t cols, std::int64_t rs, std::int64_t cs) {
  // Strides of size-1 axes are arbitrary; normalise them so the tests below apply.
  if (cols == 1) cs = 1;
  if (rows == 1) rs = cols;
  if (cs == 1 && rs >= std::max<std::int64_t>(cols, 1)) return {true, CblasNoTrans, rs};
  if (rs == 1 && cs >= std::max<std::int64_t>(rows, 1)) return {true, CblasTrans, cs};
  return {};
}

// Multiply-adds below which one gemm of a batch runs on one thread (Note [Batched gemm threads]).
constexpr std::int64_t kSmallGemmWork = std::int64_t{1} << 18;

// c = a b (beta 0) or c += a b (beta 1), c row-major with leading dimension ldc.
template <class T>
void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, std::int64_t m, std::int64_t n, std::int64_t k,
          const T* a, std::int64_t lda, const T* b, std::int64_t ldb, T* c, std::int64_t ldc, T beta = T(0)) {
  const auto i = [](std::int64_t v) { return static_cast<blasint>(v); };
  if (n == 1) {  // matrix-vector: gemv streams the matrix once (gemm packs it first)
    const blasint incb = tb == CblasNoTrans ? i(ldb) : 1;
    if constexpr (std::is_same_v<T, float>)
      cblas_sgemv(CblasRowMajor, ta, ta == CblasNoTrans ? i(m) : i(k), ta == CblasNoTrans ? i(k) : i(m), 1.0f, a,
                  i(lda), b, incb, beta, c, i(ldc));
    else
      cblas_dgemv(CblasRowMajor, ta, ta == CblasNoTrans ? i(m) : i(k), ta == CblasNoTrans ? i(k) : i(m), 1.0, a,
                  i(lda), b, incb, beta, c, i(ldc));
    return;
  }
  if (detail::simd_gemm(ta == CblasTrans, tb == CblasTrans, m, n, k, a, lda, b, ldb, c, ldc, beta)) return;
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemm(CblasRowMajor, ta, tb, i(m), i(n), i(k), 1.0f, a, i(lda), b, i(ldb), beta, c, i(ldc));
  else
    cblas_dgemm(CblasRowMajor, ta, tb, i(m), i(n), i(k), 1.0, a, i(lda), b, i(ldb), beta, c, i(ldc));
}

CBLAS_TRANSPOSE flipped(CBLAS_TRANSPOSE t) { return t == CblasNoTrans ? CblasTrans : CblasNoTrans; }

template <class T> void batched_gemm(Tensor a, Tensor b, const Tensor& out) {
  const std::int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  auto layout_of = [](const Tensor& t) {
    return gemm_layout(t.size(-2), t.size(-1), t.strides()[t.strides().size() - 2], t.strides().back());
  };
  GemmLayout la = layout_of(a), lb = layout_of(b);
  if (!la.ok) {
    a = a.clone();  // expanded batch axes become real copies; fine for the rare odd layout
    la = layout_of(a);
  }
  if (!lb.ok) {
    b = b.clone();
    lb = layout_of(b);
  }
  const Shape batch(out.shape().begin(), out.shape().end() - 2);
  const Strides sa(a.strides().begin(), a.strides().end() - 2);
  const Strides sb(b.strides().begin(), b.strides().end() - 2);
  const Strides so(out.strides().begin(), out.strides().end() - 2);
  const T* ap = a.data<T>();
  const T* bp = b.data<T>();
  T* op = out.data<T>();
  const auto loop = detail::coalesce<3>(batch, {so, sa, sb});
  const auto run = [&](std::int64_t begin, std::int64_t end) {
    detail::for_each_run(loop, begin, end, [&](auto off, auto step, std::int64_t len) {
      for (std::int64_t i = 0; i < len; ++i)
        gemm<T>(la.trans, lb.trans, m, n, k, ap + off[1] + i * step[1], la.ld, bp + off[2] + i * step[2],
                lb.ld, op + off[0] + i * step[0], n);
    });
  };
  // Note [Batched gemm threads]: OpenBLAS runs a gemm below about 2^18 multiply-adds on one
  // thread, so a batch of small products would use one core; theta's threads split the batch
  // instead, each product on single-threaded BLAS. Larger products keep OpenBLAS's own threads.
  const std::int64_t count = shape_numel(batch), work = m * n * k;
  if (work < kSmallGemmWork)
    detail::parallel_for_blas(count, std::max<std::int64_t>(1, kSmallGemmWork / std::max<std::int64_t>(work, 1)), run);
  else
    run(0, count);
}

}  // namespace

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  THETA_CHECK(a_in.defined() && b_in.defined(), std::invalid_argument, "matmul: tensor is undefined");
  THETA_CHECK(a_in.dtype() == b_in.dtype(), DTypeError, "matmul: dtype mismatch: ",
              dtype_name(a_in.dtype()), " @ ", dtype_name(b_in.dtype()));
  THETA_CHECK(is_floating(a_in.dtype()), DTypeError, "matmul: expected floating tensors, got ",
              dtype_name(a_in.dtype()));
  THETA_CHECK(a_in.dim() >= 1 && b_in.dim() >= 1, ShapeError, "matmul: 0-d operand: ",
              shape_str(a_in.shape()), " @ ", shape_str(b_in.shape()));
  // 1-D operands are promoted to matrices; others are used as they are (no copies of the headers).
  Tensor a_promoted, b_promoted;
  const Tensor& a = a_in.dim() == 1 ? (a_promoted = a_in.unsqueeze(0)) : a_in;
  const Tensor& b = b_in.dim() == 1 ? (b_promoted = b_in.unsqueeze(1)) : b_in;
  THETA_CHECK(a.size(-1) == b.size(-2), ShapeError, "matmul: inner dimensions differ: ",
              shape_str(a_in.shape()), " @ ", shape_str(b_in.shape()));
  const std::int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  THETA_CHECK(m < INT_MAX && n < INT_MAX && k < INT_MAX, ShapeError, "matmul: dimensions exceed ",
              "the BLAS integer range: ", shape_str(a_in.shape()), " @ ", shape_str(b_in.shape()));
  Tensor out;  // the one result object on every path, so it is built in place
  if (a.dim() == 2 && b.dim() == 2 && k > 0 && m > 0 && n > 0) {
    // Plain matrices: straight to gemm when both layouts allow it (the common case, no batch
    // bookkeeping).
    const GemmLayout la = gemm_layout(m, k, a.strides()[0], a.strides()[1]);
    const GemmLayout lb = gemm_layout(k, n, b.strides()[0], b.strides()[1]);
    if (la.ok && lb.ok) {
      warn_if_blas_fallback();
      out = Tensor::empty({m, n}, a.dtype());
      visit_float_dtype(a.dtype(), [&](auto v) {
        using T = decltype(v);
        gemm<T>(la.trans, lb.trans, m, n, k, a.data<T>(), la.ld, b.data<T>(), lb.ld, out.data<T>(), n);
      });
    }
  }
  if (!out.defined() && a.dim() > 2 && b.dim() == 2 && k > 0 && m > 0 && n > 0 && a.is_contiguous()) {
    // A stack of matrices times one matrix: the stack's rows are one [batch m, k] matrix, so one
    // gemm packs b once (a gemm per matrix would pack b again for every one of them).
    const GemmLayout lb = gemm_layout(k, n, b.strides()[0], b.strides()[1]);
    if (lb.ok) {
      const std::int64_t rows = a.numel() / k;
      THETA_CHECK(rows < INT_MAX, ShapeError, "matmul: dimensions exceed the BLAS integer range: ",
                  shape_str(a_in.shape()), " @ ", shape_str(b_in.shape()));
      Shape out_shape(a.shape().begin(), a.shape().end() - 1);
      out_shape.push_back(n);
      warn_if_blas_fallback();
      out = Tensor::empty(out_shape, a.dtype());
      visit_float_dtype(a.dtype(), [&](auto v) {
        using T = decltype(v);
        gemm<T>(CblasNoTrans, lb.trans, rows, n, k, a.data<T>(), k, b.data<T>(), lb.ld, out.data<T>(), n);
      });
    }
  }
  if (!out.defined()) {
    const Shape batch = broadcast_shapes(Shape(a.shape().begin(), a.shape().end() - 2),
                                         Shape(b.shape().begin(), b.shape().end() - 2), "matmul");
    Shape out_shape = batch;
    out_shape.push_back(m);
    out_shape.push_back(n);
    std::int64_t out_numel = 0;
    const detail::ShapeProblem problem = detail::check_shape(out_shape, out_numel);
    THETA_CHECK(problem == detail::ShapeProblem::none, ShapeError, "matmul: ", shape_str(a_in.shape()), " @ ",
                shape_str(b_in.shape()), " gives ", shape_str(out_shape), ": ", detail::describe(problem));
    Shape a_shape = batch, b_shape = batch;
    a_shape.insert(a_shape.end(), {m, k});
    b_shape.insert(b_shape.end(), {k, n});
    out = k == 0 ? zeros(out_shape, a.dtype()) : Tensor::empty(out_shape, a.dtype());
    if (k > 0 && out.numel() > 0) {
      warn_if_blas_fallback();
      visit_float_dtype(a.dtype(), [&](auto v) {
        batched_gemm<decltype(v)>(a.expand(a_shape), b.expand(b_shape), out);
      });
    }
  }
  if (a_in.dim() == 1) out = out.squeeze(-2);
  if (b_in.dim() == 1) out = out.squeeze(-1);
  return out;
}

// Note [Accumulating gemm]
// Autograd adds gradient contributions: a slot that already holds one receives the next, often
// a product (the gradient of a weight used twice, of a hidden layer read by two nodes of a
// recorded backward). Forming the product and then adding costs a zero-fill of the new buffer
// by gemm (beta 0), the buffer itself and a pass that adds it; gemm with beta 1 writes into the
// existing gradient once. A destination stored transposed (strides (1, m)) is handled as
// out^T += b^T a^T, the same gemm with the operands swapped. assign_matmul_ is the same gemm with
// beta 0: a buffer filled block by block with products (a layer's per-sample features) needs no
// zero-fill first, and the gemm does not read it.
namespace {

// out += a b (accumulate) or out = a b, for Tensor::add_matmul_ and Tensor::assign_matmul_.
void matmul_into(const Tensor& out, const Tensor& a, const Tensor& b, bool accumulate) {
  const char* op = accumulate ? "add_matmul_" : "assign_matmul_";
  const char* sign = accumulate ? " += " : " = ";
  THETA_CHECK(a.defined() && b.defined(), std::invalid_argument, op, ": operand is undefined");
  THETA_CHECK(out.dim() == 2 && a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0) && out.size(0) == a.size(0) &&
                  out.size(1) == b.size(1),
              ShapeError, op, ": ", shape_str(out.shape()), sign, shape_str(a.shape()), " @ ", shape_str(b.shape()),
              " does not fit ([m, n]", sign, "[m, k] @ [k, n])");
  THETA_CHECK(a.dtype() == out.dtype() && b.dtype() == out.dtype(), DTypeError, op, ": dtype mismatch: ",
              dtype_name(out.dtype()), sign, dtype_name(a.dtype()), " @ ", dtype_name(b.dtype()));
  const std::int64_t m = out.size(0), k = a.size(1), n = out.size(1);
  THETA_CHECK(m < INT_MAX && n < INT_MAX && k < INT_MAX, ShapeError, op, ": dimensions exceed ",
              "the BLAS integer range: ", shape_str(a.shape()), " @ ", shape_str(b.shape()));
  detail::check_no_internal_overlap(out, op);
  if (m == 0 || n == 0) return;
  if (k == 0) {
    if (!accumulate) out.fill_(0.0);
    return;
  }
  const GemmLayout la = gemm_layout(m, k, a.strides()[0], a.strides()[1]);
  const GemmLayout lb = gemm_layout(k, n, b.strides()[0], b.strides()[1]);
  const GemmLayout lc = gemm_layout(m, n, out.strides()[0], out.strides()[1]);
  const bool shares = a.storage() == out.storage() || b.storage() == out.storage();
  if (!is_floating(out.dtype()) || !la.ok || !lb.ok || !lc.ok || shares) {
    if (accumulate)
      out.add_(matmul(a, b));
    else
      out.copy_(matmul(a, b));
    return;
  }
  warn_if_blas_fallback();
  visit_float_dtype(out.dtype(), [&](auto v) {
    using T = decltype(v);
    const T beta = accumulate ? T(1) : T(0);
    if (lc.trans == CblasNoTrans)
      gemm<T>(la.trans, lb.trans, m, n, k, a.data<T>(), la.ld, b.data<T>(), lb.ld, out.data<T>(), lc.ld, beta);
    else  // out^T [n, m] row-major: out^T (+)= b^T a^T
      gemm<T>(flipped(lb.trans), flipped(la.trans), n, m, k, b.data<T>(), lb.ld, a.data<T>(), la.ld, out.data<T>(),
              lc.ld, beta);
  });
  out.storage()->bump_version();
}

}  // namespace

void Tensor::add_matmul_(const Tensor& a, const Tensor& b) const {
  check_defined("add_matmul_");
  matmul_into(*this, a, b, true);
}

void Tensor::assign_matmul_(const Tensor& a, const Tensor& b) const {
  check_defined("assign_matmul_");
  matmul_into(*this, a, b, false);
}

void Tensor::add_gram_(const Tensor& a_in) const {
  check_defined("add_gram_");
  THETA_CHECK(a_in.defined(), std::invalid_argument, "add_gram_: operand is undefined");
  THETA_CHECK(dim() == 2 && a_in.dim() == 2 && size(0) == size(1) && size(0) == a_in.size(0), ShapeError,
              "add_gram_: ", shape_str(shape()), " += a a^T with a ", shape_str(a_in.shape()),
              " does not fit ([m, m] += [m, k] [m, k]^T)");
  THETA_CHECK(a_in.dtype() == dtype() && is_floating(dtype()), DTypeError, "add_gram_: dtype mismatch: ",
              dtype_name(dtype()), " += ", dtype_name(a_in.dtype()), " (both must be one floating dtype)");
  const std::int64_t m = size(0), k = a_in.size(1);
  if (m == 0 || k == 0) return;
  const GemmLayout lc = gemm_layout(m, m, strides()[0], strides()[1]);
  THETA_CHECK(lc.ok && lc.trans == CblasNoTrans, ShapeError, "add_gram_: the destination needs unit column stride ",
              "and row stride >= ", m, ", got strides ", shape_str(strides()));
  THETA_CHECK(a_in.storage() != storage(), std::invalid_argument, "add_gram_: the operand shares the destination's memory");
  THETA_CHECK(m < INT_MAX && k < INT_MAX && strides()[0] < INT_MAX, ShapeError, "add_gram_: ", shape_str(a_in.shape()),
              " exceeds the BLAS integer range");
  // A row-major or transposed view of a is read in place (a slice of a wider layout); others are copied.
  GemmLayout la = gemm_layout(m, k, a_in.strides()[0], a_in.strides()[1]);
  const Tensor a = la.ok && la.ld < INT_MAX ? a_in : a_in.contiguous();
  if (!la.ok || la.ld >= INT_MAX) la = {true, CblasNoTrans, k};
  warn_if_blas_fallback();
  const auto mi = static_cast<blasint>(m), ki = static_cast<blasint>(k), lda = static_cast<blasint>(la.ld),
             ldc = static_cast<blasint>(lc.ld);
  visit_float_dtype(dtype(), [&](auto v) {
    using T = decltype(v);
    if constexpr (std::is_same_v<T, float>)
      cblas_ssyrk(CblasRowMajor, CblasLower, la.trans, mi, ki, 1.0f, a.data<float>(), lda, 1.0f, data<float>(), ldc);
    else
      cblas_dsyrk(CblasRowMajor, CblasLower, la.trans, mi, ki, 1.0, a.data<double>(), lda, 1.0, data<double>(), ldc);
  });
  storage()->bump_version();
}

Tensor outer(const Tensor& a, const Tensor& b) {
  THETA_CHECK(a.defined() && b.defined() && a.dim() == 1 && b.dim() == 1, ShapeError,
              "outer: expected two 1-D tensors, got ", shape_str(a.shape()), " and ", shape_str(b.shape()));
  return matmul(a.unsqueeze(1), b.unsqueeze(0));
}

Tensor dot(const Tensor& a, const Tensor& b) {
  THETA_CHECK(a.defined() && b.defined() && a.dim() == 1 && b.dim() == 1 && a.size(0) == b.size(0),
              ShapeError, "dot: expected two 1-D tensors of equal length, got ", shape_str(a.shape()),
              " and ", shape_str(b.shape()));
  return matmul(a, b);
}

Tensor gram(const Tensor& a_in, bool fill_upper) {
  THETA_CHECK(a_in.defined() && a_in.dim() == 2, ShapeError, "gram: expected a 2-D tensor, got ",
              a_in.defined() ? shape_str(a_in.shape()) : std::string("undefined"));
  THETA_CHECK(is_floating(a_in.dtype()), DTypeError, "gram: expected a floating tensor, got ",
              dtype_name(a_in.dtype()));
  const std::int64_t m = a_in.size(0);
  Tensor out = zeros({m, m}, a_in.dtype());
  out.add_gram_(a_in);
  if (!fill_upper || m == 0 || a_in.size(1) == 0) return out;
  visit_float_dtype(a_in.dtype(), [&](auto v) {
    using T = decltype(v);
    T* c = out.data<T>();
    // Mirror the lower triangle into the upper one in cache-sized tiles.
    constexpr std::int64_t kTile = 64;
    for (std::int64_t i0 = 0; i0 < m; i0 += kTile)
      for (std::int64_t j0 = i0; j0 < m; j0 += kTile)
        for (std::int64_t i = i0; i < std::min(i0 + kTile, m); ++i)
          for (std::int64_t j = std::max(j0, i + 1); j < std::min(j0 + kTile, m); ++j) c[i * m + j] = c[j * m + i];
  });
  return out;
}

}  // namespace theta
