// The structured NTK and per-sample gradients of CNNs (Conv2d's rule, both routes) against
// Jacobian contraction and one backward pass per sample.

#include <catch2/catch.hpp>

#include <memory>

#include "autograd/engine.hpp"
#include "nn/conv.hpp"
#include "nn/functional.hpp"
#include "tensor/ops.hpp"
#include "tensor/storage.hpp"
#include "theory/ntk.hpp"
#include "theory/ntk_blocks.hpp"
#include "tests/support/kernel_compare.hpp"

using namespace theta;
using theta::test::max_abs_diff;
using namespace theta::theory;
using theta::autograd::Var;

namespace {

// Sets the route of every Conv2d of the model.
void set_route(nn::Module& model, nn::ConvNtkRoute route) {
  for (const auto& [name, m] : model.named_modules())
    if (auto* conv = dynamic_cast<nn::Conv2d*>(m)) conv->ntk_route = route;
}

// A CNN exercising strides, circular padding, a bias-free layer, pooling and a residual block.
std::shared_ptr<nn::Sequential> mixed_cnn(Rng& rng) {
  auto net = std::make_shared<nn::Sequential>();
  net->add(std::make_shared<nn::Unflatten>(std::array<std::int64_t, 3>{2, 6, 6}));
  net->add(std::make_shared<nn::Conv2d>(2, 3, 3, rng, nn::ConvOptions{.stride = 2, .padding = 1}));
  net->add(std::make_shared<nn::Activation>(nn::ActivationKind::tanh));
  net->add(nn::residual_conv_block(3, 3, rng, {.padding_mode = Padding::circular}, nn::ActivationKind::tanh));
  net->add(std::make_shared<nn::Conv2d>(3, 4, 2, rng, nn::ConvOptions{.bias = false}));
  net->add(std::make_shared<nn::AvgPool2d>(2));
  net->add(std::make_shared<nn::Flatten>());
  net->add(std::make_shared<nn::Linear>(4, 3, rng));
  return net;
}

const nn::ConvNtkRoute kRoutes[] = {nn::ConvNtkRoute::automatic, nn::ConvNtkRoute::weight_gradients,
                                    nn::ConvNtkRoute::pixel_pairs};

const char* route_name(nn::ConvNtkRoute r) {
  return r == nn::ConvNtkRoute::automatic ? "automatic"
         : r == nn::ConvNtkRoute::weight_gradients ? "weight gradients"
                                                   : "pixel pairs";
}

}  // namespace

TEST_CASE("the structured NTK of CNNs equals Jacobian contraction in every form and route", "[theory][ntk][conv]") {
  Rng rng(17);
  auto mixed = mixed_cnn(rng);
  auto ntk_net = nn::cnn({.image = {1, 5, 5},
                          .channels = {4, 3},
                          .out_features = 2,
                          .padding_mode = Padding::circular,
                          .parameterization = nn::Parameterization::ntk,
                          .sigma_w = 1.3,
                          .sigma_b = 0.2},
                         rng);
  struct Model {
    nn::Module* model;
    std::int64_t d;
    const char* name;
  };
  for (const Model& m : {Model{mixed.get(), 72, "mixed"}, Model{ntk_net.get(), 25, "ntk cnn"}}) {
    const Tensor x1 = rng.normal({5, m.d}), x2 = rng.normal({3, m.d});
    const NtkOptions contraction{.method = NtkMethod::contraction};
    const Tensor full11 = empirical_ntk(*m.model, x1, x1, contraction);
    const Tensor full12 = empirical_ntk(*m.model, x1, x2, contraction);
    const double scale = max(abs(full11)).item();
    for (const auto route : kRoutes) {
      INFO(m.name << ", route " << route_name(route));
      set_route(*m.model, route);
      for (const std::int64_t max_bytes : {std::int64_t{1} << 30, std::int64_t{600}}) {
        INFO("max_bytes " << max_bytes);
        const NtkOptions structured{.method = NtkMethod::structured, .max_bytes = max_bytes};
        const Tensor k11 = empirical_ntk(*m.model, x1, x1, structured);
        CHECK(max_abs_diff(k11, full11) <= 1e-10 * scale);
        CHECK(max_abs_diff(k11, k11.permute({1, 0, 3, 2})) == 0.0);
        CHECK(max_abs_diff(empirical_ntk(*m.model, x1, x2, structured), full12) <= 1e-10 * scale);
        Tensor trace = zeros({5, 3});
        for (std::int64_t o = 0; o < full12.size(2); ++o) trace = trace + full12.select(3, o).select(2, o);
        CHECK(max_abs_diff(empirical_ntk_trace(*m.model, x1, x2, structured), trace) <= 1e-10 * scale);
        const Tensor diag = empirical_ntk_diagonal(*m.model, x1, structured);
        for (std::int64_t i = 0; i < 5; ++i)
          CHECK(max_abs_diff(diag.select(0, i), full11.select(0, i).select(0, i)) <= 1e-10 * scale);
      }
    }
    set_route(*m.model, nn::ConvNtkRoute::automatic);
  }
}

