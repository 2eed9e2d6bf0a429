// Deep linear network dynamics against closed forms: Saxe's depth-2 solution, exact solutions of
// the depth-D mode ODE for D = 1, 2, 3, the exact eta^2 law of balancedness, and the analytic
// gradients of the 1/(2n) loss.

#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "autograd/engine.hpp"
#include "tensor/ops.hpp"
#include "theory/deep_linear.hpp"
#include "theory/linalg.hpp"

using namespace theta;
using namespace theta::theory;

namespace {

double max_abs(const Tensor& t) { return theta::max(theta::abs(t)).item<double>(); }

// max over records and modes of |measured - predicted(mode, t)| / s.
template <class Prediction>
double max_relative_error(const GdTrace& trace, const Tensor& s, Prediction predicted) {
  double worst = 0.0;
  for (std::size_t r = 0; r < trace.times.size(); ++r)
    for (std::int64_t a = 0; a < s.size(0); ++a) {
      const double u = trace.strengths.at({static_cast<std::int64_t>(r), a});
      worst = std::max(worst, std::abs(u - predicted(a, r)) / s.at({a}));
    }
  return worst;
}

// Depth 3 in closed form: with u = a^3 the mode ODE is da/dt = a^2 (s - a^3), so
// t(a) = F(a) - F(a0) with F' = 1 / (a^2 (s - a^3)); partial fractions with c = s^{1/3} give
// F(a) = -1/(s a) + (1/s) [-ln(c - a)/(3c) + ln(a^2 + ca + c^2)/(6c) - atan((2a + c)/(c sqrt3))/(c sqrt3)].
double depth3_antiderivative(double s, double a) {
  const double c = std::cbrt(s), r3 = std::sqrt(3.0);
  return -1.0 / (s * a) + (-std::log(c - a) / (3 * c) + std::log(a * a + c * a + c * c) / (6 * c) -
                           std::atan((2 * a + c) / (c * r3)) / (c * r3)) / s;
}

SaxeProblemOptions small_problem(std::vector<double> strengths) {
  return {.samples = 8, .input_dim = 5, .output_dim = 4, .strengths = std::move(strengths)};
}

}  // namespace

TEST_CASE("Saxe's closed form solves du/dt = 2u(s - u)", "[theory][deep_linear]") {
  for (double s : {0.5, 1.0, 2.0, 3.0})
    for (double u0 : {1e-3, 0.1, 0.4 * s, 1.5 * s}) {
      CHECK(saxe_mode_strength(s, u0, 0.0) == Approx(u0).epsilon(1e-15));
      CHECK(saxe_mode_strength(s, u0, 60.0 / s) == Approx(s).epsilon(1e-12));
      for (double t : {0.05, 0.4, 1.0, 2.5}) {
        const double h = 1e-5;
        const double derivative = (saxe_mode_strength(s, u0, t + h) - saxe_mode_strength(s, u0, t - h)) / (2 * h);
        const double u = saxe_mode_strength(s, u0, t);
        CHECK(std::abs(derivative - 2 * u * (s - u)) <= 1e-8 * s * s);
        CHECK(depth_d_rate(2, s, u) == Approx(2 * u * (s - u)).epsilon(1e-14));
      }
      if (u0 < s / 2) CHECK(saxe_mode_strength(s, u0, saxe_half_time(s, u0)) == Approx(s / 2).epsilon(1e-13));
    }
  CHECK_THROWS_AS(saxe_half_time(1.0, 0.6), std::invalid_argument);
}

