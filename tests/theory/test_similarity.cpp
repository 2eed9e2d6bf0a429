// Representation similarity: linear CKA against a loop-by-loop HSIC reference and its invariances,
// canonical correlations against constructed principal angles and the covariance formula, and the
// error messages for bad input.

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "tensor/ops.hpp"
#include "tensor/rng.hpp"
#include "theory/linalg.hpp"
#include "theory/similarity.hpp"

using namespace theta;
using namespace theta::theory;
using Catch::Matchers::Contains;

namespace {

// tr(K H L H) with K = x x^T, L = y y^T and H = I - 1 1^T / n, every sum written out.
double naive_hsic(const Tensor& x, const Tensor& y) {
  const std::int64_t n = x.size(0);
  auto kernel = [n](const Tensor& f) {
    std::vector<double> k(static_cast<std::size_t>(n * n), 0.0);
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = 0; j < n; ++j)
        for (std::int64_t c = 0; c < f.size(1); ++c)
          k[static_cast<std::size_t>(i * n + j)] += f.at({i, c}) * f.at({j, c});
    return k;
  };
  auto centre = [n](const std::vector<double>& k) {
    std::vector<double> h(static_cast<std::size_t>(n * n)), out(static_cast<std::size_t>(n * n), 0.0), tmp(out);
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = 0; j < n; ++j) h[static_cast<std::size_t>(i * n + j)] = (i == j) - 1.0 / double(n);
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = 0; j < n; ++j)
        for (std::int64_t m = 0; m < n; ++m)
          tmp[static_cast<std::size_t>(i * n + j)] +=
              h[static_cast<std::size_t>(i * n + m)] * k[static_cast<std::size_t>(m * n + j)];
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = 0; j < n; ++j)
        for (std::int64_t m = 0; m < n; ++m)
          out[static_cast<std::size_t>(i * n + j)] +=
              tmp[static_cast<std::size_t>(i * n + m)] * h[static_cast<std::size_t>(m * n + j)];
    return out;
  };
  const std::vector<double> kc = centre(kernel(x)), lc = centre(kernel(y));
  double trace = 0.0;
  for (std::size_t i = 0; i < kc.size(); ++i) trace += kc[i] * lc[i];
  return trace;
}

double naive_cka(const Tensor& x, const Tensor& y) {
  return naive_hsic(x, y) / std::sqrt(naive_hsic(x, x) * naive_hsic(y, y));
}

Tensor random_orthogonal(std::int64_t p, Rng& rng) { return svd(rng.normal({p, p})).u; }

// Columns that are orthonormal and centred (each sums to 0): the left singular vectors of a centred
// random matrix.
Tensor centred_orthonormal(std::int64_t n, std::int64_t k, Rng& rng) {
  const Tensor g = rng.normal({n, k});
  return svd(sub(g, mean(g, {0}, true))).u;
}

}  // namespace

TEST_CASE("linear CKA equals the HSIC ratio of its kernels, written as loops and as gram_cka", "[theory][similarity]") {
  Rng rng(11);
  const Tensor x = rng.normal({13, 4}), y = add(rng.normal({13, 6}), scalar_tensor(3.0));
  const double feature = linear_cka(x, y);
  CHECK(feature == Approx(naive_cka(x, y)).epsilon(1e-12));
  CHECK(feature == Approx(gram_cka(matmul(x, x.t()), matmul(y, y.t()))).epsilon(1e-12));
  CHECK(feature == Approx(linear_cka(y, x)).epsilon(1e-14));
  CHECK(feature > 0.0);
  CHECK(feature < 1.0);
  // Also through a float32 input: the computation is float64 on the converted values.
  CHECK(linear_cka(x.to(DType::f32), y) == Approx(linear_cka(x.to(DType::f32).to(DType::f64), y)).epsilon(1e-15));
}

