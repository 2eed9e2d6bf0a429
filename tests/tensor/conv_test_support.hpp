#pragma once
// Comparisons shared by the convolution and pooling tests.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

#include "tensor/ops.hpp"

namespace theta::test {

// <a, b> over all elements.
inline double inner(const Tensor& a, const Tensor& b) { return sum(mul(a, b)).item(); }

// The largest elementwise |a - b| (shapes must match).
inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  const std::vector<double> av = to_vector(a), bv = to_vector(b);
  double worst = 0;
  for (std::size_t i = 0; i < av.size(); ++i) worst = std::max(worst, std::abs(av[i] - bv[i]));
  return worst;
}

}  // namespace theta::test
