#include <catch2/catch.hpp>

#include "autograd/functional.hpp"

using namespace theta;
using namespace theta::autograd;

TEST_CASE("hvp of sum(x^3) is 6 x v", "[autograd][smoke]") {
  const Tensor x = tensor({1.0, -2.0, 0.5});
  const Tensor v = tensor({1.0, 1.0, 2.0});
  auto f = [](const std::vector<Var>& p) { return sum(pow(p[0], 3.0)); };
  const auto hv = hvp(f, {x}, {v});
  const auto got = to_vector(hv[0]);
  CHECK(got[0] == Approx(6.0));
  CHECK(got[1] == Approx(-12.0));
  CHECK(got[2] == Approx(6.0));
}
