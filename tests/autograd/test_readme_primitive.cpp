// The README's user-defined primitive, compiled as shown and checked to second order.
#include <catch2/catch.hpp>

#include <cmath>

#include "autograd/engine.hpp"
#include "autograd/ops.hpp"
#include "tensor/rng.hpp"
#include "tests/support/gradcheck.hpp"

using namespace theta;
using namespace theta::autograd;

namespace {

Var softsign(const Var& x) {
  const Tensor value = x.value() / (abs(x.value()) + 1.0);
  return make_result(value, "softsign", {x}, [](const Var& g, const Node& node, const InputMask&) {
    return VarList{g / square(abs(node.inputs[0]) + 1.0)};
  });
}

}  // namespace

TEST_CASE("README primitive: softsign has the closed-form value and passes gradcheck to second order",
          "[autograd][readme]") {
  Rng rng(5);
  const Tensor x = rng.normal({3, 4});
  const Var y = softsign(Var(x));
  const auto xs = to_vector(x), ys = to_vector(y.value());
  for (std::size_t i = 0; i < xs.size(); ++i) CHECK(ys[i] == Approx(xs[i] / (1 + std::fabs(xs[i]))).epsilon(1e-15));
  const theta::testing::GradFunction f = [](const std::vector<Var>& in) { return softsign(in[0]); };
  const auto first = theta::testing::gradcheck(f, {x});
  INFO(first.message);
  CHECK(first.ok);
  const auto second = theta::testing::gradgradcheck(f, {x});
  INFO(second.message);
  CHECK(second.ok);
}

TEST_CASE("README primitive: the gradient the example computes", "[autograd][readme]") {
  Var x(tensor({-2.0, 0.5, 3.0}), /*requires_grad=*/true);
  Var g = grad(sum(softsign(x)), x);
  CHECK(to_vector(g.value()) == std::vector<double>{1.0 / 9.0, 4.0 / 9.0, 1.0 / 16.0});
}
