#pragma once
// Internal to theta_tensor: the dict of a .npy header ({'descr': ..., 'fortran_order': ...,
// 'shape': (...), }), parsed strictly (Note [npy layout] in npy.cpp).

#include <string>
#include <string_view>

#include "tensor/shape.hpp"

namespace theta::detail {

/// The three keys of a .npy header.
struct NpyHeaderDict {
  std::string descr = {};
  bool fortran_order = false;
  Shape shape = {};
};

/// Parses the header dict `text` (from '{' to the final '\n'); throws FormatError naming `what`
/// and the offset inside the header.
NpyHeaderDict parse_npy_header_dict(std::string_view text, const std::string& what);

/// Throws FormatError "npy: <what>: <problem>".
[[noreturn]] void npy_fail(const std::string& what, const std::string& problem);

}  // namespace theta::detail
