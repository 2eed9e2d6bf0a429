// Per-sample gradients of every parameter kind against the independent definition: the gradient
// of sample i's own loss, from the model run on x_i alone. The loss always sees the whole batch
// (Note [Per-sample losses] in theory/per_sample.cpp); losses and models that mix samples are
// refused.

#include <catch2/catch.hpp>
#include <cmath>
#include <functional>

#include "autograd/engine.hpp"
#include "nn/layers.hpp"
#include "theory/ntk.hpp"
#include "tests/support/kernel_compare.hpp"

using namespace theta;
using theta::test::max_abs_diff;
using namespace theta::theory;
using theta::autograd::Var;

namespace {

// Applies one Linear layer twice: y = L(tanh(L(x))), so the layer's per-sample Jacobian has
// cross terms between its two uses.
class TwiceLinear : public nn::Cloneable<TwiceLinear> {
 public:
  explicit TwiceLinear(Rng& rng) { register_module("shared", std::make_shared<nn::Linear>(3, 3, rng)); }
  Var forward(const Var& x) override { return child(0)(autograd::tanh(child(0)(x))); }
  std::string describe() const override { return "TwiceLinear"; }
};

std::shared_ptr<nn::Sequential> layer_norm_net(Rng& rng) {
  auto net = std::make_shared<nn::Sequential>();
  net->add(std::make_shared<nn::Linear>(3, 4, rng));
  net->add(std::make_shared<nn::LayerNorm>(4));
  net->add(std::make_shared<nn::Linear>(4, 2, rng));
  // Generic LayerNorm affine parameters (the defaults 1 and 0 hide mistakes).
  for (const auto& [name, p] : net->named_parameters())
    if (name.find("layers.1.") == 0) p.value().copy_(rng.normal(p.shape()));
  return net;
}

// The loss of sample i alone: one-row output [1, O] -> scalar.
using RowLoss = std::function<Var(const Var& row_output, std::int64_t i)>;

// Checks per_sample_gradients and per_sample_gradient_norms against one backward pass per sample
// of that sample's own loss on the model run on x_i alone.
void check_against_single_samples(nn::Module& model, const Tensor& x, const PerSampleLoss& batch_loss,
                                  const RowLoss& row_loss) {
  const auto per_sample = per_sample_gradients(model, x, batch_loss);
  const auto params = model.named_parameters();
  REQUIRE(per_sample.size() == params.size());
  const std::int64_t n = x.size(0);
  Tensor norms_sq = zeros({n});
  for (std::int64_t i = 0; i < n; ++i) {
    std::vector<Var> vars;
    for (const auto& [name, p] : params) vars.push_back(p);
    const Var li = row_loss(model.forward(Var(x.slice(0, i, i + 1))), i);
    const auto g = autograd::grad({li}, vars, {}, {.allow_unused = true});
    double sq = 0;
    for (std::size_t k = 0; k < params.size(); ++k) {
      INFO("sample " << i << ", parameter " << params[k].first);
      REQUIRE(per_sample[k].first == params[k].first);
      const Tensor expected = g[k].defined() ? g[k].value() : zeros(params[k].second.shape());
      CHECK(max_abs_diff(per_sample[k].second.select(0, i), expected) < 1e-12);
      sq += sum(square(expected)).item();
    }
    norms_sq.select(0, i).fill_(sq);
  }
  CHECK(max_abs_diff(per_sample_gradient_norms(model, x, batch_loss), sqrt(norms_sq)) < 1e-12);
}

}  // namespace

TEST_CASE("per-sample gradients through LayerNorm with per-row targets", "[theory][per_sample]") {
  Rng rng(21);
  auto net = layer_norm_net(rng);
  const Tensor x = rng.normal({5, 3}), target = rng.normal({5, 2});
  const PerSampleLoss loss = [&](const Var& o) { return autograd::sum(autograd::square(o - Var(target)), {1}); };
  const RowLoss row = [&](const Var& o, std::int64_t i) {
    return autograd::sum(autograd::square(o - Var(target.slice(0, i, i + 1))));
  };
  check_against_single_samples(*net, x, loss, row);
}

