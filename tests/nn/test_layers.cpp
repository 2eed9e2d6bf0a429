// nn layers, initialisers and the Module API.
//
// Linear (standard and NTK parameterisation), BatchNorm1d and LayerNorm are checked against
// plain loops over std::vector<double>; the initialisers' empirical moments against their
// formulas within explicit standard-error bounds, orthogonal against Q^T Q = I computed by loops;
// the Module API (names, train/eval, zero_grad, clone, copy_state_from) by observable behaviour.
// Losses and activations are in test_losses.cpp.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

#include "autograd/engine.hpp"
#include "nn/init.hpp"
#include "nn/layers.hpp"
#include "tests/support/reference.hpp"

using namespace theta;
using namespace theta::nn;
using Catch::Contains;

namespace {

std::vector<double> values(const Var& v) { return ref::read(v.value()); }
void set_values(const Var& p, const std::vector<double>& v) { p.value().copy_(from_vector(v, p.shape())); }

// y[i, j] = ws * sum_k x[i, k] W[j, k] + bs * b[j] for x:[rows, in], W:[out, in]; checked with a
// tolerance relative to the sum of the terms' magnitudes (the rounding error of a dot product).
void check_linear(const std::vector<double>& y, const std::vector<double>& x, const std::vector<double>& w,
                  const std::vector<double>& b, std::int64_t in, std::int64_t out, double ws, double bs) {
  const std::int64_t rows = static_cast<std::int64_t>(x.size()) / in;
  std::vector<double> want, scale;
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t j = 0; j < out; ++j) {
      double acc = 0, mag = 0;
      for (std::int64_t k = 0; k < in; ++k) {
        acc += x[i * in + k] * w[j * in + k];
        mag += std::abs(x[i * in + k] * w[j * in + k]);
      }
      const double bj = b.empty() ? 0.0 : b[j];
      want.push_back(ws * acc + bs * bj);
      scale.push_back(std::abs(ws) * mag + std::abs(bs * bj));
    }
  ref::check_close_scaled(y, want, scale, {1e-12, 0.0});
}

}  // namespace

TEST_CASE("Linear (standard): y = x W^T + b with weight [out, in], batched", "[nn][layers]") {
  Rng rng(1);
  const std::int64_t in = 5, out = 3;
  for (const bool bias : {true, false}) {
    INFO("bias " << bias);
    Linear lin(in, out, rng, {.bias = bias});
    REQUIRE(lin.weight().shape() == Shape{out, in});
    REQUIRE(lin.bias().defined() == bias);
    CHECK(lin.named_parameters().size() == (bias ? 2u : 1u));
    CHECK(lin.weight_scale() == 1.0);
    CHECK(lin.bias_scale() == 1.0);
    // PyTorch's default init: U(-1/sqrt(in), 1/sqrt(in)).
    for (double v : values(lin.weight())) CHECK(std::abs(v) <= 1.0 / std::sqrt(5.0));
    const std::vector<double> b = bias ? values(lin.bias()) : std::vector<double>{};
    for (const Shape& xs : {Shape{7, in}, Shape{2, 3, in}, Shape{in}}) {
      INFO("x " << ref::str(xs));
      const Tensor x = rng.normal(xs);
      const Var y = lin(Var(x));
      Shape ys = xs;
      ys.back() = out;
      CHECK(y.shape() == ys);
      check_linear(values(y), ref::read(x), values(lin.weight()), b, in, out, 1.0, 1.0);
    }
  }
}

TEST_CASE("Linear (NTK): y = sigma_w / sqrt(in) x W^T + sigma_b b with N(0, 1) parameters", "[nn][layers]") {
  Rng rng(2);
  const std::int64_t in = 6, out = 4;
  Linear lin(in, out, rng, {.parameterization = Parameterization::ntk, .sigma_w = 1.7, .sigma_b = 0.3});
  CHECK(lin.weight_scale() == Approx(1.7 / std::sqrt(6.0)).epsilon(1e-15));
  CHECK(lin.bias_scale() == 0.3);
  const Tensor x = rng.normal({9, in});
  check_linear(values(lin(Var(x))), ref::read(x), values(lin.weight()), values(lin.bias()), in, out,
               1.7 / std::sqrt(6.0), 0.3);

  // Default sigma_b = 0 keeps the bias out of the forward pass.
  Linear no_b(in, out, rng, {.parameterization = Parameterization::ntk, .sigma_w = 2.0});
  REQUIRE(no_b.bias().defined());
  check_linear(values(no_b(Var(x))), ref::read(x), values(no_b.weight()), {}, in, out, 2.0 / std::sqrt(6.0), 0.0);

  // N(0, 1) parameters (not PyTorch's uniform): a large layer's weights have std 1 within 5 SE.
  Linear big(400, 100, rng, {.parameterization = Parameterization::ntk});
  double s2 = 0;
  for (double v : values(big.weight())) s2 += v * v;
  CHECK(std::abs(std::sqrt(s2 / 40000.0) - 1.0) <= 5.0 / std::sqrt(2.0 * 40000.0));
}

