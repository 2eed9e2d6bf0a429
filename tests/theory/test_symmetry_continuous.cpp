// Conserved quantities of training: the continuous (modified-flow) predictions.
#include <catch2/catch.hpp>

#include "tests/theory/symmetry_problems.hpp"

using namespace theta;
using namespace symmetry_test;
using theta::autograd::Var;
using theta::theory::SymmetryTracker;

TEST_CASE("symmetry: discounted recursions stay finite where the naive form overflows", "[theory][symmetry]") {
  SECTION("first order: u' = -2 lambda u + f over 10^5 steps") {
    const double lambda = 50.0, eta = 0.1, f = 3.0, u0 = 2.0;
    const theory::DecayStep s = theory::decay_step(2.0 * lambda, eta);
    double u = u0, naive_sum = 0.0, t = 0.0;
    for (int k = 0; k < 100000; ++k) {
      u = s.decay * u + s.gain * f;
      // The undiscounted form: e^{-2 lambda t} (u0 + int_0^t e^{2 lambda s} f ds).
      naive_sum += std::exp(2.0 * lambda * t) * s.gain * std::exp(2.0 * lambda * eta) * f;
      t += eta;
      const double steady = f / (2 * lambda);
      if (k == 0) CHECK(u == Approx(steady + (u0 - steady) * std::exp(-2 * lambda * eta)).epsilon(1e-14));
    }
    const double naive = std::exp(-2.0 * lambda * t) * (u0 + naive_sum);
    CHECK_FALSE(std::isfinite(naive));
    REQUIRE(std::isfinite(u));
    CHECK(u == Approx(f / (2.0 * lambda)).epsilon(1e-14));
    // Moderate times: the exact solution of the piecewise-constant problem.
    const theory::DecayStep small = theory::decay_step(0.3, 0.01);
    double v = u0;
    for (int k = 0; k < 500; ++k) v = small.decay * v + small.gain * f;
    CHECK(v == Approx(f / 0.3 + (u0 - f / 0.3) * std::exp(-0.3 * 5.0)).epsilon(1e-13));
    CHECK(theory::decay_step(0.0, 0.25).gain == 0.25);
  }
  SECTION("damped oscillator: Kunin's closed forms in every damping regime") {
    // m Q'' + c Q' + k Q = 0, Q(0) = 1, Q'(0) = 0: Q = e^{-g t} (cosh(d t) + g / d sinh(d t)).
    struct Case {
      double m, c, k;
    };
    for (const Case cs : {Case{0.019, 0.1, 0.05}, Case{1.0, 0.2, 4.0}, Case{1.0, 2.0, 1.0}}) {
      const double g = cs.c / (2 * cs.m), d2 = g * g - cs.k / cs.m;
      const double h = 0.01;
      const theory::OscillatorStep o = theory::oscillator_step(cs.m, cs.c, cs.k, h);
      double u = 1.0, v = 0.0;
      for (int n = 0; n < 500; ++n) {
        const double un = o.transition[0][0] * u + o.transition[0][1] * v;
        v = o.transition[1][0] * u + o.transition[1][1] * v;
        u = un;
      }
      const double t = 5.0;
      double expected;
      if (d2 > 1e-12) {
        const double d = std::sqrt(d2);
        expected = 0.5 * (1 + g / d) * std::exp((-g + d) * t) + 0.5 * (1 - g / d) * std::exp((-g - d) * t);
      } else if (d2 < -1e-12) {
        const double w = std::sqrt(-d2);
        expected = std::exp(-g * t) * (std::cos(w * t) + g / w * std::sin(w * t));
      } else {
        expected = (1 + g * t) * std::exp(-g * t);
      }
      INFO("m " << cs.m << " c " << cs.c << " k " << cs.k);
      CHECK(u == Approx(expected).epsilon(1e-11));
    }
  }
  SECTION("damped oscillator: a stiff forced run of 10^5 steps settles at f / k") {
    const double m = 0.05, c = 0.1, k = 40.0, f = 2.0, h = 0.1;
    const theory::OscillatorStep o = theory::oscillator_step(m, c, k, h);
    double u = 5.0, v = -1.0;
    for (int n = 0; n < 100000; ++n) {
      const double un = o.transition[0][0] * u + o.transition[0][1] * v + o.response[0] * f;
      v = o.transition[1][0] * u + o.transition[1][1] * v + o.response[1] * f;
      u = un;
    }
    REQUIRE(std::isfinite(u));
    CHECK(u == Approx(f / k).epsilon(1e-12));
    CHECK(std::abs(v) < 1e-12);
  }
}

TEST_CASE("symmetry: the continuous prediction's error is first order in the learning rate", "[theory][symmetry]") {
  // Translation has no forcing, so the measured Q follows the exact law whatever the minibatches;
  // halving eta at fixed t = eta K must halve the continuous prediction's error.
  auto error_at = [](double eta, double beta) {
    Problem p = make_problem(Net::softmax, 41);
    // lambda t / (1 - beta) = 2 at the end in both cases.
    const double lambda = 0.5 * (1.0 - beta);
    nn::Sgd opt(p.net->named_parameters(), {.lr = eta, .momentum = beta, .weight_decay = lambda});
    SymmetryTracker tracker;
    tracker.track_translation("layers.0.weight").attach(opt);
    train(p, opt, static_cast<int>(std::lround(4.0 / eta)), 42);
    const auto h = tracker.history(0);
    const std::int64_t last = h.measured.size(0) - 1;
    const Tensor m = h.measured.select(0, last), c = h.continuous.select(0, last);
    return theta::max(theta::div(theta::abs(theta::sub(m, c)), theta::abs(m))).item<double>();
  };
  for (double beta : {0.0, 0.9}) {
    INFO("momentum " << beta);
    const double coarse = error_at(0.02, beta), fine = error_at(0.01, beta);
    CHECK(coarse > 1e-6);
    CHECK(coarse < 0.1);
    CHECK(coarse / fine == Approx(2.0).epsilon(0.15));
  }
}