TEST_CASE("per-sample gradients and their norms of a CNN equal one backward pass per sample",
          "[theory][per_sample][conv]") {
  Rng rng(23);
  auto net = mixed_cnn(rng);
  const Tensor x = rng.normal({4, 72});
  const Tensor labels = from_indices({2, 0, 1, 2});
  const PerSampleLoss loss = [&](const Var& f) { return nn::cross_entropy(f, labels, nn::Reduction::none); };
  const auto per_sample = per_sample_gradients(*net, x, loss);
  const auto params = net->named_parameters();
  REQUIRE(per_sample.size() == params.size());
  Tensor norms_sq = zeros({4});
  for (std::int64_t i = 0; i < 4; ++i) {
    std::vector<Var> vars;
    for (const auto& [name, p] : params) vars.push_back(p);
    const Var li = nn::cross_entropy((*net)(Var(x.slice(0, i, i + 1))), labels.slice(0, i, i + 1));
    const auto g = autograd::grad({li}, vars);
    double sq = 0;
    for (std::size_t k = 0; k < params.size(); ++k) {
      INFO("sample " << i << ", " << params[k].first);
      CHECK(max_abs_diff(per_sample[k].second.select(0, i), g[k].value()) < 1e-12);
      sq += sum(square(g[k].value())).item();
    }
    norms_sq.select(0, i).fill_(sq);
  }
  for (const auto route : kRoutes) {
    INFO(route_name(route));
    set_route(*net, route);
    CHECK(max_abs_diff(per_sample_gradient_norms(*net, x, loss), sqrt(norms_sq)) < 1e-12);
  }
}

TEST_CASE("Conv2d's rule checks the cotangents it is given", "[theory][ntk][conv]") {
  Rng rng(2);
  nn::Conv2d conv(2, 3, 3, rng, {.padding = 1});
  const Tensor a = rng.normal({2, 2, 4, 4});
  CHECK_THROWS_WITH(conv.cotangent_kernel(a, zeros({2, 1, 3, 4, 5}), a, zeros({2, 1, 3, 4, 5}), true, true, 1 << 20),
                    Catch::Contains("cotangents [2, 1, 3, 4, 5] do not match the output of input [2, 2, 4, 4]"));
}