TEST_CASE("Linear shape errors name the shapes", "[nn][layers]") {
  Rng rng(3);
  Linear lin(4, 3, rng);
  CHECK_THROWS_AS(lin(Var(zeros({5, 7}))), ShapeError);
  CHECK_THROWS_WITH(lin(Var(zeros({5, 7}))), Contains("[5, 7]") && Contains("4 -> 3"));
  CHECK_THROWS_AS(Linear(0, 3, rng), ShapeError);
}

TEST_CASE("BatchNorm1d: batch statistics in training, PyTorch running statistics, eval", "[nn][layers]") {
  const std::int64_t n = 6, f = 3;
  const double eps = 1e-3, m = 0.3;
  Rng rng(4);
  const std::vector<double> gamma{1.5, -0.5, 2.0}, beta{0.25, 1.0, -3.0};
  for (const bool affine : {true, false}) {
    INFO("affine " << affine);
    BatchNorm1d bn(f, {.eps = eps, .momentum = m, .affine = affine});
    const auto params = bn.named_parameters();
    REQUIRE(params.size() == (affine ? 2u : 0u));
    if (affine) {
      CHECK(params[0].first == "weight");
      set_values(params[0].second, gamma);
      set_values(params[1].second, beta);
    }
    const auto g = [&](std::int64_t j) { return affine ? gamma[j] : 1.0; };
    const auto o = [&](std::int64_t j) { return affine ? beta[j] : 0.0; };
    std::vector<double> rmean(f, 0.0), rvar(f, 1.0);  // PyTorch's initial running statistics
    for (int step = 0; step < 2; ++step) {
      INFO("step " << step);
      const Tensor x = rng.normal({n, f}, 2.0 + step, 3.0);
      const auto xv = ref::read(x);
      std::vector<double> want(xv.size());
      for (std::int64_t j = 0; j < f; ++j) {
        double mu = 0, ss = 0;
        for (std::int64_t i = 0; i < n; ++i) mu += xv[i * f + j] / n;
        for (std::int64_t i = 0; i < n; ++i) ss += (xv[i * f + j] - mu) * (xv[i * f + j] - mu);
        for (std::int64_t i = 0; i < n; ++i)
          want[i * f + j] = g(j) * (xv[i * f + j] - mu) / std::sqrt(ss / n + eps) + o(j);  // biased
        rmean[j] = (1 - m) * rmean[j] + m * mu;
        rvar[j] = (1 - m) * rvar[j] + m * ss / (n - 1);  // unbiased
      }
      ref::check_close(values(bn(Var(x))), want, {1e-12, 1e-14});
      const auto buffers = bn.named_buffers();
      REQUIRE(buffers.size() == 2);
      CHECK(buffers[0].first == "running_mean");
      CHECK(buffers[1].first == "running_var");
      ref::check_close(ref::read(buffers[0].second), rmean, {1e-12, 1e-15});
      ref::check_close(ref::read(buffers[1].second), rvar, {1e-12, 0.0});
    }
    bn.eval();
    const Tensor x = rng.normal({4, f});
    const auto xv = ref::read(x);
    std::vector<double> want(xv.size());
    for (std::int64_t i = 0; i < 4; ++i)
      for (std::int64_t j = 0; j < f; ++j)
        want[i * f + j] = g(j) * (xv[i * f + j] - rmean[j]) / std::sqrt(rvar[j] + eps) + o(j);
    ref::check_close(values(bn(Var(x))), want, {1e-12, 1e-14});
    ref::check_close(ref::read(bn.named_buffers()[0].second), rmean, {1e-12, 1e-15});  // eval leaves them
    bn.train();
    CHECK_THROWS_WITH(bn(Var(zeros({1, f}))), Contains("[1, 3]"));
    CHECK_THROWS_WITH(bn(Var(zeros({4, 2}))), Contains("[4, 2]"));
  }
}

