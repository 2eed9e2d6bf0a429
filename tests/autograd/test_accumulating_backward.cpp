// Accumulating backward rules (Note [Accumulating backward]): a gradient slot that already holds
// a contribution may receive the next product in place. The results must equal the plain rules'
// (a pass that records a graph never accumulates in place), finite differences, and must never
// write into a tensor the caller can see.

#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "autograd/engine.hpp"
#include "autograd/ops.hpp"
#include "tensor/ops.hpp"
#include "tensor/rng.hpp"

using namespace theta;
using namespace theta::autograd;

namespace {

void check_close(const Tensor& got, const Tensor& want, double tol) {
  REQUIRE(got.shape() == want.shape());
  const auto g = to_vector(got);
  const auto w = to_vector(want);
  for (std::size_t i = 0; i < g.size(); ++i) {
    INFO("element " << i);
    CHECK(std::abs(g[i] - w[i]) <= tol * (1.0 + std::abs(w[i])));
  }
}

// Central differences of a scalar function of one tensor.
template <class F> Tensor finite_difference_gradient(F f, const Tensor& at) {
  const double h = 1e-6;
  const Tensor g = zeros(at.shape());
  const Tensor flat_at = at.contiguous().reshape({-1});
  const Tensor flat_g = g.reshape({-1});
  for (std::int64_t i = 0; i < flat_at.numel(); ++i) {
    const Tensor plus = flat_at.clone(), minus = flat_at.clone();
    plus.select(0, i).fill_(flat_at.select(0, i).item<double>() + h);
    minus.select(0, i).fill_(flat_at.select(0, i).item<double>() - h);
    flat_g.select(0, i).fill_((f(plus.reshape(at.shape())) - f(minus.reshape(at.shape()))) / (2 * h));
  }
  return g;
}

// A weight read by two products and by a linear layer, with inputs of both layouts: every slot
// of W and of the hidden activations receives several product contributions.
Var shared_weight_loss(const Var& w, const Tensor& x, const Tensor& target) {
  const Var h = matmul(Var(x), w);            // [5, 4] @ [4, 4]
  const Var k = matmul(h, w) + linear(h, w);  // h W + h W^T
  const Var z = tanh(matmul(transpose(w, 0, 1), transpose(k, 0, 1)));  // [4, 5]
  return sum(square(z - Var(target)));
}

}  // namespace

TEST_CASE("gradients through products that share a slot equal the recorded pass and finite differences",
          "[autograd][engine]") {
  Rng rng(71);
  const Tensor x = rng.normal({5, 4});
  const Tensor target = rng.normal({4, 5});
  const Tensor w0 = rng.normal({4, 4}, 0, 0.5);
  const auto loss_at = [&](const Tensor& w) { return shared_weight_loss(Var(w), x, target).item(); };

  const Var w(w0, true);
  const Tensor plain = grad(shared_weight_loss(w, x, target), w).value();
  const Tensor recorded = grad(shared_weight_loss(w, x, target), w, {.create_graph = true}).value();
  check_close(plain, recorded, 1e-13);
  check_close(plain, finite_difference_gradient(loss_at, w0), 1e-7);
}

TEST_CASE("backward of a product into a caller's grad_output leaves that tensor untouched", "[autograd][engine]") {
  Rng rng(72);
  const Var a(rng.normal({3, 3}), true);
  const Tensor b = rng.normal({3, 3});
  const Tensor g = rng.normal({3, 3});
  const Tensor g_before = g.clone();
  // d/da of <G, a @ b + a> = G b^T + G: the slot of a first holds G itself (the caller's).
  const Var y = a + matmul(a, Var(b));
  const Tensor da = grad({y}, {a}, {Var(g)}).front().value();
  check_close(g, g_before, 0.0);
  check_close(da, matmul(g, b.t()) + g, 1e-14);
}

TEST_CASE("a product of a Var with itself gets both contributions", "[autograd][engine]") {
  Rng rng(73);
  const Tensor a0 = rng.normal({4, 4});
  const Var a(a0, true);
  // d/da sum(a @ a @ a): three contributions per slot, two of them from one node.
  const Tensor da = grad(sum(matmul(matmul(a, a), a)), a).value();
  const auto loss_at = [](const Tensor& t) { return sum(matmul(matmul(t, t), t)).item<double>(); };
  check_close(da, finite_difference_gradient(loss_at, a0), 1e-7);
}

TEST_CASE("backward into the slot of a batched or N-D operand takes the plain rule", "[autograd][engine]") {
  Rng rng(74);
  const Tensor x0 = rng.normal({2, 3, 4});
  const Tensor w0 = rng.normal({4, 4});
  const auto loss = [&](const Var& x, const Var& w) {
    const Var h = linear(x, w) + matmul(x, w);  // [2, 3, 4] twice: batched matmul, N-D linear
    return sum(square(linear(h, w)));
  };
  const Var x(x0, true), w(w0, true);
  const auto plain = grad({loss(x, w)}, {x, w});
  const auto recorded = grad({loss(x, w)}, {x, w}, {}, {.create_graph = true});
  check_close(plain[0].value(), recorded[0].value(), 1e-13);
  check_close(plain[1].value(), recorded[1].value(), 1e-13);
  const auto by_w = [&](const Tensor& t) { return loss(Var(x0), Var(t)).item(); };
  check_close(plain[1].value(), finite_difference_gradient(by_w, w0), 1e-6);
}

TEST_CASE("the matmul node's accumulating rule adds what its plain rule returns", "[autograd][engine]") {
  Rng rng(75);
  const Var x(rng.normal({3, 5}), true);
  const Var w(rng.normal({4, 5}), true);
  for (const bool use_linear : {false, true}) {
    INFO((use_linear ? "linear" : "matmul"));
    const Var y = use_linear ? linear(x, w) : matmul(x, transpose(w, 0, 1));
    // The node whose inputs are x and w (or w^T).
    const auto& node = y.grad_fn();
    REQUIRE(node);
    REQUIRE(node->backward_into);
    const Var g(rng.normal({3, 4}));
    const InputMask both{true, true};
    const VarList plain = node->backward(g, *node, both);
    GradBuffers into(2);
    into[0] = rng.normal(node->inputs[0].shape());
    into[1] = rng.normal(node->inputs[1].shape()).t().contiguous().t();  // stored transposed
    const Tensor before0 = into[0].clone(), before1 = into[1].clone();
    const VarList rest = node->backward_into(g, *node, both, into);
    CHECK_FALSE(rest[0].defined());
    CHECK_FALSE(rest[1].defined());
    check_close(into[0], before0 + plain[0].value(), 1e-14);
    check_close(into[1], before1 + plain[1].value(), 1e-14);
    // Offered for one input only: the other comes back as the plain rule gives it.
    GradBuffers only_first(2);
    only_first[0] = zeros(node->inputs[0].shape());
    const VarList second = node->backward_into(g, *node, both, only_first);
    check_close(only_first[0], plain[0].value(), 1e-14);
    REQUIRE(second[1].defined());
    check_close(second[1].value(), plain[1].value(), 0.0);
  }
}
