// Hessian tools and per-sample gradients on small float64 CNNs (Conv2d, BatchNorm2d, AvgPool2d,
// GlobalAvgPool2d) through the model's own forward: the Hessian operator against central
// differences of the gradient, Lanczos against the dense Hessian assembled column by column from
// the operator, and per-sample gradients against one backward pass per sample.

#include <catch2/catch.hpp>

#include <cmath>
#include <memory>
#include <vector>

#include "autograd/engine.hpp"
#include "autograd/transforms.hpp"
#include "nn/conv.hpp"
#include "nn/functional.hpp"
#include "nn/layers.hpp"
#include "tensor/ops.hpp"
#include "theory/hessian.hpp"
#include "theory/linalg.hpp"
#include "theory/ntk.hpp"

using namespace theta;
using namespace theta::theory;
using theta::autograd::Var;

namespace {

constexpr std::int64_t kClasses = 3;

// Unflatten {1, 5, 5}, Conv2d(1 -> 4, 3x3, pad 1), BatchNorm2d(4), tanh, AvgPool2d(2),
// Conv2d(4 -> 4, 3x3, pad 1, circular), tanh, GlobalAvgPool2d, Linear(4 -> 3): 211 parameters,
// smooth (tanh), so central differences are accurate.
std::shared_ptr<nn::Sequential> small_cnn(Rng& rng) {
  auto net = std::make_shared<nn::Sequential>();
  net->add(std::make_shared<nn::Unflatten>(std::array<std::int64_t, 3>{1, 5, 5}));
  net->add(std::make_shared<nn::Conv2d>(1, 4, 3, rng, nn::ConvOptions{.padding = 1}));
  net->add(std::make_shared<nn::BatchNorm2d>(4));
  net->add(std::make_shared<nn::Activation>(nn::ActivationKind::tanh));
  net->add(std::make_shared<nn::AvgPool2d>(2));
  net->add(
      std::make_shared<nn::Conv2d>(4, 4, 3, rng, nn::ConvOptions{.padding = 1, .padding_mode = Padding::circular}));
  net->add(std::make_shared<nn::Activation>(nn::ActivationKind::tanh));
  net->add(std::make_shared<nn::GlobalAvgPool2d>());
  net->add(std::make_shared<nn::Linear>(4, kClasses, rng));
  // Generic BatchNorm affine parameters (the defaults 1 and 0 make some Hessian blocks vanish).
  for (const auto& [name, p] : net->named_parameters())
    if (name.find("layers.2.") == 0) p.value().copy_(rng.normal(p.shape(), 1.0, 0.3));
  return net;
}

// The flattened gradient of `loss` at `params`: [P].
Tensor flat_gradient(const autograd::ScalarFunction& loss, const std::vector<Tensor>& params) {
  const std::vector<Var> leaves = autograd::make_leaves(params);
  const auto g = autograd::grad({loss(leaves)}, leaves);
  std::vector<Tensor> values;
  for (const auto& v : g) values.push_back(v.value());
  return flatten_tensors(values);
}

double max_abs(const Tensor& t) { return max(abs(t)).item(); }

const nn::LossFn kCrossEntropy = [](const Var& logits, const Tensor& y) { return nn::cross_entropy(logits, y); };

}  // namespace

TEST_CASE("Hessian of a CNN's loss: H v against central differences of the gradient", "[theory][hessian]") {
  Rng rng(61);
  auto net = small_cnn(rng);
  const Tensor x = rng.normal({6, 25}), labels = rng.integers({6}, 0, kClasses);
  const auto loss = module_loss(net, x, labels, kCrossEntropy);  // BatchNorm2d in training mode
  const std::vector<Tensor> params = parameter_values(*net);
  const LinearOperator h = hessian_operator(loss, params);
  const Tensor flat = flatten_tensors(params);
  REQUIRE(h.size == flat.size(0));
  REQUIRE(h.size == (4 * 1 * 9 + 4) + 2 * 4 + (4 * 4 * 9 + 4) + (3 * 4 + 3));
  const double step = 1e-5;
  for (int probe = 0; probe < 3; ++probe) {
    INFO("probe " << probe);
    const Tensor v = rng.normal({h.size});
    const Tensor hv = h.apply(v);
    const Tensor fd = (flat_gradient(loss, unflatten_like(flat + v * step, params)) -
                       flat_gradient(loss, unflatten_like(flat - v * step, params))) /
                      (2 * step);
    CHECK(max_abs(hv) > 1e-3);
    CHECK(max_abs(hv - fd) <= 1e-6 * max_abs(hv));
    // autograd::hvp, the unflattened form, agrees with the operator.
    const Tensor direct = flatten_tensors(autograd::hvp(loss, params, unflatten_like(v, params)));
    CHECK(max_abs(direct - hv) <= 1e-12 * max_abs(hv));
  }
}

