// Conserved quantities of CNN training: Conv2d -> BatchNorm2d(eps = 0) (scale per output
// channel), Conv2d -> ReLU -> Conv2d (rescale per hidden channel) and Conv2d -> identity -> Conv2d
// (balancedness over hidden channels). The quantities are checked against loops over the 4-D
// weights, the symmetries against the loss itself, and the exact discrete laws over SGD runs
// against the measured quantities and a recursion written out here; BatchNorm2d with eps > 0
// is the negative control.

#include <catch2/catch.hpp>

#include "nn/conv.hpp"
#include "tests/theory/symmetry_problems.hpp"

using namespace theta;
using namespace symmetry_test;
using theta::autograd::Var;
using theta::theory::SymmetryTracker;

namespace {

constexpr std::int64_t kSamples = 32, kClasses = 3;
constexpr std::array<std::int64_t, 3> kImage = {2, 6, 6};

// Unflatten, then
//   1 Conv2d(2 -> 4, 3x3, pad 1), 2 BatchNorm2d(4, eps), 3 ReLU,
//   4 Conv2d(4 -> 5, 3x3, pad 1, circular), 5 ReLU,
//   6 Conv2d(5 -> 4, 3x3, stride 2), 7 identity,
//   8 Conv2d(4 -> 3, 1x1), 9 GlobalAvgPool2d, 10 Linear(3 -> 3),
// so layers.1 carries scale (when eps = 0), layers.4 -> layers.6 rescale, layers.6 -> layers.8
// and layers.8 -> layers.10 (through global pooling) balancedness, and layers.10 translation.
std::shared_ptr<nn::Sequential> cnn_net(double eps, std::uint64_t seed) {
  Rng rng(seed);
  auto net = std::make_shared<nn::Sequential>();
  net->add(std::make_shared<nn::Unflatten>(kImage));
  net->add(std::make_shared<nn::Conv2d>(2, 4, 3, rng, nn::ConvOptions{.padding = 1}));
  net->add(std::make_shared<nn::BatchNorm2d>(4, nn::NormOptions{.eps = eps}));
  net->add(std::make_shared<nn::Activation>(nn::ActivationKind::relu));
  net->add(
      std::make_shared<nn::Conv2d>(4, 5, 3, rng, nn::ConvOptions{.padding = 1, .padding_mode = Padding::circular}));
  net->add(std::make_shared<nn::Activation>(nn::ActivationKind::relu));
  net->add(std::make_shared<nn::Conv2d>(5, 4, 3, rng, nn::ConvOptions{.stride = 2}));
  net->add(std::make_shared<nn::Activation>(nn::ActivationKind::identity));
  net->add(std::make_shared<nn::Conv2d>(4, 3, 1, rng));
  net->add(std::make_shared<nn::GlobalAvgPool2d>());
  net->add(std::make_shared<nn::Linear>(3, kClasses, rng));
  // Generic BatchNorm affine parameters (the defaults 1 and 0 hide mistakes).
  for (const auto& [name, p] : net->named_parameters())
    if (name.find("layers.2.") == 0) p.value().copy_(rng.normal(p.shape(), 1.0, 0.3));
  return net;
}

Problem cnn_problem(double eps, std::uint64_t seed) {
  Problem p;
  p.net = cnn_net(eps, seed);
  Rng rng(seed + 1000);
  p.x = rng.normal({kSamples, kImage[0] * kImage[1] * kImage[2]});
  p.y = rng.integers({kSamples}, 0, kClasses);
  p.batch = 8;
  return p;
}

// <a[i, ...], b[j, ...]> for 4-D tensors, by loops (axis 0 slices).
double out_channel_dot(const Tensor& a, std::int64_t i, const Tensor& b, std::int64_t j) {
  double s = 0;
  for (std::int64_t c = 0; c < a.size(1); ++c)
    for (std::int64_t u = 0; u < a.size(2); ++u)
      for (std::int64_t v = 0; v < a.size(3); ++v) s += a.at({i, c, u, v}) * b.at({j, c, u, v});
  return s;
}

// <a[:, i, ...], b[:, j, ...]> for 4-D tensors, by loops (axis 1 slices).
double in_channel_dot(const Tensor& a, std::int64_t i, const Tensor& b, std::int64_t j) {
  double s = 0;
  for (std::int64_t o = 0; o < a.size(0); ++o)
    for (std::int64_t u = 0; u < a.size(2); ++u)
      for (std::int64_t v = 0; v < a.size(3); ++v) s += a.at({o, i, u, v}) * b.at({o, j, u, v});
  return s;
}

std::vector<std::string> group_names(const SymmetryTracker& t) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < t.size(); ++i) out.push_back(t.history(i).name);
  return out;
}