TEST_CASE("RK4 on the depth-D mode ODE matches exact solutions for D = 1, 2, 3", "[theory][deep_linear]") {
  const std::vector<double> times{0.0, 0.5, 1.0, 2.0, 3.5, 6.0};
  for (double s : {0.5, 1.5, 2.0}) {
    const double u0 = 1e-2;
    // D = 1: du/dt = s - u.
    const auto linear = integrate_depth_d(1, s, u0, times, 1e-3);
    for (std::size_t i = 0; i < times.size(); ++i)
      CHECK(std::abs(linear[i] - (s + (u0 - s) * std::exp(-times[i]))) <= 1e-12);
    // D = 2: Saxe's curve.
    const auto two = integrate_depth_d(2, s, u0, times, 1e-3);
    for (std::size_t i = 0; i < times.size(); ++i)
      CHECK(std::abs(two[i] - saxe_mode_strength(s, u0, times[i])) <= 1e-10 * s);
    // D = 3: the time at which u reaches each level, from the antiderivative.
    const double a0 = std::cbrt(u0);
    for (double level : {0.05, 0.25, 0.5, 0.9}) {
      const double t_level = depth3_antiderivative(s, std::cbrt(level * s)) - depth3_antiderivative(s, a0);
      const auto three = integrate_depth_d(3, s, u0, {t_level}, 1e-4);
      CHECK(three[0] == Approx(level * s).epsilon(1e-9));
    }
  }
}

TEST_CASE("make_saxe_problem has whitened inputs and the chosen modes", "[theory][deep_linear]") {
  Rng rng(3);
  const DeepLinearProblem p = make_saxe_problem(small_problem({2.0, 1.0, 0.5}), rng);
  const double n = static_cast<double>(p.x.size(0));
  CHECK(max_abs(matmul(p.x.t(), p.x) / n - eye(5)) <= 1e-13);
  CHECK(max_abs(matmul(p.u.t(), p.u) - eye(3)) <= 1e-13);
  CHECK(max_abs(matmul(p.v.t(), p.v) - eye(3)) <= 1e-13);
  // LAPACK's SVD of y^T x / n finds the same strengths and (up to sign) the same directions.
  const DeepLinearProblem found = problem_from_data(p.x, p.y, 3);
  for (std::int64_t a = 0; a < 3; ++a) {
    CHECK(found.s.at({a}) == Approx(p.s.at({a})).epsilon(1e-12));
    CHECK(std::abs(theta::sum(found.u.select(1, a) * p.u.select(1, a)).item<double>()) == Approx(1.0).epsilon(1e-12));
    CHECK(std::abs(theta::sum(found.v.select(1, a) * p.v.select(1, a)).item<double>()) == Approx(1.0).epsilon(1e-12));
  }
  CHECK_THROWS_AS(problem_from_data(p.x * 2.0, p.y, 3), std::invalid_argument);
}

TEST_CASE("svd reconstructs rectangular matrices with orthonormal factors; singular_values agrees", "[theory][deep_linear]") {
  Rng rng(11);
  for (const Shape& shape : {Shape{3, 5}, Shape{5, 3}, Shape{4, 4}}) {
    const Tensor a = rng.normal(shape);
    const Svd d = svd(a);
    const std::int64_t k = std::min(shape[0], shape[1]);
    CHECK(d.u.shape() == Shape{shape[0], k});
    CHECK(d.v.shape() == Shape{shape[1], k});
    CHECK(max_abs(matmul(d.u * d.s.unsqueeze(0), d.v.t()) - a) <= 1e-13);
    CHECK(max_abs(matmul(d.u.t(), d.u) - eye(k)) <= 1e-13);
    CHECK(max_abs(matmul(d.v.t(), d.v) - eye(k)) <= 1e-13);
    for (std::int64_t i = 1; i < k; ++i) CHECK(d.s.at({i - 1}) >= d.s.at({i}));
    // Singular values squared are the eigenvalues of a^T a.
    const SymmetricEigen eig = eigh(matmul(a.t(), a));
    for (std::int64_t i = 0; i < k; ++i)
      CHECK(d.s.at({i}) * d.s.at({i}) == Approx(eig.values.at({shape[1] - 1 - i})).epsilon(1e-12));
    // singular_values finds them without the vectors.
    const Tensor s = singular_values(a);
    REQUIRE(s.shape() == Shape{k});
    for (std::int64_t i = 0; i < k; ++i) CHECK(s.at({i}) == Approx(d.s.at({i})).epsilon(1e-13));
  }
}

