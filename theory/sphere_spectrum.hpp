#pragma once
// Mercer eigenvalues of dot-product kernels on the sphere: the spectrum an NTK's kernel matrix
// approaches on many uniformly spread points.

#include <cstdint>
#include <functional>
#include <vector>

#include "nn/layers.hpp"

namespace theta::theory {

// Note [Zonal kernels on the sphere]
// A kernel k(u, v) = kappa(<u, v>) on the unit sphere S^{d-1} (uniform measure) has the
// spherical harmonics as eigenfunctions (Funk-Hecke): degree k has multiplicity
// N(d, k) = (2k + d - 2) / k * C(k + d - 3, k - 1) (N(d, 0) = 1) and eigenvalue
//   mu_k = Gamma(d/2) / (sqrt(pi) Gamma((d-1)/2)) int_0^pi kappa(cos t) P_k(cos t) sin^{d-2} t dt,
// with P_k the Gegenbauer polynomial C_k^{(d-2)/2} normalised to P_k(1) = 1. The kernel matrix of
// n uniform points, divided by n, has eigenvalues that approach mu_k, each N(d, k) times. The
// integral is taken by Simpson's rule in t (smooth there for the arc-cosine and arcsine kernels),
// and the sum rule kappa(1) = sum_k N(d, k) mu_k checks it.

struct SphereSpectrum {
  std::vector<double> eigenvalues{};           // mu_0 .. mu_K
  std::vector<std::int64_t> multiplicities{};  // N(d, 0) .. N(d, K)
};

/// mu_k and N(d, k) for degrees k = 0 .. max_degree of kappa(<u, v>) on S^{d-1}, d >= 3
/// (Note [Zonal kernels on the sphere]); `points` Simpson nodes in t (odd, >= 3).
SphereSpectrum zonal_spectrum(const std::function<double(double)>& kappa, std::int64_t d, std::int64_t max_degree,
                              std::int64_t points = 2001);

/// The same for the infinite-width NTK (analytic_ntk) of an MLP on points x with |x|^2 = d, as a
/// function of <x, x'> / d.
SphereSpectrum analytic_ntk_sphere_spectrum(std::int64_t d, std::int64_t max_degree, std::int64_t linear_layers,
                                            nn::ActivationKind activation, double sigma_w, double sigma_b);

}  // namespace theta::theory
