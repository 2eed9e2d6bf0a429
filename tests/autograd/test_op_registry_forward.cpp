// Forward mode over the op registry: every primitive's tangent rule, on every case and layout of
// the gradcheck table (op_registry_cases.cpp), against central differences and against the JVP
// from two reverse passes; the rules composed with the backward rules (forward-over-reverse HVP)
// and differentiated in reverse (reverse-over-forward), both against double backward. A
// primitive without a tangent rule fails here: forward mode through it throws.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/forward.hpp"
#include "autograd/ops.hpp"
#include "autograd/transforms.hpp"
#include "tensor/rng.hpp"
#include "tests/autograd/op_registry.hpp"

using namespace theta;
using namespace theta::autograd;
using namespace theta::test::op_registry;

namespace {

// Largest |a - b| over a list, and the largest |b| (the scale the error is judged against).
struct Gap {
  double error = 0.0;
  double scale = 0.0;
};

Gap gap(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  Gap g;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const std::vector<double> x = to_vector(a[i]), y = to_vector(b[i]);
    REQUIRE(x.size() == y.size());
    for (std::size_t k = 0; k < x.size(); ++k) {
      g.error = std::max(g.error, std::abs(x[k] - y[k]));
      g.scale = std::max(g.scale, std::abs(y[k]));
    }
  }
  return g;
}

// Agreement of two exact computations in float64.
void check_exact(const std::vector<Tensor>& got, const std::vector<Tensor>& want, const char* what) {
  const Gap g = gap(got, want);
  INFO(what << ": max |difference| " << g.error << " at scale " << g.scale);
  CHECK(g.error <= 1e-12 * std::max(1.0, g.scale));
}

Function as_function(const OpCase& c) {
  return [f = c.f](const std::vector<Var>& x) { return std::vector<Var>{f(x)}; };
}

// (f(x + eps t) - f(x - eps t)) / (2 eps), on contiguous copies of the inputs.
Tensor central_difference(const OpCase& c, const std::vector<Tensor>& x, const std::vector<Tensor>& t) {
  constexpr double eps = 1e-6;
  std::vector<Var> plus, minus;
  for (std::size_t i = 0; i < x.size(); ++i) {
    plus.emplace_back(theta::add(x[i], theta::mul(t[i], scalar_tensor(eps))));
    minus.emplace_back(theta::sub(x[i], theta::mul(t[i], scalar_tensor(eps))));
  }
  return theta::div(theta::sub(c.f(plus).value(), c.f(minus).value()), scalar_tensor(2 * eps));
}

}  // namespace

TEST_CASE("forward mode agrees with finite differences and reverse mode for every op",
          "[autograd][op_registry][forward]") {
  const auto& all = cases();
  for (std::size_t i = 0; i < all.size(); ++i) {
    const OpCase& c = all[i];
    for (const Layout layout : c.layouts) {
      DYNAMIC_SECTION("#" << i << " " << c.op << ": " << c.label << " (" << layout_name(layout) << ")") {
        Rng rng(5000 + 31 * i);
        std::vector<Tensor> x, t;
        for (const auto& spec : c.inputs) x.push_back(make_input(spec, layout, rng));
        for (const auto& xi : x) t.push_back(rng.normal(xi.shape()));
        const Tensor y = c.f(std::vector<Var>(x.begin(), x.end())).value();
        const Tensor u = rng.normal(y.shape());

        // J t by one forward pass, by two reverse passes, and by central differences.
        const JvpResult fwd = jvp(as_function(c), x, t, JvpMethod::forward);
        const JvpResult rev = jvp(as_function(c), x, t, JvpMethod::double_vjp);
        check_exact(fwd.outputs, {y}, "jvp's primal output");
        check_exact(fwd.tangents, rev.tangents, "forward jvp against double-VJP jvp");
        const Tensor fd = central_difference(c, x, t);
        const auto fv = to_vector(fwd.tangents[0]), dv = to_vector(fd);
        for (std::size_t k = 0; k < fv.size(); ++k) {
          INFO("jvp element " << k << ": forward " << fv[k] << ", finite difference " << dv[k]);
          CHECK(std::abs(fv[k] - dv[k]) <= 1e-5 + 1e-3 * std::abs(dv[k]));
        }

        // H t of s(x) = <u, f(x)>: forward over reverse against reverse over reverse.
        const ScalarFunction s = [&c, &u](const std::vector<Var>& v) { return vdot(Var(u), c.f(v)); };
        const auto h_rr = hvp(s, x, t, HvpMethod::reverse_over_reverse);
        check_exact(hvp(s, x, t, HvpMethod::forward_over_reverse), h_rr, "forward-over-reverse hvp");

        // Reverse over forward: d/dx <u, J(x) t> = H_s t as well.
        const std::vector<Var> leaves = make_leaves(x);
        Var jt;
        {
          const DualLevel level;
          std::vector<Var> duals;
          for (std::size_t k = 0; k < x.size(); ++k) duals.push_back(make_dual(leaves[k], Var(t[k])));
          jt = tangent(c.f(duals));
        }
        std::vector<Tensor> h_rf;
        const Var inner = jt.defined() ? vdot(Var(u), jt) : Var();
        const std::vector<Var> g = inner.defined() && inner.requires_grad()
                                       ? grad({inner}, leaves, {}, {.allow_unused = true})
                                       : std::vector<Var>(x.size());
        for (std::size_t k = 0; k < x.size(); ++k)
          h_rf.push_back(g[k].defined() ? g[k].value() : zeros(x[k].shape(), x[k].dtype()));
        check_exact(h_rf, h_rr, "reverse-over-forward");
      }
    }
  }
}
