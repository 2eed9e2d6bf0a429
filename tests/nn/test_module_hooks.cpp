// Forward hooks, the functional view of a module (functional_call) and BufferSnapshot: the seam
// through which theory observes and differentiates any Module. Checked by observable behaviour
// and against the module run with the same values set in place.
#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>
#include <vector>

#include "autograd/engine.hpp"
#include "nn/layers.hpp"
#include "tests/support/kernel_compare.hpp"

using namespace theta;
using theta::test::max_abs_diff;
using namespace theta::nn;
using Catch::Contains;

namespace {

std::shared_ptr<Sequential> small_net(Rng& rng) {
  auto net = std::make_shared<Sequential>();
  net->add(std::make_shared<Linear>(3, 4, rng));
  net->add(std::make_shared<Activation>(ActivationKind::tanh));
  net->add(std::make_shared<LayerNorm>(4));
  net->add(std::make_shared<Linear>(4, 2, rng));
  return net;
}

}  // namespace

TEST_CASE("forward hooks see module, input and output and go away with their handle", "[nn][hooks]") {
  Rng rng(1);
  auto net = small_net(rng);
  Module& first = net->at(0);
  const Tensor x = rng.normal({5, 3});
  std::vector<std::string> seen;
  Tensor hook_input, hook_output;
  {
    HookHandle handle = first.register_forward_hook([&](Module& m, const Var& in, const Var& out) {
      seen.push_back(m.describe());
      hook_input = in.value();
      hook_output = out.value();
    });
    const Var y = (*net)(Var(x));
    REQUIRE(seen.size() == 1);
    CHECK(seen[0] == first.describe());
    CHECK(max_abs_diff(hook_input, x) == 0.0);
    CHECK(max_abs_diff(hook_output, first(Var(x)).value()) == 0.0);
    CHECK(seen.size() == 2);  // calling the layer directly runs its hook too
    // A direct call of forward() runs no hook.
    first.forward(Var(x));
    CHECK(seen.size() == 2);
  }
  (*net)(Var(x));
  CHECK(seen.size() == 2);  // the handle's destruction removed the hook

  // remove() by hand, moved handles, and a handle that outlives its module.
  HookHandle moved;
  {
    HookHandle h = first.register_forward_hook([&](Module&, const Var&, const Var&) { seen.push_back("again"); });
    moved = std::move(h);
  }
  (*net)(Var(x));
  CHECK(seen.back() == "again");
  moved.remove();
  const std::size_t count = seen.size();
  (*net)(Var(x));
  CHECK(seen.size() == count);
  HookHandle orphan;
  {
    Rng r(2);
    Linear temporary(2, 2, r);
    orphan = temporary.register_forward_hook([](Module&, const Var&, const Var&) {});
  }
  orphan.remove();  // the module is gone: nothing happens
}

TEST_CASE("hooks nest, run in order, may remove themselves, and a throwing hook leaves the module usable",
          "[nn][hooks]") {
  Rng rng(3);
  auto net = small_net(rng);
  const Tensor x = rng.normal({2, 3});
  std::vector<std::string> order;
  auto record = [&order](const std::string& tag) {
    return [&order, tag](Module&, const Var&, const Var&) { order.push_back(tag); };
  };
  HookHandle outer = net->register_forward_hook(record("net"));
  HookHandle inner_a = net->at(3).register_forward_hook(record("last.a"));
  HookHandle inner_b = net->at(3).register_forward_hook(record("last.b"));
  HookHandle self_removing;
  self_removing = net->at(0).register_forward_hook([&](Module&, const Var&, const Var&) {
    order.push_back("first");
    self_removing.remove();
  });
  (*net)(Var(x));
  CHECK(order == std::vector<std::string>{"first", "last.a", "last.b", "net"});
  order.clear();
  (*net)(Var(x));
  CHECK(order == std::vector<std::string>{"last.a", "last.b", "net"});

  const Tensor before = (*net)(Var(x)).value().clone();
  {
    HookHandle bad = net->at(2).register_forward_hook(
        [](Module&, const Var&, const Var&) { throw std::runtime_error("hook failed"); });
    CHECK_THROWS_WITH((*net)(Var(x)), Contains("hook failed"));
  }
  CHECK(max_abs_diff((*net)(Var(x)).value(), before) == 0.0);
  CHECK_THROWS_AS(net->register_forward_hook(ForwardHook()), std::invalid_argument);
  // A clone has no hooks.
  order.clear();
  auto copy = net->clone();
  (*copy)(Var(x));
  CHECK(order.empty());
}

TEST_CASE("named_modules lists every module depth first", "[nn][hooks]") {
  Rng rng(4);
  auto net = small_net(rng);
  const auto modules = net->named_modules();
  REQUIRE(modules.size() == 5);
  CHECK(modules[0].first.empty());
  CHECK(modules[0].second == net.get());
  CHECK(modules[1].first == "layers.0");
  CHECK(modules[4].first == "layers.3");
  CHECK(modules[4].second == &net->at(3));
}

