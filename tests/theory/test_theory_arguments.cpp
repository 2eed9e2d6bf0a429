// The theory API refuses non-finite numeric arguments (an infinite horizon would loop forever,
// an infinite width or step size would return NaN) and non-symmetric operators where it needs
// symmetry.

#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "theory/deep_linear.hpp"
#include "theory/hessian.hpp"
#include "theory/linalg.hpp"
#include "theory/ntk.hpp"
#include "theory/symmetry.hpp"

using namespace theta;
using namespace theta::theory;

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A: [3, 3] with A != A^T, as an operator.
LinearOperator non_symmetric_operator() {
  const Tensor a = from_vector({2, 1, 0, 0, 3, 1, 0.5, 0, 1}, {3, 3});
  return {3, [a](const Tensor& v) { return matmul(a, v); }};
}
}  // namespace

TEST_CASE("deep linear tools refuse infinite and NaN arguments", "[theory][arguments]") {
  CHECK_THROWS_WITH(integrate_depth_d(2, 1.0, 0.1, {1.0, kInf}), Catch::Contains("every time must be finite"));
  CHECK_THROWS_AS(integrate_depth_d(2, 1.0, 0.1, {kNaN}), std::invalid_argument);
  CHECK_THROWS_WITH(integrate_depth_d(2, kInf, 0.1, {1.0}), Catch::Contains("s must be finite"));
  CHECK_THROWS_WITH(integrate_depth_d(2, 1.0, 0.1, {1.0}, kInf), Catch::Contains("dt must be finite"));
  // A finite horizon that would take longer than any run should is refused too.
  CHECK_THROWS_WITH(integrate_depth_d(2, 1.0, 0.1, {1e300}), Catch::Contains("choose a larger dt"));
  CHECK_THROWS_AS(saxe_mode_strength(1.0, 0.1, kInf), std::invalid_argument);
  CHECK_THROWS_AS(saxe_mode_strength(kNaN, 0.1, 1.0), std::invalid_argument);
  CHECK_THROWS_AS(saxe_half_time(kInf, 0.1), std::invalid_argument);
  CHECK_THROWS_AS(depth_d_rate(2, 1.0, kNaN), std::invalid_argument);
  Rng rng(1);
  CHECK_THROWS_AS(random_init({2, 3}, kInf, rng), std::invalid_argument);
  CHECK_THROWS_AS(make_saxe_problem({.strengths = {1.0, kInf}}, rng), std::invalid_argument);
  CHECK_THROWS_AS(crossing_times({0.0}, zeros({1, 1}), ones({1}), kNaN), std::invalid_argument);
  // Finite arguments still work: the depth-2 solution at t = 1 against the closed form.
  const double u = integrate_depth_d(2, 1.0, 0.1, {1.0}).front();
  CHECK(u == Approx(saxe_mode_strength(1.0, 0.1, 1.0)).epsilon(1e-9));
}

TEST_CASE("kernel, symmetry and spectral tools refuse non-finite arguments", "[theory][arguments]") {
  const Tensor k = eye(3), y = ones({3, 1});
  CHECK_THROWS_WITH(ntk_regression(k, k, y, y, y, kInf, 1.0), Catch::Contains("eta must be finite"));
  CHECK_THROWS_WITH(ntk_regression(k, k, y, y, y, 0.1, kNaN), Catch::Contains("t must be finite"));
  CHECK_THROWS_WITH(ntk_regression(k, k, y, y, y, 0.1, -kInf), Catch::Contains("t must be finite"));
  Tensor bad = eye(3);
  bad.select(0, 1).select(0, 1).fill_(kNaN);
  CHECK_THROWS_WITH(ntk_regression(k, bad, y, y, y, 0.1, 1.0), Catch::Contains("K(X, X) [3, 3] contains NaN"));
  CHECK_THROWS_WITH(analytic_ntk(k, k, 2, nn::ActivationKind::relu, kInf, 0.0), Catch::Contains("sigma_w"));
  CHECK_THROWS_WITH(analytic_ntk(k, k, 2, nn::ActivationKind::erf, 1.0, kNaN), Catch::Contains("sigma_b"));
  CHECK_THROWS_AS(decay_step(kInf, 0.1), std::invalid_argument);
  CHECK_THROWS_AS(decay_step(0.1, kNaN), std::invalid_argument);
  const LinearOperator identity = matrix_operator(eye(4));
  CHECK_THROWS_AS(slq_density(identity, {.sigma = kInf}), std::invalid_argument);
  CHECK_THROWS_AS(smoothed_density({ones({2})}, {ones({2})}, linspace(0, 1, 5), kInf), std::invalid_argument);
  // An operator that returns NaN is reported where it happens.
  const LinearOperator nan_op{3, [](const Tensor& v) { return v * kNaN; }};
  CHECK_THROWS_WITH(lanczos_top_k(nan_op, 1), Catch::Contains("operator result [3] contains NaN or Inf"));
  CHECK_THROWS_WITH(hutchinson_trace(nan_op, 2), Catch::Contains("NaN or Inf"));
}

TEST_CASE("Lanczos refuses a non-symmetric operator; symmetric float32 operators pass", "[theory][arguments]") {
  const LinearOperator op = non_symmetric_operator();
  CHECK_THROWS_WITH(lanczos_top_k(op, 1, {.iterations = 3}), Catch::Contains("not symmetric"));
  CHECK_THROWS_WITH(slq_density(op, {.probes = 1, .steps = 3}), Catch::Contains("not symmetric"));
  CHECK_THROWS_WITH(matrix_operator(from_vector({1, 2, 0, 1}, {2, 2})), Catch::Contains("not symmetric"));
  // A symmetric matrix applied in float32 rounds at ~1e-7 |A|: well inside the check's tolerance.
  Rng rng(3);
  const Tensor b = rng.normal({30, 30});
  const Tensor a32 = (b + b.t()).to(DType::f32);
  const LinearOperator op32{30, [a32](const Tensor& v) { return matmul(a32, v.to(DType::f32)).to(DType::f64); }};
  const EigenResult top = lanczos_top_k(op32, 2, {.iterations = 30});
  const Tensor exact = eigh(a32.to(DType::f64)).values;  // ascending
  CHECK(top.values.at({0}) == Approx(exact.at({29})).epsilon(1e-5));
  CHECK(top.values.at({1}) == Approx(exact.at({28})).epsilon(1e-5));
}
