// Forward mode's interface (DualLevel, make_dual, tangent), its errors, and the transforms built
// on it (jvp, hvp forward over reverse) against closed forms; the engine's release of a graph's
// inputs during a backward that does not retain it.

#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "autograd/engine.hpp"
#include "autograd/forward.hpp"
#include "autograd/ops.hpp"
#include "autograd/transforms.hpp"
#include "tensor/rng.hpp"
#include "tensor/storage.hpp"

using namespace theta;
using namespace theta::autograd;
using Catch::Matchers::Contains;

namespace {

// x^2 with a backward rule and no tangent rule, as a user might write it.
Var square_without_tangent(const Var& x) {
  return make_result(theta::square(x.value()), "square_without_tangent", {x},
                     [](const Var& g, const Node& n, const InputMask&) { return VarList{g * n.inputs[0] * 2.0}; });
}

double max_abs(const Tensor& t) {
  double m = 0.0;
  for (double v : to_vector(t)) m = std::max(m, std::abs(v));
  return m;
}

}  // namespace

TEST_CASE("make_dual and tangent carry a direction through ops", "[autograd][forward]") {
  Rng rng(1);
  const Tensor x = rng.normal({3, 4}), t = rng.normal({3, 4}), w = rng.normal({4, 2});
  const DualLevel level;
  CHECK(forward_mode_enabled());
  const Var xd = make_dual(Var(x), Var(t));
  CHECK(xd.value().raw_data() == x.raw_data());  // the primal's storage, not a copy
  const Var y = matmul(tanh(xd), Var(w));
  // d/dt tanh(x + s t) W = ((1 - tanh^2 x) * t) W
  const Tensor want = matmul(theta::mul(theta::sub(ones({}), theta::square(theta::tanh(x))), t), w);
  const Tensor got = tangent(y).value();
  CHECK(max_abs(theta::sub(got, want)) <= 1e-15 * (1 + max_abs(want)));
  // A Var that depends on no dual has a zero (undefined) tangent; so does a detached one.
  CHECK_FALSE(tangent(Var(w)).defined());
  CHECK_FALSE(tangent(y.detach()).defined());
  // An undefined tangent is zero.
  CHECK_FALSE(tangent(tanh(make_dual(Var(x), Var()))).defined());
}

TEST_CASE("forward-mode levels: no nesting, no tangent outside a level, none kept across levels",
          "[autograd][forward]") {
  const Tensor x = tensor({1.0, 2.0}), t = tensor({1.0, 0.0});
  CHECK_FALSE(forward_mode_enabled());
  CHECK_THROWS_WITH(make_dual(Var(x), Var(t)), Contains("no forward-mode level is open"));
  CHECK_THROWS_WITH(tangent(Var(x)), Contains("no forward-mode level is open"));
  Var kept;
  {
    const DualLevel level;
    CHECK_THROWS_WITH(DualLevel(), Contains("already open") && Contains("forward-over-forward"));
    kept = exp(make_dual(Var(x), Var(t)));
    CHECK(tangent(kept).defined());
  }
  CHECK_FALSE(forward_mode_enabled());
  const DualLevel next;
  CHECK_FALSE(tangent(kept).defined());  // the tangent belonged to the closed level
  CHECK_FALSE(tangent(kept * 2.0).defined());
}

TEST_CASE("make_dual refuses a tangent of another shape or dtype", "[autograd][forward]") {
  const DualLevel level;
  const Var x(zeros({2, 3}));
  CHECK_THROWS_WITH(make_dual(x, Var(zeros({3, 2}))), Contains("tangent float64 [3, 2]") && Contains("[2, 3]"));
  CHECK_THROWS_WITH(make_dual(x, Var(zeros({2, 3}, DType::f32))), Contains("float32"));
  CHECK_THROWS_WITH(make_dual(Var(from_indices({1, 2})), Var()), Contains("floating"));
}