Tensor buffer_of(const nn::Sgd& opt, const std::string& name) {
  for (const auto& [key, t] : opt.state())
    if (key == "momentum." + name) return t;
  FAIL("no momentum buffer for " << name);
  return Tensor();
}

}  // namespace

TEST_CASE("symmetry on CNNs: channel quantities match loops over the 4-D weights", "[theory][symmetry]") {
  Rng rng(3);
  const Tensor w_in = rng.normal({4, 2, 3, 3}), b_in = rng.normal({4}), w_out = rng.normal({5, 4, 1, 1});
  const Tensor q_s = theory::scale_quantity(w_in, b_in);
  const Tensor q_r = theory::rescale_quantity(w_in, b_in, w_out);
  const Tensor d = theory::balancedness(w_in, w_out, b_in);
  REQUIRE(q_s.shape() == Shape{4});
  REQUIRE(q_r.shape() == Shape{4});
  REQUIRE(d.shape() == Shape{4, 4});
  for (std::int64_t i = 0; i < 4; ++i) {
    const double in = out_channel_dot(w_in, i, w_in, i) + b_in.at({i}) * b_in.at({i});
    CHECK(q_s.at({i}) == Approx(in).epsilon(1e-14));
    CHECK(q_r.at({i}) == Approx(in_channel_dot(w_out, i, w_out, i) - in).epsilon(1e-13));
    for (std::int64_t j = 0; j < 4; ++j) {
      const double e =
          in_channel_dot(w_out, i, w_out, j) - out_channel_dot(w_in, i, w_in, j) - b_in.at({i}) * b_in.at({j});
      CHECK(d.at({i, j}) == Approx(e).margin(1e-13));
    }
  }
  // Mismatched channels or ranks are refused, naming both shapes.
  CHECK_THROWS_AS(theory::rescale_quantity(w_in, b_in, rng.normal({5, 3, 1, 1})), ShapeError);
  CHECK_THROWS_WITH(theory::balancedness(w_in, rng.normal({5, 3})),
                    Catch::Contains("[4, 2, 3, 3]") && Catch::Contains("[5, 3]"));
  // A Conv2d weight followed (through global pooling) by a Linear one is a valid pair.
  CHECK(theory::balancedness(w_in, rng.normal({5, 4})).shape() == Shape{4, 4});
  CHECK_THROWS_AS(theory::scale_quantity(w_in, rng.normal({3})), ShapeError);
}

