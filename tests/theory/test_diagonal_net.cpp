// Diagonal linear networks: the module's forward and gradients against the closed forms, the
// Woodworth potential and its gradient, its constrained minimiser against the KKT conditions and
// the kernel limit, and the O(eta) departure of GD from the flow's invariant.

#include <catch2/catch.hpp>

#include <cmath>

#include "autograd/engine.hpp"
#include "nn/functional.hpp"
#include "nn/optim.hpp"
#include "tensor/ops.hpp"
#include "tensor/rng.hpp"
#include "theory/diagonal_net.hpp"
#include "theory/least_squares.hpp"

using namespace theta;
using namespace theta::theory;

namespace {

double max_abs(const Tensor& t) { return theta::max(theta::abs(t)).item<double>(); }
double norm2(const Tensor& t) { return theta::norm(t).item<double>(); }

nn::Var half_mse(DiagonalNet& net, const Tensor& x, const Tensor& y) {
  return nn::mse_loss(net(nn::Var(x)), nn::Var(y), nn::Reduction::sum) * (0.5 / static_cast<double>(x.size(0)));
}

// max over GD steps of |P_null m| / |m| for the mirror m = asinh(beta / (2 alpha^2)), up to time t.
double invariant_drift(const Tensor& x, const Tensor& y, double alpha, double eta, double t) {
  DiagonalNet net(x.size(1), alpha);
  const LeastSquaresModes modes = least_squares_modes(x, y);
  nn::Sgd sgd(net.named_parameters(), {.lr = eta});
  double worst = 0.0;
  for (std::int64_t k = 0; k < std::llround(t / eta); ++k) {
    sgd.zero_grad();
    autograd::backward(half_mse(net, x, y));
    sgd.step();
    const Tensor mirror = woodworth_mirror(net.beta(), alpha);
    worst = std::max(worst, norm2(null_space_component(modes, mirror)) / norm2(mirror));
  }
  return worst;
}

}  // namespace

TEST_CASE("DiagonalNet computes x (u*u - v*v) and the gradients 2 u g, -2 v g", "[theory][implicit_bias]") {
  Rng rng(21);
  const Tensor x = rng.normal({6, 4}), y = rng.normal({6});
  DiagonalNet net(4, 0.5);
  CHECK(max_abs(net.u().value() - full({4}, 0.5)) == 0.0);
  CHECK(max_abs(net.beta()) == 0.0);
  net.u().value().copy_(rng.normal({4}));
  net.v().value().copy_(rng.normal({4}));
  const Tensor u = net.u().value().clone(), v = net.v().value().clone();
  const Tensor beta = u * u - v * v;
  CHECK(max_abs(net.beta() - beta) <= 1e-15);
  CHECK(max_abs(net(nn::Var(x)).value() - matmul(x, beta)) <= 1e-14);
  autograd::backward(half_mse(net, x, y));
  const Tensor g = matmul(x.t(), matmul(x, beta) - y) / 6.0;
  CHECK(max_abs(net.u().grad() - 2.0 * u * g) <= 1e-13);
  CHECK(max_abs(net.v().grad() + 2.0 * v * g) <= 1e-13);
  CHECK(net.clone()->parameter_count() == 8);
}

