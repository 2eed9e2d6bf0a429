#include "theory/sphere_spectrum.hpp"

#include <cmath>
#include <numbers>

#include "theory/ntk.hpp"

namespace theta::theory {

namespace {

// N(d, k): the dimension of the degree-k spherical harmonics on S^{d-1}.
std::int64_t harmonic_count(std::int64_t d, std::int64_t k) {
  if (k == 0) return 1;
  // C(k + d - 3, k - 1), exactly in integers (each partial product is itself a binomial).
  std::int64_t binom = 1;
  for (std::int64_t i = 1; i <= k - 1; ++i) binom = binom * (d - 2 + i) / i;
  return (2 * k + d - 2) * binom / k;
}

// P_0(t) .. P_K(t), Gegenbauer C_k^{lambda}, lambda = (d - 2) / 2, divided by C_k^{lambda}(1).
std::vector<double> gegenbauer(double t, std::int64_t d, std::int64_t max_degree) {
  const double lambda = 0.5 * static_cast<double>(d - 2);
  std::vector<double> c(static_cast<std::size_t>(max_degree + 1)), one(c.size());
  for (std::size_t k = 0; k < c.size(); ++k) {
    const double kk = static_cast<double>(k);
    if (k == 0) {
      c[k] = one[k] = 1.0;
    } else if (k == 1) {
      c[k] = 2 * lambda * t;
      one[k] = 2 * lambda;
    } else {
      c[k] = (2 * t * (kk + lambda - 1) * c[k - 1] - (kk + 2 * lambda - 2) * c[k - 2]) / kk;
      one[k] = (2 * (kk + lambda - 1) * one[k - 1] - (kk + 2 * lambda - 2) * one[k - 2]) / kk;
    }
  }
  for (std::size_t k = 0; k < c.size(); ++k) c[k] /= one[k];
  return c;
}

// mu_k from kappa(cos t_i) at the Simpson nodes t_i = i pi / (points - 1) (Note [Zonal kernels on
// the sphere]).
SphereSpectrum spectrum_from_nodes(const std::vector<double>& kappa_at_nodes, std::int64_t d, std::int64_t max_degree) {
  const auto points = static_cast<std::int64_t>(kappa_at_nodes.size());
  const double dd = static_cast<double>(d);
  const double scale = std::tgamma(dd / 2) / (std::sqrt(std::numbers::pi) * std::tgamma((dd - 1) / 2));
  const double h = std::numbers::pi / static_cast<double>(points - 1);
  SphereSpectrum out;
  out.eigenvalues.assign(static_cast<std::size_t>(max_degree + 1), 0.0);
  for (std::int64_t i = 0; i < points; ++i) {
    const double t = h * static_cast<double>(i);
    const double simpson = (i == 0 || i == points - 1) ? 1.0 : (i % 2 == 1 ? 4.0 : 2.0);
    const double weight = simpson * std::pow(std::sin(t), dd - 2) * kappa_at_nodes[static_cast<std::size_t>(i)];
    const std::vector<double> p = gegenbauer(std::cos(t), d, max_degree);
    for (std::size_t k = 0; k < p.size(); ++k) out.eigenvalues[k] += weight * p[k];
  }
  for (auto& mu : out.eigenvalues) mu *= scale * h / 3;
  for (std::int64_t k = 0; k <= max_degree; ++k) out.multiplicities.push_back(harmonic_count(d, k));
  return out;
}

void check_degree(std::int64_t d, std::int64_t max_degree, const char* op) {
  THETA_CHECK(d >= 3, std::invalid_argument, op, ": the sphere S^{d-1} needs d >= 3, got d = ", d);
  THETA_CHECK(max_degree >= 0, std::invalid_argument, op, ": max_degree must be >= 0, got ", max_degree);
}

}  // namespace

SphereSpectrum zonal_spectrum(const std::function<double(double)>& kappa, std::int64_t d, std::int64_t max_degree,
                              std::int64_t points) {
  check_degree(d, max_degree, "zonal_spectrum");
  THETA_CHECK(points >= 3 && points % 2 == 1, std::invalid_argument,
              "zonal_spectrum: Simpson's rule needs an odd number of points >= 3, got ", points);
  std::vector<double> values;
  for (std::int64_t i = 0; i < points; ++i)
    values.push_back(kappa(std::cos(std::numbers::pi * static_cast<double>(i) / static_cast<double>(points - 1))));
  return spectrum_from_nodes(values, d, max_degree);
}

SphereSpectrum analytic_ntk_sphere_spectrum(std::int64_t d, std::int64_t max_degree, std::int64_t linear_layers,
                                            nn::ActivationKind activation, double sigma_w, double sigma_b) {
  check_degree(d, max_degree, "analytic_ntk_sphere_spectrum");
  // kappa on the Simpson nodes at once: one point on the sphere of radius sqrt(d) against the
  // points at every angle t from it.
  constexpr std::int64_t kPoints = 2001;
  const double radius = std::sqrt(static_cast<double>(d));
  std::vector<double> pole(static_cast<std::size_t>(d), 0.0), ring(static_cast<std::size_t>(kPoints * d), 0.0);
  pole[0] = radius;
  for (std::int64_t i = 0; i < kPoints; ++i) {
    const double t = std::numbers::pi * static_cast<double>(i) / static_cast<double>(kPoints - 1);
    ring[static_cast<std::size_t>(i * d)] = radius * std::cos(t);
    ring[static_cast<std::size_t>(i * d + 1)] = radius * std::sin(t);
  }
  const std::vector<double> values =
      to_vector(analytic_ntk(from_vector(pole, {1, d}), from_vector(ring, {kPoints, d}), linear_layers, activation,
                             sigma_w, sigma_b)
                    .ntk);
  return spectrum_from_nodes(values, d, max_degree);
}

}  // namespace theta::theory
