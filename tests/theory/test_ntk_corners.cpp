// Corners of the kernel tools: models without parameters (the zero kernel), models that mix
// samples (refused by every method), NaN and Inf (refused), and the analytic ReLU kernel where the
// arc-cosine formula is ill-conditioned (zero inputs, nearly collinear inputs) against a
// reference evaluated in quadruple precision.

#include <quadmath.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <string>

#include "autograd/ops.hpp"
#include "nn/layers.hpp"
#include "tensor/ops.hpp"
#include "theory/ntk.hpp"

using namespace theta;
using namespace theta::theory;
using theta::autograd::Var;

namespace {

const NtkOptions kContraction{.method = NtkMethod::contraction};
const NtkOptions kStructured{.method = NtkMethod::structured};

std::shared_ptr<nn::Sequential> parameter_free_net() {
  auto net = std::make_shared<nn::Sequential>();
  net->add(std::make_shared<nn::Activation>(nn::ActivationKind::tanh));
  return net;
}

// The ReLU NNGP and NTK recursion written directly (acos of the correlation) in __float128:
// acos near 1 loses half of the 113-bit significand, leaving ~1e-17, far below the 1e-13
// checked here.
__extension__ typedef __float128 quad;  // (__extension__: a GCC type, outside ISO C++)

struct QuadKernels {
  double nngp, ntk;
};

QuadKernels relu_kernel_quad(const std::vector<double>& x, const std::vector<double>& y, int layers, double sigma_w,
                             double sigma_b) {
  const quad w2 = static_cast<quad>(sigma_w) * sigma_w, b2 = static_cast<quad>(sigma_b) * sigma_b;
  const quad d = static_cast<quad>(x.size());
  quad sxy = 0, sxx = 0, syy = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    sxy += static_cast<quad>(x[i]) * y[i];
    sxx += static_cast<quad>(x[i]) * x[i];
    syy += static_cast<quad>(y[i]) * y[i];
  }
  sxy = w2 * sxy / d + b2, sxx = w2 * sxx / d + b2, syy = w2 * syy / d + b2;
  quad ntk = sxy;
  const quad pi = acosq(static_cast<quad>(-1));
  for (int l = 1; l < layers; ++l) {
    const quad r = sqrtq(sxx * syy);
    quad c = sxy / r;
    c = c > 1 ? 1 : (c < -1 ? -1 : c);
    const quad theta = acosq(c);
    const quad next = w2 / (2 * pi) * r * (sinq(theta) + (pi - theta) * cosq(theta)) + b2;
    ntk = next + ntk * w2 / (2 * pi) * (pi - theta);
    sxy = next, sxx = w2 / 2 * sxx + b2, syy = w2 / 2 * syy + b2;
  }
  return {static_cast<double>(sxy), static_cast<double>(ntk)};
}

}  // namespace

TEST_CASE("a model without parameters has the zero kernel and no Jacobians", "[theory][ntk]") {
  auto net = parameter_free_net();
  Rng rng(31);
  const Tensor x1 = rng.normal({3, 2}), x2 = rng.normal({4, 2});
  for (const NtkOptions& options : {kContraction, kStructured}) {
    const Tensor k = empirical_ntk(*net, x1, x2, options);
    CHECK(k.shape() == Shape{3, 4, 2, 2});
    CHECK(max(abs(k)).item() == 0.0);
    const Tensor same = empirical_ntk(*net, x1, x1, options);
    CHECK(same.shape() == Shape{3, 3, 2, 2});
    CHECK(max(abs(same)).item() == 0.0);
    const Tensor trace = empirical_ntk_trace(*net, x1, x2, options);
    CHECK(trace.shape() == Shape{3, 4});
    CHECK(max(abs(trace)).item() == 0.0);
    const Tensor diag = empirical_ntk_diagonal(*net, x1, options);
    CHECK(diag.shape() == Shape{3, 2, 2});
    CHECK(max(abs(diag)).item() == 0.0);
  }
  CHECK(parameter_jacobians(*net, x1).empty());
  const PerSampleLoss loss = [](const Var& o) { return autograd::sum(autograd::square(o), {1}); };
  CHECK(per_sample_gradients(*net, x1, loss).empty());
  const Tensor norms = per_sample_gradient_norms(*net, x1, loss);
  CHECK(norms.shape() == Shape{3});
  CHECK(max(abs(norms)).item() == 0.0);
}