TEST_CASE("mode_strengths and end_to_end agree with explicit sums", "[theory][deep_linear]") {
  Rng rng(5);
  const std::vector<Tensor> w = random_init({3, 4, 2}, 1.0, rng);
  const Tensor u = rng.normal({2, 2}), v = rng.normal({3, 2});
  const Tensor strengths = mode_strengths(w, u, v);
  for (std::int64_t a = 0; a < 2; ++a) {
    double expected = 0.0;
    for (std::int64_t i = 0; i < 2; ++i)
      for (std::int64_t h = 0; h < 4; ++h)
        for (std::int64_t j = 0; j < 3; ++j) expected += u.at({i, a}) * w[1].at({i, h}) * w[0].at({h, j}) * v.at({j, a});
    CHECK(strengths.at({a}) == Approx(expected).epsilon(1e-13));
  }
  CHECK_THROWS_AS(end_to_end({w[1], w[0]}), ShapeError);
}

TEST_CASE("balanced aligned init: the product is U diag(u0) V^T and B = 0", "[theory][deep_linear]") {
  Rng rng(7);
  const DeepLinearProblem p = make_saxe_problem(small_problem({2.0, 1.0, 0.5}), rng);
  const Tensor u0 = from_vector({1e-3, 2e-2, 0.3});
  const Tensor expected = matmul(p.u * u0.unsqueeze(0), p.v.t());
  for (const auto& widths : std::vector<std::vector<std::int64_t>>{{5, 4}, {5, 6, 4}, {5, 3, 7, 4}, {5, 6, 6, 6, 4}}) {
    const std::vector<Tensor> w = balanced_aligned_init(widths, p.u, p.v, u0, rng);
    REQUIRE(w.size() == widths.size() - 1);
    CHECK(max_abs(end_to_end(w) - expected) <= 1e-15);
    CHECK(max_abs(mode_strengths(w, p.u, p.v) - u0) <= 1e-15);
    for (const Tensor& b : balancedness(w)) CHECK(max_abs(b) <= 1e-15);
    // The network built from the weights computes x -> W x.
    auto net = make_deep_linear_net(w);
    CHECK(max_abs(net->forward(nn::Var(p.x)).value() - matmul(p.x, expected.t())) <= 1e-14);
  }
  CHECK_THROWS_AS(balanced_aligned_init({5, 2, 4}, p.u, p.v, u0, rng), std::invalid_argument);
}

TEST_CASE("the 1/(2n) loss has gradients (W2^T (W - Sigma), (W - Sigma) W1^T)", "[theory][deep_linear]") {
  Rng rng(13);
  const DeepLinearProblem p = make_saxe_problem(small_problem({2.0, 1.0}), rng);
  const std::vector<Tensor> w = random_init({5, 6, 4}, 0.5, rng);
  auto net = make_deep_linear_net(w);
  const auto params = net->parameters();
  const nn::Var loss = deep_linear_loss(net->forward(nn::Var(p.x)), p.y);
  const auto grads = autograd::grad({loss}, params);
  const Tensor residual = end_to_end(w) - input_output_correlation(p.x, p.y);  // dL/dW for whitened x
  CHECK(max_abs(grads[0].value() - matmul(w[1].t(), residual)) <= 1e-13);
  CHECK(max_abs(grads[1].value() - matmul(residual, w[0].t())) <= 1e-13);
}

TEST_CASE("balanced depth-2 GD follows Saxe's curve with t = eta k", "[theory][deep_linear]") {
  Rng rng(1);
  const DeepLinearProblem p = make_saxe_problem(small_problem({2.0, 1.5, 1.0}), rng);
  const double u0 = 1e-3, eta = 1e-3;
  auto net = make_deep_linear_net(balanced_aligned_init({5, 6, 4}, p.u, p.v, full({3}, u0), rng));
  const GdTrace trace = train_deep_linear(*net, p, {.eta = eta, .steps = 8000, .record_every = 10});
  const double error = max_relative_error(
      trace, p.s, [&](std::int64_t a, std::size_t r) { return saxe_mode_strength(p.s.at({a}), u0, trace.times[r]); });
  CHECK(error <= 2e-3);
  for (std::int64_t a = 0; a < 3; ++a) CHECK(trace.strengths.at({static_cast<std::int64_t>(trace.times.size()) - 1, a}) / p.s.at({a}) > 0.999);  // all learned
  CHECK(trace.times.back() == Approx(8.0).epsilon(1e-12));
  CHECK(trace.losses.back() < 1e-6 * trace.losses.front());
}

