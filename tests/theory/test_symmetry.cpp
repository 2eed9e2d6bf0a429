// Conserved quantities of training: quantities, invariances and the exact discrete laws.
#include <catch2/catch.hpp>

#include "tests/theory/symmetry_problems.hpp"

using namespace theta;
using namespace symmetry_test;
using theta::autograd::Var;
using theta::theory::SymmetryTracker;

TEST_CASE("symmetry: quantities match their definitions", "[theory][symmetry]") {
  Rng rng(1);
  const Tensor w_in = rng.normal({4, 3}), b_in = rng.normal({4}), w_out = rng.normal({2, 4});
  const Tensor q_t = theory::translation_quantity(w_out);
  const Tensor q_s = theory::scale_quantity(w_in, b_in);
  const Tensor q_r = theory::rescale_quantity(w_in, b_in, w_out);
  const Tensor d = theory::balancedness(w_in, w_out, b_in);
  REQUIRE(q_t.shape() == Shape{4});
  REQUIRE(d.shape() == Shape{4, 4});
  for (std::int64_t i = 0; i < 4; ++i) {
    double t = 0, in = 0, out = 0;
    for (std::int64_t c = 0; c < 2; ++c) t += w_out.at({c, i});
    for (std::int64_t j = 0; j < 3; ++j) in += w_in.at({i, j}) * w_in.at({i, j});
    in += b_in.at({i}) * b_in.at({i});
    for (std::int64_t c = 0; c < 2; ++c) out += w_out.at({c, i}) * w_out.at({c, i});
    CHECK(q_t.at({i}) == Approx(t).epsilon(1e-14));
    CHECK(q_s.at({i}) == Approx(in).epsilon(1e-14));
    CHECK(q_r.at({i}) == Approx(out - in).epsilon(1e-13));
    CHECK(d.at({i, i}) == Approx(out - in).epsilon(1e-13));
    for (std::int64_t k = 0; k < 4; ++k) {
      double e = -b_in.at({i}) * b_in.at({k});
      for (std::int64_t c = 0; c < 2; ++c) e += w_out.at({c, i}) * w_out.at({c, k});
      for (std::int64_t j = 0; j < 3; ++j) e -= w_in.at({i, j}) * w_in.at({k, j});
      CHECK(d.at({i, k}) == Approx(e).margin(1e-13));
    }
  }
  CHECK_THROWS_AS(theory::rescale_quantity(w_in, b_in, rng.normal({2, 5})), ShapeError);
  CHECK_THROWS_AS(theory::scale_quantity(w_in, rng.normal({3})), ShapeError);
}