TEST_CASE("every kernel method refuses a model that mixes samples", "[theory][ntk]") {
  Rng rng(32);
  auto net = std::make_shared<nn::Sequential>();
  net->add(std::make_shared<nn::Linear>(3, 4, rng));
  net->add(std::make_shared<nn::BatchNorm1d>(4, nn::NormOptions{.affine = false}));
  net->add(std::make_shared<nn::Linear>(4, 2, rng));
  const Tensor x = rng.normal({5, 3});
  const Tensor running_before = net->named_buffers()[0].second.clone();
  const std::string mixes = "does not treat samples independently";
  for (const NtkOptions& options : {kContraction, kStructured}) {
    CHECK_THROWS_WITH(empirical_ntk(*net, x, x, options), Catch::Contains(mixes));
    CHECK_THROWS_WITH(empirical_ntk_trace(*net, x, x, options), Catch::Contains(mixes));
    CHECK_THROWS_WITH(empirical_ntk_diagonal(*net, x, options), Catch::Contains(mixes));
  }
  CHECK_THROWS_WITH(parameter_jacobians(*net, x), Catch::Contains(mixes));
  // The message names the layer that mixes them.
  CHECK_THROWS_WITH(empirical_ntk(*net, x, x), Catch::Contains("the output of layers.1 (BatchNorm1d(4"));
  // The refused calls leave the running statistics untouched.
  CHECK(max(abs(net->named_buffers()[0].second - running_before)).item() == 0.0);
  // In eval mode the same model is sample-wise, and both methods agree.
  net->eval();
  const Tensor fast = empirical_ntk(*net, x, x, kStructured), slow = empirical_ntk(*net, x, x, kContraction);
  CHECK(max(abs(fast - slow)).item() <= 1e-10 * max(abs(slow)).item());
}

TEST_CASE("a model that mixes samples is refused with the reason and the fix, one-sample batches too",
          "[theory][ntk][errors]") {
  Rng rng(34);
  auto net = std::make_shared<nn::Sequential>();
  net->add(std::make_shared<nn::Linear>(3, 4, rng));
  net->add(std::make_shared<nn::BatchNorm1d>(4));
  net->add(std::make_shared<nn::Linear>(4, 1, rng));
  const Tensor x = rng.normal({5, 3}), one = x.slice(0, 0, 1);
  const Tensor running_before = net->named_buffers()[0].second.clone();
  // Catch's && of matchers keeps references to its operands, so they are named here.
  const auto reason = Catch::Contains("BatchNorm in training mode couples the samples of a batch");
  const auto fix = Catch::Contains("call eval()");
  const auto layer = Catch::Contains("layers.1 (BatchNorm1d(4");
  const auto explained = reason && fix && layer;
  const PerSampleLoss loss = [](const Var& o) { return autograd::sum(autograd::square(o), {1}); };
  for (const Tensor& batch : {x, one}) {
    INFO("batch " << shape_str(batch.shape()));
    for (const NtkOptions& options : {kContraction, kStructured}) {
      // A one-sample batch used to reach BatchNorm's own batch-size error instead.
      CHECK_THROWS_AS(empirical_ntk(*net, batch, x, options), std::invalid_argument);
      CHECK_THROWS_WITH(empirical_ntk(*net, batch, x, options), explained);
      CHECK_THROWS_WITH(empirical_ntk_matrix(*net, batch, batch, options), explained);
      CHECK_THROWS_WITH(empirical_ntk_diagonal(*net, batch, options), explained);
    }
    CHECK_THROWS_WITH(parameter_jacobians(*net, batch), explained);
    CHECK_THROWS_WITH(per_sample_gradients(*net, batch, loss), explained);
    CHECK_THROWS_WITH(per_sample_gradient_norms(*net, batch, loss), explained);
  }
  CHECK(max(abs(net->named_buffers()[0].second - running_before)).item() == 0.0);
  // In eval mode a one-sample batch is fine: its kernel is the corresponding block of the full one.
  net->eval();
  const Tensor full = empirical_ntk_matrix(*net, x, x);
  CHECK(allclose(empirical_ntk_matrix(*net, one, x), full.slice(0, 0, 1), 1e-12, 1e-14));
  CHECK(allclose(empirical_ntk_matrix(*net, one, x, kContraction), full.slice(0, 0, 1), 1e-12, 1e-14));
}

