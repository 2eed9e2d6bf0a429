#include "tensor/shape.hpp"

#include <algorithm>
#include <limits>
#include <sstream>

#include "tensor/error.hpp"

namespace theta {

// Note [Shape limits]
// Every shape a tensor gets must have sizes >= 0 whose product fits int64, with the zero sizes
// counted as ones: the last condition keeps the contiguous strides of an empty shape such as
// [0, 2^40, 2^40] representable too (and makes the test independent of the order of the sizes).
// Ops that build a shape from user numbers or from other tensors' sizes (factories, expand,
// reshape, broadcasting, concat, matmul, index_select) check it, naming the op in the error;
// views that only drop, reorder, shrink or add size-1 axes cannot break it. Expanded views make
// the element count of a tensor independent of its memory, so "the inputs exist" proves nothing.
namespace detail {
ShapeProblem check_shape(const Shape& shape, std::int64_t& numel) noexcept {
  std::int64_t span = 1;
  bool zero = false, overflow = false;
  for (std::int64_t s : shape) {
    if (s < 0) return ShapeProblem::negative_size;
    zero |= s == 0;
    overflow |= __builtin_mul_overflow(span, std::max<std::int64_t>(s, 1), &span);
  }
  if (overflow) return zero ? ShapeProblem::strides_overflow : ShapeProblem::too_many_elements;
  numel = zero ? 0 : span;
  return ShapeProblem::none;
}

const char* describe(ShapeProblem problem) noexcept {
  switch (problem) {
    case ShapeProblem::none: return "no problem";
    case ShapeProblem::negative_size: return "a size is negative";
    case ShapeProblem::too_many_elements: return "more elements than int64 can count";
    case ShapeProblem::strides_overflow: return "too large for int64 strides";
  }
  return "unknown problem";
}
}  // namespace detail

std::int64_t shape_numel(const Shape& shape, const char* op) {
  std::int64_t n = 0;
  const detail::ShapeProblem problem = detail::check_shape(shape, n);
  THETA_CHECK(problem == detail::ShapeProblem::none, ShapeError, op, ": shape ", shape_str(shape), ": ",
              detail::describe(problem));
  return n;
}

Strides contiguous_strides(const Shape& shape) {
  Strides strides(shape.size());
  std::int64_t stride = 1;
  for (std::size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= std::max<std::int64_t>(shape[i], 1);
  }
  return strides;
}

std::string shape_str(const Shape& shape) {
  std::ostringstream out;
  out << '[';
  for (std::size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << ']';
  return out.str();
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const std::size_t ndim = std::max(a.size(), b.size());
  Shape out(ndim);
  for (std::size_t i = 0; i < ndim; ++i) {
    const std::int64_t sa = i < ndim - a.size() ? 1 : a[i - (ndim - a.size())];
    const std::int64_t sb = i < ndim - b.size() ? 1 : b[i - (ndim - b.size())];
    if (sa != sb && sa != 1 && sb != 1)
      THETA_THROW(ShapeError, op, ": cannot broadcast ", shape_str(a), " with ", shape_str(b));
    out[i] = sa == 1 ? sb : sa;
  }
  std::int64_t numel = 0;
  const detail::ShapeProblem problem = detail::check_shape(out, numel);
  THETA_CHECK(problem == detail::ShapeProblem::none, ShapeError, op, ": broadcasting ", shape_str(a), " with ",
              shape_str(b), " gives ", shape_str(out), ": ", detail::describe(problem));
  return out;
}

namespace detail {
void throw_axis_out_of_range(std::int64_t axis, std::int64_t ndim, const char* op) {
  THETA_THROW(IndexError, op, ": axis ", axis, " out of range for a tensor with ", ndim, " dimensions");
}
}  // namespace detail

std::vector<std::int64_t> normalize_axes(const std::vector<std::int64_t>& axes, std::int64_t ndim,
                                         const char* op) {
  std::vector<std::int64_t> out;
  if (axes.empty()) {
    for (std::int64_t i = 0; i < ndim; ++i) out.push_back(i);
    return out;
  }
  for (std::int64_t a : axes) out.push_back(normalize_axis(a, ndim, op));
  std::sort(out.begin(), out.end());
  THETA_CHECK(std::adjacent_find(out.begin(), out.end()) == out.end(), IndexError, op,
              ": repeated axis in reduction");
  return out;
}

}  // namespace theta
