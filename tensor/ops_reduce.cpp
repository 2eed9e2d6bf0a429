// Reductions. sum/max/min go through the SIMD reduce family (Note [Deterministic reductions]);
// mean, logsumexp, var and norm are composed from them.

#include <algorithm>
#include <cmath>
#include <limits>

#include "tensor/kernels/kernels.hpp"
#include "tensor/ops.hpp"
#include "tensor/parallel.hpp"

namespace theta {

using detail::BinaryOp;
using detail::ReduceOp;

namespace {

// Note [Deterministic reductions]
// A reduction is laid out as a matrix and reduced either along contiguous rows (each output is
// one row) or across rows (reduced axes lead; each output column folds the rows in order). Long
// rows are cut into blocks of a fixed size, reduced blockwise and the partials reduced in order.
// Block boundaries never depend on the thread count, so results are bitwise identical for any
// number of threads, and threads only decide who computes which block.
constexpr std::int64_t kReduceBlock = std::int64_t{1} << 15;

const char* op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return "sum";
    case ReduceOp::max: return "max";
    case ReduceOp::min: return "min";
  }
  return "reduce";
}

BinaryOp combine_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return BinaryOp::add;
    case ReduceOp::max: return BinaryOp::maximum;
    case ReduceOp::min: return BinaryOp::minimum;
  }
  return BinaryOp::add;
}

template <class T> T reduce_row(const detail::TypedKernels<T>& k, ReduceOp op, const T* x, std::int64_t n) {
  if (n <= kReduceBlock) return k.reduce(op, x, n);
  const std::int64_t blocks = (n + kReduceBlock - 1) / kReduceBlock;
  std::vector<T> partial(static_cast<std::size_t>(blocks));
  parallel_for(blocks, 1, [&](std::int64_t b0, std::int64_t b1) {
    for (std::int64_t b = b0; b < b1; ++b) {
      const std::int64_t start = b * kReduceBlock;
      partial[static_cast<std::size_t>(b)] = k.reduce(op, x + start, std::min(kReduceBlock, n - start));
    }
  });
  return k.reduce(op, partial.data(), blocks);
}

template <class T>
void reduce_float(ReduceOp op, const Tensor& x, const std::vector<std::int64_t>& axes,
                  const Tensor& out) {
  const auto& k = detail::typed_kernels<T>(detail::kernels());
  T* yp = out.data<T>();
  const std::int64_t kept = out.numel();
  const std::int64_t reduced = x.numel() / std::max<std::int64_t>(kept, 1);
  // Reduced axes leading a contiguous tensor: fold whole rows into the output (no transpose).
  bool leading = x.is_contiguous() && kept > 1;
  for (std::size_t i = 0; i < axes.size() && leading; ++i) leading = axes[i] == static_cast<std::int64_t>(i);
  if (leading) {
    const T* xp = x.data<T>();
    const BinaryOp combine = combine_op(op);
    parallel_for(kept, 4096, [&](std::int64_t c0, std::int64_t c1) {
      std::copy(xp + c0, xp + c1, yp + c0);
      for (std::int64_t r = 1; r < reduced; ++r)
        k.binary(combine, yp + c0, 1, xp + r * kept + c0, 1, yp + c0, c1 - c0);
    });
    return;
  }
  // General case: move reduced axes last, make rows contiguous, reduce each row.
  std::vector<std::int64_t> perm;
  for (std::int64_t a = 0; a < x.dim(); ++a)
    if (!std::binary_search(axes.begin(), axes.end(), a)) perm.push_back(a);
  perm.insert(perm.end(), axes.begin(), axes.end());
  const Tensor rows = x.permute(perm).reshape_copy({kept, reduced}).contiguous();
  const T* xp = rows.data<T>();
  if (kept == 1) {
    yp[0] = reduce_row(k, op, xp, reduced);
    return;
  }
  parallel_for(kept, std::max<std::int64_t>(1, kElementwiseGrain / std::max<std::int64_t>(reduced, 1)),
               [&](std::int64_t r0, std::int64_t r1) {
                 for (std::int64_t r = r0; r < r1; ++r) yp[r] = reduce_row(k, op, xp + r * reduced, reduced);
               });
}

