// Deep linear network dynamics (Saxe, McClelland and Ganguli 2014), measured against theory:
//  1. depth 2, small balanced init aligned with the modes: u_a(t) against Saxe's closed form
//     (t = eta k, loss 1/(2n) sum |y - W_2 W_1 x|^2), and the O(eta) law of the residual;
//  2. depth 2, small random init: stage-like learning, strongest mode first, each mode reaching
//     s/2 near (1/(2s)) ln(s/u0 - 1) with the effective u0 = |W_1 v + W_2^T u|^2 / 4;
//  3. depth 3, balanced aligned init: u_a(t) against RK4 on du/dt = 3 u^{4/3} (s - u);
//  4. balancedness W_2^T W_2 - W_1 W_1^T: constant under the flow, and under GD changed by exactly
//     eta^2 (G_2^T G_2 - G_1 G_1^T) per step.
// The conventions are derived in theory/deep_linear.cpp (Note [Deep linear time convention]).

#include <chrono>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "tensor/ops.hpp"
#include "theory/deep_linear.hpp"
#include "theory/demos/demo_common.hpp"

using namespace theta;
using namespace theta::theory;
using theta::demos::fmt;

namespace {

constexpr const char* kName = "deep_linear_demo";

double value(const Tensor& strengths, std::size_t record, std::int64_t mode) {
  return strengths.at({static_cast<std::int64_t>(record), mode});
}

// CSV columns t, u0_gd, u0_theory, u1_gd, ...: measured mode strengths and their prediction.
void write_modes(demos::Results& results, const std::string& file, const GdTrace& trace,
                 const std::vector<std::vector<double>>& predicted, const Tensor& s) {
  std::vector<std::string> header{"t"};
  std::vector<std::vector<double>> columns{trace.times};
  for (std::int64_t a = 0; a < s.size(0); ++a) {
    std::vector<double> measured;
    for (std::size_t r = 0; r < trace.times.size(); ++r) measured.push_back(value(trace.strengths, r, a));
    header.push_back("u" + std::to_string(a) + "_gd");
    header.push_back("u" + std::to_string(a) + "_theory");
    columns.push_back(measured);
    columns.push_back(predicted[static_cast<std::size_t>(a)]);
  }
  results.write_csv(file, header, columns);
}

// max over records and modes of |measured - predicted| / s.
double max_relative_error(const GdTrace& trace, const std::vector<std::vector<double>>& predicted, const Tensor& s) {
  double worst = 0.0;
  for (std::int64_t a = 0; a < s.size(0); ++a)
    for (std::size_t r = 0; r < trace.times.size(); ++r)
      worst = std::max(worst, std::abs(value(trace.strengths, r, a) - predicted[static_cast<std::size_t>(a)][r]) /
                                  s.at({a}));
  return worst;
}

std::vector<std::vector<double>> saxe_curves(const std::vector<double>& times, const Tensor& s, const Tensor& u0) {
  std::vector<std::vector<double>> out;
  for (std::int64_t a = 0; a < s.size(0); ++a) {
    std::vector<double> curve;
    for (double t : times) curve.push_back(saxe_mode_strength(s.at({a}), u0.at({a}), t));
    out.push_back(curve);
  }
  return out;
}

int demo_main(const demos::DemoArgs& args, demos::Results& results) {
  const auto start = std::chrono::steady_clock::now();
  Rng rng(args.seed + 2014);
  // n = 16, d_in = 8, d_out = 6; --quick drops the slow s = 0.5 mode.
  SaxeProblemOptions problem_options{};
  if (args.quick) problem_options.strengths = {2.0, 1.5, 1.0};
  const DeepLinearProblem problem = make_saxe_problem(problem_options, rng);
  const std::int64_t modes = problem.s.size(0);
  const double eta = 1e-3;

  // ---- 1. depth 2, balanced aligned init, against Saxe's closed form ---------------------------
  const double u0 = 1e-3;
  const double t_balanced = args.quick ? 6.0 : 12.0;
  const Tensor u0_all = full({modes}, u0);
  const std::vector<Tensor> balanced_weights = balanced_aligned_init({8, 16, 6}, problem.u, problem.v, u0_all, rng);
  demos::progress("depth 2, balanced init: " + fmt(t_balanced / eta, 6) + " GD steps at eta = 1e-3");
  auto net = make_deep_linear_net(balanced_weights);
  const GdTrace balanced = train_deep_linear(
      *net, problem, {.eta = eta, .steps = std::llround(t_balanced / eta), .record_every = 20,
                      .check_balancedness = true});
  const auto saxe = saxe_curves(balanced.times, problem.s, u0_all);
  const double balanced_error = max_relative_error(balanced, saxe, problem.s);
  results.check({.id = "depth2_saxe",
                 .claim = "depth 2, balanced aligned init: every mode follows Saxe's closed form",
                 .measured = "max |u - u_saxe| / s = " + fmt(balanced_error),
                 .predicted = "0 (up to GD's O(eta) lag behind the flow, eta = 1e-3)",
                 .tolerance = "<= 2e-3",
                 .pass = balanced_error <= 2e-3,
                 .limit = 2e-3});
  // The residual is Euler's O(eta) lag (Note [Deep linear time convention]): doubling eta doubles it.
  auto net_coarse = make_deep_linear_net(balanced_weights);
  const GdTrace coarse = train_deep_linear(
      *net_coarse, problem, {.eta = 2 * eta, .steps = std::llround(t_balanced / (2 * eta)), .record_every = 10});
  const double coarse_error = max_relative_error(coarse, saxe_curves(coarse.times, problem.s, u0_all), problem.s);
  const double order_ratio = coarse_error / balanced_error;
  results.check({.id = "first_order",
                 .claim = "the depth-2 residual is GD's first-order lag",
                 .measured = "error(2 eta) / error(eta) = " + fmt(order_ratio),
                 .predicted = "2",
                 .tolerance = "in (1.8, 2.2)",
                 .pass = order_ratio > 1.8 && order_ratio < 2.2});
  results.check({.id = "stays_balanced",
                 .claim = "a balanced init stays balanced",
                 .measured = "max |B(K) - B(0)| = " + fmt(balanced.drift.back()),
                 .predicted = "0",
                 .tolerance = "<= 1e-12",
                 .pass = balanced.max_total_law_error <= 1e-12 && balanced.drift.back() <= 1e-12,
                 .limit = 1e-12});
  write_modes(results, "balanced_depth2.csv", balanced, saxe, problem.s);

  // ---- 2. depth 2, small random init: stage-like learning --------------------------------------
  const std::int64_t hidden = 64;
  const double sigma = std::sqrt(2e-3 / static_cast<double>(hidden));  // effective u0 ~ h sigma^2 / 2 = 1e-3
  const double t_random = args.quick ? 6.0 : 14.0;
  const std::vector<Tensor> random_weights = random_init({8, hidden, 6}, sigma, rng);
  const Tensor u0_effective = effective_initial_strength(random_weights, problem.u, problem.v);
  demos::progress("depth 2, random init (h = 64): " + fmt(t_random / eta, 6) + " GD steps, eta^2 law per step");
  auto random_net = make_deep_linear_net(random_weights);
  const GdTrace random = train_deep_linear(
      *random_net, problem, {.eta = eta, .steps = std::llround(t_random / eta), .record_every = 5,
                             .check_balancedness = true});
  const std::vector<double> t_half = crossing_times(random.times, random.strengths, problem.s);
  double worst_half = 0.0;
  bool ordered = true;
  std::ostringstream halves;
  for (std::int64_t a = 0; a < modes; ++a) {
    const double predicted = saxe_half_time(problem.s.at({a}), u0_effective.at({a}));
    const double measured = t_half[static_cast<std::size_t>(a)];
    const double rel = std::isfinite(measured) ? std::abs(measured - predicted) / predicted
                                               : std::numeric_limits<double>::infinity();
    worst_half = std::max(worst_half, rel);
    if (a > 0) ordered = ordered && measured > t_half[static_cast<std::size_t>(a - 1)];
    halves << " s=" << fmt(problem.s.at({a})) << ": " << fmt(measured, 4) << " vs " << fmt(predicted, 4) << ";";
  }
  results.check({.id = "strongest_first",
                 .claim = "a small random init learns the strongest mode first",
                 .measured = "t_half ordered by s: " + std::string(ordered ? "yes" : "no"),
                 .predicted = "t_half increasing as s decreases",
                 .tolerance = "exact order",
                 .pass = ordered});
  results.check({.id = "half_time",
                 .claim = "mode a reaches s/2 at t_half = (1/(2s)) ln(s/u0_eff - 1)",
                 .measured = "max relative error " + fmt(worst_half) + " (measured vs predicted:" + halves.str() + ")",
                 .predicted = "0",
                 .tolerance = "<= 0.03",
                 .pass = worst_half <= 0.03,
                 .limit = 0.03});
  const auto random_theory = saxe_curves(random.times, problem.s, u0_effective);
  const double random_error = max_relative_error(random, random_theory, problem.s);
  results.check({.id = "random_saxe",
                 .claim = "depth 2, small random init: modes follow Saxe's curve from u0_eff",
                 .measured = "max |u - u_saxe| / s = " + fmt(random_error),
                 .predicted = "0",
                 .tolerance = "<= 0.05",
                 .pass = random_error <= 0.05,
                 .limit = 0.05});
  write_modes(results, "random_depth2.csv", random, random_theory, problem.s);

  // ---- 3. depth 3, balanced aligned init, against the integrated mode ODE ----------------------
  const double u0_deep = 1e-2;
  const double t_deep = args.quick ? 6.0 : 12.0;
  const Tensor u0_deep_all = full({modes}, u0_deep);
  demos::progress("depth 3, balanced init: " + fmt(t_deep / eta, 6) + " GD steps, RK4 on du/dt = 3 u^(4/3) (s - u)");
  auto deep_net = make_deep_linear_net(balanced_aligned_init({8, 12, 10, 6}, problem.u, problem.v, u0_deep_all, rng));
  const GdTrace deep = train_deep_linear(
      *deep_net, problem, {.eta = eta, .steps = std::llround(t_deep / eta), .record_every = 20,
                           .check_balancedness = true});
  std::vector<std::vector<double>> ode;
  for (std::int64_t a = 0; a < modes; ++a) ode.push_back(integrate_depth_d(3, problem.s.at({a}), u0_deep, deep.times, 1e-4));
  const double deep_error = max_relative_error(deep, ode, problem.s);
  // The same Euler O(eta) residual as at depth 2 (1.8e-3 here, independent of the seed).
  results.check({.id = "depth3_ode",
                 .claim = "depth 3, balanced aligned init: modes follow du/dt = 3 u^(4/3) (s - u)",
                 .measured = "max |u - u_rk4| / s = " + fmt(deep_error),
                 .predicted = "0 (up to GD's O(eta) lag, eta = 1e-3)",
                 .tolerance = "<= 2.5e-3",
                 .pass = deep_error <= 2.5e-3,
                 .limit = 2.5e-3});
  // RK4 itself against the closed form at depth 2.
  double rk4_error = 0.0;
  for (std::int64_t a = 0; a < modes; ++a) {
    const auto rk4 = integrate_depth_d(2, problem.s.at({a}), u0, balanced.times, 1e-4);
    for (std::size_t r = 0; r < rk4.size(); ++r)
      rk4_error = std::max(rk4_error, std::abs(rk4[r] - saxe[static_cast<std::size_t>(a)][r]) / problem.s.at({a}));
  }
  results.check({.id = "rk4",
                 .claim = "the RK4 integrator (dt = 1e-4) reproduces the depth-2 closed form",
                 .measured = "max |u_rk4 - u_saxe| / s = " + fmt(rk4_error),
                 .predicted = "0",
                 .tolerance = "<= 1e-10",
                 .pass = rk4_error <= 1e-10,
                 .limit = 1e-10});
  write_modes(results, "balanced_depth3.csv", deep, ode, problem.s);
  {
    std::vector<double> index, s, u0_eff;
    for (std::int64_t a = 0; a < modes; ++a) {
      index.push_back(static_cast<double>(a));
      s.push_back(problem.s.at({a}));
      u0_eff.push_back(u0_effective.at({a}));
    }
    results.write_csv("modes.csv", {"mode", "s", "u0_eff_random"}, {index, s, u0_eff});
  }

  // ---- 4. balancedness: the exact eta^2 law ----------------------------------------------------
  const double law_error = std::max({random.max_step_law_error, random.max_total_law_error,
                                     deep.max_step_law_error, deep.max_total_law_error,
                                     balanced.max_step_law_error});
  results.check({.id = "eta2_law",
                 .claim = "GD changes B = W2^T W2 - W1 W1^T by exactly eta^2 (G2^T G2 - G1 G1^T) per step",
                 .measured = "max error " + fmt(law_error) + " (random-init drift max |B(K) - B(0)| = " +
                             fmt(random.drift.back()) + ")",
                 .predicted = "0",
                 .tolerance = "<= 1e-12 (absolute)",
                 .pass = law_error <= 1e-12,
                 .limit = 1e-12});
  results.write_csv("balancedness.csv", {"t", "drift_gd", "drift_eta2_law", "residual"},
                    {random.times, random.drift, random.predicted_drift, random.law_residual});

  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::ostringstream summary;
  summary << "max |u - u_saxe|/s = " << fmt(balanced_error) << " (depth 2, eta 1e-3), depth 3 vs RK4 "
          << fmt(deep_error) << ", random-init t_half rel. error " << fmt(worst_half) << ", eta^2 law error "
          << fmt(law_error) << " (" << fmt(seconds, 2) << " s)";
  return results.finish(summary.str());
}

}  // namespace

int main(int argc, char** argv) {
  return demos::run_demo(argc, argv,
                         {.name = kName,
                          .description = "deep linear network mode dynamics against Saxe et al. (2014)",
                          .flags = demos::kFlagQuick},
                         demo_main);
}
