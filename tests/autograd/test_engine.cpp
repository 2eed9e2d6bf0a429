// The reverse-mode engine: misuse errors, deep graphs, leaks, determinism, grad modes and anomaly
// mode (conventions at kinks and numerical stability: test_conventions.cpp).

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "autograd/transforms.hpp"
#include "tensor/rng.hpp"

using namespace theta;
using namespace theta::autograd;
using Catch::Contains;

namespace {

/// The gradient of a scalar `y` with respect to one leaf, as a vector.
std::vector<double> grad_of(const Var& y, const Var& x) { return to_vector(grad(y, x).value()); }

/// Bitwise equality of the elements of two tensors.
bool bitwise_equal(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return false;
  const auto va = to_vector(a);
  const auto vb = to_vector(b);
  return std::memcmp(va.data(), vb.data(), va.size() * sizeof(double)) == 0;
}

/// Turns anomaly mode on in a scope and off again however the scope ends.
struct AnomalyScope {
  AnomalyScope() { set_anomaly_mode(true); }
  ~AnomalyScope() { set_anomaly_mode(false); }
  AnomalyScope(const AnomalyScope&) = delete;
  AnomalyScope& operator=(const AnomalyScope&) = delete;
};

/// A 2-3-2 tanh MLP with a squared-error loss on a batch of 4 (17 parameters).
ScalarFunction tiny_mlp_loss() {
  Rng rng(3);
  const Tensor x = rng.normal({4, 2});
  const Tensor target = rng.normal({4, 2});
  return [x, target](const std::vector<Var>& p) {
    const Var h = tanh(matmul(Var(x), p[0]) + p[1]);
    return mean(square(matmul(h, p[2]) + p[3] - Var(target)));
  };
}

/// Parameters of tiny_mlp_loss: W1 [2,3], b1 [3], W2 [3,2], b2 [2].
std::vector<Tensor> tiny_mlp_params() {
  Rng rng(4);
  return {rng.normal({2, 3}), rng.normal({3}), rng.normal({3, 2}), rng.normal({2})};
}

}  // namespace

// ---- misuse ----------------------------------------------------------------------------------

TEST_CASE("grad of a non-scalar output needs grad_outputs", "[autograd][engine]") {
  const Var x(tensor({1.0, 2.0, 3.0}), true);
  const Var y = x * x;
  REQUIRE_THROWS_AS(grad({y}, {x}), ShapeError);
  REQUIRE_THROWS_WITH(grad({y}, {x}), Contains("non-scalar output needs an explicit grad_output"));
  REQUIRE_THROWS_WITH(backward(y), Contains("[3]"));
  // With grad_outputs it works: d sum(u * x^2) / dx = 2 u x.
  const auto g = grad({y}, {x}, {Var(tensor({1.0, -1.0, 0.5}))});
  CHECK(to_vector(g[0].value()) == std::vector<double>{2.0, -4.0, 3.0});
}

TEST_CASE("an unreachable input throws unless allow_unused", "[autograd][engine]") {
  const Var x(tensor({1.0, 2.0}), true);
  const Var z(tensor({3.0}), true);
  const Var y = sum(x * x);
  REQUIRE_THROWS_WITH(grad({y}, {x, z}, {}, {.retain_graph = true}), Contains("input 1 [1] is not reachable"));
  const auto g = grad({y}, {x, z}, {}, {.allow_unused = true});
  REQUIRE(g.size() == 2);
  CHECK(to_vector(g[0].value()) == std::vector<double>{2.0, 4.0});
  CHECK_FALSE(g[1].defined());
}

TEST_CASE("a second backward through a freed graph throws", "[autograd][engine]") {
  const Var x(tensor({1.0, 2.0}), true);
  const Var y = sum(x * x);
  CHECK(grad_of(y, x) == std::vector<double>{2.0, 4.0});
  REQUIRE_THROWS_AS(grad(y, x), std::logic_error);
  REQUIRE_THROWS_WITH(grad(y, x), Contains("a second time") && Contains("retain_graph"));

  // retain_graph keeps it usable, with the same result each time.
  const Var y2 = sum(x * x * x);
  const auto first = to_vector(grad(y2, x, {.retain_graph = true}).value());
  const auto second = to_vector(grad(y2, x).value());
  CHECK(first == std::vector<double>{3.0, 12.0});
  CHECK(second == first);
}

