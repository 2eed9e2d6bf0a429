#include "theory/diagonal_net.hpp"

#include <cmath>
#include <limits>
#include <sstream>
#include <vector>

#include "tensor/ops.hpp"
#include "theory/checks.hpp"
#include "theory/linalg.hpp"

namespace theta::theory {

using detail::require_finite;

// Note [Diagonal net invariant]
// With r = x beta - y and g = x^T r / n, L = 1/(2n) |r|^2 has dL/du = 2 u g and dL/dv = -2 v g.
// Gradient flow from u = v = alpha therefore gives u = alpha e^{-2G}, v = alpha e^{2G} with
// G(t) = int_0^t g = x^T int_0^t r / n, so
//   beta = u^2 - v^2 = -2 alpha^2 sinh(4G),  asinh(beta / (2 alpha^2)) = -4G in the row space of x
// at every t. At an interpolating limit (x beta = y) this is exactly the KKT condition of
// min Q_alpha(beta) s.t. x beta = y, because grad Q_alpha(beta) = asinh(beta / (2 alpha^2)).
// GD with step eta breaks the invariant at first order: the step multiplies u by (1 - 2 eta g) and
// v by (1 + 2 eta g), so u v = alpha^2 prod (1 - 4 eta^2 g^2) drifts by eta^2 per step, summed over
// O(1/eta) steps: an O(eta) part of asinh(beta / (2 alpha^2)) outside the row space.
// The curvature of L in (u, v) is about 8 alpha^2 times the top eigenvalue of x^T x / n once
// |beta| << alpha^2, so a stable step needs eta ~ 1 / alpha^2 in the kernel regime.

namespace {

void check_alpha(const char* op, double alpha) {
  require_finite(alpha, op, "alpha");
  THETA_CHECK(alpha > 0, std::invalid_argument, op, ": need alpha > 0, got ", alpha);
}

void check_beta(const char* op, const Tensor& beta) {
  THETA_CHECK(beta.defined() && beta.dim() == 1, ShapeError, op, ": beta must be [d], got ",
              beta.defined() ? shape_str(beta.shape()) : "undefined");
  require_finite(beta, op, "beta");
}

}  // namespace

DiagonalNet::DiagonalNet(std::int64_t features, double alpha) : features_(features), alpha_(alpha) {
  THETA_CHECK(features > 0, ShapeError, "DiagonalNet: features must be positive, got ", features);
  check_alpha("DiagonalNet", alpha);
  register_parameter("u", full({features}, alpha));
  register_parameter("v", full({features}, alpha));
}

nn::Var DiagonalNet::forward(const nn::Var& x) {
  THETA_CHECK(x.dim() == 2 && x.size(1) == features_, ShapeError, "DiagonalNet(", features_, "): input ",
              shape_str(x.shape()), " is not [n, ", features_, "]");
  return autograd::matmul(x, u() * u() - v() * v());
}

std::string DiagonalNet::describe() const {
  std::ostringstream out;
  out << "DiagonalNet(" << features_ << ", alpha=" << alpha_ << ")";
  return out.str();
}

Tensor DiagonalNet::beta() const {
  const Tensor& uu = u().value();
  const Tensor& vv = v().value();
  return (uu * uu - vv * vv).contiguous();
}

double woodworth_potential(const Tensor& beta, double alpha) {
  check_beta("woodworth_potential", beta);
  check_alpha("woodworth_potential", alpha);
  const double a2 = alpha * alpha;
  double total = 0.0;
  for (double b : to_vector(beta)) {
    const double z = b / a2;
    // q(z) = z asinh(z/2) - (sqrt(4 + z^2) - 2), the second term written without cancellation
    // so that small z keep their relative accuracy (q(z) ~ z^2 / 4).
    total += z * std::asinh(z / 2.0) - z * z / (std::hypot(2.0, z) + 2.0);
  }
  return a2 * total;
}

Tensor woodworth_mirror(const Tensor& beta, double alpha) {
  check_beta("woodworth_mirror", beta);
  check_alpha("woodworth_mirror", alpha);
  std::vector<double> out;
  for (double b : to_vector(beta)) out.push_back(std::asinh(b / (2.0 * alpha * alpha)));
  return from_vector(out);
}

Tensor woodworth_minimizer(const Tensor& x, const Tensor& y, double alpha, const WoodworthOptions& options) {
  THETA_CHECK(x.defined() && y.defined() && x.dim() == 2 && y.dim() == 1 && x.size(0) == y.size(0) && x.size(0) > 0,
              ShapeError, "woodworth_minimizer: expected x:[n, d] and y:[n], got ",
              x.defined() ? shape_str(x.shape()) : "undefined", " and ",
              y.defined() ? shape_str(y.shape()) : "undefined");
  check_alpha("woodworth_minimizer", alpha);
  require_finite(x, "woodworth_minimizer", "x");
  require_finite(y, "woodworth_minimizer", "y");
  const Tensor x64 = x.to(DType::f64), y64 = y.to(DType::f64);
  const double scale = 2.0 * alpha * alpha;
  const double y_norm = theta::norm(y64).item<double>();
  // The dual D(lambda) = sum_i scale cosh(a_i) - y^T lambda with a = x^T lambda; grad D = x beta - y.
  const auto dual = [&](const Tensor& lambda, const Tensor& a) {
    double total = 0.0;
    for (double ai : to_vector(a)) total += scale * std::cosh(ai);
    return total - theta::dot(y64, lambda).item<double>();
  };
  const auto map = [&](const Tensor& a, double (*f)(double)) {
    std::vector<double> out;
    for (double ai : to_vector(a)) out.push_back(scale * f(ai));
    return from_vector(out);
  };
  Tensor lambda = zeros({x.size(0)});
  Tensor a = zeros({x.size(1)});
  double value = dual(lambda, a);
  for (std::int64_t it = 0; it < options.max_iterations; ++it) {
    const Tensor beta = map(a, [](double v) { return std::sinh(v); });
    const Tensor residual = matmul(x64, beta) - y64;
    if (theta::norm(residual).item<double>() <= options.tolerance * y_norm) return beta;
    const Tensor curvature = map(a, [](double v) { return std::cosh(v); });
    const Tensor hessian = matmul(x64 * curvature.unsqueeze(0), x64.t());
    const Tensor direction = solve(hessian, residual);
    const double decrement = theta::dot(residual, direction).item<double>();
    // Backtracking (Armijo). Near the optimum D's decrease drowns in its rounding, so a full step
    // that halves the residual is taken as it stands (Newton's quadratic convergence).
    const double residual_norm = theta::norm(residual).item<double>();
    double step = 1.0;
    for (; step > 1e-12; step *= 0.5) {
      const Tensor trial = lambda - direction * step;
      const Tensor trial_a = matmul(x64.t(), trial);
      const double trial_value = dual(trial, trial_a);
      const bool armijo = trial_value <= value - 1e-4 * step * decrement;
      const bool converging =
          step == 1.0 &&
          theta::norm(matmul(x64, map(trial_a, [](double v) { return std::sinh(v); })) - y64).item<double>() <=
              0.5 * residual_norm;
      if (armijo || converging) {
        lambda = trial;
        a = trial_a;
        value = trial_value;
        break;
      }
    }
    THETA_CHECK(step > 1e-12, std::invalid_argument, "woodworth_minimizer: Newton's line search failed at step ", it,
                " with |x beta - y| / |y| = ", residual_norm / y_norm, " (decrement ", decrement, ", dual ", value,
                ", alpha = ", alpha, "); is x ", shape_str(x.shape()), " of full row rank?");
  }
  THETA_THROW(std::invalid_argument, "woodworth_minimizer: no interpolant to tolerance ", options.tolerance, " after ",
              options.max_iterations, " Newton steps for x ", shape_str(x.shape()), ", alpha = ", alpha);
}

}  // namespace theta::theory
