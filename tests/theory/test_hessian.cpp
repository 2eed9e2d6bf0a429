// Hessian spectra without the matrix (Lanczos, Hutchinson, SLQ) against closed forms on diagonal
// operators and against the dense Hessian (autograd::hessian + LAPACK eigh) of a small MLP.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "nn/functional.hpp"
#include "nn/layers.hpp"
#include "tensor/ops.hpp"
#include "tensor/rng.hpp"
#include "theory/hessian.hpp"
#include "theory/linalg.hpp"

using namespace theta;
using namespace theta::theory;

namespace {

/// diag(values) as a dense matrix [n, n].
Tensor diagonal_matrix(const std::vector<double>& values) {
  const auto n = static_cast<std::int64_t>(values.size());
  Tensor d = zeros({n, n});
  for (std::int64_t i = 0; i < n; ++i) d.select(0, i).select(0, i).fill_(values[static_cast<std::size_t>(i)]);
  return d;
}

/// Five isolated top eigenvalues 10..6, a triple eigenvalue 5 and 194 values spread over [-1, 1]:
/// 200 eigenvalues in a shuffled order.
std::vector<double> test_spectrum() {
  std::vector<double> v = {10.0, 9.0, 8.0, 7.0, 6.0, 5.0, 5.0, 5.0};
  for (int i = 0; i < 192; ++i) v.push_back(-1.0 + 2.0 * i / 191.0);
  Rng rng(11);
  const std::vector<double> order = to_vector(rng.permutation(static_cast<std::int64_t>(v.size())));
  std::vector<double> shuffled;
  for (double o : order) shuffled.push_back(v[static_cast<std::size_t>(o)]);
  return shuffled;
}

double trapezoid(const Tensor& x, const Tensor& y) {
  const std::vector<double> xs = to_vector(x), ys = to_vector(y);
  double s = 0.0;
  for (std::size_t i = 1; i < xs.size(); ++i) s += 0.5 * (xs[i] - xs[i - 1]) * (ys[i] + ys[i - 1]);
  return s;
}

/// An 8-24-24-4 tanh MLP (916 parameters, float64) with softmax cross-entropy on a random batch
/// of 32, with its dense Hessian and that Hessian's eigendecomposition.
struct MlpHessian {
  std::shared_ptr<nn::Sequential> model;
  Tensor x, y;
  std::vector<Tensor> params;
  autograd::ScalarFunction loss;
  Tensor dense;          // [P, P]
  SymmetricEigen eigen;  // ascending
  std::int64_t size = 0;
};

const MlpHessian& mlp_hessian() {
  static const MlpHessian h = [] {
    MlpHessian out;
    Rng rng(5);
    out.model = nn::mlp({8, 24, 24, 4}, rng, {.activation = nn::ActivationKind::tanh});
    out.x = rng.normal({32, 8});
    out.y = rng.integers({32}, 0, 4);
    out.params = parameter_values(*out.model);
    out.loss = module_loss(out.model, out.x, out.y,
                               [](const autograd::Var& logits, const Tensor& labels) {
                                 return nn::cross_entropy(logits, labels);
                               });
    out.dense = autograd::hessian(out.loss, out.params);
    out.eigen = eigh(out.dense);
    out.size = out.dense.size(0);
    return out;
  }();
  return h;
}

/// sqrt(2 sum_{i != j} H_ij^2): the standard deviation of one Rademacher probe z^T H z.
double probe_std(const Tensor& h) {
  const std::vector<double> v = to_vector(h);
  const std::int64_t n = h.size(0);
  double off = 0.0;
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < n; ++j)
      if (i != j) off += v[static_cast<std::size_t>(i * n + j)] * v[static_cast<std::size_t>(i * n + j)];
  return std::sqrt(2.0 * off);
}

}  // namespace