TEST_CASE("symmetry on CNNs: the loss is invariant and the gradients orthogonal", "[theory][symmetry]") {
  Problem p = cnn_problem(0.0, 5);
  const double before = loss_of(p, p.x, p.y).item();
  autograd::backward(loss_of(p, p.x, p.y));
  const Tensor w1 = param(*p.net, "layers.1.weight"), b1 = param(*p.net, "layers.1.bias");
  const Tensor w4 = param(*p.net, "layers.4.weight"), b4 = param(*p.net, "layers.4.bias");
  const Tensor w6 = param(*p.net, "layers.6.weight"), b6 = param(*p.net, "layers.6.bias");
  const Tensor w8 = param(*p.net, "layers.8.weight");
  SECTION("scale: <g_c, theta_c> = 0 per output channel of the Conv2d feeding BatchNorm2d(eps = 0)") {
    const Tensor gw = grad_of(*p.net, "layers.1.weight"), gb = grad_of(*p.net, "layers.1.bias");
    double worst = 0, size = 0;
    for (std::int64_t c = 0; c < 4; ++c) {
      worst = std::max(worst, std::abs(out_channel_dot(gw, c, w1, c) + gb.at({c}) * b1.at({c})));
      size = std::max(size, std::sqrt(out_channel_dot(gw, c, gw, c) * out_channel_dot(w1, c, w1, c)));
    }
    CHECK(size > 1e-6);
    CHECK(worst <= 1e-13 * size);
  }
  SECTION("scale: multiplying an output channel's weights and bias leaves the loss unchanged") {
    w1.select(0, 1).copy_(w1.select(0, 1) * 3.7);
    b1.select(0, 1).copy_(b1.select(0, 1) * 3.7);
    w1.select(0, 3).copy_(w1.select(0, 3) * 0.2);
    b1.select(0, 3).copy_(b1.select(0, 3) * 0.2);
    CHECK(rel_diff(loss_of(p, p.x, p.y).item(), before) <= 1e-12);
  }
  SECTION("rescale: a hidden channel's incoming slice times a, outgoing slice over a") {
    // Channel 4 is active on this batch (a channel that ReLU zeroes everywhere would pass vacuously).
    w4.select(0, 4).copy_(w4.select(0, 4) * 2.5);
    b4.select(0, 4).copy_(b4.select(0, 4) * 2.5);
    w6.select(1, 4).copy_(w6.select(1, 4) / 2.5);
    CHECK(rel_diff(loss_of(p, p.x, p.y).item(), before) <= 1e-12);
    // Not vacuous: the same change without the compensation moves the loss.
    w6.select(1, 4).copy_(w6.select(1, 4) * 2.5);
    CHECK(rel_diff(loss_of(p, p.x, p.y).item(), before) > 1e-6);
  }
  SECTION("balancedness: mixing hidden channels, A = I + s e_0 e_1^T, and unmixing by A^-1 = I - s e_0 e_1^T") {
    const double s = 0.7;
    // Output channel 0 of layers.6 gains s times channel 1 ...
    w6.select(0, 0).copy_(w6.select(0, 0) + w6.select(0, 1) * s);
    b6.select(0, 0).copy_(b6.select(0, 0) + b6.select(0, 1) * s);
    // ... and layers.8 reads channel 1 as (its old weight) - s (channel 0's weight).
    w8.select(1, 1).copy_(w8.select(1, 1) - w8.select(1, 0) * s);
    CHECK(rel_diff(loss_of(p, p.x, p.y).item(), before) <= 1e-12);
    // Not vacuous: mixing without unmixing moves the loss.
    w8.select(1, 1).copy_(w8.select(1, 1) + w8.select(1, 0) * s);
    CHECK(rel_diff(loss_of(p, p.x, p.y).item(), before) > 1e-6);
  }
}

TEST_CASE("symmetry on CNNs: track_sequential finds the convolutional symmetries", "[theory][symmetry]") {
  for (double eps : {0.0, 1e-5}) {
    INFO("BatchNorm2d eps " << eps);
    Problem p = cnn_problem(eps, 7);
    SymmetryTracker t;
    t.track_sequential(*p.net, true);
    nn::Sgd opt(p.net->named_parameters(), {});
    t.attach(opt);
    std::vector<std::string> expected = {"rescale layers.4 -> layers.6", "balancedness layers.6 -> layers.8",
                                         "balancedness layers.8 -> layers.10", "translation layers.10"};
    if (eps == 0.0) expected.insert(expected.begin(), "scale layers.1");
    CHECK(group_names(t) == expected);
  }
  // A BatchNorm2d between two Conv2d breaks rescale; a Conv2d without bias has a bias-free scale law.
  Rng rng(8);
  nn::Sequential net;
  net.add(std::make_shared<nn::Conv2d>(1, 3, 3, rng, nn::ConvOptions{.bias = false}));
  net.add(std::make_shared<nn::BatchNorm2d>(3, nn::NormOptions{.eps = 0.0}));
  net.add(std::make_shared<nn::Activation>(nn::ActivationKind::relu));
  net.add(std::make_shared<nn::Conv2d>(3, 2, 3, rng));
  SymmetryTracker t;
  t.track_sequential(net, false);
  nn::Sgd opt(net.named_parameters(), {});
  t.attach(opt);
  CHECK(group_names(t) == std::vector<std::string>{"scale layers.0"});
  // Translation needs the [classes, J] weight of a layer feeding softmax, not a Conv2d weight.
  SymmetryTracker conv_translation;
  conv_translation.track_translation("layers.3.weight");
  nn::Sgd opt2(net.named_parameters(), {});
  CHECK_THROWS_WITH(conv_translation.attach(opt2), Catch::Contains("'layers.3.weight' must be 2-D, got [2, 3, 3, 3]"));
  CHECK(theory::max_relative_error(t.history(0).measured.select(0, 0),
                                   theory::scale_quantity(param(net, "layers.0.weight")),
                                   theory::scale_quantity(param(net, "layers.0.weight"))) <= 1e-15);
}

