// Indexing and joining: index_select, gather, scatter_add, concat, stack.

#include <cstring>

#include "tensor/ops.hpp"
#include "tensor/strided_loop.hpp"

namespace theta {

namespace {

void check_index_tensor(const Tensor& index, const char* op) {
  THETA_CHECK(index.defined(), std::invalid_argument, op, ": index is undefined");
  THETA_CHECK(index.dtype() == DType::i64, DTypeError, op, ": index must be int64, got ",
              dtype_name(index.dtype()));
}

std::int64_t checked_index(std::int64_t i, std::int64_t size, const char* op, const Shape& shape,
                           std::int64_t axis) {
  const std::int64_t j = i < 0 ? i + size : i;
  THETA_CHECK(j >= 0 && j < size, IndexError, op, ": index ", i, " out of range for axis ", axis,
              " of shape ", shape_str(shape));
  return j;
}

}  // namespace

Tensor index_select(const Tensor& x, std::int64_t axis_in, const Tensor& index) {
  THETA_CHECK(x.defined(), std::invalid_argument, "index_select: tensor is undefined");
  check_index_tensor(index, "index_select");
  THETA_CHECK(index.dim() == 1, ShapeError, "index_select: index must be 1-D, got ",
              shape_str(index.shape()));
  const std::int64_t axis = normalize_axis(axis_in, x.dim(), "index_select");
  Shape out_shape = x.shape();
  out_shape[static_cast<std::size_t>(axis)] = index.numel();
  std::int64_t out_numel = 0;
  const detail::ShapeProblem problem = detail::check_shape(out_shape, out_numel);
  THETA_CHECK(problem == detail::ShapeProblem::none, ShapeError, "index_select: ", index.numel(), " entries of ",
              shape_str(x.shape()), " along axis ", axis_in, " give ", shape_str(out_shape), ": ",
              detail::describe(problem));
  Tensor out = Tensor::empty(out_shape, x.dtype());
  const Tensor idx = index.contiguous();
  const auto* ip = idx.data<std::int64_t>();
  for (std::int64_t j = 0; j < index.numel(); ++j) {
    const std::int64_t i = checked_index(ip[j], x.size(axis), "index_select", x.shape(), axis_in);
    out.select(axis, j).copy_(x.select(axis, i));
  }
  return out;
}

namespace {
// Visits every element position of `index` (shape s) with: the element offsets in x-like layout
// (strides xs), index, and the other operand (strides os). Calls fn(x_offset_without_axis,
// index_value, other_offset).
template <class Fn>
void for_each_index(const Tensor& index, const Strides& xs_no_axis, const Strides& os, Fn&& fn) {
  const Tensor idx = index;
  const auto* ip = static_cast<const std::int64_t*>(idx.raw_data());
  const auto layout = detail::coalesce<3>(idx.shape(), {idx.strides(), xs_no_axis, os});
  detail::for_each_run(layout, 0, idx.numel(), [&](auto off, auto step, std::int64_t len) {
    for (std::int64_t i = 0; i < len; ++i)
      fn(off[1] + i * step[1], ip[off[0] + i * step[0]], off[2] + i * step[2]);
  });
}

void check_gather_shapes(const Tensor& x, std::int64_t axis, const Tensor& index, const char* op) {
  THETA_CHECK(index.dim() == x.dim(), ShapeError, op, ": index ", shape_str(index.shape()),
              " must have the rank of ", shape_str(x.shape()));
  for (std::int64_t d = 0; d < x.dim(); ++d)
    THETA_CHECK(d == axis || index.size(d) <= x.size(d), ShapeError, op, ": index ",
                shape_str(index.shape()), " exceeds ", shape_str(x.shape()), " on axis ", d);
}
}  // namespace

Tensor gather(const Tensor& x, std::int64_t axis_in, const Tensor& index) {
  THETA_CHECK(x.defined(), std::invalid_argument, "gather: tensor is undefined");
  check_index_tensor(index, "gather");
  const std::int64_t axis = normalize_axis(axis_in, x.dim(), "gather");
  check_gather_shapes(x, axis, index, "gather");
  Tensor out = Tensor::empty(index.shape(), x.dtype());
  Strides xs = x.strides();
  const std::int64_t axis_stride = xs[static_cast<std::size_t>(axis)];
  xs[static_cast<std::size_t>(axis)] = 0;
  const std::int64_t n = x.size(axis);
  visit_dtype(x.dtype(), [&](auto v) {
    using T = decltype(v);
    const T* xp = static_cast<const T*>(x.raw_data());
    T* op = static_cast<T*>(out.raw_data());
    for_each_index(index, xs, out.strides(), [&](std::int64_t xo, std::int64_t i, std::int64_t oo) {
      op[oo] = xp[xo + checked_index(i, n, "gather", x.shape(), axis_in) * axis_stride];
    });
  });
  return out;
}

Tensor scatter_add(const Tensor& x, std::int64_t axis_in, const Tensor& index, const Tensor& src) {
  THETA_CHECK(x.defined() && src.defined(), std::invalid_argument, "scatter_add: tensor is undefined");
  check_index_tensor(index, "scatter_add");
  THETA_CHECK(x.dtype() == src.dtype(), DTypeError, "scatter_add: dtype mismatch: ",
              dtype_name(x.dtype()), " vs ", dtype_name(src.dtype()));
  const std::int64_t axis = normalize_axis(axis_in, x.dim(), "scatter_add");
  check_gather_shapes(x, axis, index, "scatter_add");
  THETA_CHECK(src.shape() == index.shape(), ShapeError, "scatter_add: src ", shape_str(src.shape()),
              " must match index ", shape_str(index.shape()));
  Tensor out = x.clone();
  Strides xs = out.strides();
  const std::int64_t axis_stride = xs[static_cast<std::size_t>(axis)];
  xs[static_cast<std::size_t>(axis)] = 0;
  const std::int64_t n = x.size(axis);
  visit_dtype(x.dtype(), [&](auto v) {
    using T = decltype(v);
    T* op = static_cast<T*>(out.raw_data());
    const T* sp = static_cast<const T*>(src.raw_data());
    for_each_index(index, xs, src.strides(), [&](std::int64_t xo, std::int64_t i, std::int64_t so) {
      op[xo + checked_index(i, n, "scatter_add", x.shape(), axis_in) * axis_stride] += sp[so];
    });
  });
  return out;
}

namespace {
// concat, and stack after inserting the new axis; `op` names the caller in errors.
Tensor join(const std::vector<Tensor>& xs, std::int64_t axis_in, const char* op) {
  const Tensor& first = xs.front();
  const std::int64_t axis = normalize_axis(axis_in, first.dim(), op);
  Shape out_shape = first.shape();
  std::int64_t total = 0;
  for (const auto& x : xs) {
    THETA_CHECK(x.dtype() == first.dtype(), DTypeError, op, ": dtype mismatch: ",
                dtype_name(first.dtype()), " vs ", dtype_name(x.dtype()));
    bool fits = x.dim() == first.dim();
    for (std::int64_t d = 0; d < first.dim() && fits; ++d) fits = d == axis || x.size(d) == first.size(d);
    THETA_CHECK(fits, ShapeError, op, ": shapes ", shape_str(first.shape()), " and ",
                shape_str(x.shape()), " differ outside axis ", axis_in);
    THETA_CHECK(!__builtin_add_overflow(total, x.size(axis), &total), ShapeError, op, ": the sizes of ",
                xs.size(), " tensors like ", shape_str(first.shape()), " along axis ", axis_in, " add up past int64");
  }
  out_shape[static_cast<std::size_t>(axis)] = total;
  std::int64_t out_numel = 0;
  const detail::ShapeProblem problem = detail::check_shape(out_shape, out_numel);
  THETA_CHECK(problem == detail::ShapeProblem::none, ShapeError, op, ": joining ", xs.size(), " tensors like ",
              shape_str(first.shape()), " along axis ", axis_in, " gives ", shape_str(out_shape), ": ",
              detail::describe(problem));
  Tensor out = Tensor::empty(out_shape, first.dtype());
  std::int64_t start = 0;
  for (const auto& x : xs) {
    const std::int64_t len = x.size(axis);
    if (len > 0) out.slice(axis, start, start + len).copy_(x);
    start += len;
  }
  return out;
}
}  // namespace

Tensor concat(const std::vector<Tensor>& xs, std::int64_t axis) {
  THETA_CHECK(!xs.empty(), std::invalid_argument, "concat: no tensors given");
  for (const auto& x : xs) THETA_CHECK(x.defined(), std::invalid_argument, "concat: tensor is undefined");
  return join(xs, axis, "concat");
}

Tensor stack(const std::vector<Tensor>& xs, std::int64_t axis) {
  THETA_CHECK(!xs.empty(), std::invalid_argument, "stack: no tensors given");
  std::vector<Tensor> expanded;
  expanded.reserve(xs.size());
  for (const auto& x : xs) {
    THETA_CHECK(x.defined(), std::invalid_argument, "stack: tensor is undefined");
    THETA_CHECK(x.shape() == xs.front().shape(), ShapeError, "stack: shapes differ: ",
                shape_str(xs.front().shape()), " vs ", shape_str(x.shape()));
    expanded.push_back(x.unsqueeze(axis));
  }
  return join(expanded, axis, "stack");
}

}  // namespace theta