TEST_CASE("flatten_tensors and unflatten_like are inverse", "[theory][hessian]") {
  Rng rng(1);
  const std::vector<Tensor> like = {rng.normal({2, 3}), rng.normal({4}, 0, 1, DType::f32), rng.normal({1, 2, 2})};
  const Tensor flat = flatten_tensors(like);
  REQUIRE(flat.shape() == Shape{14});
  CHECK(flat.dtype() == DType::f64);
  CHECK(flat.at({6}) == static_cast<double>(like[1].at({0})));
  const std::vector<Tensor> back = unflatten_like(flat, like);
  REQUIRE(back.size() == 3);
  for (std::size_t i = 0; i < like.size(); ++i) {
    CHECK(back[i].shape() == like[i].shape());
    CHECK(back[i].dtype() == like[i].dtype());
    CHECK(allclose(back[i], like[i], 0.0, 0.0));
  }
  CHECK_THROWS_AS(unflatten_like(zeros({13}), like), ShapeError);
}

TEST_CASE("Lanczos on a diagonal operator finds its known spectrum", "[theory][hessian]") {
  const std::vector<double> spectrum = test_spectrum();
  const LinearOperator op = matrix_operator(diagonal_matrix(spectrum));
  const std::int64_t n = op.size;

  SECTION("top 5 with the default 40 steps, isolated eigenvalues") {
    const EigenResult r = lanczos_top_k(op, 5, {.seed = 3});
    CHECK(r.iterations == 40);
    const std::vector<double> expected = {10, 9, 8, 7, 6};
    for (int i = 0; i < 5; ++i) {
      CHECK(r.values.at({i}) == Approx(expected[static_cast<std::size_t>(i)]).epsilon(1e-10));
      CHECK(r.residuals.at({i}) < 1e-6);
      // The eigenvector is the unit vector at the position of that eigenvalue in the diagonal.
      const auto pos = std::find(spectrum.begin(), spectrum.end(), expected[static_cast<std::size_t>(i)]) -
                       spectrum.begin();
      CHECK(std::abs(r.vectors.at({pos, i})) == Approx(1.0).epsilon(1e-10));
    }
    // Lanczos' own residual bound |beta_m y_m| equals the measured residual.
    const EigenResult cheap = lanczos_top_k(op, 5, {.seed = 3, .explicit_residuals = false});
    for (int i = 0; i < 5; ++i) CHECK(cheap.residuals.at({i}) == Approx(r.residuals.at({i})).margin(1e-12));
  }
  SECTION("m = P steps recover every eigenvalue with its multiplicity") {
    const EigenResult r = lanczos_top_k(op, 4, {.iterations = n, .seed = 4, .which = Which::smallest});
    REQUIRE(r.ritz_values.numel() == n);
    std::vector<double> sorted = spectrum;
    std::sort(sorted.begin(), sorted.end());
    const std::vector<double> ritz = to_vector(r.ritz_values);
    double worst = 0.0;
    for (std::size_t i = 0; i < sorted.size(); ++i) worst = std::max(worst, std::abs(ritz[i] - sorted[i]));
    CHECK(worst < 1e-12);
    CHECK(r.values.at({0}) == Approx(-1.0).margin(1e-12));
    CHECK(r.values.at({3}) == Approx(-1.0 + 6.0 / 191.0).margin(1e-12));
    for (int i = 0; i < 4; ++i) CHECK(r.residuals.at({i}) < 1e-10);
  }
  SECTION("magnitude and both_ends ordering") {
    std::vector<double> shifted = spectrum;
    for (double& v : shifted) v -= 4.4;  // eigenvalues 5.6 ... 0.6 and a bulk over [-5.4, -3.4]
    const LinearOperator shifted_op = matrix_operator(diagonal_matrix(shifted));
    const EigenResult mag = lanczos_top_k(shifted_op, 2, {.iterations = n, .which = Which::magnitude});
    CHECK(mag.values.at({0}) == Approx(5.6).epsilon(1e-12));
    CHECK(mag.values.at({1}) == Approx(-5.4).epsilon(1e-12));
    const EigenResult both = lanczos_top_k(shifted_op, 2, {.iterations = n, .which = Which::both_ends});
    REQUIRE(both.values.numel() == 4);
    REQUIRE(both.vectors.shape() == Shape{n, 4});
    CHECK(both.values.at({0}) == Approx(5.6).epsilon(1e-12));
    CHECK(both.values.at({1}) == Approx(4.6).epsilon(1e-12));
    CHECK(both.values.at({2}) == Approx(-5.4).epsilon(1e-12));
    CHECK(both.values.at({3}) == Approx(-5.4 + 2.0 / 191.0).epsilon(1e-12));
  }
  SECTION("argument errors") {
    CHECK_THROWS_AS(lanczos_top_k(op, 0), std::invalid_argument);
    CHECK_THROWS_AS(lanczos_top_k(op, 5, {.iterations = 4}), std::invalid_argument);
    const LinearOperator bad{3, [](const Tensor&) { return zeros({2}); }};
    CHECK_THROWS_AS(lanczos_top_k(bad, 1), ShapeError);
  }
}