TEST_CASE("kernels refuse NaN and Inf in inputs and parameters", "[theory][ntk]") {
  Rng rng(33);
  auto net = nn::mlp({3, 5, 2}, rng, {.activation = nn::ActivationKind::tanh});
  Tensor x = rng.normal({4, 3});
  x.select(0, 2).select(0, 1).fill_(std::numeric_limits<double>::quiet_NaN());
  const Tensor clean = rng.normal({4, 3});
  for (const NtkOptions& options : {kContraction, kStructured}) {
    CHECK_THROWS_WITH(empirical_ntk(*net, x, clean, options), Catch::Contains("inputs [4, 3] contains NaN or Inf"));
    CHECK_THROWS_WITH(empirical_ntk(*net, clean, x, options), Catch::Contains("NaN or Inf"));
    CHECK_THROWS_WITH(empirical_ntk_diagonal(*net, x, options), Catch::Contains("NaN or Inf"));
  }
  const Var w = net->named_parameters()[2].second;
  w.value().select(0, 0).fill_(std::numeric_limits<double>::infinity());
  for (const NtkOptions& options : {kContraction, kStructured})
    CHECK_THROWS_WITH(empirical_ntk(*net, clean, clean, options), Catch::Contains("layers.2.weight"));
  const PerSampleLoss loss = [](const Var& o) { return autograd::sum(autograd::square(o), {1}); };
  CHECK_THROWS_WITH(per_sample_gradients(*net, clean, loss), Catch::Contains("layers.2.weight"));
  CHECK_THROWS_AS(analytic_ntk(x, clean, 2, nn::ActivationKind::relu, 1.0, 0.0), std::invalid_argument);
}

// out(shared(tanh(shared(x)))) with each layer registered once.
class SharedOnce : public nn::Cloneable<SharedOnce> {
 public:
  SharedOnce(std::shared_ptr<nn::Module> shared, std::shared_ptr<nn::Module> out) {
    register_module("shared", std::move(shared));
    register_module("out", std::move(out));
  }
  Var forward(const Var& x) override { return child(1)(child(0)(autograd::tanh(child(0)(x)))); }
  std::string describe() const override { return "SharedOnce"; }
};

TEST_CASE("a layer registered twice (shared weights) counts its parameters once", "[theory][ntk]") {
  Rng rng(37);
  auto shared = std::make_shared<nn::Linear>(3, 3, rng);
  auto out = std::make_shared<nn::Linear>(3, 2, rng);
  auto twice = std::make_shared<nn::Sequential>();  // the same Linear at layers.0 and layers.2
  twice->add(shared).add(std::make_shared<nn::Activation>(nn::ActivationKind::tanh)).add(shared).add(out);
  REQUIRE(twice->named_parameters().size() == 6);
  SharedOnce once(shared, out);
  const Tensor x1 = rng.normal({5, 3}), x2 = rng.normal({4, 3});
  const Tensor reference = empirical_ntk(once, x1, x2, kContraction);
  const double scale = max(abs(reference)).item();
  for (const NtkOptions& options : {kContraction, kStructured}) {
    CHECK(max(abs(empirical_ntk(*twice, x1, x2, options) - reference)).item() <= 1e-12 * scale);
    CHECK(max(abs(empirical_ntk_diagonal(*twice, x1, options) - empirical_ntk_diagonal(once, x1, kContraction)))
              .item() <= 1e-12 * scale);
  }
  // Per-sample gradients: both names of the shared weight carry its (one) gradient.
  const Tensor target = rng.normal({5, 2});
  const PerSampleLoss loss = [&](const Var& o) { return autograd::sum(autograd::square(o - Var(target)), {1}); };
  const auto g_twice = per_sample_gradients(*twice, x1, loss);
  const auto g_once = per_sample_gradients(once, x1, loss);
  REQUIRE(g_twice.size() == 6);
  REQUIRE(g_once.size() == 4);
  CHECK(max(abs(g_twice[0].second - g_once[0].second)).item() <= 1e-12);  // layers.0.weight
  CHECK(max(abs(g_twice[2].second - g_once[0].second)).item() <= 1e-12);  // layers.2.weight
  CHECK(max(abs(g_twice[5].second - g_once[3].second)).item() <= 1e-12);  // layers.3.bias
}

