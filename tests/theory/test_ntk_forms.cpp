// The [n1, n2] NTK of a one-output model against the [n1, n2, 1, 1] kernel and against J J^T
// from central differences; ntk_regression's named form against closed forms.

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <memory>

#include "nn/layers.hpp"
#include "tensor/ops.hpp"
#include "theory/linalg.hpp"
#include "theory/ntk.hpp"

using namespace theta;
using namespace theta::theory;
using Catch::Contains;
using theta::autograd::Var;

namespace {

// Per-sample Jacobian of a one-output model by central differences, one parameter element at a
// time: [n, P] with P the total parameter count.
Tensor finite_difference_jacobian(nn::Module& model, const Tensor& x) {
  autograd::NoGradGuard no_grad;
  const double eps = 1e-6;
  std::vector<std::vector<double>> columns;
  for (const Var& p : model.parameters()) {
    double* data = p.value().data<double>();
    for (std::int64_t j = 0; j < p.numel(); ++j) {
      const double saved = data[j];
      data[j] = saved + eps;
      const std::vector<double> plus = to_vector(model(Var(x)).value());
      data[j] = saved - eps;
      const std::vector<double> minus = to_vector(model(Var(x)).value());
      data[j] = saved;
      std::vector<double> column(plus.size());
      for (std::size_t i = 0; i < plus.size(); ++i) column[i] = (plus[i] - minus[i]) / (2 * eps);
      columns.push_back(column);
    }
  }
  const std::int64_t n = x.size(0), params = static_cast<std::int64_t>(columns.size());
  Tensor j = zeros({n, params});
  for (std::int64_t c = 0; c < params; ++c)
    for (std::int64_t i = 0; i < n; ++i) j.data<double>()[i * params + c] = columns[c][i];
  return j;
}

}  // namespace

TEST_CASE("empirical_ntk_matrix is the one-output kernel as a plain matrix", "[theory][ntk]") {
  Rng rng(21);
  auto net = nn::mlp({3, 6, 5, 1}, rng, {.activation = nn::ActivationKind::tanh});
  const Tensor x1 = rng.normal({6, 3}), x2 = rng.normal({4, 3});
  const Tensor j1 = finite_difference_jacobian(*net, x1), j2 = finite_difference_jacobian(*net, x2);
  for (const NtkMethod method : {NtkMethod::structured, NtkMethod::contraction}) {
    INFO((method == NtkMethod::structured ? "structured" : "contraction"));
    const Tensor k = empirical_ntk_matrix(*net, x1, x2, {.method = method});
    REQUIRE(k.shape() == Shape{6, 4});
    CHECK(allclose(k, empirical_ntk(*net, x1, x2, {.method = method}).reshape({6, 4}), 1e-13, 1e-14));
    CHECK(allclose(k, matmul(j1, j2.t()), 1e-7, 1e-8));
    const Tensor same = empirical_ntk_matrix(*net, x1, x1, {.method = method});
    CHECK(allclose(same, matmul(j1, j1.t()), 1e-7, 1e-8));
  }
}

TEST_CASE("empirical_ntk_matrix refuses a model with several outputs", "[theory][ntk]") {
  Rng rng(22);
  auto net = nn::mlp({3, 4, 3}, rng);
  const Tensor x = rng.normal({5, 3});
  for (const NtkMethod method : {NtkMethod::structured, NtkMethod::contraction}) {
    CHECK_THROWS_AS(empirical_ntk_matrix(*net, x, x, {.method = method}), ShapeError);
    CHECK_THROWS_WITH(empirical_ntk_matrix(*net, x, x, {.method = method}),
                      Contains("empirical_ntk_matrix: the model has 3 outputs") &&
                          Contains("empirical_ntk (-> [n1, n2, 3, 3])") && Contains("empirical_ntk_trace"));
  }
}