TEST_CASE("symmetry on CNNs: exact discrete laws hold to 1e-12 over 50 SGD steps", "[theory][symmetry]") {
  for (const auto& oc : kOptimizers) {
    INFO(oc.name);
    Problem p = cnn_problem(0.0, 11);
    nn::Sgd opt(p.net->named_parameters(), oc.options);
    SymmetryTracker tracker;
    tracker.track_sequential(*p.net, true).attach(opt);
    REQUIRE(tracker.size() == 5);
    train(p, opt, 50, 12);
    REQUIRE(tracker.steps() == 50);
    CHECK(tracker.max_exact_error() <= 1e-12);
    for (std::size_t i = 0; i < tracker.size(); ++i) {
      const auto h = tracker.history(i);
      INFO(h.name);
      REQUIRE(h.measured.shape()[0] == 51);
      // Not vacuous: Q moved far more than the tolerance (translation without weight decay is
      // conserved outright).
      if (h.symmetry == theory::Symmetry::translation && oc.options.weight_decay == 0.0) continue;
      const Tensor moved = theta::div(theta::abs(theta::sub(h.measured.select(0, 50), h.measured.select(0, 0))),
                                      h.magnitude.select(0, 50));
      CHECK(theta::max(moved).item<double>() > 1e-5);
    }
    // The tracker's last measurements are the quantities of the final 4-D weights.
    const Tensor w1 = param(*p.net, "layers.1.weight"), b1 = param(*p.net, "layers.1.bias");
    const Tensor w4 = param(*p.net, "layers.4.weight"), b4 = param(*p.net, "layers.4.bias");
    const Tensor w6 = param(*p.net, "layers.6.weight"), b6 = param(*p.net, "layers.6.bias");
    const Tensor w8 = param(*p.net, "layers.8.weight"), b8 = param(*p.net, "layers.8.bias");
    const Tensor expected[] = {theory::scale_quantity(w1, b1), theory::rescale_quantity(w4, b4, w6),
                               theory::balancedness(w6, w8, b6),
                               theory::balancedness(w8, param(*p.net, "layers.10.weight"), b8)};
    for (std::size_t i = 0; i < 4; ++i) {
      const auto h = tracker.history(i);
      CHECK(theory::max_relative_error(h.measured.select(0, 50), expected[i], h.magnitude.select(0, 50)) <= 1e-14);
    }
  }
}

