// Conventions at non-differentiable points, NaN safety of untaken branches, and numerical
// stability of the softmax family; expected values are closed forms.

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "autograd/transforms.hpp"

using namespace theta;
using namespace theta::autograd;

namespace {

/// The gradient of a scalar `y` with respect to one leaf, as a vector.
std::vector<double> grad_of(const Var& y, const Var& x) { return to_vector(grad(y, x).value()); }

/// Numerically stable softmax of one row, in plain doubles.
std::vector<double> softmax_row(const std::vector<double>& z) {
  double m = z[0];
  for (double v : z) m = std::max(m, v);
  double s = 0.0;
  for (double v : z) s += std::exp(v - m);
  std::vector<double> p;
  for (double v : z) p.push_back(std::exp(v - m) / s);
  return p;
}

}  // namespace

TEST_CASE("relu and abs have derivative 0 at 0", "[autograd][engine]") {
  const Var x(tensor({0.0, -0.0, 2.0, -3.0}), true);
  CHECK(grad_of(sum(relu(x)), x) == std::vector<double>{0.0, 0.0, 1.0, 0.0});
  CHECK(grad_of(sum(abs(x)), x) == std::vector<double>{0.0, 0.0, 1.0, -1.0});
}

TEST_CASE("maximum and minimum split ties evenly", "[autograd][engine]") {
  const Var a(tensor({1.0, 2.0, 3.0}), true);
  const Var b(tensor({1.0, 5.0, -1.0}), true);
  auto g = grad({sum(maximum(a, b))}, {a, b});
  CHECK(to_vector(g[0].value()) == std::vector<double>{0.5, 0.0, 1.0});
  CHECK(to_vector(g[1].value()) == std::vector<double>{0.5, 1.0, 0.0});
  g = grad({sum(minimum(a, b))}, {a, b});
  CHECK(to_vector(g[0].value()) == std::vector<double>{0.5, 1.0, 0.0});
  CHECK(to_vector(g[1].value()) == std::vector<double>{0.5, 0.0, 1.0});
  // maximum(x, x): both sides are the same Var, the halves add back to 1.
  CHECK(grad_of(sum(maximum(a, a)), a) == std::vector<double>{1.0, 1.0, 1.0});
}

TEST_CASE("max and min reductions split ties evenly", "[autograd][engine]") {
  const Var x(tensor({1.0, 3.0, 3.0, 2.0, 4.0, 4.0, 4.0, 0.0}, {2, 4}), true);
  CHECK(grad_of(max(x), x) == std::vector<double>{0, 0, 0, 0, 1.0 / 3, 1.0 / 3, 1.0 / 3, 0});
  const auto row = to_vector(grad({max(x, {1})}, {x}, {Var(tensor({2.0, 3.0}))})[0].value());
  CHECK(row == std::vector<double>{0, 1.0, 1.0, 0, 1.0, 1.0, 1.0, 0});
  const Var y(tensor({-2.0, 5.0, -2.0}), true);
  CHECK(grad_of(min(y), y) == std::vector<double>{0.5, 0.0, 0.5});
  CHECK(grad_of(norm(y, INFINITY), y) == std::vector<double>{0.0, 1.0, 0.0});
}

TEST_CASE("clamp passes the gradient at its bounds", "[autograd][engine]") {
  const Var x(tensor({-1.0, -0.5, 0.0, 0.5, 1.0}), true);
  CHECK(grad_of(sum(clamp(x, -0.5, 0.5)), x) == std::vector<double>{0.0, 1.0, 1.0, 1.0, 0.0});
}

// ---- NaN safety --------------------------------------------------------------------------------