TEST_CASE("linear CKA is invariant to orthogonal maps, isotropic scaling and translation only", "[theory][similarity]") {
  Rng rng(12);
  const Tensor x = rng.normal({40, 9}), q = random_orthogonal(9, rng);
  const Tensor shift = rng.normal({1, 9});
  for (const double s : {0.01, 2.5, -7.0}) {
    const Tensor y = add(mul(matmul(x, q), scalar_tensor(s)), shift);
    CHECK(std::abs(linear_cka(x, y) - 1.0) <= 1e-12);
  }
  // Anisotropic scaling of the features changes the kernel's spectrum, and CKA sees it.
  const Tensor a = add(rng.normal({9, 9}), mul(eye(9), scalar_tensor(3.0)));
  CHECK(linear_cka(x, matmul(x, a)) < 1.0 - 1e-3);
}

TEST_CASE("linear CKA of independent isotropic features sits near p / (n + p), not near 0", "[theory][similarity]") {
  Rng rng(13);
  const std::int64_t n = 300, p = 100;
  double total = 0.0;
  const int draws = 10;
  for (int d = 0; d < draws; ++d) total += linear_cka(rng.normal({n, p}), rng.normal({n, p}));
  const double chance = static_cast<double>(p) / static_cast<double>(n + p);
  CHECK(total / draws == Approx(chance).epsilon(0.03));
}

TEST_CASE("linear_cka_matrix holds linear_cka of every pair", "[theory][similarity]") {
  Rng rng(14);
  const std::vector<Tensor> a{rng.normal({20, 3}), rng.normal({20, 8})};
  const std::vector<Tensor> b{rng.normal({20, 5}), a[0], rng.normal({20, 2})};
  const Tensor m = linear_cka_matrix(a, b);
  REQUIRE(m.shape() == Shape{2, 3});
  for (std::int64_t i = 0; i < 2; ++i)
    for (std::int64_t j = 0; j < 3; ++j)
      CHECK(m.at({i, j}) == Approx(linear_cka(a[std::size_t(i)], b[std::size_t(j)])).epsilon(1e-15));
  CHECK(std::abs(m.at({0, 1}) - 1.0) <= 1e-14);
}

TEST_CASE("canonical correlations are the cosines of constructed principal angles", "[theory][similarity]") {
  Rng rng(15);
  // Orthonormal centred columns e0..e3; x spans {e0, e1}, y spans {cos t e0 + sin t e2, cos u e1 + sin u e3}.
  const Tensor e = centred_orthonormal(30, 4, rng);
  auto col = [&](std::int64_t c) { return e.slice(1, c, c + 1); };
  const double t = 0.3, u = 1.1;
  const Tensor x = matmul(concat({col(0), col(1)}, 1), rng.normal({2, 2}));  // any basis of the same span
  const Tensor y = concat({add(mul(col(0), scalar_tensor(std::cos(t))), mul(col(2), scalar_tensor(std::sin(t)))),
                           add(mul(col(1), scalar_tensor(std::cos(u))), mul(col(3), scalar_tensor(std::sin(u))))},
                          1);
  const Tensor rho = canonical_correlations(x, y);
  REQUIRE(rho.size(0) == 2);
  CHECK(rho.at({0}) == Approx(std::cos(t)).epsilon(1e-12));
  CHECK(rho.at({1}) == Approx(std::cos(u)).epsilon(1e-12));
  CHECK(mean_cca(x, y) == Approx((std::cos(t) + std::cos(u)) / 2).epsilon(1e-12));
}

TEST_CASE("canonical correlations agree with the covariance formula Sxx^-1 Sxy Syy^-1 Syx", "[theory][similarity]") {
  Rng rng(16);
  const Tensor x = rng.normal({50, 3});
  const Tensor y = add(matmul(x, rng.normal({3, 4})), mul(rng.normal({50, 4}), scalar_tensor(2.0)));
  auto centred = [](const Tensor& f) { return sub(f, mean(f, {0}, true)); };
  const Tensor xc = centred(x), yc = centred(y);
  const Tensor sxx = matmul(xc.t(), xc), syy = matmul(yc.t(), yc), sxy = matmul(xc.t(), yc);
  // The eigenvalues of Sxx^-1/2 Sxy Syy^-1 Syx Sxx^-1/2 (symmetric) are the squared correlations.
  const SymmetricEigen sx = eigh(sxx);
  const Tensor sxx_inv_sqrt = apply_spectral(sx, rsqrt(sx.values));
  const Tensor m = matmul(matmul(sxx_inv_sqrt, matmul(sxy, solve(syy, sxy.t()))), sxx_inv_sqrt);
  const Tensor squared = eigh(m).values;  // ascending
  const Tensor rho = canonical_correlations(x, y);
  REQUIRE(rho.size(0) == 3);
  for (std::int64_t i = 0; i < 3; ++i) CHECK(rho.at({i}) == Approx(std::sqrt(squared.at({2 - i}))).epsilon(1e-10));
}