TEST_CASE("symmetry on CNNs: the scale law written out per channel, and eps > 0 breaks it", "[theory][symmetry]") {
  // y_{k+1} = y_k - 2 eta (lambda y_k + beta z_k) + eta^2 |b_k|^2, z_{k+1} = lambda y_k + beta z_k - eta |b_k|^2
  // per output channel (Note [Exact discrete laws] with c_k = 1), driven by the measured buffers b_k.
  const double eta = 0.05, beta = 0.9, lambda = 0.01;
  auto run = [&](double eps, std::vector<double>& predicted, SymmetryTracker& tracker) {
    Problem p = cnn_problem(eps, 13);
    nn::Sgd opt(p.net->named_parameters(), {.lr = eta, .momentum = beta, .weight_decay = lambda});
    tracker.track_scale("layers.1.weight", "layers.1.bias").attach(opt);
    const Tensor w = param(*p.net, "layers.1.weight"), b = param(*p.net, "layers.1.bias");  // updated in place
    auto channel_sq = [](const Tensor& cw, const Tensor& cb, std::int64_t c) {
      return out_channel_dot(cw, c, cw, c) + cb.at({c}) * cb.at({c});
    };
    std::vector<double> y(4), z(4, 0.0);
    for (std::size_t c = 0; c < 4; ++c) y[c] = channel_sq(w, b, static_cast<std::int64_t>(c));
    Rng rng(14);
    for (int k = 0; k < 50; ++k) {
      const Tensor idx = rng.integers({p.batch}, 0, p.x.size(0));
      opt.zero_grad();
      autograd::backward(loss_of(p, index_select(p.x, 0, idx), index_select(p.y, 0, idx)));
      opt.step();
      const Tensor bw = buffer_of(opt, "layers.1.weight"), bb = buffer_of(opt, "layers.1.bias");
      for (std::size_t c = 0; c < 4; ++c) {
        const double bsq = channel_sq(bw, bb, static_cast<std::int64_t>(c));
        const double y_next = y[c] - 2 * eta * (lambda * y[c] + beta * z[c]) + eta * eta * bsq;
        z[c] = lambda * y[c] + beta * z[c] - eta * bsq;
        y[c] = y_next;
      }
    }
    predicted = y;
    return theory::scale_quantity(w, b);
  };
  std::vector<double> predicted;
  SymmetryTracker exact_tracker;
  const Tensor q = run(0.0, predicted, exact_tracker);
  CHECK(theory::max_relative_error(q, from_vector(predicted), q) <= 1e-12);
  CHECK(theory::max_relative_error(exact_tracker.history(0).exact.select(0, 50), from_vector(predicted), q) <= 1e-12);
  CHECK(exact_tracker.max_exact_error() <= 1e-12);
  // eps > 0: BatchNorm2d is no longer scale invariant, <g, theta> != 0, and both predictions miss.
  SymmetryTracker broken_tracker;
  const Tensor q_eps = run(0.1, predicted, broken_tracker);
  CHECK(theory::max_relative_error(q_eps, from_vector(predicted), q_eps) > 1e-6);
  CHECK(broken_tracker.max_exact_error() > 1e-6);
}

namespace {

// Unflatten {1, 6, 6}, 1 Conv2d(1 -> 3, 3x3, pad 1), 2 act, 3 AvgPool2d(2), 4 Conv2d(3 -> 4, 3x3,
// pad 1), 5 act, 6 GlobalAvgPool2d, 7 Linear(4 -> 3): pooling between the weight layers.
std::shared_ptr<nn::Sequential> pooled_net(nn::ActivationKind activation, std::uint64_t seed) {
  Rng rng(seed);
  auto net = std::make_shared<nn::Sequential>();
  net->add(std::make_shared<nn::Unflatten>(std::array<std::int64_t, 3>{1, 6, 6}));
  net->add(std::make_shared<nn::Conv2d>(1, 3, 3, rng, nn::ConvOptions{.padding = 1}));
  net->add(std::make_shared<nn::Activation>(activation));
  net->add(std::make_shared<nn::AvgPool2d>(2));
  net->add(std::make_shared<nn::Conv2d>(3, 4, 3, rng, nn::ConvOptions{.padding = 1}));
  net->add(std::make_shared<nn::Activation>(activation));
  net->add(std::make_shared<nn::GlobalAvgPool2d>());
  net->add(std::make_shared<nn::Linear>(4, kClasses, rng));
  return net;
}

Problem pooled_problem(nn::ActivationKind activation, std::uint64_t seed) {
  Problem p;
  p.net = pooled_net(activation, seed);
  Rng rng(seed + 1000);
  p.x = rng.normal({kSamples, 36});
  p.y = rng.integers({kSamples}, 0, kClasses);
  return p;
}

}  // namespace