void reduce_int(ReduceOp op, const Tensor& x, const std::vector<std::int64_t>& axes, const Tensor& out) {
  std::vector<std::int64_t> perm;
  for (std::int64_t a = 0; a < x.dim(); ++a)
    if (!std::binary_search(axes.begin(), axes.end(), a)) perm.push_back(a);
  perm.insert(perm.end(), axes.begin(), axes.end());
  const std::int64_t kept = out.numel();
  const std::int64_t reduced = x.numel() / std::max<std::int64_t>(kept, 1);
  const Tensor rows = x.permute(perm).reshape_copy({kept, reduced}).contiguous();
  const auto* xp = rows.data<std::int64_t>();
  auto* yp = out.data<std::int64_t>();
  for (std::int64_t r = 0; r < kept; ++r) {
    std::int64_t acc = op == ReduceOp::sum ? 0 : xp[r * reduced];
    for (std::int64_t i = op == ReduceOp::sum ? 0 : 1; i < reduced; ++i) {
      const std::int64_t v = xp[r * reduced + i];
      acc = op == ReduceOp::sum ? acc + v : op == ReduceOp::max ? std::max(acc, v) : std::min(acc, v);
    }
    yp[r] = acc;
  }
}

Shape reduced_shape(const Shape& shape, const std::vector<std::int64_t>& axes, bool keepdim) {
  Shape out;
  for (std::size_t a = 0; a < shape.size(); ++a) {
    const bool r = std::binary_search(axes.begin(), axes.end(), static_cast<std::int64_t>(a));
    if (!r) out.push_back(shape[a]);
    else if (keepdim) out.push_back(1);
  }
  return out;
}

std::int64_t reduced_count(const Shape& shape, const std::vector<std::int64_t>& axes) {
  std::int64_t n = 1;
  for (auto a : axes) n *= shape[static_cast<std::size_t>(a)];
  return n;
}

Tensor reduce(ReduceOp op, const Tensor& x, const std::vector<std::int64_t>& axes_in, bool keepdim) {
  const char* name = op_name(op);
  THETA_CHECK(x.defined(), std::invalid_argument, name, ": tensor is undefined");
  const auto axes = normalize_axes(axes_in, x.dim(), name);
  Tensor out = Tensor::empty(reduced_shape(x.shape(), axes, keepdim), x.dtype());
  if (reduced_count(x.shape(), axes) == 0) {
    THETA_CHECK(op == ReduceOp::sum, ShapeError, name, ": empty reduction over axes ",
                shape_str(axes), " of shape ", shape_str(x.shape()), " has no identity");
    return zeros(out.shape(), x.dtype());
  }
  if (out.numel() == 0) return out;
  if (x.dtype() == DType::i64) {
    reduce_int(op, x, axes, out);
  } else {
    visit_float_dtype(x.dtype(), [&](auto v) { reduce_float<decltype(v)>(op, x, axes, out); });
  }
  return out;
}

void check_floating(const Tensor& x, const char* op) {
  THETA_CHECK(x.defined(), std::invalid_argument, op, ": tensor is undefined");
  THETA_CHECK(is_floating(x.dtype()), DTypeError, op, ": expected a floating tensor, got ",
              dtype_name(x.dtype()));
}

Tensor squeeze_axes(const Tensor& t, const std::vector<std::int64_t>& axes) {
  Tensor out = t;
  for (std::size_t i = axes.size(); i-- > 0;) out = out.squeeze(axes[i]);
  return out;
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<std::int64_t>& axes, bool keepdim) {
  return reduce(ReduceOp::sum, x, axes, keepdim);
}

Tensor max(const Tensor& x, const std::vector<std::int64_t>& axes, bool keepdim) {
  return reduce(ReduceOp::max, x, axes, keepdim);
}

Tensor min(const Tensor& x, const std::vector<std::int64_t>& axes, bool keepdim) {
  return reduce(ReduceOp::min, x, axes, keepdim);
}

Tensor mean(const Tensor& x, const std::vector<std::int64_t>& axes_in, bool keepdim) {
  check_floating(x, "mean");
  const auto axes = normalize_axes(axes_in, x.dim(), "mean");
  const std::int64_t n = reduced_count(x.shape(), axes);
  return sum(x, axes, keepdim) / static_cast<double>(n);
}