TEST_CASE("CCA is invariant to invertible maps and degenerate once a width reaches n - 1", "[theory][similarity]") {
  Rng rng(17);
  const Tensor x = rng.normal({25, 6});
  const Tensor a = add(rng.normal({6, 6}), mul(eye(6), scalar_tensor(3.0)));
  CHECK(mean_cca(x, matmul(x, a)) == Approx(1.0).epsilon(1e-12));
  // Two unrelated representations wider than the 24 dimensions of the centred space.
  const Tensor wide_x = rng.normal({25, 30}), wide_y = rng.normal({25, 40});
  const Tensor rho = canonical_correlations(wide_x, wide_y);
  CHECK(rho.size(0) == 24);
  CHECK(std::abs(mean_cca(wide_x, wide_y) - 1.0) <= 1e-10);
  CHECK(linear_cka(wide_x, wide_y) < 0.9);  // CKA still tells them apart
}

TEST_CASE("representation similarity rejects bad input with the shapes in the message", "[theory][similarity]") {
  Rng rng(18);
  const Tensor x = rng.normal({10, 3});
  CHECK_THROWS_AS(linear_cka(x, rng.normal({9, 3})), ShapeError);
  CHECK_THROWS_WITH(linear_cka(x, rng.normal({9, 3})), Contains("[10, 3]") && Contains("[9, 3]"));
  CHECK_THROWS_AS(linear_cka(rng.normal({10}), x), ShapeError);
  CHECK_THROWS_WITH(linear_cka(rng.normal({1, 3}), rng.normal({1, 3})), Contains("fewer than 2 examples"));
  CHECK_THROWS_WITH(linear_cka(x, full({10, 2}, 4.0)), Contains("same for every example"));
  Tensor bad = x.clone();
  bad.data<double>()[4] = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_AS(linear_cka(bad, x), std::invalid_argument);
  CHECK_THROWS_AS(canonical_correlations(x, rng.normal({11, 2})), ShapeError);
  CHECK_THROWS_WITH(gram_cka(rng.normal({4, 5}), rng.normal({4, 4})), Contains("[4, 5]"));
  CHECK_THROWS_WITH(gram_cka(full({4, 4}, 2.0), rng.normal({4, 4})), Contains("zero after centring"));
  CHECK_THROWS_WITH(linear_cka_matrix({x}, {x, rng.normal({8, 3})}), Contains("a[0] and b[1]"));
}

TEST_CASE("mean_cca_matrix holds mean_cca of every pair", "[theory][similarity]") {
  Rng rng(19);
  const std::vector<Tensor> a{rng.normal({15, 3}), rng.normal({15, 20})};
  const std::vector<Tensor> b{rng.normal({15, 5}), matmul(a[0], rng.normal({3, 3}))};
  const Tensor m = mean_cca_matrix(a, b);
  REQUIRE(m.shape() == Shape{2, 2});
  for (std::int64_t i = 0; i < 2; ++i)
    for (std::int64_t j = 0; j < 2; ++j)
      CHECK(m.at({i, j}) == Approx(mean_cca(a[std::size_t(i)], b[std::size_t(j)])).epsilon(1e-13));
  CHECK(m.at({0, 1}) == Approx(1.0).epsilon(1e-12));
  CHECK_THROWS_WITH(mean_cca_matrix(a, {rng.normal({14, 2})}), Contains("a[0] and b[0]"));
}