TEST_CASE("modifying a saved tensor in place is detected", "[autograd][engine]") {
  SECTION("fill_") {
    const Var x(tensor({1.0, 2.0}), true);
    const Var y = sum(x * x);
    Tensor storage_view = x.value();
    storage_view.fill_(5.0);
    REQUIRE_THROWS_AS(grad(y, x, {.retain_graph = true}), std::logic_error);
    REQUIRE_THROWS_WITH(grad(y, x), Contains("modified in place") && Contains("mul"));
  }
  SECTION("copy_ through a view") {
    const Var x(tensor({1.0, 2.0, 3.0}), true);
    const Var y = sum(exp(x));
    x.value().slice(0, 1, 2).copy_(tensor({7.0}));
    REQUIRE_THROWS_WITH(grad(y, x), Contains("modified in place") && Contains("exp"));
  }
  SECTION("an untouched graph still works after an unrelated write") {
    const Var x(tensor({1.0, 2.0}), true);
    const Var y = sum(x * x);
    Tensor unrelated = x.value().clone();
    unrelated.fill_(0.0);
    CHECK(grad_of(y, x) == std::vector<double>{2.0, 4.0});
  }
}

TEST_CASE("grad_outputs of the wrong shape or dtype throw", "[autograd][engine]") {
  const Var x(tensor({1.0, 2.0, 3.0}), true);
  const Var y = x * 2.0;
  REQUIRE_THROWS_AS(grad({y}, {x}, {Var(ones({4}))}), ShapeError);
  REQUIRE_THROWS_WITH(grad({y}, {x}, {Var(ones({4}))}), Contains("grad_output 0 has shape [4]") && Contains("[3]"));
  REQUIRE_THROWS_AS(grad({y}, {x}, {Var(ones({3}, DType::f32))}), DTypeError);
  REQUIRE_THROWS_WITH(grad({y}, {x}, {Var(ones({3}, DType::f32))}), Contains("float32"));
  REQUIRE_THROWS_WITH(grad({y}, {x}, {Var(ones({3})), Var(ones({3}))}), Contains("2 grad_outputs for 1 outputs"));
  REQUIRE_THROWS_WITH(backward(y, Var(ones({2, 3}))), Contains("[2, 3]"));
}

TEST_CASE("an output that does not require grad throws", "[autograd][engine]") {
  const Var x(tensor({1.0, 2.0}), true);
  const Var c(tensor({1.0, 2.0}));
  const Var y = sum(c * c);
  REQUIRE_THROWS_WITH(grad(y, x), Contains("output 0 does not require grad"));
  REQUIRE_THROWS_WITH(backward(y), Contains("does not require grad"));
  REQUIRE_THROWS_WITH(grad(sum(x * x), c), Contains("input 0 does not require grad"));
}

// ---- conventions at non-differentiable points --------------------------------------------------

TEST_CASE("a 100000-node chain builds, differentiates and destroys iteratively", "[autograd][engine]") {
  const std::int64_t baseline = live_node_count();
  constexpr int kSteps = 50000;  // two nodes per step
  const double c = 1.0000001;
  {
    const Var x(tensor({0.5, -2.0}), true);
    Var y = x;
    for (int i = 0; i < kSteps; ++i) y = add(mul(y, Var(scalar_tensor(c))), Var(scalar_tensor(0.0)));
    CHECK(live_node_count() - baseline == 2 * kSteps);
    const Var loss = sum(y);
    const auto g = grad_of(loss, x);
    const double want = std::pow(c, kSteps);
    CHECK(g[0] == Approx(want).epsilon(1e-12));
    CHECK(g[1] == Approx(want).epsilon(1e-12));
    CHECK(to_vector(y.value())[1] == Approx(-2.0 * want).epsilon(1e-12));
  }
  CHECK(live_node_count() == baseline);

  {  // backward() through 102000 nodes of sin/mul/add, against the chain rule in plain doubles.
    const Var x(tensor({0.3}), true);
    Var y = x;
    double value = 0.3;
    double derivative = 1.0;
    for (int i = 0; i < 34000; ++i) {
      y = sin(y) + y * 0.0;
      derivative *= std::cos(value);
      value = std::sin(value);
    }
    CHECK(live_node_count() - baseline == 3 * 34000);
    backward(sum(y));
    CHECK(y.item() == Approx(value).epsilon(1e-10));
    CHECK(x.grad().item() == Approx(derivative).epsilon(1e-9));
  }
  CHECK(live_node_count() == baseline);
}

