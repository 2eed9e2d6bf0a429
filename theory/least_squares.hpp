#pragma once
// Least squares in eigenmodes: the minimum-norm solution gradient descent from zero finds, the
// null-space component it never touches, and the gradient-flow and ridge paths whose estimation
// risks Ali, Kolter and Tibshirani (2019) compare under t = 1/lambda.
//
// Conventions (Note [Least-squares modes] in least_squares.cpp):
// - data x:[n, d] (rows are samples), targets y:[n]; loss L(w) = 1/(2n) |x w - y|^2, so the
//   gradient is (x^T x / n) w - x^T y / n and gradient flow runs dw/dt = -grad L;
// - x = U diag(s) V^T (thin SVD, rank r); sigma_i = s_i^2 / n are the nonzero eigenvalues of
//   x^T x / n and c_i = u_i^T y / s_i the coordinates of x^+ y along v_i;
// - a spectral estimator has gains g_i in [0, 1]: w = sum_i g_i c_i v_i.

#include <cstdint>

#include "tensor/tensor.hpp"

namespace theta::theory {

/// The nonzero eigenmodes of x^T x / n for data x:[n, d] and targets y:[n].
struct LeastSquaresModes {
  Tensor sigma{};            // [r], nonzero eigenvalues of x^T x / n, descending
  Tensor v{};                // [d, r], their unit eigenvectors (a basis of the row space of x)
  Tensor coef{};             // [r], c_i = v_i^T x^+ y
  std::int64_t samples = 0;  // n
};

/// The modes of x:[n, d], y:[n] (float64). Singular values below max(n, d) * eps * s_max count
/// as zero (NumPy's pinv rule), so r is the numerical rank. Throws ShapeError on other shapes.
LeastSquaresModes least_squares_modes(const Tensor& x, const Tensor& y);

/// x^+ y, the minimum-norm minimiser of |x w - y|: x:[n, d], y:[n] -> [d].
Tensor min_norm_solution(const Tensor& x, const Tensor& y);

/// P_null w = w - V V^T w, the component of w:[d] orthogonal to the row space of the data -> [d].
Tensor null_space_component(const LeastSquaresModes& modes, const Tensor& w);

/// The projector I - V V^T onto the null space of the data: -> [d, d].
Tensor null_space_projector(const LeastSquaresModes& modes);

/// w = sum_i gains_i c_i v_i for gains:[r] -> [d].
Tensor spectral_solution(const LeastSquaresModes& modes, const Tensor& gains);

/// Gradient-flow gains 1 - exp(-t sigma_i) at time t >= 0 -> [r].
Tensor gradient_flow_gains(const LeastSquaresModes& modes, double t);

/// Ridge gains sigma_i / (sigma_i + lambda) for the objective L(w) + (lambda / 2) |w|^2,
/// lambda > 0 -> [r].
Tensor ridge_gains(const LeastSquaresModes& modes, double lambda);

/// Gradient flow on L from w0:[d] (undefined: from zero) at time t >= 0:
/// w(t) = x^+ y + V e^{-t diag(sigma)} V^T (w0 - x^+ y) + P_null w0 -> [d]. As t -> infinity this
/// is x^+ y + P_null w0.
Tensor gradient_flow_solution(const LeastSquaresModes& modes, double t, const Tensor& w0 = {});

/// The ridge solution argmin L(w) + (lambda / 2) |w|^2 for lambda > 0 -> [d].
Tensor ridge_solution(const LeastSquaresModes& modes, double lambda);

/// The gradient-flow over ridge gain of one mode at x = t sigma under lambda = 1/t:
/// (1 - e^{-x}) (1 + x) / x for x > 0, and its limit 1 at x = 0. It lies in [1, 1.298426], the maximum at
/// x = 1.79328.
double shrinkage_ratio(double x);

/// Estimation risk E |w_hat - w_true|^2 of the spectral estimator with gains:[r] when
/// y = x w_true + noise, noise ~ N(0, noise_std^2 I): bias sum_i (1 - g_i)^2 (v_i^T w_true)^2 +
/// |P_null w_true|^2 plus variance noise_std^2 sum_i g_i^2 / (n sigma_i). w_true:[d].
double spectral_risk(const LeastSquaresModes& modes, const Tensor& gains, const Tensor& w_true, double noise_std);

/// The same risk for any linear estimator w_hat = a y, a:[d, n], on data x:[n, d]:
/// |a x w_true - w_true|^2 + noise_std^2 |a|_F^2.
double linear_estimator_risk(const Tensor& a, const Tensor& x, const Tensor& w_true, double noise_std);

}  // namespace theta::theory
