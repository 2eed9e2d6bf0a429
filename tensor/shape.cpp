#include "tensor/shape.hpp"

#include <algorithm>
#include <limits>
#include <sstream>

#include "tensor/error.hpp"

namespace theta {

std::int64_t shape_numel(const Shape& shape) {
  std::int64_t n = 1;
  for (std::int64_t s : shape) {
    THETA_CHECK(s >= 0, ShapeError, "negative size in shape ", shape_str(shape));
    if (__builtin_mul_overflow(n, s, &n))
      THETA_THROW(ShapeError, "shape ", shape_str(shape), " has more elements than int64 can count");
  }
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