// sqrt of its input: finite at 0, with an infinite derivative there.
class SqrtLayer : public nn::Cloneable<SqrtLayer> {
 public:
  Var forward(const Var& x) override { return autograd::sqrt(x); }
  std::string describe() const override { return "Sqrt"; }
};

TEST_CASE("kernels refuse infinite derivatives behind a finite output", "[theory][ntk]") {
  Rng rng(36);
  auto net = std::make_shared<nn::Sequential>();
  net->add(std::make_shared<nn::Linear>(3, 2, rng));
  net->add(std::make_shared<SqrtLayer>());
  for (const auto& [name, p] : net->named_parameters()) p.value().fill_(0.0);  // sqrt(0) = 0, sqrt'(0) = inf
  const Tensor x = rng.normal({4, 3});
  CHECK(all_finite(net->forward(Var(x)).value()));
  CHECK_THROWS_WITH(empirical_ntk(*net, x, x), Catch::Contains("output gradient"));
  CHECK_THROWS_WITH(empirical_ntk(*net, x, x, kContraction), Catch::Contains("Jacobian rows"));
  CHECK_THROWS_WITH(empirical_ntk_diagonal(*net, x), Catch::Contains("NaN or Inf"));
}

TEST_CASE("analytic ReLU kernel: a zero input without bias has the exact kernel 0", "[theory][ntk]") {
  Rng rng(34);
  Tensor x = rng.normal({3, 4});
  x.select(0, 1).fill_(0.0);
  for (std::int64_t layers : {1, 2, 4}) {
    const AnalyticKernels k = analytic_ntk(x, x, layers, nn::ActivationKind::relu, 1.5, 0.0);
    for (std::int64_t j = 0; j < 3; ++j) {
      CHECK(k.nngp.at({1, j}) == 0.0);
      CHECK(k.ntk.at({1, j}) == 0.0);
      CHECK(k.ntk.at({j, 1}) == 0.0);
    }
    // The other entries are those of the kernel without the zero row.
    const Tensor rest = concat({x.slice(0, 0, 1), x.slice(0, 2, 3)}, 0);
    const AnalyticKernels r = analytic_ntk(rest, rest, layers, nn::ActivationKind::relu, 1.5, 0.0);
    CHECK(k.ntk.at({0, 2}) == Approx(r.ntk.at({0, 1})).epsilon(1e-14));
    CHECK(k.nngp.at({2, 2}) == Approx(r.nngp.at({1, 1})).epsilon(1e-14));
  }
}

TEST_CASE("analytic ReLU kernel is accurate for nearly collinear and opposite inputs", "[theory][ntk]") {
  Rng rng(35);
  const Tensor base = rng.normal({1, 6});
  std::vector<Tensor> rows{base, base * 3.0, base * -2.0};
  for (double tilt : {1e-3, 1e-6, 1e-9}) {
    rows.push_back(base + rng.normal({1, 6}) * tilt);
    rows.push_back(base * -1.0 + rng.normal({1, 6}) * tilt);
  }
  const Tensor x = concat(rows, 0);
  const std::int64_t n = x.size(0);
  for (double sigma_b : {0.0, 0.3})
    for (int layers : {2, 4}) {
      const AnalyticKernels k = analytic_ntk(x, x, layers, nn::ActivationKind::relu, 1.4, sigma_b);
      double worst = 0;
      for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t j = 0; j < n; ++j) {
          const QuadKernels q =
              relu_kernel_quad(to_vector(x.select(0, i)), to_vector(x.select(0, j)), layers, 1.4, sigma_b);
          // Relative to the pair's scale sqrt(K(x, x) K(y, y)): opposite inputs without bias have
          // an NNGP of exactly 0 at depth > 1.
          const double scale = std::sqrt(k.ntk.at({i, i}) * k.ntk.at({j, j}));
          worst = std::max({worst, std::abs(k.ntk.at({i, j}) - q.ntk) / scale,
                            std::abs(k.nngp.at({i, j}) - q.nngp) / scale});
        }
      INFO("sigma_b " << sigma_b << ", layers " << layers);
      CHECK(worst < 1e-13);
    }
}