TEST_CASE("symmetry: the losses are invariant and the gradients orthogonal", "[theory][symmetry]") {
  SECTION("softmax: the last layer's gradient sums to zero over classes") {
    Problem p = make_problem(Net::relu_mlp, 2);
    autograd::backward(loss_of(p, p.x, p.y));
    const Tensor g = grad_of(*p.net, "layers.4.weight"), gb = grad_of(*p.net, "layers.4.bias");
    const double scale = theta::max(theta::abs(g)).item<double>();
    CHECK(scale > 1e-3);
    CHECK(theta::max(theta::abs(theta::sum(g, {0}))).item<double>() <= 1e-15 * scale * 3);
    CHECK(std::abs(theta::sum(gb).item<double>()) <= 1e-15 * theta::max(theta::abs(gb)).item<double>() * 3);
  }
  SECTION("BatchNorm with eps = 0: scaling the weights feeding it leaves the loss unchanged") {
    Problem p = make_problem(Net::batchnorm, 3);
    const double before = loss_of(p, p.x, p.y).item();
    autograd::backward(loss_of(p, p.x, p.y));
    const Tensor w = param(*p.net, "layers.0.weight"), b = param(*p.net, "layers.0.bias");
    const Tensor gw = grad_of(*p.net, "layers.0.weight"), gb = grad_of(*p.net, "layers.0.bias");
    // <g_c, theta_c> = 0 for every channel c.
    const Tensor inner = theta::add(theta::sum(theta::mul(gw, w), {1}), theta::mul(gb, b));
    const double size =
        std::sqrt(theta::sum(theta::square(gw)).item<double>() * theta::sum(theta::square(w)).item<double>());
    CHECK(theta::max(theta::abs(inner)).item<double>() <= 1e-14 * size);
    w.select(0, 1).copy_(w.select(0, 1) * 3.7);
    b.select(0, 1).copy_(b.select(0, 1) * 3.7);
    w.select(0, 2).copy_(w.select(0, 2) * 0.2);
    b.select(0, 2).copy_(b.select(0, 2) * 0.2);
    CHECK(rel_diff(loss_of(p, p.x, p.y).item(), before) <= 1e-12);
  }
  SECTION("ReLU: rescaling a hidden unit's incoming and outgoing weights leaves the loss unchanged") {
    Problem p = make_problem(Net::relu_mlp, 4);
    const double before = loss_of(p, p.x, p.y).item();
    const Tensor w0 = param(*p.net, "layers.0.weight"), b0 = param(*p.net, "layers.0.bias");
    const Tensor w2 = param(*p.net, "layers.2.weight");
    w0.select(0, 1).copy_(w0.select(0, 1) * 2.5);
    b0.select(0, 1).copy_(b0.select(0, 1) * 2.5);
    w2.select(1, 1).copy_(w2.select(1, 1) / 2.5);
    CHECK(rel_diff(loss_of(p, p.x, p.y).item(), before) <= 1e-12);
  }
  SECTION("deep linear: W_in -> A W_in, W_out -> W_out A^-1 leaves the loss unchanged") {
    Problem p = make_problem(Net::deep_linear, 5);
    const double before = loss_of(p, p.x, p.y).item();
    Rng rng(6);
    const Tensor a = theta::add(eye(3), rng.normal({3, 3}, 0.0, 0.3));
    const Tensor a_inv = theory::solve(a, eye(3));
    const Tensor w0 = param(*p.net, "layers.0.weight"), w2 = param(*p.net, "layers.2.weight");
    w0.copy_(theta::matmul(a, w0));
    w2.copy_(theta::matmul(w2, a_inv));
    CHECK(rel_diff(loss_of(p, p.x, p.y).item(), before) <= 1e-12);
  }
}

TEST_CASE("symmetry: track_sequential finds each net's symmetries", "[theory][symmetry]") {
  auto names = [](Net kind) {
    Problem p = make_problem(kind, 7);
    SymmetryTracker t;
    t.track_sequential(*p.net, p.classify);
    nn::Sgd opt(p.net->named_parameters(), {});
    t.attach(opt);
    std::vector<std::string> out;
    for (std::size_t i = 0; i < t.size(); ++i) out.push_back(t.history(i).name);
    return out;
  };
  CHECK(names(Net::softmax) == std::vector<std::string>{"translation layers.0"});
  CHECK(names(Net::batchnorm) == std::vector<std::string>{"scale layers.0", "translation layers.3"});
  CHECK(names(Net::relu_mlp) == std::vector<std::string>{"rescale layers.0 -> layers.2",
                                                         "rescale layers.2 -> layers.4", "translation layers.4"});
  CHECK(names(Net::deep_linear) ==
        std::vector<std::string>{"balancedness layers.0 -> layers.2", "balancedness layers.2 -> layers.4"});
}

