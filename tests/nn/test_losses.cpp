// nn activations, losses and accuracy.
//
// Values are checked against std:: formulas and stable references written as plain loops over
// std::vector<double> (log-sum-exp with the max subtracted, softplus split by sign); gradients
// with respect to the logits from theta::autograd::grad against their closed forms
// (softmax - onehot, sigmoid - target, softplus' = sigmoid).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "autograd/engine.hpp"
#include "nn/functional.hpp"
#include "nn/layers.hpp"
#include "tests/support/reference.hpp"

using namespace theta;
using namespace theta::nn;
using Catch::Contains;

namespace {

std::vector<double> values(const Var& v) { return ref::read(v.value()); }

// log(1 + e^x) without overflow or cancellation.
double softplus_ref(double x) { return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }
double sigmoid_ref(double x) { return x >= 0 ? 1 / (1 + std::exp(-x)) : std::exp(x) / (1 + std::exp(x)); }

const std::vector<double> kX{-30, -5, -1.5, -0.3, 0, 0.2, 1, 2.5, 8, 40};

}  // namespace

TEST_CASE("activations match their std:: formulas", "[nn][layers]") {
  const Tensor x = from_vector(kX);
  const auto map = [](double (*f)(double)) {
    std::vector<double> out;
    for (double v : kX) out.push_back(f(v));
    return out;
  };
  const struct {
    ActivationKind kind;
    std::vector<double> want;
    bool absolute_tail;  // also allow 1e-15 |x| of absolute error
  } cases[] = {
      {ActivationKind::identity, kX, false},
      {ActivationKind::relu, map([](double v) { return v > 0 ? v : 0.0; }), false},
      {ActivationKind::leaky_relu, map([](double v) { return v > 0 ? v : 0.2 * v; }), false},
      {ActivationKind::tanh, map([](double v) { return std::tanh(v); }), false},
      {ActivationKind::sigmoid, map(sigmoid_ref), false},
      {ActivationKind::softplus, map(softplus_ref), false},
      // x Phi(x) via erfc (no cancellation). The erf form 1 + erf(x / sqrt 2) cancels in the
      // negative tail, so there the check is absolute: a few ulps of |x|.
      {ActivationKind::gelu, map([](double v) { return 0.5 * v * std::erfc(-v / std::sqrt(2.0)); }), true},
      {ActivationKind::erf, map([](double v) { return std::erf(v); }), false},
  };
  for (const auto& c : cases) {
    INFO(activation_name(c.kind));
    CHECK(activation_from_name(activation_name(c.kind)) == c.kind);
    Activation layer(c.kind, 0.2);
    // Tolerance 1e-12 * scale: 1e-12 |want|, plus 1e-15 |x| for the gelu tail.
    std::vector<double> scale;
    for (std::size_t i = 0; i < kX.size(); ++i)
      scale.push_back(std::abs(c.want[i]) + (c.absolute_tail ? 1e-3 * std::abs(kX[i]) : 0.0));
    ref::check_close_scaled(values(layer(Var(x))), c.want, scale, {1e-12, 0.0});
    ref::check_close_scaled(values(activate(Var(x), c.kind, 0.2)), c.want, scale, {1e-12, 0.0});
  }
  ref::check_close(values(leaky_relu(Var(x))), map([](double v) { return v > 0 ? v : 0.01 * v; }), {1e-15, 0});
  CHECK_THROWS_WITH(activation_from_name("swish"), Contains("swish") && Contains("gelu"));
}

