// Empirical NTK: the structured algorithm against Jacobian contraction and against a kernel
// built by hand from parameter Jacobians; the analytic kernel against wide networks; NTK
// regression against explicit gradient descent on the linearised model.

#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "autograd/engine.hpp"
#include "nn/layers.hpp"
#include "nn/residual.hpp"
#include "tests/support/kernel_compare.hpp"
#include "theory/linalg.hpp"
#include "theory/ntk.hpp"

using namespace theta;
using theta::test::max_rel_diff;
using namespace theta::theory;
using theta::autograd::Var;

namespace {

std::shared_ptr<nn::Sequential> small_mlp(nn::Parameterization param, nn::ActivationKind act, bool bias, int outputs,
                                          std::uint64_t seed) {
  Rng rng(seed);
  return nn::mlp({5, 7, 6, outputs}, rng,
                 {.activation = act, .bias = bias, .parameterization = param, .sigma_w = 1.3, .sigma_b = 0.4});
}

}  // namespace

TEST_CASE("structured NTK equals Jacobian contraction to 1e-10", "[theory][ntk]") {
  for (auto param : {nn::Parameterization::standard, nn::Parameterization::ntk})
    for (bool bias : {true, false})
      for (int outputs : {1, 3}) {
        auto net = small_mlp(param, nn::ActivationKind::tanh, bias, outputs, 7);
        Rng rng(11);
        const Tensor x1 = rng.normal({4, 5}), x2 = rng.normal({3, 5});
        const Tensor fast = empirical_ntk(*net, x1, x2);
        const Tensor slow = empirical_ntk(*net, x1, x2, {.method = NtkMethod::contraction});
        CHECK(fast.shape() == Shape{4, 3, outputs, outputs});
        CHECK(max_rel_diff(fast, slow) < 1e-10);
        // Same inputs (symmetric path through syrk).
        const Tensor sym_fast = empirical_ntk(*net, x1, x1);
        const Tensor sym_slow = empirical_ntk(*net, x1, x1, {.method = NtkMethod::contraction, .max_bytes = 2000});
        CHECK(max_rel_diff(sym_fast, sym_slow) < 1e-10);
        CHECK(max_rel_diff(empirical_ntk_trace(*net, x1, x2), empirical_ntk_trace(*net, x1, x2, {.method = NtkMethod::contraction})) < 1e-10);
        CHECK(max_rel_diff(empirical_ntk_diagonal(*net, x1), empirical_ntk_diagonal(*net, x1, {.method = NtkMethod::contraction})) < 1e-10);
      }
}

TEST_CASE("NTK equals the sum over parameters of J1 J2^T from parameter_jacobians", "[theory][ntk]") {
  auto net = small_mlp(nn::Parameterization::ntk, nn::ActivationKind::relu, true, 2, 3);
  Rng rng(5);
  const Tensor x = rng.normal({3, 5});
  const auto blocks = parameter_jacobians(*net, x, 500);
  Tensor k = zeros({3, 3, 2, 2});
  for (const auto& [name, j] : blocks) {
    CHECK(j.size(0) == 3);
    const Tensor flat = j.reshape_copy({3, 2, -1});
    for (int a = 0; a < 3; ++a)
      for (int b = 0; b < 3; ++b)
        k.select(0, a).select(0, b).copy_(k.select(0, a).select(0, b).clone() + matmul(flat.select(0, a), flat.select(0, b).t()));
  }
  CHECK(max_rel_diff(empirical_ntk(*net, x, x), k) < 1e-12);
  // A Jacobian row against central differences of the output.
  const auto& [wname, jw] = blocks[0];
  const Tensor w = net->parameters()[0].value();
  const double eps = 1e-6;
  for (std::int64_t e = 0; e < 4; ++e) {
    const Tensor flat_w = w.reshape({-1});
    const double saved = flat_w.at({e});
    flat_w.select(0, e).fill_(saved + eps);
    const Tensor up = net->forward(Var(x)).value().clone();
    flat_w.select(0, e).fill_(saved - eps);
    const Tensor down = net->forward(Var(x)).value().clone();
    flat_w.select(0, e).fill_(saved);
    const Tensor fd = (up - down) / (2 * eps);  // [3, 2]
    const Tensor jcol = jw.reshape_copy({3, 2, -1}).select(2, e);
    CHECK(max_rel_diff(jcol, fd) < 1e-6);
  }
}