TEST_CASE("symmetry: exact discrete laws hold to 1e-12 over 1000 steps", "[theory][symmetry]") {
  for (Net kind : {Net::softmax, Net::batchnorm, Net::relu_mlp, Net::deep_linear})
    for (const auto& oc : kOptimizers) {
      INFO(net_name(kind) << ", " << oc.name);
      Problem p = make_problem(kind, 11);
      nn::Sgd opt(p.net->named_parameters(), oc.options);
      SymmetryTracker tracker;
      tracker.track_sequential(*p.net, p.classify).attach(opt);
      train(p, opt, 1000, 12);
      REQUIRE(tracker.steps() == 1000);
      CHECK(tracker.max_exact_error() <= 1e-12);
      CHECK(tracker.max_continuous_error() < 0.2);
      for (std::size_t i = 0; i < tracker.size(); ++i) {
        const auto h = tracker.history(i);
        INFO(h.name);
        REQUIRE(h.measured.shape()[0] == 1001);
        CHECK(h.time.back() == Approx(1000 * oc.options.lr).epsilon(1e-12));
        // Not vacuous: Q moved far more than the tolerance (translation without weight decay is
        // conserved outright).
        if (h.symmetry == theory::Symmetry::translation && oc.options.weight_decay == 0.0) continue;
        const Tensor first = h.measured.select(0, 0), last = h.measured.select(0, 1000);
        const double moved = theta::max(theta::div(theta::abs(theta::sub(last, first)), h.magnitude.select(0, 1000)))
                                 .item<double>();
        CHECK(moved > 1e-4);
      }
      // The tracker's last measurement is the quantity of the final parameters.
      const auto h0 = tracker.history(0);
      const Tensor w0 = param(*p.net, "layers.0.weight");
      Tensor q;
      switch (kind) {
        case Net::softmax: q = theory::translation_quantity(w0); break;
        case Net::batchnorm: q = theory::scale_quantity(w0, param(*p.net, "layers.0.bias")); break;
        case Net::relu_mlp:
          q = theory::rescale_quantity(w0, param(*p.net, "layers.0.bias"), param(*p.net, "layers.2.weight"));
          break;
        case Net::deep_linear: q = theory::balancedness(w0, param(*p.net, "layers.2.weight")); break;
      }
      const Tensor last = h0.measured.select(0, 1000).slice(0, 0, q.size(0));
      const Tensor last_magnitude = h0.magnitude.select(0, 1000).slice(0, 0, q.size(0));
      CHECK(theory::max_relative_error(last, q, last_magnitude) <= 1e-14);
    }
}