TEST_CASE("softplus is stable at large |x|; its derivatives are sigmoid and sigmoid'", "[nn][layers]") {
  const std::vector<double> xs{-1e4, -700, -40, -1, -1e-300, 0, 1e-300, 1, 40, 700, 1e4};
  Var x(from_vector(xs), true);
  const Var y = softplus(x);
  std::vector<double> want, slope, curvature;
  for (double v : xs) {
    want.push_back(softplus_ref(v));
    slope.push_back(sigmoid_ref(v));
    curvature.push_back(sigmoid_ref(v) * sigmoid_ref(-v));
  }
  CHECK(want[0] == 0.0);  // e^-1e4 underflows
  CHECK(want.back() == 1e4);
  ref::check_close(values(y), want, {1e-12, 0.0});
  // d softplus / dx = sigmoid(x), including x = 0, where both terms of the stable form have kinks.
  const Var g = autograd::grad(autograd::sum(y), x, {.create_graph = true});
  ref::check_close(values(g), slope, {1e-12, 0.0});
  // Second derivative sigmoid(x) sigmoid(-x), 1/4 at 0 (absolute: 1 - sigmoid cancels for x >> 0).
  ref::check_close(values(autograd::grad(autograd::sum(g), x)), curvature, {1e-12, 1e-16});
}

TEST_CASE("mse_loss: mean, sum and none", "[nn][layers]") {
  Rng rng(20);
  const Tensor p = rng.normal({3, 4}), t = rng.normal({3, 4});
  const auto pv = ref::read(p), tv = ref::read(t);
  std::vector<double> sq;
  double total = 0;
  for (std::size_t i = 0; i < pv.size(); ++i) {
    sq.push_back((pv[i] - tv[i]) * (pv[i] - tv[i]));
    total += sq.back();
  }
  Var pred(p, true);
  ref::check_close(values(mse_loss(pred, Var(t), Reduction::none)), sq, {1e-15, 0});
  CHECK(mse_loss(pred, Var(t), Reduction::none).shape() == Shape{3, 4});
  CHECK(mse_loss(pred, Var(t), Reduction::sum).item() == Approx(total).epsilon(1e-12));
  CHECK(mse_loss(pred, Var(t)).item() == Approx(total / 12).epsilon(1e-12));
  // d mean / d pred = 2 (p - t) / N.
  std::vector<double> g;
  for (std::size_t i = 0; i < pv.size(); ++i) g.push_back(2 * (pv[i] - tv[i]) / 12);
  ref::check_close(values(autograd::grad(mse_loss(pred, Var(t)), pred)), g, {1e-12, 0});
  CHECK_THROWS_WITH(mse_loss(pred, Var(zeros({4, 3}))), Contains("[3, 4]") && Contains("[4, 3]"));
}

namespace {

// Per-row cross-entropy -log softmax(z)[label] and its gradient softmax(z) - onehot, by a
// log-sum-exp with the row max subtracted.
struct CrossEntropyRef {
  std::vector<double> loss, grad;
};
CrossEntropyRef cross_entropy_ref(const std::vector<double>& z, const std::vector<double>& labels, std::size_t c) {
  CrossEntropyRef out;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const double* row = &z[i * c];
    const double m = *std::max_element(row, row + c);
    double s = 0;
    for (std::size_t j = 0; j < c; ++j) s += std::exp(row[j] - m);
    const auto label = static_cast<std::size_t>(labels[i]);
    out.loss.push_back((m - row[label]) + std::log(s));  // m - z first: exact for integer logits
    for (std::size_t j = 0; j < c; ++j) out.grad.push_back(std::exp(row[j] - m) / s - (j == label ? 1.0 : 0.0));
  }
  return out;
}

}  // namespace