TEST_CASE("LayerNorm normalises the last axis (biased variance), affine on and off", "[nn][layers]") {
  const std::int64_t f = 5;
  const double eps = 1e-4;
  Rng rng(5);
  const std::vector<double> gamma{1.0, 2.0, -1.0, 0.5, 3.0}, beta{0.0, -1.0, 0.5, 2.0, 0.1};
  for (const bool affine : {true, false}) {
    INFO("affine " << affine);
    LayerNorm ln(f, {.eps = eps, .affine = affine});
    REQUIRE(ln.named_parameters().size() == (affine ? 2u : 0u));
    if (affine) {
      set_values(ln.named_parameters()[0].second, gamma);
      set_values(ln.named_parameters()[1].second, beta);
    }
    const Tensor x = rng.normal({2, 3, f}, 1.0, 4.0);
    const auto xv = ref::read(x);
    std::vector<double> want(xv.size());
    for (std::size_t r = 0; r < xv.size() / f; ++r) {
      double mu = 0, var = 0;
      for (std::int64_t j = 0; j < f; ++j) mu += xv[r * f + j] / f;
      for (std::int64_t j = 0; j < f; ++j) var += (xv[r * f + j] - mu) * (xv[r * f + j] - mu) / f;
      for (std::int64_t j = 0; j < f; ++j)
        want[r * f + j] = (xv[r * f + j] - mu) / std::sqrt(var + eps) * (affine ? gamma[j] : 1.0) +
                          (affine ? beta[j] : 0.0);
    }
    const Var y = ln(Var(x));
    CHECK(y.shape() == x.shape());
    ref::check_close(values(y), want, {1e-12, 1e-14});
    CHECK_THROWS_WITH(ln(Var(zeros({3, 4}))), Contains("[3, 4]"));
  }
}

namespace {

// Mean, standard deviation, fraction within one std and max |w| of `t`'s elements.
struct Moments {
  double n, mean, std, within_1sd, max_abs;
};
Moments moments(const Tensor& t, double sd) {
  const auto v = ref::read(t);
  Moments m{static_cast<double>(v.size()), 0, 0, 0, 0};
  for (double x : v) m.mean += x / m.n;
  for (double x : v) {
    m.std += (x - m.mean) * (x - m.mean) / m.n;
    m.within_1sd += std::abs(x) < sd ? 1.0 / m.n : 0.0;
    m.max_abs = std::max(m.max_abs, std::abs(x));
  }
  m.std = std::sqrt(m.std);
  return m;
}

}  // namespace

