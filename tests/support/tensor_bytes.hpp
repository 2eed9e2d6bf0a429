#pragma once
// The elements of a tensor in row-major order as raw bytes: for bitwise comparisons in which NaN
// payloads and the sign of zero count.

#include <string>

#include "tensor/tensor.hpp"

namespace theta::test {

inline std::string element_bytes(const Tensor& t) {
  const Tensor c = t.contiguous();
  const auto n = static_cast<std::size_t>(c.numel()) * dtype_size(c.dtype());
  return n == 0 ? std::string() : std::string(static_cast<const char*>(c.raw_data()), n);
}

}  // namespace theta::test