// ---- leaks -------------------------------------------------------------------------------------

TEST_CASE("10000 Hessian-vector products leak no nodes and no tensors", "[autograd][engine]") {
  const auto f = tiny_mlp_loss();
  const auto params = tiny_mlp_params();
  Rng rng(5);
  std::vector<Tensor> v;
  for (const auto& p : params) v.push_back(rng.normal(p.shape()));
  (void)hvp(f, params, v);  // warm up lazily created state

  const std::int64_t nodes = live_node_count();
  const std::int64_t blocks = allocator_stats().live_blocks;
  std::vector<double> first;
  {
    const HessianVectorOperator op(f, params);
    for (int i = 0; i < 9000; ++i) {
      const auto hv = op.apply(v);
      if (i == 0) first = to_vector(hv[0]);
    }
    CHECK(to_vector(op.apply(v)[0]) == first);
  }
  for (int i = 0; i < 1000; ++i) (void)hvp(f, params, v);
  CHECK(live_node_count() == nodes);
  CHECK(allocator_stats().live_blocks == blocks);
}

TEST_CASE("graphs are freed when their last Var goes away", "[autograd][engine]") {
  const std::int64_t nodes = live_node_count();
  const std::int64_t blocks = allocator_stats().live_blocks;
  {
    const Var x(tensor({1.0, 2.0, 3.0}), true);
    const Var y = sum(softmax(x) * log_softmax(x));
    const Var g = grad(y, x, {.create_graph = true});
    const Var gg = grad(sum(g * g), x);
    CHECK(live_node_count() > nodes);
    CHECK(gg.defined());
  }
  CHECK(live_node_count() == nodes);
  CHECK(allocator_stats().live_blocks == blocks);
}

// ---- determinism, accumulation and grad modes --------------------------------------------------

TEST_CASE("the same computation twice gives bitwise identical gradients", "[autograd][engine]") {
  const auto f = tiny_mlp_loss();
  const auto params = tiny_mlp_params();
  const auto run = [&] {
    const auto leaves = make_leaves(params);
    return grad({f(leaves)}, leaves);
  };
  const auto a = run();
  const auto b = run();
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(bitwise_equal(a[i].value(), b[i].value()));
  std::vector<Tensor> v;
  for (const auto& p : params) v.push_back(ones(p.shape()));
  const auto h1 = hvp(f, params, v);
  const auto h2 = hvp(f, params, v);
  for (std::size_t i = 0; i < h1.size(); ++i) CHECK(bitwise_equal(h1[i], h2[i]));
}