TEST_CASE("Hessian of a CNN's loss: Lanczos against the dense Hessian from H e_j", "[theory][hessian]") {
  Rng rng(62);
  auto net = small_cnn(rng);
  const Tensor x = rng.normal({6, 25}), labels = rng.integers({6}, 0, kClasses);
  const auto loss = module_loss(net, x, labels, kCrossEntropy);
  const std::vector<Tensor> params = parameter_values(*net);
  const LinearOperator h = hessian_operator(loss, params);
  const std::int64_t n = h.size;
  Tensor dense = zeros({n, n});
  for (std::int64_t j = 0; j < n; ++j) {
    Tensor e = zeros({n});
    e.select(0, j).fill_(1.0);
    dense.select(1, j).copy_(h.apply(e));
  }
  const double scale = max_abs(dense);
  // A Hessian: symmetric to rounding, and equal to autograd's own dense Hessian.
  CHECK(max_abs(dense - dense.t()) <= 1e-12 * scale);
  CHECK(max_abs(dense - autograd::hessian(loss, params)) <= 1e-12 * scale);
  const SymmetricEigen exact = eigh(dense);  // ascending
  const double top = exact.values.at({n - 1});
  REQUIRE(top > 0);

  SECTION("as many Lanczos steps as parameters: the extremes of the spectrum to rounding") {
    const EigenResult r = lanczos_top_k(h, 2, {.iterations = n, .which = Which::both_ends});
    CHECK(std::abs(r.values.at({0}) - top) <= 1e-9 * scale);
    CHECK(std::abs(r.values.at({1}) - exact.values.at({n - 2})) <= 1e-9 * scale);
    CHECK(std::abs(r.values.at({2}) - exact.values.at({0})) <= 1e-9 * scale);
  }
  SECTION("default steps: the top Ritz pair, its residual checked against the dense matrix") {
    const EigenResult r = lanczos_top_k(h, 1, {.seed = 3});
    REQUIRE(r.iterations < n);
    const double ritz = r.values.at({0});
    // A Ritz value never exceeds the largest eigenvalue and converges to it from below.
    CHECK(ritz <= top + 1e-12 * scale);
    CHECK(top - ritz <= 1e-8 * top);
    const Tensor vec = r.vectors.select(1, 0);
    const double residual = std::sqrt(sum(square(matmul(dense, vec) - vec * ritz)).item());
    CHECK(std::abs(residual - r.residuals.at({0})) <= 1e-10 * scale);
    // The eigenvector: |<x, u_top>| = 1 up to the residual over the spectral gap.
    const double overlap = std::abs(dot(vec, exact.vectors.select(1, n - 1)).item());
    CHECK(overlap == Approx(1.0).margin(1e-6));
  }
}

TEST_CASE("per-sample gradients of a CNN with BatchNorm2d in eval mode", "[theory][per_sample]") {
  Rng rng(63);
  auto net = small_cnn(rng);
  net->forward(Var(rng.normal({16, 25}, 0.5, 1.5)));  // running statistics away from 0 and 1
  net->eval();
  const Tensor x = rng.normal({5, 25}), labels = rng.integers({5}, 0, kClasses);
  const PerSampleLoss loss = [&](const Var& o) { return nn::cross_entropy(o, labels, nn::Reduction::none); };
  const auto per_sample = per_sample_gradients(*net, x, loss);
  const auto params = net->named_parameters();
  REQUIRE(per_sample.size() == params.size());
  std::vector<Var> vars;
  for (const auto& [name, p] : params) vars.push_back(p);
  Tensor total_sq = zeros({5});
  for (std::int64_t i = 0; i < 5; ++i) {
    const Var li =
        nn::cross_entropy(net->forward(Var(x.slice(0, i, i + 1))), labels.slice(0, i, i + 1), nn::Reduction::sum);
    const auto g = autograd::grad({li}, vars);
    double sq = 0;
    for (std::size_t k = 0; k < params.size(); ++k) {
      INFO("sample " << i << ", parameter " << params[k].first);
      REQUIRE(per_sample[k].first == params[k].first);
      const Tensor expected = g[k].value();
      CHECK(max_abs(expected) > 0.0);
      CHECK(max_abs(per_sample[k].second.select(0, i) - expected) <= 1e-12 * std::max(1.0, max_abs(expected)));
      sq += sum(square(expected)).item();
    }
    total_sq.select(0, i).fill_(sq);
  }
  CHECK(max_abs(per_sample_gradient_norms(*net, x, loss) - sqrt(total_sq)) <= 1e-12 * max_abs(sqrt(total_sq)));
  // In training mode BatchNorm2d mixes the samples, and per-sample gradients are refused.
  net->train();
  CHECK_THROWS_WITH(per_sample_gradients(*net, x, loss), Catch::Contains("does not treat samples independently"));
}