TEST_CASE("Hutchinson and SLQ are exact on a diagonal operator", "[theory][hessian]") {
  // z^T D z = tr D for every Rademacher z, and the spectral measure of z / sqrt(P) is the uniform
  // measure on D's eigenvalues: P distinct eigenvalues and P steps make the Gauss rule exact.
  std::vector<double> spectrum;
  for (int i = 0; i < 60; ++i) spectrum.push_back(std::sin(0.37 * i) * 3.0 + 0.01 * i);
  const LinearOperator op = matrix_operator(diagonal_matrix(spectrum));
  double trace = 0.0;
  for (double v : spectrum) trace += v;

  const TraceEstimate t = hutchinson_trace(op, 7, 2);
  CHECK(t.probes == 7);
  CHECK(t.mean == Approx(trace).epsilon(1e-12));
  CHECK(t.std_error < 1e-12);
  CHECK(std::isnan(hutchinson_trace(op, 1, 2).std_error));

  const SpectralDensity d = slq_density(op, {.probes = 3, .steps = 60, .seed = 9});
  REQUIRE(d.nodes.size() == 3);
  std::vector<double> sorted = spectrum;
  std::sort(sorted.begin(), sorted.end());
  for (std::size_t l = 0; l < 3; ++l) {
    const std::vector<double> nodes = to_vector(d.nodes[l]), weights = to_vector(d.weights[l]);
    REQUIRE(nodes.size() == 60);
    for (std::size_t i = 0; i < 60; ++i) {
      CHECK(nodes[i] == Approx(sorted[i]).margin(1e-10));
      CHECK(weights[i] == Approx(1.0 / 60.0).margin(1e-10));
    }
  }
  CHECK(quadrature_mean(d) == Approx(trace / 60.0).margin(1e-12));
  CHECK(trapezoid(d.grid, d.density) == Approx(1.0).margin(1e-6));
}

TEST_CASE("the Hessian operator of an MLP is its dense Hessian", "[theory][hessian]") {
  const MlpHessian& h = mlp_hessian();
  REQUIRE(h.size == 916);
  const LinearOperator op = hessian_operator(h.loss, h.params);
  REQUIRE(op.size == h.size);
  Rng rng(7);
  const Tensor v = rng.normal({h.size});
  const Tensor expected = matmul(h.dense, v);
  CHECK(norm(op.apply(v) - expected).item<double>() <= 1e-12 * norm(expected).item<double>());
  // The functional loss is the model's own loss.
  const double model_loss = nn::cross_entropy(h.model->forward(autograd::Var(h.x)), h.y).item();
  CHECK(h.loss(autograd::make_leaves(h.params)).item() == Approx(model_loss).epsilon(1e-14));
}