TEST_CASE("backward accumulates into .grad across calls", "[autograd][engine]") {
  const Var x(tensor({1.0, -2.0}), true);
  const Var w(tensor({3.0, 0.5}), true);
  CHECK_FALSE(x.grad().defined());
  backward(sum(x * w));
  CHECK(to_vector(x.grad()) == std::vector<double>{3.0, 0.5});
  CHECK(to_vector(w.grad()) == std::vector<double>{1.0, -2.0});
  backward(sum(x * x));
  CHECK(to_vector(x.grad()) == std::vector<double>{5.0, -3.5});
  CHECK(to_vector(w.grad()) == std::vector<double>{1.0, -2.0});
  // grad() is functional: it leaves .grad alone.
  (void)grad(sum(x * x), x);
  CHECK(to_vector(x.grad()) == std::vector<double>{5.0, -3.5});
  x.zero_grad();
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("backward stores gradients that alias neither grad_output nor each other", "[autograd][engine]") {
  const Var a(tensor({1.0, 2.0}), true);
  const Var b(tensor({3.0, 4.0}), true);
  Tensor go = tensor({1.0, 1.0});
  backward(a + b, Var(go));
  CHECK(to_vector(a.grad()) == std::vector<double>{1.0, 1.0});
  CHECK(to_vector(b.grad()) == std::vector<double>{1.0, 1.0});
  go.fill_(7.0);  // the stored gradients are unaffected by writes to the caller's tensor
  CHECK(to_vector(a.grad()) == std::vector<double>{1.0, 1.0});
  CHECK(to_vector(b.grad()) == std::vector<double>{1.0, 1.0});
  CHECK(a.grad().storage() != b.grad().storage());
}

TEST_CASE("NoGradGuard records nothing", "[autograd][engine]") {
  const Var x(tensor({1.0, 2.0}), true);
  const std::int64_t nodes = live_node_count();
  Var y;
  {
    NoGradGuard guard;
    CHECK_FALSE(grad_mode_enabled());
    y = sum(exp(x) * x);
    CHECK(live_node_count() == nodes);
  }
  CHECK(grad_mode_enabled());
  CHECK_FALSE(y.requires_grad());
  CHECK(y.is_leaf());
  CHECK(y.item() == Approx(std::exp(1.0) + 2.0 * std::exp(2.0)));
  {
    GradModeGuard off(false);
    {
      GradModeGuard on(true);
      CHECK(sum(x * x).requires_grad());
    }
    CHECK_FALSE(grad_mode_enabled());
  }
}

TEST_CASE("detach cuts history", "[autograd][engine]") {
  const Var x(tensor({1.0, 3.0}), true);
  const Var d = (x * 2.0).detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(d.is_leaf());
  CHECK(to_vector(d.value()) == std::vector<double>{2.0, 6.0});
  // y = d * x: only the direct path counts, so dy/dx = d, not 4x.
  CHECK(grad_of(sum(d * x), x) == std::vector<double>{2.0, 6.0});
  const Var xd = x.detach();
  CHECK(xd.value().storage() == x.value().storage());
}

TEST_CASE("create_graph results require grad; plain results do not", "[autograd][engine]") {
  const Var x(tensor({1.0, 2.0}), true);
  const Var plain = grad(sum(x * x * x), x);
  CHECK_FALSE(plain.requires_grad());
  CHECK(plain.is_leaf());
  const Var recorded = grad(sum(x * x * x), x, {.create_graph = true});
  CHECK(recorded.requires_grad());
  CHECK_FALSE(recorded.is_leaf());
  CHECK(to_vector(recorded.value()) == std::vector<double>{3.0, 12.0});
  // d/dx sum(3 x^2) = 6 x.
  CHECK(grad_of(sum(recorded), x) == std::vector<double>{6.0, 12.0});
}

// ---- anomaly mode ------------------------------------------------------------------------------

TEST_CASE("anomaly mode names the op that produced NaN or Inf", "[autograd][engine]") {
  const Var neg_x(tensor({-1.0, 2.0}), true);
  const Var zero_x(tensor({0.0, 4.0}), true);
  SECTION("off by default: no check") {
    CHECK_FALSE(anomaly_mode_enabled());
    CHECK(std::isnan(to_vector(log(neg_x).value())[0]));
  }
  SECTION("forward") {
    AnomalyScope scope;
    REQUIRE_THROWS_AS(log(neg_x), AnomalyError);
    REQUIRE_THROWS_WITH(log(neg_x), Contains("log"));
    CHECK_NOTHROW(log(zero_x + 1.0));
  }
  SECTION("backward") {
    AnomalyScope scope;
    const Var y = sum(sqrt(zero_x));  // finite forward, infinite derivative at 0
    REQUIRE_THROWS_AS(grad(y, zero_x, {.retain_graph = true}), AnomalyError);
    REQUIRE_THROWS_WITH(grad(y, zero_x), Contains("sqrt"));
  }
  CHECK_FALSE(anomaly_mode_enabled());
}
