#include <catch2/catch.hpp>

#include "tensor/ops.hpp"

using namespace theta;

TEST_CASE("matmul of a transposed view matches the naive product", "[tensor][matmul]") {
  const Tensor a = arange(0, 6).reshape({2, 3});
  const Tensor b = arange(0, 6).reshape({2, 3}).t();  // [3, 2], strides [1, 3]
  const Tensor c = matmul(a, b);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j) {
      double ref = 0;
      for (int k = 0; k < 3; ++k) ref += a.at({i, k}) * b.at({k, j});
      CHECK(c.at({i, j}) == ref);
    }
}