TEST_CASE("Lanczos matches the dense MLP Hessian spectrum at both ends", "[theory][hessian]") {
  const MlpHessian& h = mlp_hessian();
  const LinearOperator op = hessian_operator(h.loss, h.params);
  const std::vector<double> exact = to_vector(h.eigen.values);  // ascending
  const double spectral_norm = std::max(std::abs(exact.front()), std::abs(exact.back()));
  const auto n = static_cast<std::size_t>(h.size);

  auto check_against_dense = [&](const EigenResult& r, double rtol) {
    for (std::int64_t i = 0; i < 5; ++i) {
      const double top = exact[n - 1 - static_cast<std::size_t>(i)];
      const double bottom = exact[static_cast<std::size_t>(i)];
      CHECK(std::abs(r.values.at({i}) - top) <= rtol * std::abs(top));
      CHECK(std::abs(r.values.at({5 + i}) - bottom) <= rtol * std::abs(bottom));
    }
    // Ritz pairs are eigenpairs of the dense matrix: |H x - lambda x| measured with H itself.
    for (std::int64_t i = 0; i < 10; ++i) {
      const Tensor x = r.vectors.select(1, i).contiguous();
      CHECK(norm(x).item<double>() == Approx(1.0).epsilon(1e-12));
      const double residual = norm(matmul(h.dense, x) - x * r.values.at({i})).item<double>();
      CHECK(residual <= 1e-7 * spectral_norm);
      CHECK(r.residuals.at({i}) == Approx(residual).margin(1e-10 * spectral_norm));
    }
  };

  SECTION("m = P steps") {
    const EigenResult r = lanczos_top_k(op, 5, {.iterations = h.size, .seed = 1, .which = Which::both_ends});
    CHECK(r.iterations == h.size);
    check_against_dense(r, 1e-8);
  }
  SECTION("m = 100 steps: the extreme Ritz values have converged") {
    const EigenResult r = lanczos_top_k(op, 5, {.iterations = 100, .seed = 2, .which = Which::both_ends});
    check_against_dense(r, 1e-8);
  }
}

TEST_CASE("Hutchinson's trace of the MLP Hessian is within its standard error", "[theory][hessian]") {
  const MlpHessian& h = mlp_hessian();
  const LinearOperator op = hessian_operator(h.loss, h.params);
  const double trace = sum(h.eigen.values).item<double>();
  const std::int64_t probes = 400;
  const TraceEstimate t = hutchinson_trace(op, probes, 3);
  CHECK(t.probes == probes);
  const double theory_se = probe_std(h.dense) / std::sqrt(static_cast<double>(probes));
  CHECK(std::abs(t.mean - trace) <= 4.0 * t.std_error);
  CHECK(t.std_error == Approx(theory_se).epsilon(0.2));
}

TEST_CASE("SLQ density of the MLP Hessian integrates to 1 with mean tr(H) / P", "[theory][hessian]") {
  const MlpHessian& h = mlp_hessian();
  const LinearOperator op = hessian_operator(h.loss, h.params);
  const double p = static_cast<double>(h.size);
  const double trace = sum(h.eigen.values).item<double>();
  const std::vector<double> exact = to_vector(h.eigen.values);
  const std::int64_t probes = 20;
  const SpectralDensity d = slq_density(op, {.probes = probes, .steps = 60, .seed = 4});

  REQUIRE(d.nodes.size() == static_cast<std::size_t>(probes));
  for (std::size_t l = 0; l < d.nodes.size(); ++l) {
    CHECK(sum(d.weights[l]).item<double>() == Approx(1.0).epsilon(1e-12));
    // Ritz values lie inside the spectrum.
    CHECK(min(d.nodes[l]).item<double>() >= exact.front() - 1e-10);
    CHECK(max(d.nodes[l]).item<double>() <= exact.back() + 1e-10);
  }
  CHECK(trapezoid(d.grid, d.density) == Approx(1.0).margin(1e-6));
  const double grid_mean = trapezoid(d.grid, mul(d.grid, d.density));
  CHECK(grid_mean == Approx(quadrature_mean(d)).margin(1e-8 * std::abs(exact.back())));
  // The quadrature mean is Hutchinson's estimate over the SLQ probes, divided by P.
  const double se = probe_std(h.dense) / std::sqrt(static_cast<double>(probes)) / p;
  CHECK(std::abs(quadrature_mean(d) - trace / p) <= 4.0 * se);
}