TEST_CASE("where does not leak NaN or Inf from the untaken branch", "[autograd][engine]") {
  const Tensor xv = tensor({0.0, -2.0, 4.0});
  const Var x(xv, true);
  const Tensor positive = gt(xv, zeros({}));
  const Var zero(zeros({}));
  SECTION("sqrt") {
    CHECK(grad_of(sum(where(positive, sqrt(x), zero)), x) == std::vector<double>{0.0, 0.0, 0.25});
  }
  SECTION("log") {
    CHECK(grad_of(sum(where(positive, log(x), zero)), x) == std::vector<double>{0.0, 0.0, 0.25});
  }
  SECTION("rsqrt") {
    CHECK(grad_of(sum(where(positive, rsqrt(x), zero)), x) == std::vector<double>{0.0, 0.0, -0.5 / 8.0});
  }
  SECTION("second order through the untaken branch") {
    const Var g = grad(sum(where(positive, sqrt(x), zero)), x, {.create_graph = true});
    CHECK(grad_of(sum(g), x) == std::vector<double>{0.0, 0.0, -0.25 / 8.0});
  }
  SECTION("fractional powers, first and second order") {
    CHECK(grad_of(sum(where(positive, pow(x, 0.5), zero)), x) == std::vector<double>{0.0, 0.0, 0.25});
    const Var g = grad(sum(where(positive, pow(x, 1.5), zero)), x, {.create_graph = true});
    CHECK(grad_of(sum(g), x) == std::vector<double>{0.0, 0.0, 0.75 / 2.0});
  }
  SECTION("pow with a Var exponent") {
    const Var p(full({3}, 0.5), true);
    const auto gs = grad({sum(where(positive, pow(x, p), zero))}, {x, p});
    CHECK(to_vector(gs[0].value()) == std::vector<double>{0.0, 0.0, 0.25});
    CHECK(to_vector(gs[1].value()) == std::vector<double>{0.0, 0.0, 2.0 * std::log(4.0)});
  }
}

TEST_CASE("safe division through where() has finite gradients of every order", "[autograd][engine]") {
  // where(x != 0, 1 / x, 0): the classic guarded reciprocal. The untaken branch is singular.
  const Tensor xv = tensor({0.0, -2.0, 4.0});
  const Var x(xv, true);
  const Tensor nonzero = ne(xv, zeros({}));
  const Var zero(zeros({}));
  SECTION("reciprocal") {
    const Var g = grad(sum(where(nonzero, reciprocal(x), zero)), x, {.create_graph = true});
    CHECK(to_vector(g.value()) == std::vector<double>{0.0, -0.25, -1.0 / 16.0});
    CHECK(grad_of(sum(g), x) == std::vector<double>{0.0, 2.0 / -8.0, 2.0 / 64.0});
  }
  SECTION("div, numerator and denominator") {
    const Var a(tensor({3.0, 5.0, 7.0}), true);
    const auto gs = grad({sum(where(nonzero, a / x, zero))}, {a, x}, {}, {.create_graph = true});
    CHECK(to_vector(gs[0].value()) == std::vector<double>{0.0, -0.5, 0.25});
    CHECK(to_vector(gs[1].value()) == std::vector<double>{0.0, -5.0 / 4.0, -7.0 / 16.0});
    CHECK(grad_of(sum(gs[1]), x) == std::vector<double>{0.0, 2.0 * 5.0 / -8.0, 2.0 * 7.0 / 64.0});
  }
  SECTION("div by a broadcast denominator") {
    const Var d(tensor({0.0, 2.0}, {2, 1}), true);
    const Var num(ones({2, 3}), true);
    const Tensor mask = ne(tensor({0.0, 2.0}, {2, 1}).expand({2, 3}).contiguous(), zeros({}));
    const Var g = grad(sum(where(mask, num / d, Var(zeros({})))), d);
    CHECK(to_vector(g.value()) == std::vector<double>{0.0, -3.0 / 4.0});
  }
  SECTION("a singularity that is taken still shows") {
    const Var g = grad(sum(reciprocal(x)), x);
    CHECK(std::isinf(to_vector(g.value())[0]));
  }
}

