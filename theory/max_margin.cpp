#include "theory/max_margin.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "tensor/ops.hpp"
#include "theory/checks.hpp"
#include "theory/least_squares.hpp"

namespace theta::theory {

using detail::require_finite;

// Note [Soudry offset]
// For the summed logistic loss L(w) = sum_n l(z_n^T w), l(u) = ln(1 + e^{-u}), a GD step is
//   w <- w + eta sum_n e^{-z_n^T w} / (1 + e^{-z_n^T w}) z_n.
// Try w(k) = w_hat ln k + w_tilde. A sample with z_n^T w_hat = m_n contributes e^{-z_n^T w_tilde}
// k^{-m_n}; the support vectors (m_n = 1) dominate, the rest decay faster, so the step is
//   w(k+1) - w(k) = eta / k sum_{n in S} e^{-z_n^T w_tilde} z_n + o(1/k),
// while the ansatz asks for w_hat ln((k+1)/k) = w_hat / k + O(1/k^2). Matching both with the
// SVM's dual form w_hat = sum_{n in S} alpha_n z_n gives eta e^{-z_n^T w_tilde} = alpha_n, i.e.
//   z_n^T w_tilde = ln(eta / alpha_n) on every support vector.
// This fixes w_tilde on the span of the support vectors only; the orthogonal part keeps whatever
// the initialisation and the fading non-support samples left there. So w(k) / |w(k)| -> w_hat /
// |w_hat| at the rate |w_tilde_perp| / (|w_hat| ln k), where w_tilde_perp is w_tilde's part
// orthogonal to w_hat: tight when the support vectors' alphas differ. With the mean loss over n
// samples the step per sample is eta / n.
// How fast is w_tilde approached? Write w(k) = w_hat ln k + w_tilde + delta(k). The support
// vectors' pull becomes (1/k) sum_n alpha_n e^{-z_n^T delta} z_n, so to first order in delta
//   d delta / d ln k = -M delta,  M = sum_{n in S} alpha_n z_n z_n^T,
// and delta decays like k^-mu along each eigenvector of M. Since z_n^T w_hat = 1 on S,
// M w_hat = sum alpha_n z_n = w_hat: the direction along w_hat relaxes like 1/k, while the part
// across it, which sets the angle, may relax much more slowly (k^-1/2 for the demo's data).
// Samples of margin m > 1 pull like k^-m on top, a further transient.

namespace {

double dot_row(const double* a, const std::vector<double>& b) {
  double s = 0.0;
  for (std::size_t j = 0; j < b.size(); ++j) s += a[j] * b[j];
  return s;
}

void check_samples(const char* op, const Tensor& z) {
  THETA_CHECK(z.defined() && z.dim() == 2 && z.size(0) > 0 && z.size(1) > 0, ShapeError, op,
              ": expected z:[n, d] with n, d > 0, got ", z.defined() ? shape_str(z.shape()) : "undefined");
  require_finite(z, op, "z");
}

// alpha:[n] (n < 0: any length), finite and non-negative.
void check_alpha(const char* op, const Tensor& alpha, std::int64_t n) {
  THETA_CHECK(alpha.defined() && alpha.dim() == 1 && (n < 0 || alpha.size(0) == n), ShapeError, op, ": alpha must be [",
              n < 0 ? std::string("n") : std::to_string(n), "], got ",
              alpha.defined() ? shape_str(alpha.shape()) : "undefined");
  require_finite(alpha, op, "alpha");
  THETA_CHECK(alpha.numel() == 0 || theta::min(alpha).item<double>() >= 0, std::invalid_argument, op,
              ": alpha must be non-negative");
}

}  // namespace

Tensor signed_samples(const Tensor& x, const Tensor& y) {
  THETA_CHECK(x.defined() && y.defined() && x.dim() == 2 && y.dim() == 1 && x.size(0) == y.size(0), ShapeError,
              "signed_samples: expected x:[n, d] and y:[n], got ", x.defined() ? shape_str(x.shape()) : "undefined",
              " and ", y.defined() ? shape_str(y.shape()) : "undefined");
  const Tensor labels = y.to(DType::f64);
  for (std::int64_t i = 0; i < labels.size(0); ++i) {
    const double label = labels.at({i});
    THETA_CHECK(label == 1.0 || label == -1.0, std::invalid_argument, "signed_samples: label ", i, " is ", label,
                ", expected -1 or +1");
  }
  return (x.to(DType::f64) * labels.unsqueeze(1)).contiguous();
}

MaxMarginSolution max_margin_svm(const Tensor& z, const MaxMarginOptions& options) {
  check_samples("max_margin_svm", z);
  require_finite(options.tolerance, "max_margin_svm", "tolerance");
  THETA_CHECK(options.tolerance > 0 && options.max_sweeps > 0, std::invalid_argument,
              "max_margin_svm: need tolerance > 0 and max_sweeps > 0");
  const std::int64_t n = z.size(0), d = z.size(1);
  const Tensor rows = z.to(DType::f64).contiguous();
  const double* zp = rows.data<double>();
  std::vector<double> norm2(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t j = 0; j < d; ++j) norm2[static_cast<std::size_t>(i)] += zp[i * d + j] * zp[i * d + j];
    THETA_CHECK(norm2[static_cast<std::size_t>(i)] > 0, std::invalid_argument, "max_margin_svm: row ", i,
                " of z is zero, so no w has z^T w >= 1");
  }
  std::vector<double> alpha(static_cast<std::size_t>(n), 0.0), w(static_cast<std::size_t>(d), 0.0);
  MaxMarginSolution out;
  double residual = 0.0;
  for (out.sweeps = 1; out.sweeps <= options.max_sweeps; ++out.sweeps) {
    // One pass of exact coordinate maximisation: alpha_i <- max(0, alpha_i + (1 - z_i^T w) / |z_i|^2).
    for (std::int64_t i = 0; i < n; ++i) {
      auto& a = alpha[static_cast<std::size_t>(i)];
      const double step = std::max(-a, (1.0 - dot_row(zp + i * d, w)) / norm2[static_cast<std::size_t>(i)]);
      if (step == 0.0) continue;
      a += step;
      for (std::int64_t j = 0; j < d; ++j) w[static_cast<std::size_t>(j)] += step * zp[i * d + j];
    }
    residual = 0.0;
    for (std::int64_t i = 0; i < n; ++i) {
      const double slack = 1.0 - dot_row(zp + i * d, w);
      residual = std::max(residual, alpha[static_cast<std::size_t>(i)] > 0 ? std::abs(slack) : std::max(0.0, slack));
    }
    if (residual <= options.tolerance) break;
  }
  THETA_CHECK(residual <= options.tolerance, std::invalid_argument, "max_margin_svm: KKT residual ", residual,
              " after ", options.max_sweeps, " sweeps over z ", shape_str(z.shape()),
              ": the data are not separable through the origin, or too ill-conditioned for tolerance ",
              options.tolerance);
  out.w = from_vector(w);
  out.alpha = from_vector(alpha);
  out.kkt_residual = residual;
  return out;
}

