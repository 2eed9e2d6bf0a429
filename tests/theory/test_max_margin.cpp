// The hard-margin SVM solver against its KKT conditions and against brute force over active sets;
// Soudry's offset against its defining equations.

#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "tensor/ops.hpp"
#include "tensor/rng.hpp"
#include "theory/linalg.hpp"
#include "theory/max_margin.hpp"

using namespace theta;
using namespace theta::theory;

namespace {

double max_abs(const Tensor& t) { return theta::max(theta::abs(t)).item<double>(); }

// Separable through the origin with margin >= 0.2 along a random unit direction: z:[n, d].
Tensor separable(std::int64_t n, std::int64_t d, Rng& rng) {
  Tensor direction = rng.normal({d});
  direction = direction / theta::norm(direction).item<double>();
  std::vector<Tensor> rows;
  while (static_cast<std::int64_t>(rows.size()) < n) {
    const Tensor z = rng.normal({d});
    const double along = theta::dot(z, direction).item<double>();
    if (along > 0.2)
      rows.push_back(z);
    else if (along < -0.2)
      rows.push_back(-z);
  }
  return stack(rows);
}

// Brute force: for every subset S of at most d rows, w_S = z_S^T (z_S z_S^T)^{-1} 1 is the smallest w
// with z_S w = 1; the SVM is the feasible w_S of least norm.
Tensor brute_force_svm(const Tensor& z) {
  const std::int64_t n = z.size(0), d = z.size(1);
  Tensor best;
  double best_norm = INFINITY;
  for (std::int64_t mask = 1; mask < (std::int64_t{1} << n); ++mask) {
    std::vector<double> index;
    for (std::int64_t i = 0; i < n; ++i)
      if (mask & (std::int64_t{1} << i)) index.push_back(static_cast<double>(i));
    if (static_cast<std::int64_t>(index.size()) > d) continue;
    const Tensor z_s = index_select(z, 0, from_vector(index).to(DType::i64));
    const SymmetricEigen gram_eig = eigh(matmul(z_s, z_s.t()));
    if (gram_eig.values.at({0}) < 1e-10) continue;  // dependent rows
    const Tensor w = matmul(z_s.t(), solve(matmul(z_s, z_s.t()), ones({z_s.size(0)})));
    if (theta::min(matmul(z, w)).item<double>() < 1.0 - 1e-9) continue;
    const double size = theta::norm(w).item<double>();
    if (size < best_norm) best_norm = size, best = w;
  }
  return best;
}

}  // namespace

TEST_CASE("max_margin_svm satisfies the KKT conditions and matches brute force", "[theory][implicit_bias]") {
  Rng rng(11);
  for (std::int64_t d : {2, 3}) {
    const Tensor z = separable(9, d, rng);
    const MaxMarginSolution svm = max_margin_svm(z);
    const Tensor margins = matmul(z, svm.w);
    // Stationarity, primal and dual feasibility, complementary slackness.
    CHECK(max_abs(svm.w - matmul(svm.alpha, z)) <= 1e-12);
    CHECK(theta::min(margins).item<double>() >= 1.0 - 1e-11);
    CHECK(theta::min(svm.alpha).item<double>() >= 0.0);
    CHECK(max_abs(svm.alpha * (margins - 1.0)) <= 1e-10);
    CHECK(svm.kkt_residual <= 1e-12);
    CHECK(max_abs(svm.w - brute_force_svm(z)) <= 1e-9);
  }
}

TEST_CASE("max_margin_svm on two asymmetric support vectors", "[theory][implicit_bias]") {
  // z_1 = (1, 0.5), z_2 = (1, -1), plus a far sample: w = a z_1 + b z_2 with z_1^T w = z_2^T w = 1
  // solves 1.25 a + 0.5 b = 1 and 0.5 a + 2 b = 1.
  const Tensor x = from_vector({1, 0.5, -1, 1, -2, 0.3}, {3, 2});
  const Tensor y = from_vector({1, -1, -1});
  const Tensor z = signed_samples(x, y);
  CHECK(max_abs(z - from_vector({1, 0.5, 1, -1, 2, -0.3}, {3, 2})) == 0.0);
  const MaxMarginSolution svm = max_margin_svm(z);
  const Tensor ab = solve(from_vector({1.25, 0.5, 0.5, 2.0}, {2, 2}), ones({2}));
  CHECK(svm.alpha.at({0}) == Approx(ab.at({0})).epsilon(1e-12));
  CHECK(svm.alpha.at({1}) == Approx(ab.at({1})).epsilon(1e-12));
  CHECK(svm.alpha.at({2}) == 0.0);
  const Tensor support = support_vectors(svm.alpha);
  REQUIRE(support.numel() == 2);
  CHECK(support.at({0}) == 0);
  CHECK(support.at({1}) == 1);

  // Soudry's offset solves z_s^T w_tilde = ln(eta / alpha_s) on the support vectors.
  const double eta = 0.005;
  const Tensor w_tilde = soudry_offset(z, svm.alpha, eta);
  for (std::int64_t s = 0; s < 2; ++s) {
    const double lhs = z.at({s, 0}) * w_tilde.at({0}) + z.at({s, 1}) * w_tilde.at({1});
    CHECK(lhs == Approx(std::log(eta / svm.alpha.at({s}))).epsilon(1e-12));
  }
}

TEST_CASE("soudry_offset leaves directions outside the support vectors' span at zero", "[theory][implicit_bias]") {
  // One support vector in 3-D: w_tilde is the minimum-norm solution, along z_1.
  const Tensor z = from_vector({2, 0, 0, 3, 1, 0}, {2, 3});
  const MaxMarginSolution svm = max_margin_svm(z);
  CHECK(svm.w.at({0}) == Approx(0.5).epsilon(1e-12));
  const Tensor w_tilde = soudry_offset(z, svm.alpha, 0.1);
  CHECK(w_tilde.at({0}) == Approx(std::log(0.1 / svm.alpha.at({0})) / 2.0).epsilon(1e-12));
  CHECK(std::abs(w_tilde.at({1})) <= 1e-15);
  CHECK(std::abs(w_tilde.at({2})) <= 1e-15);
}

TEST_CASE("max-margin tools reject bad input", "[theory][implicit_bias]") {
  // Not separable through the origin: z and -z.
  CHECK_THROWS_WITH(max_margin_svm(from_vector({1, 0, -1, 0}, {2, 2}), {.tolerance = 1e-12, .max_sweeps = 2000}),
                    Catch::Contains("not separable"));
  CHECK_THROWS_WITH(max_margin_svm(from_vector({1, 0, 0, 0}, {2, 2})), Catch::Contains("row 1 of z is zero"));
  CHECK_THROWS_AS(max_margin_svm(ones({3})), ShapeError);
  CHECK_THROWS_WITH(signed_samples(ones({2, 2}), from_vector({1, 0})), Catch::Contains("label 1 is 0"));
  CHECK_THROWS_AS(signed_samples(ones({2, 2}), ones({3})), ShapeError);
  CHECK_THROWS_AS(soudry_offset(ones({2, 2}), from_vector({-1, 1}), 0.1), std::invalid_argument);
  CHECK_THROWS_AS(soudry_offset(ones({2, 2}), ones({3}), 0.1), ShapeError);
  CHECK_THROWS_AS(soudry_offset(ones({2, 2}), zeros({2}), 0.1), std::invalid_argument);
  CHECK_THROWS_AS(soudry_offset(ones({2, 2}), ones({2}), 0.0), std::invalid_argument);
}