TEST_CASE("Conv2d's rule: channel-factored cotangents give the same block as both plain routes",
          "[theory][ntk][conv]") {
  Rng rng(29);
  nn::Conv2d conv(2, 3, 3, rng, {.padding = 1, .padding_mode = Padding::circular});
  const Tensor a1 = rng.normal({4, 2, 5, 5}), a2 = rng.normal({3, 2, 5, 5});
  // d[i, a, c, p] = U[a, c] V[i, c, p] with a 0/1 mask in V, as a ReLU and a readout make them.
  const Tensor u = rng.normal({1, 4, 3, 1, 1});
  const auto masked = [&](std::int64_t n) {
    const Tensor z = rng.normal({n, 1, 3, 5, 5});
    return (rng.normal({n, 1, 3, 5, 5}) * gt(z, zeros(z.shape())).to(DType::f64)) * u;
  };
  const Tensor d1 = masked(4), d2 = masked(3);
  const Tensor noise = rng.normal({4, 4, 3, 5, 5}) * 1e-3;
  for (const bool trace : {false, true})
    for (const bool same : {true, false}) {
      INFO("trace " << trace << ", same " << same);
      const Tensor& b = same ? a1 : a2;
      const Tensor& e = same ? d1 : d2;
      conv.ntk_route = nn::ConvNtkRoute::weight_gradients;
      const Tensor features = conv.cotangent_kernel(a1, d1, b, e, same, trace, 1 << 30);
      conv.ntk_route = nn::ConvNtkRoute::pixel_pairs;
      const Tensor pixels = conv.cotangent_kernel(a1, d1, b, e, same, trace, 1 << 30);
      const double scale = max(abs(features)).item();
      CHECK(max_abs_diff(pixels, features) <= 1e-12 * scale);
      // The factored route with every channel at once, and in groups under a small budget: one
      // channel's features and Gram take 736 bytes here (same) or 1160 (not same), so 2000 bytes
      // make groups of two or one and 1 byte groups of one.
      conv.ntk_route = nn::ConvNtkRoute::automatic;
      for (const std::int64_t max_bytes : {std::int64_t{1} << 30, std::int64_t{2000}, std::int64_t{1}}) {
        INFO("max_bytes " << max_bytes);
        const Tensor factored = conv.cotangent_kernel(a1, d1, b, e, same, trace, max_bytes);
        CHECK(max_abs_diff(factored, features) <= 1e-12 * scale);
      }
      // Cotangents that do not factor take a plain route and still agree.
      if (same) {
        conv.ntk_route = nn::ConvNtkRoute::automatic;
        const Tensor near = conv.cotangent_kernel(a1, d1 + noise, a1, d1 + noise, true, trace, 1 << 30);
        conv.ntk_route = nn::ConvNtkRoute::weight_gradients;
        CHECK(max_abs_diff(near, conv.cotangent_kernel(a1, d1 + noise, a1, d1 + noise, true, trace, 1 << 30)) <=
              1e-12 * scale);
      }
    }
}

TEST_CASE("cotangent_kernel and its diagonal are Grams of the rule's own per-sample gradients (Linear and Conv2d)",
          "[theory][ntk][conv]") {
  Rng rng(31);
  nn::Linear linear(5, 4, rng, {.parameterization = nn::Parameterization::ntk, .sigma_w = 1.3, .sigma_b = 0.4});
  nn::Conv2d conv(2, 3, 3, rng, {.stride = 2, .padding = 1});
  struct Case {
    const nn::StructuredLayer* rule;
    Tensor a1, a2, d1, d2;
    const char* name;
  };
  const Case cases[] = {
      {&linear, rng.normal({4, 5}), rng.normal({3, 5}), rng.normal({4, 2, 4}), rng.normal({3, 2, 4}), "Linear"},
      {&conv, rng.normal({4, 2, 5, 5}), rng.normal({3, 2, 5, 5}), rng.normal({4, 2, 3, 3, 3}), rng.normal({3, 2, 3, 3, 3}),
       "Conv2d"},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    // g[a][k]: per-sample gradients [n, *param] of parameter k for cotangent slot a.
    const auto grads = [&](const Tensor& a, const Tensor& d) {
      std::vector<std::vector<Tensor>> out;
      for (std::int64_t s = 0; s < d.size(1); ++s) out.push_back(c.rule->per_sample_gradients(a, d.select(1, s)));
      return out;
    };
    const auto g1 = grads(c.a1, c.d1), g2 = grads(c.a2, c.d2);
    const std::int64_t n1 = c.a1.size(0), n2 = c.a2.size(0), m = c.d1.size(1);
    Tensor want = zeros({n1, n2, m, m});
    for (std::int64_t x = 0; x < m; ++x)
      for (std::int64_t y = 0; y < m; ++y)
        for (std::size_t k = 0; k < g1[0].size(); ++k) {
          const Tensor block = matmul(g1[x][k].reshape({n1, -1}), g2[y][k].reshape({n2, -1}).t());  // [n1, n2]
          want.select(3, y).select(2, x).add_(block);
        }
    const Tensor got = c.rule->cotangent_kernel(c.a1, c.d1, c.a2, c.d2, false, false, 1 << 20);
    const double scale = max(abs(want)).item();
    CHECK(max_abs_diff(got, want) <= 1e-12 * scale);
    Tensor trace = zeros({n1, n2});
    for (std::int64_t x = 0; x < m; ++x) trace = trace + want.select(3, x).select(2, x);
    CHECK(max_abs_diff(c.rule->cotangent_kernel(c.a1, c.d1, c.a2, c.d2, false, true, 1 << 20), trace) <= 1e-12 * scale);
    const Tensor self = c.rule->cotangent_kernel(c.a1, c.d1, c.a1, c.d1, true, false, 1 << 20);
    CHECK(max_abs_diff(self, self.permute({1, 0, 3, 2})) == 0.0);
    const Tensor diag = c.rule->cotangent_kernel_diagonal(c.a1, c.d1, 1 << 20);
    for (std::int64_t i = 0; i < n1; ++i)
      CHECK(max_abs_diff(diag.select(0, i), self.select(0, i).select(0, i)) <= 1e-12 * scale);
  }
}

