// Kernel-level tools that need no model: NTK regression (the linearised model after gradient
// flow) and the analytic infinite-width NNGP/NTK of ReLU and erf MLPs.

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <utility>

#include "tensor/ops.hpp"
#include "theory/checks.hpp"
#include "theory/linalg.hpp"
#include "theory/ntk.hpp"

namespace theta::theory {

Tensor ntk_regression(const NtkRegressionInputs& in) {
  const std::pair<const Tensor*, const char*> fields[] = {{&in.k_test_train, "k_test_train"},
                                                          {&in.k_train_train, "k_train_train"},
                                                          {&in.y_train, "y_train"},
                                                          {&in.f0_train, "f0_train"},
                                                          {&in.f0_test, "f0_test"}};
  for (const auto& [tensor, name] : fields)
    THETA_CHECK(tensor->defined(), std::invalid_argument, "ntk_regression: ", name,
                " is undefined (every tensor of NtkRegressionInputs must be set)");
  const Tensor &k_test_train = in.k_test_train, &k_train_train = in.k_train_train, &y_train = in.y_train,
               &f0_train = in.f0_train, &f0_test = in.f0_test;
  THETA_CHECK(k_train_train.dim() == 2 && k_train_train.size(0) == k_train_train.size(1), ShapeError,
              "ntk_regression: k_train_train = K(X, X) must be square, got ", shape_str(k_train_train.shape()));
  const std::int64_t n = k_train_train.size(0);
  THETA_CHECK(k_test_train.dim() == 2 && k_test_train.size(1) == n, ShapeError,
              "ntk_regression: k_test_train = K(x, X) ", shape_str(k_test_train.shape()),
              " does not match k_train_train = K(X, X) ", shape_str(k_train_train.shape()));
  THETA_CHECK(y_train.dim() == 2 && y_train.size(0) == n && f0_train.shape() == y_train.shape(), ShapeError,
              "ntk_regression: y_train = Y ", shape_str(y_train.shape()), " and f0_train = f0(X) ",
              shape_str(f0_train.shape()), " must both be [", n, ", k]");
  THETA_CHECK(f0_test.dim() == 2 && f0_test.size(0) == k_test_train.size(0) && f0_test.size(1) == y_train.size(1),
              ShapeError, "ntk_regression: f0_test = f0(x) ", shape_str(f0_test.shape()), " must be [",
              k_test_train.size(0), ", ", y_train.size(1), "]");
  const bool converged = in.t == std::numeric_limits<double>::infinity();
  detail::require_finite(in.eta, "ntk_regression", "eta");
  THETA_CHECK(converged || std::isfinite(in.t), std::invalid_argument,
              "ntk_regression: t must be finite or +infinity (the converged prediction), got ", in.t);
  THETA_CHECK(!converged || in.eta > 0, std::invalid_argument,
              "ntk_regression: t = infinity needs eta > 0, got eta = ", in.eta);
  THETA_CHECK(!in.discrete || converged || (in.t >= 0 && in.t == std::floor(in.t)), std::invalid_argument,
              "ntk_regression: discrete gradient descent needs a whole number of steps t >= 0, got ", in.t);
  detail::require_finite(k_train_train, "ntk_regression", "k_train_train = K(X, X)");
  detail::require_finite(k_test_train, "ntk_regression", "k_test_train = K(x, X)");
  detail::require_finite(y_train, "ntk_regression", "y_train = Y");
  detail::require_finite(f0_train, "ntk_regression", "f0_train = f0(X)");
  detail::require_finite(f0_test, "ntk_regression", "f0_test = f0(x)");
  const SymmetricEigen eig = eigh(k_train_train);
  // (1 - exp(-eta lambda t)) / lambda, with its limit eta t for lambda -> 0 (and lambda <= 0);
  // 1 / lambda at t = infinity, where every eigenvalue must be clearly positive.
  std::vector<double> lam = to_vector(eig.values), filt(lam.size());
  const double largest = lam.empty() ? 0.0 : std::max(std::abs(lam.front()), std::abs(lam.back()));
  for (std::size_t i = 0; i < lam.size(); ++i) {
    if (converged) {
      THETA_CHECK(lam[i] > 1e-12 * largest, std::invalid_argument,
                  "ntk_regression: t = infinity needs a positive definite k_train_train = K(X, X), but it has "
                  "eigenvalue ", lam[i], " (largest ", largest, "); give a finite t");
      THETA_CHECK(!in.discrete || in.eta * lam[i] < 2.0, std::invalid_argument,
                  "ntk_regression: gradient descent with eta = ", in.eta, " diverges along eigenvalue ", lam[i],
                  " of K(X, X) (eta lambda must stay below 2); give a finite t or a smaller eta");
      filt[i] = 1.0 / lam[i];
    } else if (lam[i] <= 1e-300) {
      filt[i] = in.eta * in.t;
    } else if (in.discrete) {
      // (1 - (1 - eta lambda)^t) / lambda; through log1p while the base is positive, so small
      // eta lambda keeps its digits.
      const double step = in.eta * lam[i];
      filt[i] = (step < 1.0 ? -std::expm1(in.t * std::log1p(-step)) : 1.0 - std::pow(1.0 - step, in.t)) / lam[i];
    } else {
      filt[i] = -std::expm1(-in.eta * lam[i] * in.t) / lam[i];
    }
  }
  const Tensor filter = apply_spectral(eig, from_vector(filt));  // K^{-1} (I - e^{-eta K t}) or (I - eta K)^t
  return f0_test.to(DType::f64) +
         matmul(k_test_train.to(DType::f64), matmul(filter, (y_train - f0_train).to(DType::f64)));
}

Tensor ntk_regression(const Tensor& k_test_train, const Tensor& k_train_train, const Tensor& y_train,
                      const Tensor& f0_train, const Tensor& f0_test, double eta, double t) {
  // Gradient flow (discrete = false).
  return ntk_regression({.k_test_train = k_test_train,
                         .k_train_train = k_train_train,
                         .y_train = y_train,
                         .f0_train = f0_train,
                         .f0_test = f0_test,
                         .eta = eta,
                         .t = t});
}

namespace {

// Note [Arc-cosine kernel by angles]
// The ReLU recursion needs the angle theta between two pre-activation vectors. acos of
// Sigma_xy / sqrt(Sigma_xx Sigma_yy) loses half the digits near cos = +-1 (an error of eps in the
// cosine is an error of sqrt(eps) in theta: 7e-9 relative in the depth-4 NTK of nearly collinear
// inputs) and is 0/0 for a zero input without bias. theta is therefore carried from layer to
// layer as atan2(sqrt(det), Sigma_xy) with det = Sigma_xx Sigma_yy - Sigma_xy^2 computed without
// cancellation:
//  - first layer, inputs x~ = (sigma_w x / sqrt(d), sigma_b): theta from the Gram entries when
//    cos^2 < 0.99 (det has no cancellation there: theta to ~1e-14), else by Kahan's formula
//    2 atan2(| |y~| x~ - |x~| y~ |, | |y~| x~ + |x~| y~ |), accurate at angles near 0 and pi
//    (one O(d) pass per such pair);
//  - next layer, with a = sigma_w^2 / (2 pi), r = sqrt(Sigma_xx Sigma_yy),
//    J = sin theta + (pi - theta) cos theta and pi - J = (pi - theta)(1 - cos theta) +
//    (theta - sin theta), both terms evaluated without cancellation:
//      Sigma'_xy = a r J + sigma_b^2,   Sigma'_xx = a pi Sigma_xx + sigma_b^2,
//      det' = a^2 r^2 (pi - J)(pi + J) + a sigma_b^2 (pi (sqrt Sigma_xx - sqrt Sigma_yy)^2 + 2 r (pi - J)),
//    a sum of non-negative terms. A zero input without bias has r = 0 and det = 0: theta =
//    atan2(0, 0) = 0, and every term it multiplies is 0, as in the exact kernel.

constexpr double kPi = std::numbers::pi;

// theta - sin theta for theta in [0, pi], accurate near 0 (Taylor series below 0.5).
double theta_minus_sin(double theta) {
  if (theta >= 0.5) return theta - std::sin(theta);
  const double t2 = theta * theta;
  double term = theta * t2 / 6.0, sum = 0.0;
  for (int k = 1; k < 12 && term != 0.0; ++k) {  // term_k = (-1)^(k+1) theta^(2k+1) / (2k+1)!
    sum += term;
    term *= -t2 / ((2.0 * k + 2.0) * (2.0 * k + 3.0));
  }
  return sum;
}

// pi - J(theta) = (pi - theta)(1 - cos theta) + (theta - sin theta), J = sin + (pi - theta) cos.
double pi_minus_j(double theta) {
  const double half = std::sin(theta / 2);
  return (kPi - theta) * 2.0 * half * half + theta_minus_sin(theta);
}

// The angle between rows i of a:[n1, d] and j of b:[n2, d] by Kahan's formula.
double kahan_angle(const double* a, const double* b, std::int64_t d) {
  double na = 0.0, nb = 0.0;
  for (std::int64_t k = 0; k < d; ++k) na += a[k] * a[k], nb += b[k] * b[k];
  na = std::sqrt(na), nb = std::sqrt(nb);
  double diff = 0.0, sum = 0.0;
  for (std::int64_t k = 0; k < d; ++k) {
    const double u = nb * a[k], v = na * b[k];
    diff += (u - v) * (u - v), sum += (u + v) * (u + v);
  }
  return 2.0 * std::atan2(std::sqrt(diff), std::sqrt(sum));
}

// Rows of x scaled by sigma_w / sqrt(d), with sigma_b appended: the first layer's Gram matrix of
// these is Sigma^1.
Tensor augmented_inputs(const Tensor& x, double sigma_w, double sigma_b) {
  const double d = static_cast<double>(x.size(1));
  return concat({x * (sigma_w / std::sqrt(d)), full({x.size(0), 1}, sigma_b, DType::f64)}, 1).contiguous();
}

AnalyticKernels relu_kernels(const Tensor& x1, const Tensor& x2, std::int64_t linear_layers, double sigma_w,
                             double sigma_b) {
  const Tensor a1 = augmented_inputs(x1, sigma_w, sigma_b), a2 = augmented_inputs(x2, sigma_w, sigma_b);
  const std::int64_t n1 = a1.size(0), n2 = a2.size(0), d = a1.size(1);
  std::vector<double> cross = to_vector(matmul(a1, a2.t()));
  std::vector<double> diag1 = to_vector(sum(square(a1), {1})), diag2 = to_vector(sum(square(a2), {1}));
  std::vector<double> angle(cross.size());
  for (std::int64_t i = 0; i < n1; ++i)
    for (std::int64_t j = 0; j < n2; ++j) {
      const std::size_t ij = static_cast<std::size_t>(i * n2 + j);
      const double rr = diag1[static_cast<std::size_t>(i)] * diag2[static_cast<std::size_t>(j)];
      const double c = cross[ij];
      angle[ij] = c * c < 0.99 * rr ? std::atan2(std::sqrt(rr - c * c), c)
                                    : kahan_angle(a1.data<double>() + i * d, a2.data<double>() + j * d, d);
    }
  std::vector<double> ntk = cross;
  const double w2 = sigma_w * sigma_w, b2 = sigma_b * sigma_b, a = w2 / (2 * kPi);
  for (std::int64_t l = 1; l < linear_layers; ++l) {
    for (std::int64_t i = 0; i < n1; ++i)
      for (std::int64_t j = 0; j < n2; ++j) {
        const std::size_t ij = static_cast<std::size_t>(i * n2 + j);
        const double sx = diag1[static_cast<std::size_t>(i)], sy = diag2[static_cast<std::size_t>(j)];
        const double r = std::sqrt(sx * sy), theta = angle[ij];
        const double j_theta = std::sin(theta) + (kPi - theta) * std::cos(theta), gap = pi_minus_j(theta);
        const double next = a * r * j_theta + b2;
        const double split = std::sqrt(sx) - std::sqrt(sy);
        const double det = a * a * r * r * gap * (kPi + j_theta) + a * b2 * (kPi * split * split + 2 * r * gap);
        ntk[ij] = next + ntk[ij] * a * (kPi - theta);
        cross[ij] = next;
        angle[ij] = std::atan2(std::sqrt(det), next);
      }
    for (double& v : diag1) v = a * kPi * v + b2;
    for (double& v : diag2) v = a * kPi * v + b2;
  }
  return {from_vector(cross, {n1, n2}), from_vector(ntk, {n1, n2})};
}

AnalyticKernels erf_kernels(const Tensor& x1, const Tensor& x2, std::int64_t linear_layers, double sigma_w,
                            double sigma_b) {
  const double d = static_cast<double>(x1.size(1));
  const double w2 = sigma_w * sigma_w, b2 = sigma_b * sigma_b;
  // Covariances at the first pre-activation: cross [n1, n2] and the diagonals [n1], [n2].
  Tensor cross = matmul(x1, x2.t()) * (w2 / d) + b2;
  Tensor diag1 = sum(square(x1), {1}) * (w2 / d) + b2;
  Tensor diag2 = sum(square(x2), {1}) * (w2 / d) + b2;
  Tensor ntk = cross;
  for (std::int64_t l = 1; l < linear_layers; ++l) {
    const Tensor g1 = diag1 * 2.0 + 1.0, g2 = diag2 * 2.0 + 1.0;
    const Tensor denom = g1.unsqueeze(1) * g2.unsqueeze(0);
    std::vector<double> r = to_vector(cross * 2.0 / sqrt(denom)), as(r.size());
    for (std::size_t i = 0; i < r.size(); ++i) as[i] = std::asin(std::clamp(r[i], -1.0, 1.0));
    const Tensor next_cross = from_vector(as, cross.shape()) * (w2 * 2.0 / kPi) + b2;
    const Tensor dsigma = rsqrt(denom - square(cross) * 4.0) * (w2 * 4.0 / kPi);
    auto self = [&](const Tensor& diag) {
      std::vector<double> v = to_vector(diag), out(v.size());
      for (std::size_t i = 0; i < v.size(); ++i) out[i] = w2 * 2.0 / kPi * std::asin(2 * v[i] / (1 + 2 * v[i])) + b2;
      return from_vector(out, diag.shape());
    };
    ntk = next_cross + ntk * dsigma;
    cross = next_cross;
    diag1 = self(diag1);
    diag2 = self(diag2);
  }
  return {cross, ntk};
}

}  // namespace

AnalyticKernels analytic_ntk(const Tensor& x1_in, const Tensor& x2_in, std::int64_t linear_layers,
                             nn::ActivationKind activation, double sigma_w, double sigma_b) {
  THETA_CHECK(x1_in.dim() == 2 && x2_in.dim() == 2 && x1_in.size(1) == x2_in.size(1), ShapeError,
              "analytic_ntk: inputs ", shape_str(x1_in.shape()), " and ", shape_str(x2_in.shape()),
              " must be [n1, d] and [n2, d]");
  THETA_CHECK(linear_layers >= 1, std::invalid_argument, "analytic_ntk: need at least one linear layer");
  THETA_CHECK(activation == nn::ActivationKind::relu || activation == nn::ActivationKind::erf,
              std::invalid_argument, "analytic_ntk: supports relu and erf, got ", nn::activation_name(activation));
  detail::require_finite(sigma_w, "analytic_ntk", "sigma_w");
  detail::require_finite(sigma_b, "analytic_ntk", "sigma_b");
  const Tensor x1 = x1_in.to(DType::f64), x2 = x2_in.to(DType::f64);
  detail::require_finite(x1, "analytic_ntk", "x1");
  detail::require_finite(x2, "analytic_ntk", "x2");
  return activation == nn::ActivationKind::relu ? relu_kernels(x1, x2, linear_layers, sigma_w, sigma_b)
                                                : erf_kernels(x1, x2, linear_layers, sigma_w, sigma_b);
}

}  // namespace theta::theory
