#pragma once
// Shapes, strides and the shape algebra shared by every op.

#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <string>
#include <vector>

#include "tensor/dims.hpp"

namespace theta {

/// Sizes per axis, outermost first. Strides use the same type, counted in elements.
using Shape = Dims;
using Strides = Dims;

namespace detail {
/// What keeps a shape from being a tensor's shape (Note [Shape limits]).
enum class ShapeProblem { none, negative_size, too_many_elements, strides_overflow };
/// Checks `shape` against Note [Shape limits]; when it passes, `numel` is its element count.
ShapeProblem check_shape(const Shape& shape, std::int64_t& numel) noexcept;
/// The problem in words, for error messages: "a size is negative", ...
const char* describe(ShapeProblem problem) noexcept;
}  // namespace detail

/// Product of the sizes (1 for a 0-d shape). Throws ShapeError naming `op` and the shape when a
/// size is negative or the shape is too large for int64 (Note [Shape limits]).
std::int64_t shape_numel(const Shape& shape, const char* op = "shape_numel");

/// Row-major strides of a contiguous tensor of `shape`.
Strides contiguous_strides(const Shape& shape);

/// "[2, 3]".
std::string shape_str(const Shape& shape);

/// NumPy broadcasting of two shapes; `op` names the caller in the error message.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

namespace detail {
[[noreturn]] void throw_axis_out_of_range(std::int64_t axis, std::int64_t ndim, const char* op);
}  // namespace detail

/// Maps a possibly negative axis into [0, ndim); `op` names the caller in the error message.
inline std::int64_t normalize_axis(std::int64_t axis, std::int64_t ndim, const char* op) {
  const std::int64_t a = axis < 0 ? axis + ndim : axis;
  if (a < 0 || a >= ndim) [[unlikely]]
    detail::throw_axis_out_of_range(axis, ndim, op);
  return a;
}

/// Normalises, sorts and deduplicates a set of axes; empty input means every axis.
std::vector<std::int64_t> normalize_axes(const std::vector<std::int64_t>& axes, std::int64_t ndim,
                                         const char* op);

}  // namespace theta