TEST_CASE("Woodworth's mirror map is the gradient of its potential", "[theory][implicit_bias]") {
  Rng rng(22);
  for (double alpha : {0.05, 1.0, 7.0}) {
    const Tensor beta = rng.normal({5}) * 2.0;
    const Tensor mirror = woodworth_mirror(beta, alpha);
    for (std::int64_t i = 0; i < 5; ++i) {
      const double h = 1e-6 * std::max(1.0, std::abs(beta.at({i})));
      const Tensor e = zeros({5});
      e.data<double>()[i] = h;
      const double derivative = (woodworth_potential(beta + e, alpha) - woodworth_potential(beta - e, alpha)) / (2 * h);
      CHECK(derivative == Approx(mirror.at({i})).epsilon(1e-6).margin(1e-8));
    }
    CHECK(woodworth_potential(zeros({5}), alpha) == 0.0);
    CHECK(woodworth_potential(beta, alpha) > 0.0);
  }
  // Large alpha: q(z) = z^2 / 4 + O(z^4), so Q_alpha(beta) -> |beta|^2 / (4 alpha^2).
  const Tensor beta = rng.normal({5});
  const double alpha = 100.0;
  CHECK(woodworth_potential(beta, alpha) * 4 * alpha * alpha / theta::sum(theta::square(beta)).item<double>() ==
        Approx(1.0).epsilon(1e-8));
  // Mirror for very negative beta: asinh is odd.
  CHECK(woodworth_mirror(from_vector({-1e8}), 1e-3).at({0}) == Approx(-std::asinh(1e8 / 2e-6)).epsilon(1e-14));
}

TEST_CASE("woodworth_minimizer interpolates, satisfies the KKT condition and beats feasible neighbours",
          "[theory][implicit_bias]") {
  Rng rng(23);
  const Tensor x = rng.normal({5, 12}), y = rng.normal({5});
  const LeastSquaresModes modes = least_squares_modes(x, y);
  for (double alpha : {0.05, 0.5, 3.0}) {
    const Tensor beta = woodworth_minimizer(x, y, alpha);
    CHECK(norm2(matmul(x, beta) - y) <= 1e-12 * norm2(y));
    const Tensor mirror = woodworth_mirror(beta, alpha);
    CHECK(norm2(null_space_component(modes, mirror)) <= 1e-10 * norm2(mirror));
    const double best = woodworth_potential(beta, alpha);
    for (int trial = 0; trial < 5; ++trial) {
      const Tensor step = null_space_component(modes, rng.normal({12})) * 1e-2;
      CHECK(woodworth_potential(beta + step, alpha) > best);
    }
  }
  // Kernel limit: for large alpha the minimiser is x^+ y up to O(|beta|^2 / alpha^4).
  const Tensor pinv = min_norm_solution(x, y);
  CHECK(norm2(woodworth_minimizer(x, y, 50.0) - pinv) <= 1e-5 * norm2(pinv));
}

TEST_CASE("GD departs from the flow's mirror invariant at first order in eta", "[theory][implicit_bias]") {
  Rng rng(24);
  const Tensor x = rng.normal({4, 8}), y = rng.normal({4});
  const double coarse = invariant_drift(x, y, 0.1, 4e-3, 2.0);
  const double fine = invariant_drift(x, y, 0.1, 2e-3, 2.0);
  CHECK(coarse / fine == Approx(2.0).epsilon(0.1));
  CHECK(coarse <= 10 * 4e-3);
}

TEST_CASE("diagonal-net tools reject bad arguments", "[theory][implicit_bias]") {
  CHECK_THROWS_AS(DiagonalNet(0, 1.0), ShapeError);
  CHECK_THROWS_AS(DiagonalNet(3, 0.0), std::invalid_argument);
  CHECK_THROWS_AS(DiagonalNet(3, NAN), std::invalid_argument);
  DiagonalNet net(3, 1.0);
  CHECK_THROWS_WITH(net(nn::Var(ones({2, 4}))), Catch::Contains("is not [n, 3]"));
  CHECK_THROWS_AS(woodworth_potential(ones({2, 2}), 1.0), ShapeError);
  CHECK_THROWS_AS(woodworth_mirror(ones({2}), -1.0), std::invalid_argument);
  CHECK_THROWS_AS(woodworth_minimizer(ones({2, 3}), ones({3}), 1.0), ShapeError);
  // Two equal rows with different targets: no interpolant exists.
  CHECK_THROWS_AS(woodworth_minimizer(ones({2, 3}), from_vector({1, 2}), 1.0), std::invalid_argument);
}
