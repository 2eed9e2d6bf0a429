// Least-squares eigenmodes against independent computations: normal equations and solve() for the
// minimum-norm and ridge solutions, the gradient-flow ODE by finite differences, and the risk of
// an explicit ridge matrix.

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "tensor/ops.hpp"
#include "tensor/rng.hpp"
#include "theory/least_squares.hpp"
#include "theory/linalg.hpp"

using namespace theta;
using namespace theta::theory;

namespace {

double max_abs(const Tensor& t) { return theta::max(theta::abs(t)).item<double>(); }
double norm2(const Tensor& t) { return theta::norm(t).item<double>(); }

// 1/n x^T x and 1/n x^T y.
Tensor covariance(const Tensor& x) { return matmul(x.t(), x) / static_cast<double>(x.size(0)); }
Tensor moment(const Tensor& x, const Tensor& y) { return matmul(x.t(), y) / static_cast<double>(x.size(0)); }

}  // namespace

TEST_CASE("the minimum-norm solution agrees with the normal equations", "[theory][implicit_bias]") {
  Rng rng(3);
  SECTION("underdetermined: x^T (x x^T)^{-1} y") {
    const Tensor x = rng.normal({5, 9}), y = rng.normal({5});
    const Tensor w = min_norm_solution(x, y);
    CHECK(max_abs(w - matmul(x.t(), solve(matmul(x, x.t()), y))) <= 1e-12);
    CHECK(max_abs(matmul(x, w) - y) <= 1e-12);
    const LeastSquaresModes modes = least_squares_modes(x, y);
    CHECK(modes.sigma.size(0) == 5);
    CHECK(norm2(null_space_component(modes, w)) <= 1e-13 * norm2(w));
  }
  SECTION("overdetermined: (x^T x)^{-1} x^T y") {
    const Tensor x = rng.normal({12, 4}), y = rng.normal({12});
    CHECK(max_abs(min_norm_solution(x, y) - solve(matmul(x.t(), x), matmul(x.t(), y))) <= 1e-12);
  }
  SECTION("rank deficient: a repeated column shares the weight equally") {
    // With columns a, b, a the minimum-norm fit puts w_0 = w_2 (any split of the same total fits).
    const Tensor base = rng.normal({6, 2});
    const Tensor x = concat({base, base.slice(1, 0, 1)}, 1).contiguous();
    const Tensor y = rng.normal({6});
    const Tensor w = min_norm_solution(x, y);
    const LeastSquaresModes modes = least_squares_modes(x, y);
    CHECK(modes.sigma.size(0) == 2);
    CHECK(std::abs(w.at({0}) - w.at({2})) <= 1e-12);
    // The normal equations hold, and w = (w_0 + w_2 split evenly, w_1) solves the 2-column problem.
    CHECK(max_abs(matmul(x.t(), matmul(x, w) - y)) <= 1e-11);
    const Tensor reduced = solve(matmul(base.t(), base), matmul(base.t(), y));
    CHECK(std::abs(w.at({0}) + w.at({2}) - reduced.at({0})) <= 1e-12);
    CHECK(std::abs(w.at({1}) - reduced.at({1})) <= 1e-12);
  }
}

TEST_CASE("the null-space projector is the orthogonal projector onto null(x)", "[theory][implicit_bias]") {
  Rng rng(4);
  const Tensor x = rng.normal({3, 7}), y = rng.normal({3});
  const LeastSquaresModes modes = least_squares_modes(x, y);
  const Tensor p = null_space_projector(modes);
  CHECK(max_abs(matmul(p, p) - p) <= 1e-14);
  CHECK(max_abs(p - p.t()) <= 1e-15);
  CHECK(max_abs(matmul(x, p)) <= 1e-13);
  CHECK(theta::sum(p * eye(7)).item<double>() == Approx(4.0).epsilon(1e-13));  // trace = d - r
  const Tensor w = rng.normal({7});
  CHECK(max_abs(matmul(p, w) - null_space_component(modes, w)) <= 1e-14);
}

