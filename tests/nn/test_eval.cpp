// Evaluating a model: EvalGuard and predict against the forward pass run by hand in eval mode,
// the modes restored exactly, and accuracy() of a Var.

#include <catch2/catch.hpp>

#include <memory>
#include <stdexcept>

#include "nn/eval.hpp"
#include "nn/layers.hpp"
#include "tensor/ops.hpp"

using namespace theta;
using theta::autograd::Var;

namespace {
// Linear(3 -> 4), BatchNorm1d(4), relu, Linear(4 -> 2) with BatchNorm statistics that differ from
// their initial values, so eval and training mode give different outputs.
std::shared_ptr<nn::Sequential> bn_net(Rng& rng) {
  auto net = std::make_shared<nn::Sequential>();
  net->add(std::make_shared<nn::Linear>(3, 4, rng))
      .add(std::make_shared<nn::BatchNorm1d>(4))
      .add(std::make_shared<nn::Activation>(nn::ActivationKind::relu))
      .add(std::make_shared<nn::Linear>(4, 2, rng));
  for (int i = 0; i < 3; ++i) (*net)(Var(rng.normal({8, 3}, 1.0, 2.0)));
  return net;
}
}  // namespace

TEST_CASE("predict runs the model in eval mode without a graph and restores its mode", "[nn][eval]") {
  Rng rng(3);
  auto net = bn_net(rng);
  const Tensor x = rng.normal({5, 3});
  const std::vector<nn::NamedTensor> buffers_before = net->named_buffers();
  const Tensor mean = buffers_before[0].second.clone(), variance = buffers_before[1].second.clone();
  // By hand: the layers' parameters and BatchNorm's running statistics (eps 1e-5, affine 1, 0).
  const auto p = net->named_parameters();
  const Tensor h = matmul(x, p[0].second.value().t()) + p[1].second.value();
  const Tensor normalized = (h - mean) / sqrt(variance + 1e-5) * p[2].second.value() + p[3].second.value();
  const Tensor expected = matmul(relu(normalized), p[4].second.value().t()) + p[5].second.value();

  REQUIRE(net->training());
  const Tensor got = nn::predict(*net, x);
  CHECK(allclose(got, expected, 1e-12, 1e-12));
  CHECK(net->training());                                                // mode restored
  CHECK(allclose(net->named_buffers()[0].second, mean, 0.0, 0.0));       // running mean untouched
  CHECK(allclose(net->named_buffers()[1].second, variance, 0.0, 0.0));   // running var untouched
  // A one-sample batch: BatchNorm in training mode would refuse it, eval mode does not need it.
  CHECK(allclose(nn::predict(*net, x.slice(0, 0, 1)), expected.slice(0, 0, 1), 1e-12, 1e-12));
}

TEST_CASE("EvalGuard gives every module back its own mode and grad mode its value", "[nn][eval]") {
  Rng rng(4);
  auto net = bn_net(rng);
  net->at(1).eval();  // mixed: the BatchNorm in eval mode, everything else training
  {
    nn::EvalGuard guard(*net);
    for (const auto& [name, m] : net->named_modules()) CHECK_FALSE(m->training());
    CHECK_FALSE(autograd::grad_mode_enabled());
    const Var out = (*net)(Var(rng.normal({2, 3})));
    CHECK_FALSE(out.requires_grad());
  }
  CHECK(autograd::grad_mode_enabled());
  CHECK(net->training());
  CHECK(net->at(0).training());
  CHECK_FALSE(net->at(1).training());
  CHECK(net->at(3).training());
  // Left by an exception: restored too; and a scope that had grad mode off keeps it off.
  {
    autograd::NoGradGuard outer;
    try {
      nn::EvalGuard guard(*net);
      (*net)(Var(rng.normal({2, 7})));  // wrong width: throws inside the scope
    } catch (const ShapeError&) {
    }
    CHECK_FALSE(autograd::grad_mode_enabled());
  }
  CHECK(net->at(0).training());
  CHECK_FALSE(net->at(1).training());
}

TEST_CASE("accuracy takes the model's output as a Var", "[nn][eval]") {
  const Tensor logits = tensor({0.1, 0.9, 2.0, -1.0, 0.3, 0.2}, {3, 2});  // argmax 1, 0, 0
  const Tensor labels = from_indices({1, 1, 0});
  CHECK(nn::accuracy(Var(logits, true), labels) == Approx(2.0 / 3.0));
  CHECK_THROWS_AS(nn::accuracy(Var(logits), from_indices({1, 2, 0})), IndexError);
}
