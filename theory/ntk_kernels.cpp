// Kernel-level tools that need no model: NTK regression (the linearised model after gradient
// flow) and the analytic infinite-width NNGP/NTK of ReLU and erf MLPs.

#include <algorithm>
#include <cmath>
#include <numbers>

#include "tensor/ops.hpp"
#include "theory/linalg.hpp"
#include "theory/ntk.hpp"

namespace theta::theory {

Tensor ntk_regression(const Tensor& k_test_train, const Tensor& k_train_train, const Tensor& y_train,
                      const Tensor& f0_train, const Tensor& f0_test, double eta, double t) {
  const std::int64_t n = k_train_train.size(0);
  THETA_CHECK(k_train_train.dim() == 2 && k_train_train.size(1) == n, ShapeError,
              "ntk_regression: K(X, X) must be square, got ", shape_str(k_train_train.shape()));
  THETA_CHECK(k_test_train.dim() == 2 && k_test_train.size(1) == n, ShapeError, "ntk_regression: K(x, X) ",
              shape_str(k_test_train.shape()), " does not match K(X, X) ", shape_str(k_train_train.shape()));
  THETA_CHECK(y_train.dim() == 2 && y_train.size(0) == n && f0_train.shape() == y_train.shape(), ShapeError,
              "ntk_regression: Y ", shape_str(y_train.shape()), " and f0(X) ", shape_str(f0_train.shape()),
              " must both be [", n, ", k]");
  THETA_CHECK(f0_test.dim() == 2 && f0_test.size(0) == k_test_train.size(0) && f0_test.size(1) == y_train.size(1),
              ShapeError, "ntk_regression: f0(x) ", shape_str(f0_test.shape()), " must be [",
              k_test_train.size(0), ", ", y_train.size(1), "]");
  const SymmetricEigen eig = eigh(k_train_train);
  // (1 - exp(-eta lambda t)) / lambda, with its limit eta t for lambda -> 0 (and lambda <= 0).
  std::vector<double> lam = to_vector(eig.values), filt(lam.size());
  for (std::size_t i = 0; i < lam.size(); ++i)
    filt[i] = lam[i] > 1e-300 ? -std::expm1(-eta * lam[i] * t) / lam[i] : eta * t;
  const Tensor filter = apply_spectral(eig, from_vector(filt));  // K^{-1} (I - e^{-eta K t})
  return f0_test.to(DType::f64) +
         matmul(k_test_train.to(DType::f64), matmul(filter, (y_train - f0_train).to(DType::f64)));
}

AnalyticKernels analytic_ntk(const Tensor& x1_in, const Tensor& x2_in, std::int64_t linear_layers,
                             nn::ActivationKind activation, double sigma_w, double sigma_b) {
  THETA_CHECK(x1_in.dim() == 2 && x2_in.dim() == 2 && x1_in.size(1) == x2_in.size(1), ShapeError,
              "analytic_ntk: inputs ", shape_str(x1_in.shape()), " and ", shape_str(x2_in.shape()),
              " must be [n1, d] and [n2, d]");
  THETA_CHECK(linear_layers >= 1, std::invalid_argument, "analytic_ntk: need at least one linear layer");
  THETA_CHECK(activation == nn::ActivationKind::relu || activation == nn::ActivationKind::erf,
              std::invalid_argument, "analytic_ntk: supports relu and erf, got ", nn::activation_name(activation));
  const Tensor x1 = x1_in.to(DType::f64), x2 = x2_in.to(DType::f64);
  const double d = static_cast<double>(x1.size(1));
  const double w2 = sigma_w * sigma_w, b2 = sigma_b * sigma_b;
  // Covariances at the first pre-activation: cross [n1, n2] and the diagonals [n1], [n2].
  Tensor cross = matmul(x1, x2.t()) * (w2 / d) + b2;
  Tensor diag1 = sum(square(x1), {1}) * (w2 / d) + b2;
  Tensor diag2 = sum(square(x2), {1}) * (w2 / d) + b2;
  Tensor ntk = cross;
  const double pi = std::numbers::pi;
  for (std::int64_t l = 1; l < linear_layers; ++l) {
    const Tensor norms = sqrt(diag1.unsqueeze(1) * diag2.unsqueeze(0));  // sqrt(Sxx Sx'x')
    Tensor next_cross, dsigma, next1, next2;
    if (activation == nn::ActivationKind::relu) {
      const Tensor cosine = clamp(cross / norms, -1.0, 1.0);
      std::vector<double> c = to_vector(cosine), th(c.size());
      for (std::size_t i = 0; i < c.size(); ++i) th[i] = std::acos(c[i]);
      const Tensor angle = from_vector(th, cosine.shape());
      next_cross = norms * (sin(angle) + (pi - angle) * cos(angle)) * (w2 / (2 * pi)) + b2;
      dsigma = (pi - angle) * (w2 / (2 * pi));
      next1 = diag1 * (w2 / 2) + b2;  // theta = 0: sin 0 + pi cos 0 = pi
      next2 = diag2 * (w2 / 2) + b2;
    } else {
      const Tensor g1 = diag1 * 2.0 + 1.0, g2 = diag2 * 2.0 + 1.0;
      const Tensor denom = g1.unsqueeze(1) * g2.unsqueeze(0);
      std::vector<double> r = to_vector(cross * 2.0 / sqrt(denom)), as(r.size());
      for (std::size_t i = 0; i < r.size(); ++i) as[i] = std::asin(std::clamp(r[i], -1.0, 1.0));
      next_cross = from_vector(as, cross.shape()) * (w2 * 2.0 / pi) + b2;
      dsigma = rsqrt(denom - square(cross) * 4.0) * (w2 * 4.0 / pi);
      auto self = [&](const Tensor& diag) {
        std::vector<double> v = to_vector(diag), out(v.size());
        for (std::size_t i = 0; i < v.size(); ++i) out[i] = w2 * 2.0 / pi * std::asin(2 * v[i] / (1 + 2 * v[i])) + b2;
        return from_vector(out, diag.shape());
      };
      next1 = self(diag1);
      next2 = self(diag2);
    }
    ntk = next_cross + ntk * dsigma;
    cross = next_cross;
    diag1 = next1;
    diag2 = next2;
  }
  return {cross, ntk};
}

}  // namespace theta::theory
