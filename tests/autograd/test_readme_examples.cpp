// The README's autograd example, compiled and checked (the documentation cannot drift).
#include <catch2/catch.hpp>

#include <sstream>

#include "autograd/transforms.hpp"

using namespace theta;
using namespace theta::autograd;

TEST_CASE("README autograd example: second derivatives of sum(x^3)", "[autograd][readme]") {
  Var x(tensor({1.0, -2.0, 0.5}), /*requires_grad=*/true);
  Var y = sum(pow(x, 3.0));
  Var g = grad(y, x, {.create_graph = true});
  Var h = grad(vdot(g, Var(ones({3}))), x);
  CHECK(to_vector(g.value()) == std::vector<double>{3.0, 12.0, 0.75});
  CHECK(to_vector(h.value()) == std::vector<double>{6.0, -12.0, 3.0});

  auto f = [](const std::vector<Var>& p) { return sum(tanh(p[0]) * p[0]); };
  const std::vector<Tensor> hv = hvp(f, {x.value()}, {ones({3})});
  std::ostringstream printed;
  printed << x << "\n" << y << "\n";
  CHECK(printed.str() ==
        "var([1, -2, 0.5], dtype=float64, shape=[3], requires_grad=true)\n"
        "var(-6.875, dtype=float64, shape=[], grad_fn=sum)\n");
  // d^2/dx^2 [x tanh x] = 2 sech^2 x - 2 x tanh x sech^2 x (the Hessian is diagonal).
  for (int i = 0; i < 3; ++i) {
    const double xi = x.value().at({i}), s2 = 1.0 / std::pow(std::cosh(xi), 2);
    CHECK(hv[0].at({i}) == Approx(2 * s2 - 2 * xi * std::tanh(xi) * s2).epsilon(1e-12));
  }
}