TEST_CASE("an op without a tangent rule fails only when its tangent is needed", "[autograd][forward]") {
  const Tensor x = tensor({1.0, -2.0, 3.0});
  const Function f = [](const std::vector<Var>& in) { return std::vector<Var>{square_without_tangent(in[0]) + 1.0}; };
  CHECK_THROWS_WITH(jvp(f, {x}, {tensor({1.0, 1.0, 1.0})}),
                    Contains("square_without_tangent has no tangent rule") && Contains("[3]"));
  // Its input carries no tangent: nothing to propagate, no error.
  const DualLevel level;
  const Var other = make_dual(Var(x), Var(tensor({1.0, 0.0, 0.0})));
  const Var y = square_without_tangent(Var(x)) + other;
  CHECK(to_vector(tangent(y).value()) == std::vector<double>{1.0, 0.0, 0.0});
  // The double-VJP method needs only the backward rule.
  const JvpResult r = jvp(f, {x}, {tensor({1.0, 1.0, 1.0})}, JvpMethod::double_vjp);
  CHECK(to_vector(r.tangents[0]) == std::vector<double>{2.0, -4.0, 6.0});
}

TEST_CASE("hvp forward over reverse equals the closed-form Hessian", "[autograd][forward]") {
  // f(x) = sum(x^3) / 3 + (a . x)^2: H = diag(2 x) + 2 a a^T.
  Rng rng(3);
  const Tensor x = rng.normal({5}), a = rng.normal({5}), v = rng.normal({5});
  const ScalarFunction f = [&a](const std::vector<Var>& p) {
    return sum(pow(p[0], 3.0)) / 3.0 + square(vdot(Var(a), p[0]));
  };
  const auto xs = to_vector(x), as = to_vector(a), vs = to_vector(v);
  double av = 0.0;
  for (std::size_t i = 0; i < 5; ++i) av += as[i] * vs[i];
  const auto hv = to_vector(hvp(f, {x}, {v}, HvpMethod::forward_over_reverse)[0]);
  for (std::size_t i = 0; i < 5; ++i) CHECK(hv[i] == Approx(2 * xs[i] * vs[i] + 2 * as[i] * av).epsilon(1e-13));
  // A loss that does not depend on the params has a zero Hessian.
  const ScalarFunction constant_loss = [](const std::vector<Var>&) { return Var(scalar_tensor(1.0)); };
  CHECK(max_abs(hvp(constant_loss, {x}, {v})[0]) == 0.0);
}

TEST_CASE("forward-over-reverse hvp differentiates through every branch the gradient takes",
          "[autograd][forward]") {
  // A parameter used twice (x * x and inside a matmul) and a broadcast bias: the gradient
  // accumulates several contributions, each of which must carry its tangent.
  Rng rng(4);
  const std::vector<Tensor> p = {rng.normal({3, 3}), rng.normal({3})};
  const std::vector<Tensor> v = {rng.normal({3, 3}), rng.normal({3})};
  const Tensor x = rng.normal({4, 3});
  const ScalarFunction f = [&x](const std::vector<Var>& q) {
    const Var h = tanh(matmul(Var(x), q[0]) + q[1]);
    return sum(square(matmul(h, q[0]))) + sum(q[0] * q[0] * q[1]);
  };
  const auto fr = hvp(f, p, v, HvpMethod::forward_over_reverse);
  const auto rr = hvp(f, p, v, HvpMethod::reverse_over_reverse);
  for (std::size_t i = 0; i < p.size(); ++i)
    CHECK(max_abs(theta::sub(fr[i], rr[i])) <= 1e-12 * (1 + max_abs(rr[i])));
}

TEST_CASE("a backward that does not retain the graph frees the activations it read",
          "[autograd][engine]") {
  const Tensor x0 = Rng(5).normal({500, 500});  // 2 MB per [500, 500] float64 tensor
  const double mib = 1 << 20;
  const auto run = [&](bool retain) {
    const Var x(x0, true);
    const Var y = sum(exp(x) * 2.0);  // the nodes hold x, exp(x) and exp(x) * 2
    const double before = static_cast<double>(allocator_stats().live_bytes) / mib;
    const Var g = grad(y, x, {.retain_graph = retain});
    return static_cast<double>(allocator_stats().live_bytes) / mib - before;
  };
  // Retained: the gradient is added and nothing freed. Released: exp(x) and exp(x) * 2 go while y
  // is still alive, more than the gradient's 2 MB.
  CHECK(run(true) >= 1.9);
  CHECK(run(false) <= -1.9);
}