TEST_CASE("init: fans and the initialisers' moments within 5 standard errors", "[nn][layers]") {
  CHECK(init::fans({7}) == std::pair<double, double>{7, 7});
  CHECK(init::fans({3, 4}) == std::pair<double, double>{4, 3});
  CHECK(init::fans({2, 3, 4, 5}) == std::pair<double, double>{60, 40});
  CHECK_THROWS_AS(init::fans({}), ShapeError);

  using Normal = Tensor (*)(const Shape&, Rng&, DType);
  for (const Shape& shape : {Shape{240, 160}, Shape{64, 32, 3, 3}}) {
    const auto [fan_in, fan_out] = init::fans(shape);
    INFO("shape " << ref::str(shape));
    const struct {
      const char* name;
      Normal fn;
      bool uniform;
      double var;  // the formula's variance
    } cases[] = {{"lecun_normal", init::lecun_normal, false, 1 / fan_in},
                 {"lecun_uniform", init::lecun_uniform, true, 1 / fan_in},
                 {"he_normal", init::he_normal, false, 2 / fan_in},
                 {"he_uniform", init::he_uniform, true, 2 / fan_in},
                 {"xavier_normal", init::xavier_normal, false, 2 / (fan_in + fan_out)},
                 {"xavier_uniform", init::xavier_uniform, true, 2 / (fan_in + fan_out)}};
    for (const auto& c : cases) {
      INFO(c.name);
      Rng rng(6), same(6), other(7);
      const Tensor w = c.fn(shape, rng, DType::f64);
      REQUIRE(w.shape() == shape);
      CHECK(ref::read(w) == ref::read(c.fn(shape, same, DType::f64)));
      CHECK(ref::read(w) != ref::read(c.fn(shape, other, DType::f64)));
      CHECK(c.fn(shape, other, DType::f32).dtype() == DType::f32);
      const double sd = std::sqrt(c.var);
      const Moments m = moments(w, sd);
      CHECK(std::abs(m.mean) <= 5 * sd / std::sqrt(m.n));
      // SE of the sample std: sigma / sqrt(2n) for a normal; for U(-a, a), Var(s^2) = 4 a^4 / (45 n).
      const double se_std = c.uniform ? std::sqrt(4.0 / 45.0) * 3 * c.var / std::sqrt(m.n) / (2 * sd)
                                      : sd / std::sqrt(2 * m.n);
      CHECK(std::abs(m.std - sd) <= 5 * se_std);
      // P(|w| < sd) is 0.6827 for a normal and 1/sqrt(3) for the uniform of the same variance.
      const double p = c.uniform ? 1 / std::sqrt(3.0) : std::erf(1 / std::sqrt(2.0));
      CHECK(std::abs(m.within_1sd - p) <= 5 * std::sqrt(p * (1 - p) / m.n));
      if (c.uniform) {  // bound a = sqrt(3 var), and the max comes within 20/n of it
        const double a = std::sqrt(3 * c.var);
        CHECK(m.max_abs <= a);
        CHECK(m.max_abs >= a * (1 - 20 / m.n));
      }
    }
  }
  CHECK(ref::read(init::zeros_init({2, 3})) == std::vector<double>(6, 0.0));
  CHECK(ref::read(init::constant({4}, 2.5)) == std::vector<double>(4, 2.5));
}

TEST_CASE("init::orthogonal has orthonormal rows or columns for tall, wide and square shapes", "[nn][layers]") {
  for (const Shape& shape : {Shape{9, 4}, Shape{4, 9}, Shape{6, 6}, Shape{50, 30}}) {
    for (const double gain : {1.0, 2.5}) {
      INFO("shape " << ref::str(shape) << " gain " << gain);
      Rng rng(8), same(8);
      const Tensor q = init::orthogonal(shape, rng, gain);
      REQUIRE(q.shape() == shape);
      const auto v = ref::read(q);
      CHECK(v == ref::read(init::orthogonal(shape, same, gain)));
      const std::int64_t r = shape[0], c = shape[1];
      const bool tall = r >= c;
      const std::int64_t k = tall ? c : r;  // the Gram matrix of the fewer vectors is gain^2 I
      double worst = 0;
      for (std::int64_t a = 0; a < k; ++a)
        for (std::int64_t b = 0; b < k; ++b) {
          double d = 0;
          for (std::int64_t e = 0; e < (tall ? r : c); ++e)
            d += tall ? v[e * c + a] * v[e * c + b] : v[a * c + e] * v[b * c + e];
          worst = std::max(worst, std::abs(d / (gain * gain) - (a == b ? 1.0 : 0.0)));
        }
      CHECK(worst <= 1e-12);
    }
  }
  Rng rng(9);
  CHECK_THROWS_WITH(init::orthogonal({2, 3, 4}, rng), Contains("[2, 3, 4]"));
}