TEST_CASE("symmetry on CNNs: pooling between weight layers keeps rescale and balancedness", "[theory][symmetry]") {
  SECTION("track_sequential looks through AvgPool2d and GlobalAvgPool2d, not through Flatten") {
    auto names = [](const std::shared_ptr<nn::Sequential>& net) {
      SymmetryTracker t;
      t.track_sequential(*net, true);
      nn::Sgd opt(net->named_parameters(), {});
      t.attach(opt);
      return group_names(t);
    };
    CHECK(names(pooled_net(nn::ActivationKind::relu, 1)) == std::vector<std::string>{"rescale layers.1 -> layers.4",
                                                                                     "rescale layers.4 -> layers.7",
                                                                                     "translation layers.7"});
    CHECK(names(pooled_net(nn::ActivationKind::identity, 1)) ==
          std::vector<std::string>{"balancedness layers.1 -> layers.4", "balancedness layers.4 -> layers.7",
                                   "translation layers.7"});
    Rng rng(2);
    nn::CnnOptions o{.image = {1, 6, 6}, .channels = {3, 4}, .out_features = kClasses};
    CHECK(names(nn::cnn(o, rng)) == std::vector<std::string>{"rescale layers.1 -> layers.3",
                                                             "rescale layers.3 -> layers.6", "translation layers.6"});
    o.readout = nn::CnnReadout::flatten;
    CHECK(names(nn::cnn(o, rng)) == std::vector<std::string>{"rescale layers.1 -> layers.3", "translation layers.6"});
  }
  SECTION("the loss is invariant to the symmetries through pooling") {
    for (auto activation : {nn::ActivationKind::relu, nn::ActivationKind::identity}) {
      INFO(nn::activation_name(activation));
      Problem p = pooled_problem(activation, 3);
      const double before = loss_of(p, p.x, p.y).item();
      const Tensor w1 = param(*p.net, "layers.1.weight"), b1 = param(*p.net, "layers.1.bias");
      const Tensor w4 = param(*p.net, "layers.4.weight"), b4 = param(*p.net, "layers.4.bias");
      const Tensor w7 = param(*p.net, "layers.7.weight");
      // Channel 1 of layers.1 (through AvgPool2d) and channel 2 of layers.4 (through
      // GlobalAvgPool2d into the Linear's column 2), each scaled by a and compensated by 1 / a.
      w1.select(0, 1).copy_(w1.select(0, 1) * 1.9);
      b1.select(0, 1).copy_(b1.select(0, 1) * 1.9);
      w4.select(1, 1).copy_(w4.select(1, 1) / 1.9);
      w4.select(0, 2).copy_(w4.select(0, 2) * 0.4);
      b4.select(0, 2).copy_(b4.select(0, 2) * 0.4);
      w7.select(1, 2).copy_(w7.select(1, 2) / 0.4);
      CHECK(rel_diff(loss_of(p, p.x, p.y).item(), before) <= 1e-12);
      w7.select(1, 2).copy_(w7.select(1, 2) * 0.4);  // not vacuous: uncompensated, the loss moves
      CHECK(rel_diff(loss_of(p, p.x, p.y).item(), before) > 1e-6);
    }
  }
  SECTION("exact laws over 50 steps of SGD with momentum and weight decay") {
    for (auto activation : {nn::ActivationKind::relu, nn::ActivationKind::identity}) {
      INFO(nn::activation_name(activation));
      Problem p = pooled_problem(activation, 5);
      nn::Sgd opt(p.net->named_parameters(), {.lr = 0.05, .momentum = 0.9, .weight_decay = 0.01});
      SymmetryTracker tracker;
      tracker.track_sequential(*p.net, true).attach(opt);
      REQUIRE(tracker.size() == 3);
      train(p, opt, 50, 6);
      CHECK(tracker.max_exact_error() <= 1e-12);
      // The Conv2d -> GlobalAvgPool2d -> Linear group against the free functions and a loop.
      const Tensor w4 = param(*p.net, "layers.4.weight"), b4 = param(*p.net, "layers.4.bias");
      const Tensor w7 = param(*p.net, "layers.7.weight");
      const auto h = tracker.history(1);
      const Tensor q = activation == nn::ActivationKind::relu ? theory::rescale_quantity(w4, b4, w7)
                                                              : theory::balancedness(w4, w7, b4);
      CHECK(theory::max_relative_error(h.measured.select(0, 50), q, h.magnitude.select(0, 50)) <= 1e-14);
      for (std::int64_t c = 0; c < 4; ++c) {
        double out = 0;
        for (std::int64_t o = 0; o < kClasses; ++o) out += w7.at({o, c}) * w7.at({o, c});
        const double expected = out - out_channel_dot(w4, c, w4, c) - b4.at({c}) * b4.at({c});
        const double got = activation == nn::ActivationKind::relu ? q.at({c}) : q.at({c, c});
        CHECK(got == Approx(expected).margin(1e-13));
      }
      const Tensor moved = theta::div(theta::abs(theta::sub(h.measured.select(0, 50), h.measured.select(0, 0))),
                                      h.magnitude.select(0, 50));
      CHECK(theta::max(moved).item<double>() > 1e-5);
    }
  }
}