TEST_CASE("symmetry: laws computed independently agree with the tracker", "[theory][symmetry]") {
  SECTION("translation, SGD + weight decay: Q_K = (1 - eta lambda)^K Q_0") {
    Problem p = make_problem(Net::softmax, 21);
    nn::Sgd opt(p.net->named_parameters(), {.lr = 0.05, .weight_decay = 0.2});
    SymmetryTracker tracker;
    tracker.track_translation("layers.0.weight", "layers.0.bias").attach(opt);
    const Tensor q0 = theory::translation_quantity(param(*p.net, "layers.0.weight").clone());
    const double bias_sum0 = theta::sum(param(*p.net, "layers.0.bias")).item<double>();
    train(p, opt, 1000, 22);
    const Tensor w = param(*p.net, "layers.0.weight"), b = param(*p.net, "layers.0.bias");
    const Tensor q = theory::translation_quantity(w);
    const double factor = std::exp(1000 * std::log1p(-0.05 * 0.2));  // no rounding of 1 - eta lambda
    const Tensor mag = theta::sum(theta::abs(w), {0});
    CHECK(theory::max_relative_error(q, q0 * factor, mag) <= 1e-12);
    const double bias_mag = theta::sum(theta::abs(b)).item<double>();
    CHECK(std::abs(theta::sum(b).item<double>() - bias_sum0 * factor) <= 1e-12 * bias_mag);
    // The tracker's units: the 5 weight columns, then the bias sum.
    const Tensor predicted = tracker.history(0).exact.select(0, 1000);
    REQUIRE(predicted.shape() == Shape{6});
    CHECK(theory::max_relative_error(predicted.slice(0, 0, 5), q0 * factor, mag) <= 1e-12);
    CHECK(std::abs(predicted.at({5}) - bias_sum0 * factor) <= 1e-12 * bias_mag);
  }
  SECTION("translation, momentum + weight decay: Q_{k+1} = (1 + beta - eta lambda) Q_k - beta Q_{k-1}") {
    Problem p = make_problem(Net::softmax, 23);
    const double eta = 0.02, beta = 0.9, lambda = 0.3;
    nn::Sgd opt(p.net->named_parameters(), {.lr = eta, .momentum = beta, .weight_decay = lambda});
    SymmetryTracker tracker;
    tracker.track_translation("layers.0.weight").attach(opt);
    std::vector<double> prev = to_vector(theory::translation_quantity(param(*p.net, "layers.0.weight")));
    std::vector<double> cur = prev;  // Q_{-1} = Q_0: the buffer starts at zero
    for (int k = 0; k < 1000; ++k)
      for (std::size_t j = 0; j < cur.size(); ++j) {
        const double next = cur[j] + beta * (cur[j] - prev[j]) - eta * lambda * cur[j];
        prev[j] = cur[j];
        cur[j] = next;
      }
    train(p, opt, 1000, 24);
    const Tensor w = param(*p.net, "layers.0.weight");
    const Tensor mag = theta::sum(theta::abs(w), {0});
    CHECK(theory::max_relative_error(theory::translation_quantity(w), from_vector(cur), mag) <= 1e-12);
    CHECK(theory::max_relative_error(tracker.history(0).exact.select(0, 1000), from_vector(cur), mag) <= 1e-12);
  }
  SECTION("scale, SGD + weight decay and SGD + momentum: recurrences driven by the measured g or b") {
    for (double beta : {0.0, 0.8}) {
      INFO("momentum " << beta);
      Problem p = make_problem(Net::batchnorm, 25);
      const double eta = 0.05, lambda = 0.1;
      nn::Sgd opt(p.net->named_parameters(), {.lr = eta, .momentum = beta, .weight_decay = lambda});
      SymmetryTracker tracker;
      tracker.track_scale("layers.0.weight", "layers.0.bias").attach(opt);
      const Tensor w = param(*p.net, "layers.0.weight"), b = param(*p.net, "layers.0.bias");  // updated in place
      auto channel_sq = [](const Tensor& cw, const Tensor& cb, std::size_t c) {
        const auto row = static_cast<std::int64_t>(c);
        double s = cb.at({row}) * cb.at({row});
        for (std::int64_t i = 0; i < cw.size(1); ++i) s += cw.at({row, i}) * cw.at({row, i});
        return s;
      };
      const std::size_t channels = 4;
      std::vector<double> y(channels), z(channels, 0.0);  // z_0 = 0: a fresh optimizer
      for (std::size_t c = 0; c < channels; ++c) y[c] = channel_sq(w, b, c);
      Rng rng(26);
      for (int k = 0; k < 1000; ++k) {
        const Tensor idx = rng.integers({p.batch}, 0, p.x.size(0));
        opt.zero_grad();
        autograd::backward(loss_of(p, index_select(p.x, 0, idx), index_select(p.y, 0, idx)));
        const Tensor gw = grad_of(*p.net, "layers.0.weight").clone(), gb = grad_of(*p.net, "layers.0.bias").clone();
        opt.step();
        Tensor bw, bb;  // the momentum buffers b_k after the step
        for (const auto& [name, t] : opt.state()) {
          if (name == "momentum.layers.0.weight") bw = t;
          if (name == "momentum.layers.0.bias") bb = t;
        }
        for (std::size_t c = 0; c < channels; ++c) {
          if (beta == 0.0) {
            // y_{k+1} = (1 - eta lambda)^2 y_k + eta^2 |g_k|^2
            y[c] += -eta * lambda * (2 - eta * lambda) * y[c] + eta * eta * channel_sq(gw, gb, c);
          } else {
            // y_{k+1} = (1 - 2 eta lambda) y_k - 2 eta beta z_k + eta^2 |b_k|^2,
            // z_{k+1} = lambda y_k + beta z_k - eta |b_k|^2
            const double bsq = channel_sq(bw, bb, c);
            const double y_next = y[c] - 2 * eta * lambda * y[c] - 2 * eta * beta * z[c] + eta * eta * bsq;
            z[c] = lambda * y[c] + beta * z[c] - eta * bsq;
            y[c] = y_next;
          }
        }
      }
      const Tensor final_q = theory::scale_quantity(w, b);
      CHECK(theory::max_relative_error(final_q, from_vector(y), final_q) <= 1e-12);
      CHECK(theory::max_relative_error(tracker.history(0).exact.select(0, 1000), from_vector(y), final_q) <= 1e-12);
      CHECK(tracker.max_exact_error() <= 1e-12);
    }
  }
  SECTION("balancedness, full-batch GD: D_K - D_0 = eta^2 sum_k (G_out^T G_out - G_in G_in^T)") {
    Problem p = make_problem(Net::deep_linear, 27);
    const double eta = 0.05;
    nn::Sgd opt(p.net->named_parameters(), {.lr = eta});
    SymmetryTracker tracker;
    tracker.track_balancedness("layers.0.weight", "layers.2.weight").attach(opt);
    const Tensor d0 = theory::balancedness(param(*p.net, "layers.0.weight"), param(*p.net, "layers.2.weight"));
    Tensor sum_g = zeros({3, 3});
    train(p, opt, 1000, 28, [&](int) {
      const Tensor g_in = grad_of(*p.net, "layers.0.weight"), g_out = grad_of(*p.net, "layers.2.weight");
      sum_g = theta::add(sum_g, theta::sub(theta::matmul(g_out.t(), g_out), theta::matmul(g_in, g_in.t())));
    });
    const Tensor w_in = param(*p.net, "layers.0.weight"), w_out = param(*p.net, "layers.2.weight");
    const Tensor d = theory::balancedness(w_in, w_out);
    const Tensor predicted = theta::add(d0, sum_g * (eta * eta));
    const double size =
        theta::sum(theta::square(w_in)).item<double>() + theta::sum(theta::square(w_out)).item<double>();
    CHECK(theta::max(theta::abs(theta::sub(d, predicted))).item<double>() <= 1e-12 * size);
    CHECK(theta::max(theta::abs(theta::sub(d, d0))).item<double>() > 1e-6 * size);  // D really moved
    CHECK(theta::max(theta::abs(theta::sub(tracker.history(0).exact.select(0, 1000), predicted))).item<double>() <=
          1e-12 * size);
  }
}