TEST_CASE("the whole-batch kernel frees the forward graph, and each layer's cotangents once used",
          "[theory][ntk][conv]") {
  // A CNN whose second convolution (128 channels) has the kernel's largest step, its features
  // and per-channel Grams. While that rule runs, the first convolution's dense cotangents
  // [n, O, C1, 8, 8] are no longer needed, nor is the forward graph.
  Rng rng(21);
  const std::int64_t n = 64, outputs = 10, c1 = 8;
  auto net = nn::cnn({.image = {1, 8, 8}, .channels = {c1, 128}, .kernel_size = 3, .out_features = outputs,
                      .parameterization = nn::Parameterization::ntk, .dtype = DType::f64},
                     rng);
  const Tensor x = Rng(22).uniform({n, 64});
  const std::int64_t first_cotangent_bytes = n * outputs * c1 * 64 * 8;
  using theory::detail::FactorUse;
  // The kernel's peak over the live bytes at its start, keeping or consuming the factors.
  const auto run = [&](FactorUse use, Tensor& k, std::int64_t& peak) {
    theory::detail::BlockFactors f = theory::detail::block_factors(*net, x, "test");
    const std::int64_t before = allocator_stats().live_bytes;
    reset_peak_live_bytes();
    k = theory::detail::structured_block_kernel(*net, f, f, true, theory::detail::KernelForm::full,
                                                std::int64_t{1} << 30, 0, use);
    peak = allocator_stats().peak_live_bytes - before;
    return f;
  };
  Tensor kept, consumed;
  std::int64_t peak_kept = 0, peak_consumed = 0;
  const theory::detail::BlockFactors after_keep = run(FactorUse::keep, kept, peak_kept);
  const theory::detail::BlockFactors after_consume = run(FactorUse::consume, consumed, peak_consumed);
  CHECK(max_abs_diff(kept, consumed) == 0.0);
  CHECK(max_abs_diff(consumed, empirical_ntk(*net, x, x, {.method = NtkMethod::contraction})) < 1e-10);
  INFO("peak over the factors: kept " << peak_kept << " bytes, consumed " << peak_consumed << " bytes");
  CHECK(peak_consumed <= peak_kept - first_cotangent_bytes);
  // What is left of the factors: everything with keep; with consume no cotangents and no graph
  // behind the layers' outputs.
  REQUIRE(after_keep.output_grads.size() == 3);
  REQUIRE(after_consume.output_grads.size() == 3);
  for (std::size_t l = 0; l < 3; ++l) {
    CHECK(after_keep.output_grads[l].defined());
    CHECK(after_keep.captured.layers[l].output.defined());
    CHECK_FALSE(after_consume.output_grads[l].defined());
    CHECK_FALSE(after_consume.captured.layers[l].output.defined());
    CHECK(after_consume.captured.layers[l].input.defined());
  }
}
