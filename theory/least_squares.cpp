#include "theory/least_squares.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "tensor/ops.hpp"
#include "theory/checks.hpp"
#include "theory/linalg.hpp"

namespace theta::theory {

using detail::require_finite;

// Note [Least-squares modes]
// With x = U diag(s) V^T (rank r) and sigma_i = s_i^2 / n, the loss L(w) = 1/(2n) |x w - y|^2 has
// gradient V diag(sigma) V^T w - V diag(s / n) U^T y. In the coordinates a_i = v_i^T w this is
// da_i/dt = -sigma_i (a_i - c_i) with c_i = u_i^T y / s_i, and the null-space part
// P_null w = w - V V^T w has zero gradient. Hence:
// - gradient flow from zero: a_i(t) = (1 - e^{-t sigma_i}) c_i, always in the row space, with the
//   limit sum_i c_i v_i = x^+ y, the minimum-norm interpolant;
// - from w0: a_i(t) = c_i + e^{-t sigma_i} (v_i^T w0 - c_i) and P_null w(t) = P_null w0 for all t;
// - GD with step eta multiplies a_i - c_i by (1 - eta sigma_i) per step instead of
//   e^{-eta sigma_i}; for eta sigma_i <= 1/2 the gap per mode is at most
//   e^{-x} x eta sigma_i / 2 (1 + O(eta sigma_i)) |c_i| with x = k eta sigma_i, first order in eta;
// - ridge, argmin L + (lambda/2)|w|^2: a_i = sigma_i / (sigma_i + lambda) c_i.
// Under lambda = 1/t the gain ratio of mode i is (1 - e^{-x}) (1 + x) / x at x = t sigma_i. It is 1
// at x = 0 and at x = infinity and peaks at x = 1.79328 with value 1.298426 (Ali, Kolter and
// Tibshirani 2019 round it up to 1.2985). The variance of a mode scales with its gain squared and
// its bias ratio ((1 + x) e^{-x})^2 is at most 1, so the risk ratio of gradient flow to ridge is at
// most 1.298426^2 = 1.685909 (their 1.6862).

namespace {

void check_system(const char* op, const Tensor& x, const Tensor& y) {
  THETA_CHECK(x.defined() && y.defined() && x.dim() == 2 && y.dim() == 1 && x.size(0) == y.size(0) && x.size(0) > 0 &&
                  x.size(1) > 0,
              ShapeError, op, ": expected x:[n, d] and y:[n] with n, d > 0, got ",
              x.defined() ? shape_str(x.shape()) : "undefined", " and ",
              y.defined() ? shape_str(y.shape()) : "undefined");
}

void check_vector(const char* op, const char* name, const Tensor& w, std::int64_t size) {
  THETA_CHECK(w.defined() && w.dim() == 1 && w.size(0) == size, ShapeError, op, ": ", name, " must be [", size,
              "], got ", w.defined() ? shape_str(w.shape()) : "undefined");
}

void check_modes(const char* op, const LeastSquaresModes& modes) {
  THETA_CHECK(modes.v.defined() && modes.v.dim() == 2 && modes.sigma.defined() && modes.sigma.dim() == 1 &&
                  modes.coef.defined() && modes.sigma.size(0) == modes.v.size(1) &&
                  modes.coef.size(0) == modes.v.size(1) && modes.samples > 0,
              std::invalid_argument, op, ": modes must come from least_squares_modes");
}

// V diag(gains * coef): the estimator with the given gains.
Tensor combine(const LeastSquaresModes& modes, const Tensor& coordinates) {
  return matmul(modes.v, coordinates).contiguous();
}

}  // namespace

LeastSquaresModes least_squares_modes(const Tensor& x, const Tensor& y) {
  check_system("least_squares_modes", x, y);
  require_finite(x, "least_squares_modes", "x");
  require_finite(y, "least_squares_modes", "y");
  const Tensor x64 = x.to(DType::f64), y64 = y.to(DType::f64);
  const Svd d = svd(x64);
  const std::int64_t n = x.size(0);
  const double s_max = d.s.numel() > 0 ? d.s.at({0}) : 0.0;
  const double cutoff =
      static_cast<double>(std::max(x.size(0), x.size(1))) * std::numeric_limits<double>::epsilon() * s_max;
  std::int64_t rank = 0;
  while (rank < d.s.size(0) && d.s.at({rank}) > cutoff) ++rank;
  THETA_CHECK(rank > 0, std::invalid_argument, "least_squares_modes: x ", shape_str(x.shape()), " is zero");
  LeastSquaresModes modes;
  const Tensor s = d.s.slice(0, 0, rank);
  const Tensor u = d.u.slice(1, 0, rank);
  modes.v = d.v.slice(1, 0, rank).contiguous();
  modes.sigma = (theta::square(s) / static_cast<double>(n)).contiguous();
  modes.coef = (matmul(u.t(), y64) / s).contiguous();
  modes.samples = n;
  return modes;
}

Tensor min_norm_solution(const Tensor& x, const Tensor& y) {
  const LeastSquaresModes modes = least_squares_modes(x, y);
  return combine(modes, modes.coef);
}

Tensor null_space_component(const LeastSquaresModes& modes, const Tensor& w) {
  check_modes("null_space_component", modes);
  check_vector("null_space_component", "w", w, modes.v.size(0));
  const Tensor w64 = w.to(DType::f64);
  return (w64 - matmul(modes.v, matmul(modes.v.t(), w64))).contiguous();
}

Tensor null_space_projector(const LeastSquaresModes& modes) {
  check_modes("null_space_projector", modes);
  return (eye(modes.v.size(0)) - gram(modes.v)).contiguous();
}

Tensor spectral_solution(const LeastSquaresModes& modes, const Tensor& gains) {
  check_modes("spectral_solution", modes);
  check_vector("spectral_solution", "gains", gains, modes.sigma.size(0));
  return combine(modes, gains.to(DType::f64) * modes.coef);
}

Tensor gradient_flow_gains(const LeastSquaresModes& modes, double t) {
  check_modes("gradient_flow_gains", modes);
  require_finite(t, "gradient_flow_gains", "t");
  THETA_CHECK(t >= 0, std::invalid_argument, "gradient_flow_gains: need t >= 0, got ", t);
  // 1 - e^{-t sigma} = -expm1(-t sigma): exact for the slow modes where t sigma is tiny.
  return (-theta::expm1(modes.sigma * (-t))).contiguous();
}

Tensor ridge_gains(const LeastSquaresModes& modes, double lambda) {
  check_modes("ridge_gains", modes);
  require_finite(lambda, "ridge_gains", "lambda");
  THETA_CHECK(lambda > 0, std::invalid_argument, "ridge_gains: need lambda > 0, got ", lambda);
  return (modes.sigma / (modes.sigma + lambda)).contiguous();
}

Tensor gradient_flow_solution(const LeastSquaresModes& modes, double t, const Tensor& w0) {
  const Tensor from_zero = spectral_solution(modes, gradient_flow_gains(modes, t));
  if (!w0.defined()) return from_zero;
  check_vector("gradient_flow_solution", "w0", w0, modes.v.size(0));
  require_finite(w0, "gradient_flow_solution", "w0");
  // The row-space part of w0 decays like e^{-t sigma}; its null-space part never moves.
  const Tensor w64 = w0.to(DType::f64);
  const Tensor decay = theta::exp(modes.sigma * (-t));
  return (from_zero + matmul(modes.v, decay * matmul(modes.v.t(), w64)) + null_space_component(modes, w64))
      .contiguous();
}

Tensor ridge_solution(const LeastSquaresModes& modes, double lambda) {
  return spectral_solution(modes, ridge_gains(modes, lambda));
}

double shrinkage_ratio(double x) {
  require_finite(x, "shrinkage_ratio", "x");
  THETA_CHECK(x >= 0, std::invalid_argument, "shrinkage_ratio: need x >= 0, got ", x);
  if (x == 0) return 1.0;
  return -std::expm1(-x) * (1.0 + x) / x;
}

double spectral_risk(const LeastSquaresModes& modes, const Tensor& gains, const Tensor& w_true, double noise_std) {
  check_modes("spectral_risk", modes);
  check_vector("spectral_risk", "gains", gains, modes.sigma.size(0));
  check_vector("spectral_risk", "w_true", w_true, modes.v.size(0));
  require_finite(noise_std, "spectral_risk", "noise_std");
  const Tensor g = gains.to(DType::f64);
  const Tensor along = matmul(modes.v.t(), w_true.to(DType::f64));
  const double null_part = theta::sum(theta::square(null_space_component(modes, w_true))).item<double>();
  const double bias = theta::sum(theta::square((1.0 - g) * along)).item<double>() + null_part;
  const double variance =
      theta::sum(theta::square(g) / (modes.sigma * static_cast<double>(modes.samples))).item<double>();
  return bias + noise_std * noise_std * variance;
}

double linear_estimator_risk(const Tensor& a, const Tensor& x, const Tensor& w_true, double noise_std) {
  THETA_CHECK(
      a.defined() && x.defined() && a.dim() == 2 && x.dim() == 2 && a.size(0) == x.size(1) && a.size(1) == x.size(0),
      ShapeError, "linear_estimator_risk: expected a:[d, n] and x:[n, d], got ",
      a.defined() ? shape_str(a.shape()) : "undefined", " and ", x.defined() ? shape_str(x.shape()) : "undefined");
  check_vector("linear_estimator_risk", "w_true", w_true, x.size(1));
  require_finite(noise_std, "linear_estimator_risk", "noise_std");
  const Tensor a64 = a.to(DType::f64), w = w_true.to(DType::f64);
  const Tensor bias = matmul(a64, matmul(x.to(DType::f64), w)) - w;
  return theta::sum(theta::square(bias)).item<double>() +
         noise_std * noise_std * theta::sum(theta::square(a64)).item<double>();
}

}  // namespace theta::theory