TEST_CASE("cross_entropy from logits and int64 labels: values, reductions, gradients", "[nn][layers]") {
  Rng rng(21);
  const std::size_t n = 6, c = 4;
  // Moderate logits, and integer logits of magnitude 1e4 (differences exact in float64).
  const std::vector<double> big{1e4,  -1e4, 5e3,  9999, -1e4, -1e4, -9998, -1e4, 0,   1e4, -1e4,  1e4,
                                -5e3, -5e3, -5e3, -5e3, 1e4,  1e4,  1e4,   -1e4, 3e3, 1e4, 9997, 2e3};
  const std::vector<double> labels_v{3, 2, 1, 0, 3, 2};
  const Tensor labels = from_vector(labels_v, {6}, DType::i64);
  for (const std::vector<double>& z : {ref::read(rng.normal({6, 4}, 0.0, 3.0)), big}) {
    double zmax = 0;
    for (double v : z) zmax = std::max(zmax, std::abs(v));
    INFO("max |logit| " << zmax);
    // log_softmax shifts by the row maximum before the log-sum-exp, so no error of the logits'
    // magnitude (a few ulps of 1e4, 2e-12) enters: the absolute floor is tiny at any scale.
    const double atol = 1e-15;
    const auto want = cross_entropy_ref(z, labels_v, c);
    Var logits(from_vector(z, {6, 4}), true);
    const Var none = cross_entropy(logits, labels, Reduction::none);
    CHECK(none.shape() == Shape{6});
    ref::check_close(values(none), want.loss, {1e-12, atol});
    double total = 0;
    for (double l : want.loss) total += l;
    for (double l : values(none)) CHECK(std::isfinite(l));
    CHECK(std::abs(cross_entropy(logits, labels, Reduction::sum).item() - total) <= 1e-12 * total + n * atol);
    CHECK(std::abs(cross_entropy(logits, labels).item() - total / n) <= 1e-12 * total / n + atol);

    // Gradients: mean -> (softmax - onehot) / n, sum -> softmax - onehot, none with weights w.
    std::vector<double> g_mean, g_weighted;
    const std::vector<double> w{0.5, -1, 2, 0, 3, 1};
    for (std::size_t k = 0; k < want.grad.size(); ++k) {
      g_mean.push_back(want.grad[k] / n);
      g_weighted.push_back(want.grad[k] * w[k / c]);
    }
    ref::check_close(values(autograd::grad(cross_entropy(logits, labels), logits)), g_mean, {1e-12 + atol, 1e-16});
    ref::check_close(values(autograd::grad(cross_entropy(logits, labels, Reduction::sum), logits)), want.grad,
                     {1e-12 + atol, 1e-16});
    const auto gw = autograd::grad({cross_entropy(logits, labels, Reduction::none)}, {logits}, {Var(from_vector(w))});
    ref::check_close(values(gw[0]), g_weighted, {1e-12 + atol, 1e-16});
  }
  Var logits(zeros({2, 3}), true);
  CHECK_THROWS_AS(cross_entropy(logits, from_vector({0, 1})), DTypeError);
  CHECK_THROWS_WITH(cross_entropy(logits, from_vector({0, 1, 2}, {3}, DType::i64)), Contains("[3]") && Contains("[2, 3]"));
}

TEST_CASE("binary_logistic_loss: stable values and gradient sigmoid(z) - t", "[nn][layers]") {
  const std::vector<double> z{-1e4, -30, -2, -0.5, 0, 0, 0.7, 3, 30, 1e4}, t{0, 1, 1, 0, 1, 0, 1, 0, 0, 1};
  std::vector<double> loss, g;
  double total = 0;
  for (std::size_t i = 0; i < z.size(); ++i) {
    loss.push_back(t[i] == 1 ? softplus_ref(-z[i]) : softplus_ref(z[i]));  // -log sigma(z) or -log(1 - sigma(z))
    total += loss.back();
    g.push_back((sigmoid_ref(z[i]) - t[i]) / static_cast<double>(z.size()));
  }
  CHECK(loss[0] == 0.0);
  CHECK(loss[1] == Approx(30).epsilon(1e-12));
  Var logits(from_vector(z), true);
  const Var targets(from_vector(t));
  ref::check_close(values(binary_logistic_loss(logits, targets, Reduction::none)), loss, {1e-12, 0});
  CHECK(binary_logistic_loss(logits, targets, Reduction::sum).item() == Approx(total).epsilon(1e-12));
  CHECK(binary_logistic_loss(logits, targets).item() == Approx(total / 10).epsilon(1e-12));
  // Includes z = 0, where the gradient is 1/2 - t.
  ref::check_close(values(autograd::grad(binary_logistic_loss(logits, targets), logits)), g, {1e-12, 0});
  CHECK_THROWS_WITH(binary_logistic_loss(logits, Var(zeros({9}))), Contains("[10]") && Contains("[9]"));
}

