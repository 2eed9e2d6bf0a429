// The lazy scaling alpha (f(w, x) - f(w0, x)) against the model evaluated directly, its gradient
// against alpha times the model's, and its training against kernel dynamics: exactly for a
// linearised model (ntk_regression with discrete steps), to O(1 / alpha) for the model itself.

#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "autograd/engine.hpp"
#include "nn/functional.hpp"
#include "nn/layers.hpp"
#include "nn/linearized.hpp"
#include "nn/optim.hpp"
#include "tensor/ops.hpp"
#include "tensor/rng.hpp"
#include "tests/support/thread_count.hpp"
#include "theory/landscape_directions.hpp"
#include "theory/landscape_grid.hpp"
#include "theory/lazy_training.hpp"
#include "theory/ntk.hpp"

using namespace theta;
using namespace theta::theory;
using autograd::Var;
using Catch::Matchers::Contains;

namespace {

double max_abs(const Tensor& t) { return max(abs(t)).item<double>(); }
// max |a - b| / max |b| (0 when both are 0: a bias unused at sigma_b = 0 has a zero gradient).
double rel_gap(const Tensor& a, const Tensor& b) { return max_abs(sub(a, b)) / std::max(max_abs(b), 1e-300); }

std::shared_ptr<nn::Sequential> small_net(Rng& rng, std::int64_t width = 16) {
  return nn::mlp({3, width, 1}, rng,
                 {.activation = nn::ActivationKind::tanh, .parameterization = nn::Parameterization::ntk});
}

// n steps of plain GD on (1 / alpha^2) 1/2 |g(x) - y|^2; returns g's outputs on x_test.
Tensor train(nn::Module& g, double alpha, const Tensor& x, const Tensor& y, const Tensor& x_test, double eta,
             int steps) {
  nn::Sgd sgd(g.named_parameters(), {.lr = eta});
  for (int s = 0; s < steps; ++s) {
    sgd.zero_grad();
    autograd::backward(nn::mse_loss(g(Var(x)), Var(y), nn::Reduction::sum) * (0.5 / (alpha * alpha)));
    sgd.step();
  }
  autograd::NoGradGuard no_grad;
  return g(Var(x_test)).value();
}

}  // namespace

TEST_CASE("LazyScaled is alpha (f(w, x) - f(w0, x)) with the model's parameters", "[theory][lazy]") {
  Rng rng(21);
  auto f = small_net(rng);
  const auto w0 = f->clone();
  const Tensor x = rng.normal({5, 3});
  LazyScaled g(f, 7.5);
  CHECK(max_abs(g(Var(x)).value()) == 0.0);  // recentred: exactly 0 at w0
  const auto names = g.named_parameters();
  REQUIRE(names.size() == f->named_parameters().size());
  CHECK(names[0].first == "model.layers.0.weight");
  // Move w; the output is alpha times the model's change, evaluated directly.
  for (const auto& p : f->parameters()) p.value().copy_(add(p.value(), rng.normal(p.shape(), 0.0, 0.1)));
  const Tensor expected = mul(sub((*f)(Var(x)).value(), (*w0)(Var(x)).value()), scalar_tensor(7.5));
  CHECK(rel_gap(g(Var(x)).value(), expected) <= 1e-14);
  // Its gradient is alpha times the model's.
  const Tensor v = rng.normal({5, 1});
  const auto dg = autograd::grad({g(Var(x))}, g.parameters(), {Var(v)});
  const auto df = autograd::grad({(*f)(Var(x))}, f->parameters(), {Var(v)});
  for (std::size_t i = 0; i < dg.size(); ++i) CHECK(rel_gap(dg[i].value(), mul(df[i].value(), scalar_tensor(7.5))) <= 1e-14);
  // A clone is independent of the original's later training.
  const auto copy = g.clone();
  CHECK(rel_gap((*copy)(Var(x)).value(), g(Var(x)).value()) == 0.0);
  f->parameters()[0].value().fill_(0.0);
  CHECK(rel_gap((*copy)(Var(x)).value(), expected) <= 1e-14);
}

TEST_CASE("a lazily scaled linearised model trained by GD is ntk_regression with discrete steps", "[theory][lazy]") {
  Rng rng(22);
  auto f = small_net(rng);
  const Tensor x = rng.normal({6, 3}), y = rng.normal({6, 1}), x_test = rng.normal({4, 3});
  const Tensor k = empirical_ntk_matrix(*f, x, x), k_test = empirical_ntk_matrix(*f, x_test, x);
  const double eta = 0.05;
  const int steps = 40;
  const Tensor zero_train = zeros({6, 1}), zero_test = zeros({4, 1});
  const Tensor predicted = ntk_regression({.k_test_train = k_test, .k_train_train = k, .y_train = y,
                                           .f0_train = zero_train, .f0_test = zero_test, .eta = eta,
                                           .t = steps, .discrete = true});
  for (const double alpha : {1.0, 30.0}) {
    LazyScaled g(nn::linearize(*f), alpha);
    CHECK(rel_gap(train(g, alpha, x, y, x_test, eta, steps), predicted) <= 1e-11);
  }
  // The model itself approaches the same prediction as 1 / alpha.
  std::vector<double> gaps;
  for (const double alpha : {10.0, 100.0}) {
    LazyScaled g(f->clone(), alpha);
    gaps.push_back(rel_gap(train(g, alpha, x, y, x_test, eta, steps), predicted));
  }
  CHECK(gaps[0] < 0.2);
  CHECK(gaps[1] / gaps[0] == Approx(0.1).margin(0.03));
}

TEST_CASE("LazyScaled rejects a null model and a non-positive or non-finite alpha", "[theory][lazy]") {
  Rng rng(23);
  CHECK_THROWS_WITH(LazyScaled(nullptr, 1.0), Contains("null"));
  CHECK_THROWS_WITH(LazyScaled(small_net(rng), 0.0), Contains("alpha must be > 0"));
  CHECK_THROWS_WITH(LazyScaled(small_net(rng), -2.0), Contains("alpha must be > 0"));
  CHECK_THROWS_AS(LazyScaled(small_net(rng), std::nan("")), std::invalid_argument);
}

TEST_CASE("clones of LazyScaled and Linearized evaluate on several threads at once", "[theory][lazy]") {
  // loss_slice runs one clone per worker; the copy of f at w0 has BatchNorm buffers that forward
  // saves and restores, so clones must not share it.
  Rng rng(24);
  auto net = std::make_shared<nn::Sequential>();
  net->add(std::make_shared<nn::Linear>(3, 8, rng)).add(std::make_shared<nn::BatchNorm1d>(8)).add(
      std::make_shared<nn::Linear>(8, 1, rng));
  const Tensor x = rng.normal({32, 3}), y = rng.normal({32, 1});
  const nn::LossFn loss = [](const Var& out, const Tensor& target) { return nn::mse_loss(out, Var(target)); };
  const std::vector<std::shared_ptr<nn::Module>> models{lazy_scaled(net, 3.0), nn::linearize(*net)};
  for (const auto& model : models) {
    const Tensor origin = parameter_vector(*model);
    const Tensor direction = rng.normal({origin.size(0)});
    const Tensor alphas = rng.uniform({400}, -1.0, 1.0);
    Tensor one, two;
    {
      const test::ThreadCount threads(1);
      one = loss_slice(*model, x, y, loss, origin, direction, alphas);
    }
    {
      const test::ThreadCount threads(2);
      two = loss_slice(*model, x, y, loss, origin, direction, alphas);
    }
    CHECK(max_abs(sub(one, two)) == 0.0);
  }
}