Tensor support_vectors(const Tensor& alpha, double relative_threshold) {
  check_alpha("support_vectors", alpha, -1);
  require_finite(relative_threshold, "support_vectors", "relative_threshold");
  const std::vector<double> a = to_vector(alpha);
  const double top = a.empty() ? 0.0 : *std::max_element(a.begin(), a.end());
  std::vector<double> index;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i] > relative_threshold * top && a[i] > 0) index.push_back(static_cast<double>(i));
  return from_vector(index).to(DType::i64);
}

Tensor soudry_offset(const Tensor& z, const Tensor& alpha, double eta, double relative_threshold) {
  check_samples("soudry_offset", z);
  check_alpha("soudry_offset", alpha, z.size(0));
  require_finite(eta, "soudry_offset", "eta");
  THETA_CHECK(eta > 0, std::invalid_argument, "soudry_offset: need eta > 0, got ", eta);
  const Tensor support = support_vectors(alpha, relative_threshold);
  THETA_CHECK(support.numel() > 0, std::invalid_argument, "soudry_offset: alpha has no positive entry");
  const Tensor z_s = index_select(z.to(DType::f64), 0, support);
  const Tensor target = theta::log(eta / index_select(alpha.to(DType::f64), 0, support));
  return min_norm_solution(z_s, target);
}

Tensor soudry_decay_matrix(const Tensor& z, const Tensor& alpha) {
  check_samples("soudry_decay_matrix", z);
  check_alpha("soudry_decay_matrix", alpha, z.size(0));
  const Tensor rows = z.to(DType::f64);
  return matmul(rows.t() * alpha.to(DType::f64).unsqueeze(0), rows).contiguous();
}

}  // namespace theta::theory
