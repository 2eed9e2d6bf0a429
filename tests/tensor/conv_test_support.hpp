#pragma once
// Comparisons shared by the convolution and pooling tests.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

#include "tensor/ops.hpp"
#include "tests/support/kernel_compare.hpp"

namespace theta::test {

// <a, b> over all elements.
inline double inner(const Tensor& a, const Tensor& b) { return sum(mul(a, b)).item(); }


}  // namespace theta::test