TEST_CASE("symmetry: dampening, a learning-rate schedule and a restarted tracker", "[theory][symmetry]") {
  Problem p = make_problem(Net::relu_mlp, 31);
  nn::Sgd opt(p.net->named_parameters(), {.lr = 0.03, .momentum = 0.7, .dampening = 0.3, .weight_decay = 0.05});
  train(p, opt, 10, 32);  // the momentum buffers already hold something when the tracker starts
  SymmetryTracker tracker;
  tracker.track_sequential(*p.net, true).attach(opt);
  Rng rng(33);
  for (int k = 0; k < 300; ++k) {
    opt.set_lr(0.03 * (1.0 + 0.5 * std::sin(0.1 * k)));
    const Tensor idx = rng.integers({p.batch}, 0, p.x.size(0));
    opt.zero_grad();
    autograd::backward(loss_of(p, index_select(p.x, 0, idx), index_select(p.y, 0, idx)));
    opt.step();
  }
  CHECK(tracker.steps() == 300);
  CHECK(tracker.max_exact_error() <= 1e-12);
}

TEST_CASE("symmetry: tracker argument errors", "[theory][symmetry]") {
  Problem p = make_problem(Net::relu_mlp, 51);
  {
    SymmetryTracker t;
    t.track_translation("layers.9.weight");
    nn::Sgd opt(p.net->named_parameters(), {});
    CHECK_THROWS_AS(t.attach(opt), std::invalid_argument);
    // The message lists the names there are, so a typo is found at once.
    CHECK_THROWS_WITH(t.attach(opt), Catch::Contains("no parameter 'layers.9.weight' (its parameters: layers.0.weight, "
                                                     "layers.0.bias, layers.2.weight"));
  }
  {
    SymmetryTracker t;
    t.track_rescale("layers.4.weight", "layers.4.bias", "layers.2.weight");  // 3 units in, 4 out
    nn::Sgd opt(p.net->named_parameters(), {});
    CHECK_THROWS_AS(t.attach(opt), ShapeError);
  }
  {
    SymmetryTracker t;
    t.track_translation("layers.4.weight");
    nn::Sgd opt(p.net->named_parameters(), {.momentum = 0.9, .nesterov = true});
    CHECK_THROWS_AS(t.attach(opt), std::invalid_argument);
  }
  {
    SymmetryTracker t;
    t.track_translation("layers.4.weight");
    nn::Sgd opt(p.net->named_parameters(), {});
    t.attach(opt);
    CHECK_THROWS_AS(t.attach(opt), std::logic_error);
    CHECK_THROWS_AS(t.track_scale("layers.0.weight"), std::logic_error);
    CHECK_THROWS_AS(t.history(1), IndexError);
  }
}