TEST_CASE("gradient flow and ridge paths solve their defining equations", "[theory][implicit_bias]") {
  Rng rng(5);
  const Tensor x = rng.normal({6, 10}), y = rng.normal({6});
  const LeastSquaresModes modes = least_squares_modes(x, y);
  const Tensor w0 = rng.normal({10});
  const Tensor sigma = covariance(x), b = moment(x, y);

  SECTION("ridge is (x^T x / n + lambda I)^{-1} x^T y / n") {
    for (double lambda : {1e-3, 0.1, 1.0, 30.0})
      CHECK(max_abs(ridge_solution(modes, lambda) - solve(sigma + eye(10) * lambda, b)) <= 1e-11);
  }
  SECTION("gradient flow starts at w0, obeys dw/dt = -(sigma w - b), keeps P_null w0 and tends to x^+ y + P_null w0") {
    CHECK(max_abs(gradient_flow_solution(modes, 0.0, w0) - w0) <= 1e-13);
    CHECK(max_abs(gradient_flow_solution(modes, 0.0)) == 0.0);
    for (double t : {0.05, 0.7, 3.0}) {
      const double h = 1e-5;
      const Tensor w = gradient_flow_solution(modes, t, w0);
      const Tensor derivative =
          (gradient_flow_solution(modes, t + h, w0) - gradient_flow_solution(modes, t - h, w0)) / (2 * h);
      CHECK(max_abs(derivative + (matmul(sigma, w) - b)) <= 1e-7);
      CHECK(max_abs(null_space_component(modes, w) - null_space_component(modes, w0)) <= 1e-13);
    }
    const Tensor limit = min_norm_solution(x, y) + null_space_component(modes, w0);
    CHECK(max_abs(gradient_flow_solution(modes, 1e6, w0) - limit) <= 1e-12);
  }
  SECTION("gains: the gradient-flow to ridge ratio under lambda = 1/t is shrinkage_ratio(t sigma)") {
    for (double t : {0.01, 0.5, 2.0, 40.0}) {
      const Tensor ratio = gradient_flow_gains(modes, t) / ridge_gains(modes, 1.0 / t);
      for (std::int64_t i = 0; i < modes.sigma.size(0); ++i)
        CHECK(ratio.at({i}) == Approx(shrinkage_ratio(t * modes.sigma.at({i}))).epsilon(1e-13));
    }
  }
}

TEST_CASE("the shrinkage ratio lies in [1, 1.2985] and tends to 1 at both ends", "[theory][implicit_bias]") {
  CHECK(shrinkage_ratio(0.0) == 1.0);
  CHECK(shrinkage_ratio(1e-12) == Approx(1.0).epsilon(1e-11));
  CHECK(shrinkage_ratio(1e6) == Approx(1.0).epsilon(1e-5));
  double peak = 0.0;
  for (double x = 1e-4; x < 1e3; x *= 1.001) {
    const double r = shrinkage_ratio(x);
    CHECK(r >= 1.0);
    // The closed form (1 - e^{-x})(1 + x)/x computed without expm1, away from tiny x.
    if (x > 1e-2) CHECK(r == Approx((1.0 - std::exp(-x)) * (1.0 + x) / x).epsilon(1e-13));
    peak = std::max(peak, r);
  }
  CHECK(peak <= 1.2985);
  CHECK(peak >= 1.298);
}

TEST_CASE("spectral risk equals the risk of the explicit estimator matrix", "[theory][implicit_bias]") {
  Rng rng(6);
  const Tensor x = rng.normal({8, 5}), w_true = rng.normal({5});
  const Tensor y = rng.normal({8});  // only the modes of x matter for the risk
  const LeastSquaresModes modes = least_squares_modes(x, y);
  const double n = 8.0;
  for (double lambda : {0.01, 0.3, 2.0}) {
    // Ridge as a matrix: a = (x^T x / n + lambda I)^{-1} x^T / n.
    const Tensor a = solve(covariance(x) + eye(5) * lambda, x.t() / n);
    for (double noise : {0.0, 0.7})
      CHECK(spectral_risk(modes, ridge_gains(modes, lambda), w_true, noise) ==
            Approx(linear_estimator_risk(a, x, w_true, noise)).epsilon(1e-11));
  }
  // Underdetermined: the null-space part of w_true is bias for every estimator.
  const Tensor wide = rng.normal({3, 6}), w_wide = rng.normal({6});
  const LeastSquaresModes wide_modes = least_squares_modes(wide, rng.normal({3}));
  const Tensor pinv = matmul(wide.t(), solve(matmul(wide, wide.t()), eye(3)));
  CHECK(spectral_risk(wide_modes, ones({3}), w_wide, 0.5) ==
        Approx(linear_estimator_risk(pinv, wide, w_wide, 0.5)).epsilon(1e-11));
}

TEST_CASE("least-squares tools reject bad shapes and arguments", "[theory][implicit_bias]") {
  Rng rng(7);
  const Tensor x = rng.normal({4, 6}), y = rng.normal({4});
  const LeastSquaresModes modes = least_squares_modes(x, y);
  CHECK_THROWS_AS(least_squares_modes(x, rng.normal({5})), ShapeError);
  CHECK_THROWS_WITH(least_squares_modes(rng.normal({4}), y), Catch::Contains("expected x:[n, d]"));
  CHECK_THROWS_AS(least_squares_modes(zeros({4, 6}), y), std::invalid_argument);
  CHECK_THROWS_AS(null_space_component(modes, rng.normal({5})), ShapeError);
  CHECK_THROWS_AS(spectral_solution(modes, ones({3})), ShapeError);
  CHECK_THROWS_AS(ridge_gains(modes, 0.0), std::invalid_argument);
  CHECK_THROWS_AS(gradient_flow_gains(modes, -1.0), std::invalid_argument);
  CHECK_THROWS_AS(gradient_flow_gains(modes, std::numeric_limits<double>::infinity()), std::invalid_argument);
  CHECK_THROWS_AS(shrinkage_ratio(-0.5), std::invalid_argument);
  CHECK_THROWS_AS(linear_estimator_risk(rng.normal({6, 3}), x, rng.normal({6}), 1.0), ShapeError);
  CHECK_THROWS_AS(null_space_projector(LeastSquaresModes{}), std::invalid_argument);
}
