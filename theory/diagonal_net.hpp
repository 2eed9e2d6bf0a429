#pragma once
// Diagonal linear networks and the kernel and rich regimes (Woodworth, Gunasekar, Lee, Moroshko,
// Savarese, Golan, Soudry and Srebro 2020): beta = u * u - v * v trained from u = v = alpha on
// least squares converges to the interpolant minimising Woodworth's potential Q_alpha, which tends
// to the l1 norm as alpha -> 0 (rich regime, sparse solutions) and to the l2 norm as
// alpha -> infinity (kernel regime, x^+ y).
//
// Conventions (Note [Diagonal net invariant] in diagonal_net.cpp): data x:[n, d], y:[n]; loss
// L = 1/(2n) |x beta - y|^2; Q_alpha(beta) = alpha^2 sum_i q(beta_i / alpha^2) with
// q(z) = 2 - sqrt(4 + z^2) + z asinh(z / 2), whose gradient is asinh(beta / (2 alpha^2)).

#include <cstdint>
#include <string>

#include "nn/module.hpp"

namespace theta::theory {

/// beta = u * u - v * v (elementwise), prediction x beta: x:[n, d] -> [n]. Parameters "u" and "v"
/// ([d], float64), both initialised to alpha.
class DiagonalNet : public nn::Cloneable<DiagonalNet> {
 public:
  /// features = d > 0; alpha > 0 and finite, else std::invalid_argument.
  DiagonalNet(std::int64_t features, double alpha);
  nn::Var forward(const nn::Var& x) override;
  std::string describe() const override;

  const nn::Var& u() const { return param(0); }
  const nn::Var& v() const { return param(1); }
  /// The effective linear predictor u * u - v * v: [d].
  Tensor beta() const;
  double alpha() const { return alpha_; }
  std::int64_t features() const { return features_; }

 private:
  std::int64_t features_;
  double alpha_;
};

/// Woodworth's potential Q_alpha(beta) = alpha^2 sum_i q(beta_i / alpha^2): beta:[d] -> scalar.
double woodworth_potential(const Tensor& beta, double alpha);

/// Its gradient, the mirror map asinh(beta / (2 alpha^2)): beta:[d] -> [d]. Gradient flow of a
/// DiagonalNet from u = v = alpha keeps it in the row space of x.
Tensor woodworth_mirror(const Tensor& beta, double alpha);

struct WoodworthOptions {
  double tolerance = 1e-12;           // stop when |x beta - y| <= tolerance * |y|
  std::int64_t max_iterations = 500;  // Newton steps before giving up
};

/// The minimiser of Q_alpha(beta) subject to x beta = y, where the diagonal net's gradient flow
/// converges: beta = 2 alpha^2 sinh(x^T lambda) with lambda:[n] found by damped Newton on the
/// convex dual sum_i 2 alpha^2 cosh((x^T lambda)_i) - y^T lambda. x:[n, d] of full row rank,
/// y:[n] -> [d]. Throws ShapeError on bad shapes and std::invalid_argument when Newton does not
/// reach the tolerance (e.g. x not of full row rank with y outside its range).
Tensor woodworth_minimizer(const Tensor& x, const Tensor& y, double alpha, const WoodworthOptions& options = {});

}  // namespace theta::theory