TEST_CASE("accuracy is the fraction of rows whose argmax equals the label", "[nn][layers]") {
  Rng rng(22);
  const Tensor logits = rng.normal({50, 7});
  const Tensor labels = rng.integers({50}, 0, 7);
  const auto z = ref::read(logits);
  const auto y = ref::read_i64(labels);
  double hits = 0;
  for (std::size_t i = 0; i < 50; ++i)
    hits += (std::max_element(&z[i * 7], &z[i * 7] + 7) - &z[i * 7]) == y[i] ? 1 : 0;
  REQUIRE(hits > 0);
  REQUIRE(hits < 50);
  CHECK(accuracy(logits, labels) == hits / 50);
  CHECK(accuracy(from_vector({0.1, 0.9, 3.0, -1.0}, {2, 2}), from_vector({1, 0}, {2}, DType::i64)) == 1.0);
  CHECK(accuracy(zeros({0, 3}), zeros({0}, DType::i64)) == 0.0);
  CHECK_THROWS_WITH(accuracy(logits, zeros({49}, DType::i64)), Contains("[50, 7]") && Contains("[49]"));
}

TEST_CASE("cross_entropy and accuracy reject labels outside [0, C), naming the op, the label and C", "[nn][layers]") {
  // Negative labels must not count from the end (as a NumPy-style gather index would): label -1
  // would silently train class C - 1.
  Var logits(from_vector({0.1, 0.2, 0.3, 0.4, 0.5, 0.6}, {2, 3}), true);
  CHECK_THROWS_AS(cross_entropy(logits, from_indices({0, -1})), IndexError);
  CHECK_THROWS_WITH(cross_entropy(logits, from_indices({0, -1})),
                    "cross_entropy: label -1 (row 1) is out of range for 3 classes: labels must be in [0, 3)");
  CHECK_THROWS_WITH(cross_entropy(logits, from_indices({3, 0}), Reduction::none),
                    "cross_entropy: label 3 (row 0) is out of range for 3 classes: labels must be in [0, 3)");
  for (const std::int64_t bad : {std::int64_t{-4}, std::int64_t{1000}, std::numeric_limits<std::int64_t>::min()}) {
    INFO("label " << bad);
    CHECK_THROWS_WITH(cross_entropy(logits, from_indices({1, bad}), Reduction::sum),
                      Contains("cross_entropy: label " + std::to_string(bad) + " (row 1)"));
  }
  // Labels read through a strided view are checked element by element too.
  const Tensor strided = from_indices({2, -1, 0, 7}).slice(0, 0, 4, 2);
  CHECK_NOTHROW(cross_entropy(logits, strided));
  CHECK_THROWS_WITH(cross_entropy(logits, from_indices({2, -1, 0, 7}).slice(0, 1, 4, 2)), Contains("label -1 (row 0)"));

  const Tensor z = from_vector({0.1, 0.9, 3.0, -1.0}, {2, 2});
  CHECK_THROWS_AS(accuracy(z, from_indices({1, -1})), IndexError);
  CHECK_THROWS_WITH(accuracy(z, from_indices({2, 0})),
                    "accuracy: label 2 (row 0) is out of range for 2 classes: labels must be in [0, 2)");
  CHECK_THROWS_AS(accuracy(z, from_vector({1, 0})), DTypeError);
  CHECK_THROWS_WITH(accuracy(zeros({1, 0}), from_indices({0})), Contains("out of range for 0 classes"));
}