TEST_CASE("Module API: mlp names, train/eval, zero_grad, clone and copy_state_from", "[nn][layers]") {
  Rng rng(10);
  auto net = mlp({3, 5, 4, 2}, rng, {.activation = ActivationKind::tanh});
  const auto params = net->named_parameters();
  const std::vector<std::string> names{"layers.0.weight", "layers.0.bias", "layers.2.weight",
                                       "layers.2.bias",   "layers.4.weight", "layers.4.bias"};
  const std::vector<Shape> shapes{{5, 3}, {5}, {4, 5}, {4}, {2, 4}, {2}};
  REQUIRE(params.size() == names.size());
  for (std::size_t i = 0; i < params.size(); ++i) {
    CHECK(params[i].first == names[i]);
    CHECK(params[i].second.shape() == shapes[i]);
    CHECK(params[i].second.requires_grad());
  }
  CHECK(net->parameter_count() == 15 + 5 + 20 + 4 + 8 + 2);
  CHECK(net->size() == 5);
  CHECK(mlp({3, 5, 2}, rng, {.bias = false})->named_parameters().size() == 2);

  SECTION("train/eval propagate to children") {
    Sequential seq;
    seq.add(std::make_shared<Linear>(3, 3, rng)).add(std::make_shared<BatchNorm1d>(3));
    CHECK(seq.named_buffers()[0].first == "layers.1.running_mean");
    seq.eval();
    CHECK((!seq.training() && !seq.at(0).training() && !seq.at(1).training()));
    const auto before = ref::read(seq.named_buffers()[0].second);
    seq(Var(rng.normal({4, 3})));
    CHECK(ref::read(seq.named_buffers()[0].second) == before);  // eval: running stats untouched
    seq.train();
    CHECK((seq.training() && seq.at(0).training() && seq.at(1).training()));
    seq(Var(rng.normal({4, 3})));
    CHECK(ref::read(seq.named_buffers()[0].second) != before);
  }
  SECTION("zero_grad drops every accumulated gradient") {
    autograd::backward(autograd::sum((*net)(Var(rng.normal({4, 3})))));
    for (const auto& p : net->parameters()) CHECK(p.grad().defined());
    net->zero_grad();
    for (const auto& p : net->parameters()) CHECK_FALSE(p.grad().defined());
  }
  SECTION("clone is a deep copy") {
    std::unique_ptr<Module> copy = net->clone();
    const Tensor x = rng.normal({4, 3});
    CHECK(ref::read((*copy)(Var(x)).value()) == ref::read((*net)(Var(x)).value()));
    const auto original = values(params[0].second);
    copy->named_parameters()[0].second.value().fill_(0.0);
    CHECK(values(params[0].second) == original);
    CHECK(copy->named_parameters()[0].second.id() != params[0].second.id());
    Sequential seq;  // buffers too: training the clone's BatchNorm leaves the original's stats
    seq.add(std::make_shared<BatchNorm1d>(3));
    const std::unique_ptr<Module> seq_copy = seq.clone();
    (*seq_copy)(Var(rng.normal({4, 3}, 5.0)));
    CHECK(ref::read(seq.named_buffers()[0].second) == std::vector<double>(3, 0.0));
    CHECK(ref::read(seq_copy->named_buffers()[0].second) != std::vector<double>(3, 0.0));
  }
  SECTION("copy_state_from copies values, not storage") {
    Rng other_rng(11);
    auto other = mlp({3, 5, 4, 2}, other_rng);
    net->copy_state_from(*other);
    for (std::size_t i = 0; i < params.size(); ++i)
      CHECK(values(params[i].second) == values(other->named_parameters()[i].second));
    other->named_parameters()[0].second.value().fill_(7.0);
    CHECK(values(params[0].second) != values(other->named_parameters()[0].second));
    CHECK_THROWS_WITH(net->copy_state_from(*mlp({3, 6, 4, 2}, other_rng)), Contains("layers.0.weight"));
    BatchNorm1d a(3), b(3);  // buffers are copied as well
    b(Var(rng.normal({4, 3}, 5.0)));
    a.copy_state_from(b);
    for (std::size_t i = 0; i < 2; ++i)
      CHECK(ref::read(a.named_buffers()[i].second) == ref::read(b.named_buffers()[i].second));
  }
  SECTION("copy_state_from refuses buffers or dtypes that differ, and then copies nothing") {
    // No parameters: only the buffers' shapes tell the two apart (a [1] buffer would broadcast).
    BatchNorm1d three(3, {.affine = false}), one(1, {.affine = false});
    CHECK_THROWS_AS(three.copy_state_from(one), ShapeError);
    CHECK_THROWS_WITH(three.copy_state_from(one),
                      Contains("copy_state_from: buffer running_mean [3] does not match running_mean [1]"));
    CHECK(ref::read(three.named_buffers()[0].second) == std::vector<double>(3, 0.0));
    // Same shapes, another dtype: refused before the first parameter is overwritten.
    Rng rng32(12);
    auto net32 = mlp({3, 5, 4, 2}, rng32, {.dtype = DType::f32});
    const auto before = values(params[0].second);
    CHECK_THROWS_AS(net->copy_state_from(*net32), DTypeError);
    CHECK_THROWS_WITH(net->copy_state_from(*net32),
                      Contains("copy_state_from: parameter layers.0.weight is float64, the source's float32"));
    CHECK(values(params[0].second) == before);
  }
}