TEST_CASE("per-sample gradients with cross-entropy over labels", "[theory][per_sample]") {
  Rng rng(22);
  auto net = layer_norm_net(rng);
  const Tensor x = rng.normal({6, 3});
  const Tensor labels = rng.integers({6}, 0, 2);
  const PerSampleLoss loss = [&](const Var& o) { return nn::cross_entropy(o, labels, nn::Reduction::none); };
  const RowLoss row = [&](const Var& o, std::int64_t i) {
    return nn::cross_entropy(o, labels.slice(0, i, i + 1), nn::Reduction::sum);
  };
  check_against_single_samples(*net, x, loss, row);
}

TEST_CASE("per-sample gradients of a Linear layer used twice and of BatchNorm in eval mode",
          "[theory][per_sample]") {
  Rng rng(23);
  const Tensor x = rng.normal({4, 3}), target = rng.normal({4, 3});
  const PerSampleLoss loss = [&](const Var& o) { return autograd::sum(autograd::square(o - Var(target)), {1}); };
  const RowLoss row = [&](const Var& o, std::int64_t i) {
    return autograd::sum(autograd::square(o - Var(target.slice(0, i, i + 1))));
  };
  TwiceLinear twice(rng);
  check_against_single_samples(twice, x, loss, row);

  auto bn = std::make_shared<nn::Sequential>();
  bn->add(std::make_shared<nn::Linear>(3, 5, rng));
  bn->add(std::make_shared<nn::BatchNorm1d>(5));
  bn->add(std::make_shared<nn::Activation>(nn::ActivationKind::tanh));
  bn->add(std::make_shared<nn::Linear>(5, 3, rng));
  bn->forward(Var(rng.normal({8, 3})));  // non-trivial running statistics
  bn->eval();
  check_against_single_samples(*bn, x, loss, row);
}

TEST_CASE("per-sample gradients refuse losses and models that mix samples", "[theory][per_sample]") {
  Rng rng(24);
  auto net = layer_norm_net(rng);
  const Tensor x = rng.normal({5, 3}), target = rng.normal({5, 2});
  // Centring by the batch mean couples every loss to every row.
  const PerSampleLoss centred = [&](const Var& o) {
    const Var c = o - autograd::mean(o, {0}, true);
    return autograd::sum(autograd::square(c - Var(target)), {1});
  };
  CHECK_THROWS_WITH(per_sample_gradients(*net, x, centred), Catch::Contains("not per-sample"));
  CHECK_THROWS_WITH(per_sample_gradient_norms(*net, x, centred), Catch::Contains("not per-sample"));
  // A loss of the wrong shape.
  const PerSampleLoss total = [&](const Var& o) { return autograd::sum(autograd::square(o)); };
  CHECK_THROWS_AS(per_sample_gradients(*net, x, total), ShapeError);

  // BatchNorm in training mode mixes the samples of the model itself.
  auto bn = std::make_shared<nn::Sequential>();
  bn->add(std::make_shared<nn::Linear>(3, 4, rng));
  bn->add(std::make_shared<nn::BatchNorm1d>(4));
  bn->add(std::make_shared<nn::Linear>(4, 2, rng));
  const PerSampleLoss plain = [&](const Var& o) { return autograd::sum(autograd::square(o - Var(target)), {1}); };
  const Tensor running_before = bn->named_buffers()[0].second.clone();
  CHECK_THROWS_WITH(per_sample_gradients(*bn, x, plain), Catch::Contains("does not treat samples independently"));
  // The failed call leaves the running statistics as they were.
  CHECK(max_abs_diff(bn->named_buffers()[0].second, running_before) == 0.0);
}