TEST_CASE("ntk_regression's named form against the closed form of a diagonal kernel", "[theory][ntk]") {
  Rng rng(23);
  const Tensor a = tensor({0.5, 1.0, 2.0, 4.0});
  const Tensor k_train = zeros({4, 4});
  for (std::int64_t i = 0; i < 4; ++i) k_train.data<double>()[i * 5] = a.at({i});
  const Tensor k_test = rng.normal({3, 4}), y = rng.normal({4, 2}), f0 = rng.normal({4, 2}),
               f0_test = rng.normal({3, 2});
  const double eta = 0.1, t = 7.0;
  // K^{-1} (1 - e^{-eta K t}) is diagonal: (1 - e^{-eta a t}) / a row by row.
  const Tensor filter = (1.0 - exp(a * (-eta * t))) / a;
  const Tensor expected = f0_test + matmul(k_test, (y - f0) * filter.unsqueeze(1));
  const Tensor got = ntk_regression({.k_test_train = k_test,
                                     .k_train_train = k_train,
                                     .y_train = y,
                                     .f0_train = f0,
                                     .f0_test = f0_test,
                                     .eta = eta,
                                     .t = t});
  CHECK(allclose(got, expected, 1e-13, 1e-14));
  CHECK(allclose(ntk_regression(k_test, k_train, y, f0, f0_test, eta, t), expected, 1e-13, 1e-14));
}

TEST_CASE("ntk_regression at t = infinity is kernel regression", "[theory][ntk]") {
  Rng rng(24);
  const Tensor b = rng.normal({5, 5});
  const Tensor k_train = matmul(b, b.t()) + eye(5) * 0.5;
  const Tensor k_test = rng.normal({2, 5}), y = rng.normal({5, 1}), f0 = rng.normal({5, 1}),
               f0_test = rng.normal({2, 1});
  // Default t: the converged prediction f0(x) + K(x, X) K(X, X)^{-1} (Y - f0(X)), by LAPACK's solve.
  const Tensor expected = f0_test + matmul(k_test, solve(k_train, y - f0));
  const Tensor got = ntk_regression(
      {.k_test_train = k_test, .k_train_train = k_train, .y_train = y, .f0_train = f0, .f0_test = f0_test});
  CHECK(allclose(got, expected, 1e-10, 1e-12));
  // A singular kernel has no t = infinity limit.
  CHECK_THROWS_WITH(ntk_regression({.k_test_train = k_test, .k_train_train = ones({5, 5}), .y_train = y,
                                    .f0_train = f0, .f0_test = f0_test}),
                    Contains("t = infinity needs a positive definite k_train_train"));
}

TEST_CASE("ntk_regression's errors name the fields", "[theory][ntk][errors]") {
  const Tensor k = eye(3), y = zeros({3, 1});
  CHECK_THROWS_WITH(ntk_regression({.k_test_train = k, .k_train_train = k, .y_train = y, .f0_train = y}),
                    Contains("ntk_regression: f0_test is undefined"));
  CHECK_THROWS_AS(ntk_regression({.k_test_train = zeros({2, 4}), .k_train_train = k, .y_train = y, .f0_train = y,
                                  .f0_test = zeros({2, 1})}),
                  ShapeError);
  CHECK_THROWS_WITH(ntk_regression({.k_test_train = zeros({2, 4}), .k_train_train = k, .y_train = y,
                                    .f0_train = y, .f0_test = zeros({2, 1})}),
                    Contains("k_test_train = K(x, X) [2, 4] does not match k_train_train = K(X, X) [3, 3]"));
  CHECK_THROWS_WITH(ntk_regression({.k_test_train = k, .k_train_train = k, .y_train = y, .f0_train = y,
                                    .f0_test = zeros({3, 2})}),
                    Contains("f0_test = f0(x) [3, 2] must be [3, 1]"));
  CHECK_THROWS_WITH(ntk_regression({.k_test_train = k, .k_train_train = k, .y_train = y, .f0_train = y,
                                    .f0_test = y, .t = std::numeric_limits<double>::quiet_NaN()}),
                    Contains("t must be finite or +infinity"));
}