TEST_CASE("a non-Linear parameter falls back to contraction for its block", "[theory][ntk]") {
  Rng rng(2);
  auto net = std::make_shared<nn::Sequential>();
  net->add(std::make_shared<nn::Linear>(4, 6, rng));
  net->add(std::make_shared<nn::LayerNorm>(6));
  net->add(std::make_shared<nn::Activation>(nn::ActivationKind::tanh));
  net->add(std::make_shared<nn::Linear>(6, 2, rng));
  // Perturb LayerNorm's affine parameters so their gradients are generic.
  for (const auto& [name, p] : net->named_parameters())
    if (name.find("layers.1") == 0) p.value().copy_(rng.normal(p.shape()));
  const Tensor x = rng.normal({5, 4});
  CHECK(max_rel_diff(empirical_ntk(*net, x, x), empirical_ntk(*net, x, x, {.method = NtkMethod::contraction})) < 1e-10);
}

TEST_CASE("per-sample gradients sum to the batch gradient and their norms match", "[theory][ntk]") {
  auto net = small_mlp(nn::Parameterization::standard, nn::ActivationKind::tanh, true, 3, 9);
  Rng rng(4);
  const Tensor x = rng.normal({6, 5});
  const Tensor labels = rng.integers({6}, 0, 3);
  auto loss = [&](const Var& f) { return nn::cross_entropy(f, labels, nn::Reduction::none); };
  const auto per_sample = per_sample_gradients(*net, x, loss);
  const auto params = net->parameters();
  const auto batch = autograd::grad({autograd::sum(loss(net->forward(Var(x))))}, params);
  Tensor norms_sq = zeros({6});
  for (std::size_t k = 0; k < params.size(); ++k) {
    CHECK(max_rel_diff(sum(per_sample[k].second, {0}), batch[k].value()) < 1e-12);
    norms_sq = norms_sq + sum(square(per_sample[k].second.reshape_copy({6, -1})), {1});
  }
  CHECK(max_rel_diff(per_sample_gradient_norms(*net, x, loss), sqrt(norms_sq)) < 1e-12);
  // Sample 2's gradient equals the gradient of its own loss alone.
  const Var f2 = net->forward(Var(x.slice(0, 2, 3)));
  const auto g2 = autograd::grad({nn::cross_entropy(f2, labels.slice(0, 2, 3), nn::Reduction::sum)}, params);
  for (std::size_t k = 0; k < params.size(); ++k) CHECK(max_rel_diff(per_sample[k].second.select(0, 2), g2[k].value()) < 1e-12);
}

TEST_CASE("analytic ReLU and erf kernels match wide networks", "[theory][ntk]") {
  Rng rng(8);
  const Tensor x = rng.normal({4, 3});
  for (auto act : {nn::ActivationKind::relu, nn::ActivationKind::erf}) {
    const AnalyticKernels exact = analytic_ntk(x, x, 3, act, 1.4, 0.3);
    Tensor mean_k = zeros({4, 4});
    const int inits = 4;
    for (int s = 0; s < inits; ++s) {
      Rng r(100 + static_cast<std::uint64_t>(s));
      auto net = nn::mlp({3, 2048, 2048, 1}, r,
                         {.activation = act, .parameterization = nn::Parameterization::ntk, .sigma_w = 1.4, .sigma_b = 0.3});
      mean_k = mean_k + empirical_ntk_trace(*net, x, x) / inits;
    }
    INFO(nn::activation_name(act));
    CHECK(max_rel_diff(mean_k, exact.ntk) < 0.03);
  }
  // One hidden layer of width 1: the closed form's first step (Sigma^1 = w2 x.x'/d + b2).
  const AnalyticKernels one = analytic_ntk(x, x, 1, nn::ActivationKind::relu, 2.0, 0.5);
  CHECK(one.ntk.at({0, 1}) == Approx(4.0 * to_vector(matmul(x, x.t()))[1] / 3.0 + 0.25));
}