TEST_CASE("norm has gradient 0 at the zero vector", "[autograd][engine]") {
  const Var x(zeros({3}), true);
  for (double p : {1.0, 2.0, static_cast<double>(INFINITY)}) {
    INFO("p = " << p);
    CHECK(grad_of(norm(x, p), x) == std::vector<double>{0.0, 0.0, 0.0});
  }
  const Var rows(tensor({0.0, 0.0, 3.0, 4.0}, {2, 2}), true);
  CHECK(grad_of(sum(norm(rows, 2.0, {1})), rows) == std::vector<double>{0.0, 0.0, 0.6, 0.8});
}

// ---- numerical stability -----------------------------------------------------------------------

TEST_CASE("softmax-family gradients are finite and exact at logits of magnitude 1e4",
          "[autograd][engine]") {
  const std::vector<double> z = {1e4, -1e4, 9999.0, 0.0, -5e3, 1e4 + 2.0};
  const Var x(from_vector(z, {2, 3}), true);
  const std::vector<double> p0 = softmax_row({z[0], z[1], z[2]});
  const std::vector<double> p1 = softmax_row({z[3], z[4], z[5]});

  SECTION("logsumexp") {
    const auto g = grad_of(sum(logsumexp(x, {1})), x);
    const std::vector<double> want = {p0[0], p0[1], p0[2], p1[0], p1[1], p1[2]};
    for (std::size_t i = 0; i < 6; ++i) CHECK(g[i] == Approx(want[i]).margin(1e-15));
  }
  SECTION("log_softmax") {
    // d/dx sum(w * log_softmax(x)) = w - softmax(x) * sum(w) per row.
    const Tensor w = tensor({1.0, 2.0, -1.0, 0.5, 0.0, 3.0}, {2, 3});
    const auto g = to_vector(grad({log_softmax(x, 1)}, {x}, {Var(w)})[0].value());
    const auto wv = to_vector(w);
    const double s0 = wv[0] + wv[1] + wv[2];
    const double s1 = wv[3] + wv[4] + wv[5];
    const std::vector<double> want = {wv[0] - p0[0] * s0, wv[1] - p0[1] * s0, wv[2] - p0[2] * s0,
                                      wv[3] - p1[0] * s1, wv[4] - p1[1] * s1, wv[5] - p1[2] * s1};
    for (std::size_t i = 0; i < 6; ++i) CHECK(g[i] == Approx(want[i]).margin(1e-12));
  }
  SECTION("softmax cross-entropy is (softmax - onehot) / batch") {
    const Tensor labels = from_indices({2, 1}).reshape({2, 1});
    const Var loss = -mean(gather(log_softmax(x, 1), 1, labels));
    CHECK(std::isfinite(loss.item()));
    const auto g = grad_of(loss, x);
    const std::vector<double> want = {p0[0] / 2, p0[1] / 2, (p0[2] - 1) / 2, p1[0] / 2, (p1[1] - 1) / 2, p1[2] / 2};
    for (std::size_t i = 0; i < 6; ++i) CHECK(g[i] == Approx(want[i]).margin(1e-15));
  }
}

TEST_CASE("logsumexp of an all -inf row has gradient 0", "[autograd][engine]") {
  const double inf = std::numeric_limits<double>::infinity();
  const Var x(tensor({-inf, -inf, -inf, 0.0, 1.0, 2.0}, {2, 3}), true);
  const Var y = logsumexp(x, {1});
  CHECK(to_vector(y.value())[0] == -inf);
  const auto g = to_vector(grad({y}, {x}, {Var(tensor({1.0, 1.0}))})[0].value());
  const auto p = softmax_row({0.0, 1.0, 2.0});
  CHECK(g[0] == 0.0);
  CHECK(g[1] == 0.0);
  CHECK(g[2] == 0.0);
  for (std::size_t i = 0; i < 3; ++i) CHECK(g[3 + i] == Approx(p[i]).margin(1e-15));
}

// ---- deep graphs -------------------------------------------------------------------------------

