#pragma once
// The hard-margin SVM through the origin and the direction logistic regression converges to on
// separable data (Soudry, Hoffer, Nacson, Gunasekar and Srebro 2018): gradient descent on the
// logistic loss gives w(k) = w_hat ln k + w_tilde + o(1), with w_hat the max-margin separator and
// w_tilde fixed on the support vectors by their dual variables (Note [Soudry offset] in
// max_margin.cpp).
//
// Conventions: samples x:[n, d] with labels y:[n] in {-1, +1}; z_n = y_n x_n; no bias term.

#include <cstdint>

#include "tensor/tensor.hpp"

namespace theta::theory {

/// z_n = y_n x_n: x:[n, d], y:[n] with every label -1 or +1 -> [n, d]. Throws std::invalid_argument
/// naming the first other label.
Tensor signed_samples(const Tensor& x, const Tensor& y);

struct MaxMarginOptions {
  double tolerance = 1e-12;           // stop when every KKT residual is below this
  std::int64_t max_sweeps = 1000000;  // passes over the samples before giving up
};

struct MaxMarginSolution {
  Tensor w{};               // [d], argmin |w|^2 subject to z_n^T w >= 1 for every n
  Tensor alpha{};           // [n], dual variables >= 0 with w = sum_n alpha_n z_n
  double kkt_residual = 0;  // max_n of |1 - z_n^T w| where alpha_n > 0, else max(0, 1 - z_n^T w)
  std::int64_t sweeps = 0;  // passes of coordinate ascent used
};

/// The hard-margin SVM through the origin for z:[n, d] (rows z_n = y_n x_n), by coordinate ascent on
/// the dual max_alpha>=0 sum_n alpha_n - |sum_n alpha_n z_n|^2 / 2. Throws std::invalid_argument when
/// a row is zero, or when the KKT residual is still above options.tolerance after max_sweeps
/// (the data are not separable through the origin, or too ill-conditioned for the tolerance).
MaxMarginSolution max_margin_svm(const Tensor& z, const MaxMarginOptions& options = {});

/// The indices (int64 [s]) of the support vectors: alpha_n > relative_threshold * max_n alpha_n.
Tensor support_vectors(const Tensor& alpha, double relative_threshold = 1e-8);

/// Soudry's offset for GD with step eta on the summed logistic loss sum_n ln(1 + e^{-z_n^T w})
/// (for the mean over n samples pass eta / n): the minimum-norm w_tilde:[d] with
/// z_s^T w_tilde = ln(eta / alpha_s) on every support vector s. z:[n, d], alpha:[n] from
/// max_margin_svm. Components of w_tilde orthogonal to the support vectors are not fixed by the
/// theory (they depend on the initialisation) and are returned as zero.
Tensor soudry_offset(const Tensor& z, const Tensor& alpha, double eta, double relative_threshold = 1e-8);

/// The matrix M = sum_n alpha_n z_n z_n^T:[d, d] of the linearised remainder dynamics: near the
/// expansion, delta(k) = w(k) - w_hat ln k - w_tilde obeys d delta / d ln k = -M delta, so along an
/// eigenvector of M with eigenvalue mu it decays like k^-mu. w_hat is an eigenvector with mu = 1.
/// z:[n, d], alpha:[n] -> [d, d].
Tensor soudry_decay_matrix(const Tensor& z, const Tensor& alpha);

}  // namespace theta::theory
