// Mercer eigenvalues of zonal kernels on the sphere against closed forms, the sum rule, and the
// kernel matrix of many uniform points.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "tensor/rng.hpp"
#include "theory/linalg.hpp"
#include "theory/ntk.hpp"
#include "theory/sphere_spectrum.hpp"

using namespace theta;
using namespace theta::theory;
using Catch::Matchers::Contains;

TEST_CASE("zonal spectra of polynomial kernels have their closed forms", "[theory][sphere]") {
  for (const std::int64_t d : {3, 5, 16}) {
    const double dd = static_cast<double>(d);
    // <u, v>: the d linear harmonics, each with eigenvalue 1 / d.
    const SphereSpectrum lin = zonal_spectrum([](double t) { return t; }, d, 3);
    CHECK(lin.multiplicities == std::vector<std::int64_t>{1, d, d * (d + 1) / 2 - 1, d * (d + 1) * (d + 2) / 6 - d});
    CHECK(lin.eigenvalues[1] == Approx(1 / dd).epsilon(1e-10));
    CHECK(std::abs(lin.eigenvalues[0]) < 1e-14);
    CHECK(std::abs(lin.eigenvalues[2]) < 1e-14);
    // <u, v>^2: mu_0 = E <u, v>^2 = 1 / d, and the sum rule gives mu_2 = 2 / (d (d + 2)).
    const SphereSpectrum sq = zonal_spectrum([](double t) { return t * t; }, d, 2);
    CHECK(sq.eigenvalues[0] == Approx(1 / dd).epsilon(1e-10));
    CHECK(std::abs(sq.eigenvalues[1]) < 1e-14);
    CHECK(sq.eigenvalues[2] == Approx(2 / (dd * (dd + 2))).epsilon(1e-10));
  }
}

TEST_CASE("zonal spectra satisfy the sum rule kappa(1) = sum_k N(d, k) mu_k", "[theory][sphere]") {
  const SphereSpectrum e = zonal_spectrum([](double t) { return std::exp(2 * t); }, 6, 40);
  double total = 0.0;
  for (std::size_t k = 0; k < e.eigenvalues.size(); ++k)
    total += static_cast<double>(e.multiplicities[k]) * e.eigenvalues[k];
  CHECK(total == Approx(std::exp(2.0)).epsilon(1e-10));
  // The analytic erf NTK (smooth, so its spectrum decays fast): kappa(1) = Theta(x, x) for
  // |x|^2 = d.
  const std::int64_t d = 5;
  const SphereSpectrum ntk = analytic_ntk_sphere_spectrum(d, 40, 3, nn::ActivationKind::erf, 1.5, 0.1);
  double sum = 0.0;
  for (std::size_t k = 0; k < ntk.eigenvalues.size(); ++k)
    sum += static_cast<double>(ntk.multiplicities[k]) * ntk.eigenvalues[k];
  const Tensor x = full({1, d}, 1.0);  // |x|^2 = d
  const double diagonal = analytic_ntk(x, x, 3, nn::ActivationKind::erf, 1.5, 0.1).ntk.item<double>();
  // Degrees above 40 add less than the quadrature's own error on their large multiplicities.
  CHECK(sum == Approx(diagonal).epsilon(1e-7));
}

TEST_CASE("the kernel matrix of many uniform points has the zonal spectrum", "[theory][sphere]") {
  // kappa(t) = exp(t) on S^2, n = 1500 points: eigenvalues / n approach mu_k with multiplicity
  // 2k + 1, to the Monte Carlo error O(1 / sqrt(n)).
  const std::int64_t n = 1500, d = 3;
  Rng rng(3);
  const Tensor g = rng.normal({n, d});
  const Tensor u = theta::div(g, theta::sqrt(theta::sum(theta::square(g), {1}, true)));
  const Tensor k = theta::exp(matmul(u, u.t()));
  std::vector<double> eig = to_vector(eigh(k).values);
  std::reverse(eig.begin(), eig.end());
  const SphereSpectrum s = zonal_spectrum([](double t) { return std::exp(t); }, d, 2);
  CHECK(eig[0] / n == Approx(s.eigenvalues[0]).epsilon(0.05));
  const double mean1 = (eig[1] + eig[2] + eig[3]) / 3 / n;
  CHECK(mean1 == Approx(s.eigenvalues[1]).epsilon(0.05));
  const double mean2 = (eig[4] + eig[5] + eig[6] + eig[7] + eig[8]) / 5 / n;
  CHECK(mean2 == Approx(s.eigenvalues[2]).epsilon(0.08));
}

TEST_CASE("zonal_spectrum refuses bad arguments", "[theory][sphere]") {
  const auto one = [](double) { return 1.0; };
  CHECK_THROWS_WITH(zonal_spectrum(one, 2, 3), Contains("d >= 3"));
  CHECK_THROWS_WITH(zonal_spectrum(one, 4, -1), Contains("max_degree"));
  CHECK_THROWS_WITH(zonal_spectrum(one, 4, 3, 100), Contains("odd number of points"));
}