TEST_CASE("balanced depth-3 GD follows the integrated ODE du/dt = 3 u^{4/3} (s - u)", "[theory][deep_linear]") {
  Rng rng(2);
  const DeepLinearProblem p = make_saxe_problem(small_problem({2.0, 1.0}), rng);
  const double u0 = 1e-2;
  auto net = make_deep_linear_net(balanced_aligned_init({5, 6, 5, 4}, p.u, p.v, full({2}, u0), rng));
  const GdTrace trace = train_deep_linear(*net, p, {.eta = 1e-3, .steps = 7000, .record_every = 20});
  std::vector<std::vector<double>> ode;
  for (std::int64_t a = 0; a < 2; ++a) ode.push_back(integrate_depth_d(3, p.s.at({a}), u0, trace.times, 1e-4));
  const double error = max_relative_error(
      trace, p.s, [&](std::int64_t a, std::size_t r) { return ode[static_cast<std::size_t>(a)][r]; });
  CHECK(error <= 2.5e-3);
  for (std::int64_t a = 0; a < 2; ++a) CHECK(trace.strengths.at({static_cast<std::int64_t>(trace.times.size()) - 1, a}) / p.s.at({a}) > 0.99);
}

TEST_CASE("balancedness changes by exactly eta^2 (G_{l+1}^T G_{l+1} - G_l G_l^T) per GD step",
          "[theory][deep_linear]") {
  Rng rng(17);
  const DeepLinearProblem p = make_saxe_problem(small_problem({2.0, 1.0, 0.5}), rng);
  auto net = make_deep_linear_net(random_init({5, 7, 6, 4}, 0.5, rng));
  const GdTrace trace =
      train_deep_linear(*net, p, {.eta = 0.05, .steps = 300, .record_every = 10, .check_balancedness = true});
  CHECK(trace.max_step_law_error <= 1e-12);
  CHECK(trace.max_total_law_error <= 1e-12);
  CHECK(trace.drift.back() > 1e-3);  // a large step: the eta^2 drift is far from rounding
  CHECK(trace.predicted_drift.back() == Approx(trace.drift.back()).epsilon(1e-9));
}

TEST_CASE("small random init learns modes in order of strength, at Saxe's half times", "[theory][deep_linear]") {
  Rng rng(19);
  const DeepLinearProblem p = make_saxe_problem(small_problem({2.0, 1.0, 0.5}), rng);
  const std::int64_t hidden = 64;
  const std::vector<Tensor> w = random_init({5, hidden, 4}, std::sqrt(2e-3 / hidden), rng);
  const Tensor u0 = effective_initial_strength(w, p.u, p.v);
  auto net = make_deep_linear_net(w);
  const GdTrace trace = train_deep_linear(*net, p, {.eta = 1e-3, .steps = 8000, .record_every = 5});
  const std::vector<double> t_half = crossing_times(trace.times, trace.strengths, p.s);
  for (std::int64_t a = 0; a < 3; ++a) {
    const double predicted = saxe_half_time(p.s.at({a}), u0.at({a}));
    INFO("mode " << a << ": t_half " << t_half[static_cast<std::size_t>(a)] << " predicted " << predicted);
    CHECK(std::abs(t_half[static_cast<std::size_t>(a)] - predicted) <= 0.03 * predicted);
  }
  CHECK(t_half[0] < t_half[1]);
  CHECK(t_half[1] < t_half[2]);
}
