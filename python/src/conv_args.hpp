#pragma once
// Shared by the convolution bindings of theta.autograd and theta.nn: padding modes by name and
// the int-or-pair geometry arguments (stride=2 or stride=(2, 1)), as PyTorch takes them.

#include <array>
#include <cstdint>
#include <string>

#include "bindings.hpp"
#include "tensor/conv.hpp"

namespace theta::python {

/// "zeros" or "circular"; ValueError otherwise.
inline Padding parse_padding_mode(const std::string& name) {
  if (name == "zeros") return Padding::zeros;
  if (name == "circular") return Padding::circular;
  throw py::value_error("padding_mode: expected \"zeros\" or \"circular\", got \"" + name + "\"");
}

inline const char* padding_mode_name(Padding mode) { return mode == Padding::circular ? "circular" : "zeros"; }

/// An int (used for both spatial axes) or a pair (height, width) of ints; TypeError naming `what`
/// otherwise. Range checks are the library's.
inline std::array<std::int64_t, 2> pair_arg(const py::handle& value, const char* what) {
  if (py::isinstance<py::int_>(value) && !py::isinstance<py::bool_>(value)) {
    const auto v = value.cast<std::int64_t>();
    return {v, v};
  }
  if (py::isinstance<py::tuple>(value) || py::isinstance<py::list>(value)) {
    const auto seq = py::reinterpret_borrow<py::sequence>(value);
    if (seq.size() == 2 && py::isinstance<py::int_>(seq[0]) && py::isinstance<py::int_>(seq[1]))
      return {seq[0].cast<std::int64_t>(), seq[1].cast<std::int64_t>()};
  }
  throw py::type_error(std::string(what) + ": expected an int or a pair of ints, got " + std::string(py::str(value)));
}

/// The geometry of a 2-D convolution from its Python arguments.
inline Conv2dOptions conv2d_options(const py::handle& stride, const py::handle& padding, const py::handle& dilation,
                                    const std::string& padding_mode) {
  return {.stride = pair_arg(stride, "stride"),
          .padding = pair_arg(padding, "padding"),
          .dilation = pair_arg(dilation, "dilation"),
          .padding_mode = parse_padding_mode(padding_mode)};
}

}  // namespace theta::python