TEST_CASE("NTK regression equals gradient descent on the linearised model", "[theory][ntk]") {
  Rng rng(12);
  const Tensor a = rng.normal({6, 6});
  const Tensor k = matmul(a, a.t()) + eye(6) * 0.1;  // a positive definite "kernel"
  const Tensor y = rng.normal({6, 2}), f0 = rng.normal({6, 2});
  const double eta = 0.01;
  const int steps = 300;
  // Linearised model on the training set: f <- f - eta K (f - y), from f0.
  Tensor f = f0;
  for (int s = 0; s < steps; ++s) f = f - matmul(k, f - y) * eta;
  // Discrete GD vs continuous flow: compare with the flow at the same t to O(eta).
  const Tensor flow = ntk_regression(k, k, y, f0, f0, eta, steps);
  CHECK(max_rel_diff(flow, f) < 0.05);
  // Long time: fits the targets.
  CHECK(max_rel_diff(ntk_regression(k, k, y, f0, f0, eta, 1e7), y) < 1e-8);
  // t = 0 returns f0.
  CHECK(max_rel_diff(ntk_regression(k, k, y, f0, f0, eta, 0.0), f0) < 1e-15);
  // The discrete form is the GD iteration itself, at a small step and at one past 1 / lambda_max
  // (where the per-mode factor 1 - eta lambda turns negative).
  const double lambda_max = eigh(k).values.at({5});
  for (const double step : {eta, 1.5 / lambda_max}) {
    Tensor g = f0;
    for (int s = 0; s < steps; ++s) g = g - matmul(k, g - y) * step;
    const Tensor gd = ntk_regression(
        {.k_test_train = k, .k_train_train = k, .y_train = y, .f0_train = f0, .f0_test = f0, .eta = step,
         .t = static_cast<double>(steps), .discrete = true});
    CHECK(max_rel_diff(gd, g) < 1e-12);
  }
  CHECK_THROWS_WITH(ntk_regression({.k_test_train = k, .k_train_train = k, .y_train = y, .f0_train = f0,
                                    .f0_test = f0, .eta = eta, .t = 2.5, .discrete = true}),
                    Catch::Matchers::Contains("whole number of steps"));
  CHECK_THROWS_WITH(ntk_regression({.k_test_train = k, .k_train_train = k, .y_train = y, .f0_train = f0,
                                    .f0_test = f0, .eta = 2.5 / lambda_max, .discrete = true}),
                    Catch::Matchers::Contains("diverges"));
}

TEST_CASE("structured NTK equals contraction on residual, LayerNorm and NTK-parameterised nets",
          "[theory][ntk]") {
  Rng rng(13);
  std::vector<std::pair<std::string, std::shared_ptr<nn::Module>>> nets;
  nets.emplace_back("residual MLP", nn::residual_mlp({.in_features = 5, .width = 7, .out_features = 3, .blocks = 2,
                                                      .activation = nn::ActivationKind::tanh},
                                                     rng));
  nets.emplace_back("residual MLP, NTK parameterisation",
                    nn::residual_mlp({.in_features = 5, .width = 6, .out_features = 2, .blocks = 3,
                                      .activation = nn::ActivationKind::relu,
                                      .parameterization = nn::Parameterization::ntk, .sigma_w = 1.3, .sigma_b = 0.2},
                                     rng));
  auto projected = std::make_shared<nn::Sequential>();
  projected->add(std::make_shared<nn::Residual>(std::make_shared<nn::Linear>(5, 4, rng),
                                                std::make_shared<nn::Linear>(5, 4, rng)));
  projected->add(std::make_shared<nn::LayerNorm>(4));
  projected->add(std::make_shared<nn::Activation>(nn::ActivationKind::tanh));
  projected->add(std::make_shared<nn::Linear>(4, 3, rng));
  for (const auto& [name, p] : projected->named_parameters())
    if (name.find("layers.1.") == 0) p.value().copy_(rng.normal(p.shape()));
  nets.emplace_back("projected residual block + LayerNorm", projected);
  nets.emplace_back("NTK-parameterised MLP", small_mlp(nn::Parameterization::ntk, nn::ActivationKind::tanh, true, 3, 14));
  const Tensor x1 = rng.normal({6, 5}), x2 = rng.normal({4, 5});
  for (const auto& [name, net] : nets) {
    INFO(name);
    const NtkOptions contraction{.method = NtkMethod::contraction};
    CHECK(max_rel_diff(empirical_ntk(*net, x1, x2), empirical_ntk(*net, x1, x2, contraction)) < 1e-12);
    CHECK(max_rel_diff(empirical_ntk(*net, x1, x1), empirical_ntk(*net, x1, x1, contraction)) < 1e-12);
    CHECK(max_rel_diff(empirical_ntk_trace(*net, x1, x2), empirical_ntk_trace(*net, x1, x2, contraction)) < 1e-12);
    CHECK(max_rel_diff(empirical_ntk_diagonal(*net, x2), empirical_ntk_diagonal(*net, x2, contraction)) < 1e-12);
  }
}
