// Hessians of networks beyond Linear stacks (BatchNorm in training mode, LayerNorm, a residual
// MLP) through module_loss, i.e. the module's own forward: the dense Hessian against central
// differences of the gradient, Lanczos against the dense spectrum, and hvp against H v.

#include <catch2/catch.hpp>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "autograd/engine.hpp"
#include "autograd/transforms.hpp"
#include "nn/functional.hpp"
#include "nn/layers.hpp"
#include "nn/residual.hpp"
#include "tensor/ops.hpp"
#include "theory/hessian.hpp"
#include "theory/linalg.hpp"

using namespace theta;
using namespace theta::theory;

namespace {

struct Case {
  std::string name;
  std::shared_ptr<nn::Module> model;
};

std::shared_ptr<nn::Module> norm_net(std::shared_ptr<nn::Module> norm, Rng& rng) {
  auto net = std::make_shared<nn::Sequential>();
  net->add(std::make_shared<nn::Linear>(4, 6, rng));
  net->add(std::move(norm));
  net->add(std::make_shared<nn::Activation>(nn::ActivationKind::tanh));
  net->add(std::make_shared<nn::Linear>(6, 3, rng));
  // Generic affine parameters (the defaults 1 and 0 make some Hessian blocks vanish).
  for (const auto& [name, p] : net->named_parameters())
    if (name.find("layers.1.") == 0) p.value().copy_(rng.normal(p.shape(), 1.0, 0.3));
  return net;
}

std::vector<Case> cases() {
  Rng rng(41);
  return {{"BatchNorm eps 0 (training)", norm_net(std::make_shared<nn::BatchNorm1d>(6, nn::NormOptions{.eps = 0.0}), rng)},
          {"BatchNorm eps 1e-5 (training)", norm_net(std::make_shared<nn::BatchNorm1d>(6), rng)},
          {"LayerNorm", norm_net(std::make_shared<nn::LayerNorm>(6), rng)},
          {"residual MLP", nn::residual_mlp({.in_features = 4, .width = 5, .out_features = 3, .blocks = 2,
                                             .activation = nn::ActivationKind::tanh},
                                            rng)}};
}

// The gradient of `loss` at `params`, flattened: [P].
Tensor flat_gradient(const autograd::ScalarFunction& loss, const std::vector<Tensor>& params) {
  const std::vector<autograd::Var> leaves = autograd::make_leaves(params);
  const auto g = autograd::grad({loss(leaves)}, leaves);
  std::vector<Tensor> values;
  for (const auto& v : g) values.push_back(v.value());
  return flatten_tensors(values);
}

// Central differences of the gradient, column by column: [P, P].
Tensor finite_difference_hessian(const autograd::ScalarFunction& loss, const std::vector<Tensor>& params) {
  const Tensor flat = flatten_tensors(params);
  const std::int64_t n = flat.size(0);
  const double h = 1e-5;
  Tensor out = zeros({n, n});
  for (std::int64_t j = 0; j < n; ++j) {
    Tensor up = flat.clone(), down = flat.clone();
    up.select(0, j).fill_(flat.at({j}) + h);
    down.select(0, j).fill_(flat.at({j}) - h);
    const Tensor column = (flat_gradient(loss, unflatten_like(up, params)) -
                           flat_gradient(loss, unflatten_like(down, params))) / (2 * h);
    out.select(1, j).copy_(column);
  }
  return out;
}

double max_abs(const Tensor& t) { return max(abs(t)).item(); }

}  // namespace

TEST_CASE("Hessians of BatchNorm, LayerNorm and residual nets through the module's own forward",
          "[theory][hessian]") {
  for (const Case& c : cases()) {
    INFO(c.name);
    Rng rng(42);
    const Tensor x = rng.normal({10, 4}), labels = rng.integers({10}, 0, 3);
    const auto running_before = c.model->named_buffers();
    std::vector<Tensor> saved;
    for (const auto& [name, b] : running_before) saved.push_back(b.clone());
    const auto loss = module_loss(c.model, x, labels, [](const autograd::Var& logits, const Tensor& y) {
      return nn::cross_entropy(logits, y);
    });
    const std::vector<Tensor> params = parameter_values(*c.model);
    const Tensor dense = autograd::hessian(loss, params);
    const Tensor fd = finite_difference_hessian(loss, params);
    CHECK(max_abs(dense - fd) <= 1e-6 * max_abs(dense));
    // The loss has no side effect on the running statistics.
    for (std::size_t i = 0; i < saved.size(); ++i) CHECK(max_abs(running_before[i].second - saved[i]) == 0.0);
    // hvp on random vectors against the dense product.
    const std::int64_t size = dense.size(0);
    for (int probe = 0; probe < 3; ++probe) {
      const Tensor v = rng.normal({size});
      const Tensor hv = flatten_tensors(autograd::hvp(loss, params, unflatten_like(v, params)));
      CHECK(max_abs(hv - matmul(dense, v)) <= 1e-10 * max_abs(matmul(dense, v)));
    }
    // Lanczos over the whole space reproduces the dense spectrum's extremes.
    const EigenResult top = lanczos_top_k(hessian_operator(loss, params), 3, {.iterations = size});
    const Tensor exact = eigh(dense).values;  // ascending
    for (std::int64_t i = 0; i < 3; ++i)
      CHECK(std::abs(top.values.at({i}) - exact.at({size - 1 - i})) <= 1e-9 * max_abs(exact));
  }
}

TEST_CASE("module_loss names itself when given the wrong parameters", "[theory][hessian][errors]") {
  Rng rng(41);
  auto net = nn::mlp({3, 4, 2}, rng);
  const nn::LossFn cross_entropy = [](const autograd::Var& logits, const Tensor& y) {
    return nn::cross_entropy(logits, y);
  };
  const auto loss = module_loss(net, rng.normal({5, 3}), from_indices({0, 1, 1, 0, 1}), cross_entropy);
  CHECK_THROWS_AS(hessian_operator(loss, {zeros({3})}), ShapeError);
  CHECK_THROWS_WITH(hessian_operator(loss, {zeros({3})}),
                    Catch::Contains("module_loss: 1 parameters given for Sequential(") &&
                        Catch::Contains("which has 4"));
  std::vector<Tensor> wrong = parameter_values(*net);
  wrong[1] = zeros({5});
  CHECK_THROWS_WITH(hessian_operator(loss, wrong),
                    Catch::Contains("module_loss: parameter 1 must be float64 [4], got float64 [5]"));
}