TEST_CASE("functional_call runs the module's forward with the given parameters", "[nn][functional_call]") {
  Rng rng(5);
  auto net = small_net(rng);
  const Tensor x = rng.normal({6, 3});
  const auto named = net->named_parameters();
  // Other values for every parameter, as fresh leaves.
  std::vector<Var> given;
  for (const auto& [name, p] : named) given.emplace_back(rng.normal(p.shape()), true);
  const std::vector<Tensor> own_before = [&] {
    std::vector<Tensor> v;
    for (const auto& [name, p] : named) v.push_back(p.value().clone());
    return v;
  }();
  const Var y = functional_call(*net, given, Var(x));
  // The same values set in place in a copy of the module give the same output and gradients.
  auto copy = net->clone();
  const auto copy_params = copy->named_parameters();
  for (std::size_t k = 0; k < given.size(); ++k) copy_params[k].second.value().copy_(given[k].value());
  const Var y_ref = (*copy)(Var(x));
  CHECK(max_abs_diff(y.value(), y_ref.value()) == 0.0);
  std::vector<Var> copy_vars;
  for (const auto& [name, p] : copy_params) copy_vars.push_back(p);
  const auto g = autograd::grad({autograd::sum(autograd::square(y))}, given);
  const auto g_ref = autograd::grad({autograd::sum(autograd::square(y_ref))}, copy_vars);
  for (std::size_t k = 0; k < given.size(); ++k) CHECK(max_abs_diff(g[k].value(), g_ref[k].value()) == 0.0);
  // The module's own parameters are back, untouched, and are not in the graph.
  const auto after = net->named_parameters();
  for (std::size_t k = 0; k < named.size(); ++k) {
    CHECK(after[k].second.id() == named[k].second.id());
    CHECK(max_abs_diff(after[k].second.value(), own_before[k]) == 0.0);
  }
}

TEST_CASE("functional_call checks its parameters and restores the module when forward throws",
          "[nn][functional_call]") {
  Rng rng(6);
  auto net = small_net(rng);
  const auto named = net->named_parameters();
  std::vector<Var> given;
  for (const auto& [name, p] : named) given.emplace_back(rng.normal(p.shape()), true);
  CHECK_THROWS_WITH(functional_call(*net, {given.begin(), given.end() - 1}, Var(rng.normal({2, 3}))),
                    Contains("which has 6"));
  std::vector<Var> wrong = given;
  wrong[1] = Var(rng.normal({5}), true);
  CHECK_THROWS_WITH(functional_call(*net, wrong, Var(rng.normal({2, 3}))), Contains("parameter 1 must be float64 [4], got float64 [5]"));
  // Forward throws (input of the wrong width): the module's own parameters are restored.
  CHECK_THROWS_AS(functional_call(*net, given, Var(rng.normal({2, 7}))), ShapeError);
  const auto after = net->named_parameters();
  for (std::size_t k = 0; k < named.size(); ++k) CHECK(after[k].second.id() == named[k].second.id());
}

TEST_CASE("functional_call on a module registered twice: one Var for both names, restored", "[nn][functional_call]") {
  Rng rng(8);
  auto shared = std::make_shared<Linear>(3, 3, rng);
  Sequential net;
  net.add(shared).add(std::make_shared<Activation>(ActivationKind::tanh)).add(shared);
  const Var own_weight = shared->weight(), own_bias = shared->bias();
  const Var w(rng.normal({3, 3}), true), b(rng.normal({3}), true);
  const Tensor x = rng.normal({4, 3});
  CHECK_THROWS_WITH(functional_call(net, {w, b, Var(rng.normal({3, 3}), true), b}, Var(x)),
                    Contains("parameters 0 and 2 are one parameter"));
  const Var y = functional_call(net, {w, b, w, b}, Var(x));
  // Against the same function written out: W tanh(W x + b) + b, from the given values.
  const Tensor h = tanh(matmul(x, w.value().t()) + b.value());
  CHECK(max_abs_diff(y.value(), matmul(h, w.value().t()) + b.value()) <= 1e-15);
  // The layer's own parameters are back in both places.
  CHECK(shared->weight().id() == own_weight.id());
  CHECK(shared->bias().id() == own_bias.id());
}

TEST_CASE("BufferSnapshot restores written buffers and leaves untouched ones alone", "[nn][functional_call]") {
  Rng rng(7);
  BatchNorm1d bn(3);
  const Tensor x = rng.normal({8, 3});
  const auto buffers = bn.named_buffers();
  const Tensor mean_before = buffers[0].second.clone();
  {
    const BufferSnapshot snapshot(bn);
    bn(Var(x));  // training mode: running statistics move
    CHECK(max_abs_diff(buffers[0].second, mean_before) > 0.0);
  }
  CHECK(max_abs_diff(buffers[0].second, mean_before) == 0.0);
  bn.eval();
  const std::uint64_t version = buffers[0].second.storage()->version();
  {
    const BufferSnapshot snapshot(bn);
    bn(Var(x));
  }
  CHECK(buffers[0].second.storage()->version() == version);
}
