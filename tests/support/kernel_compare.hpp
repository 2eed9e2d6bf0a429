#pragma once
// Comparing two kernels (or any tensors of one shape) in the tests.

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>

#include "tensor/tensor.hpp"

namespace theta::test {

/// max |a - b| / max |b| over all elements; REQUIREs equal shapes.
inline double max_rel_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  const auto va = to_vector(a), vb = to_vector(b);
  double scale = 0, diff = 0;
  for (std::size_t i = 0; i < va.size(); ++i) {
    scale = std::max(scale, std::abs(vb[i]));
    diff = std::max(diff, std::abs(va[i] - vb[i]));
  }
  return diff / scale;
}

/// The largest elementwise |a - b|; REQUIREs equal shapes.
inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  const auto va = to_vector(a), vb = to_vector(b);
  double worst = 0;
  for (std::size_t i = 0; i < va.size(); ++i) worst = std::max(worst, std::abs(va[i] - vb[i]));
  return worst;
}

}  // namespace theta::test