Tensor argmax(const Tensor& x, std::int64_t axis_in, bool keepdim) {
  THETA_CHECK(x.defined(), std::invalid_argument, "argmax: tensor is undefined");
  const std::int64_t axis = normalize_axis(axis_in, x.dim(), "argmax");
  const std::int64_t n = x.shape()[static_cast<std::size_t>(axis)];
  THETA_CHECK(n > 0, ShapeError, "argmax: empty axis ", axis_in, " of shape ", shape_str(x.shape()));
  std::vector<std::int64_t> perm;
  for (std::int64_t a = 0; a < x.dim(); ++a)
    if (a != axis) perm.push_back(a);
  perm.push_back(axis);
  // Rows follow x's order without `axis`, which is the output's order. Compared in x's own
  // dtype: int64 values past 2^53 would collide if converted to double.
  const Tensor rows = x.permute(perm).contiguous();
  const std::int64_t kept = rows.numel() / n;
  Tensor out = Tensor::empty(reduced_shape(x.shape(), {axis}, keepdim), DType::i64);
  auto* yp = out.data<std::int64_t>();
  visit_dtype(x.dtype(), [&](auto v) {
    using T = decltype(v);
    const T* xp = rows.data<T>();
    for (std::int64_t r = 0; r < kept; ++r) {
      const T* row = xp + r * n;
      std::int64_t best = 0;
      for (std::int64_t i = 1; i < n && !std::isnan(row[best]); ++i)
        if (row[i] > row[best] || std::isnan(row[i])) best = i;
      yp[r] = best;
    }
  });
  return out;
}

Tensor logsumexp(const Tensor& x, const std::vector<std::int64_t>& axes_in, bool keepdim) {
  check_floating(x, "logsumexp");
  const auto axes = normalize_axes(axes_in, x.dim(), "logsumexp");
  const Tensor m = max(x, axes, true);
  // A non-finite max (all -inf, or some +inf) is replaced by 0 so x - m stays NaN-free.
  const Tensor m_safe = where(eq(abs(m), full({}, INFINITY, x.dtype())), zeros({}, x.dtype()), m);
  Tensor out = log(sum(exp(x - m_safe), axes, true)) + m_safe;
  return keepdim ? out : squeeze_axes(out, axes);
}

Tensor var(const Tensor& x, const std::vector<std::int64_t>& axes_in, std::int64_t correction,
           bool keepdim) {
  check_floating(x, "var");
  const auto axes = normalize_axes(axes_in, x.dim(), "var");
  const std::int64_t n = reduced_count(x.shape(), axes);
  THETA_CHECK(n - correction > 0, ShapeError, "var: ", n, " elements with correction ", correction,
              " leave no degrees of freedom");
  const Tensor d = x - mean(x, axes, true);
  return sum(square(d), axes, keepdim) / static_cast<double>(n - correction);
}

Tensor norm(const Tensor& x, double p, const std::vector<std::int64_t>& axes, bool keepdim) {
  check_floating(x, "norm");
  THETA_CHECK(p > 0, std::invalid_argument, "norm: p must be positive, got ", p);
  if (std::isinf(p)) return max(abs(x), axes, keepdim);
  if (p == 1.0) return sum(abs(x), axes, keepdim);
  if (p == 2.0) return sqrt(sum(square(x), axes, keepdim));
  return pow(sum(pow(abs(x), p), axes, keepdim), 1.0 / p);
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  THETA_CHECK(x.defined(), std::invalid_argument, "sum_to: tensor is undefined");
  const Shape b = broadcast_shapes(x.shape(), shape, "sum_to");
  THETA_CHECK(b == x.shape(), ShapeError, "sum_to: ", shape_str(x.shape()),
              " is not a broadcast of ", shape_str(shape));
  const std::size_t lead = x.shape().size() - shape.size();
  std::vector<std::int64_t> axes;
  for (std::size_t i = 0; i < x.shape().size(); ++i)
    if (i < lead || (shape[i - lead] == 1 && x.shape()[i] != 1)) axes.push_back(static_cast<std::int64_t>(i));
  if (axes.empty()) return x.clone();  // shape == x.shape(); a fresh tensor, like every op
  return sum(x, axes, true).reshape_copy(shape);
}

}  // namespace theta
